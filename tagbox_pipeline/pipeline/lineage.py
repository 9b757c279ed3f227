"""Asset lineage of a separated track: input mixture → stem files, as Prefect asset events.

:func:`record_lineage` runs one ``record-lineage`` task (a Prefect ``materialize`` task) that
emits, when it completes:

* one ``prefect.asset.referenced`` event for the mixture, keyed ``file:///…/song.wav``;
* one ``prefect.asset.materialization.succeeded`` event per stem file (``drums.wav``…,
  ``residual.wav``), keyed by the stem's file URI, with the mixture as a related resource in
  role ``asset`` (its upstream), ``tagbox`` in role ``asset-materialized-by``, the flow run and
  task run, and a payload of ``path``, ``bytes``, ``sha256`` and ``mixture``.

The open-source Prefect server (3.9) stores these as events and has no asset pages: its UI's
event feed lists them by asset key, linked to the flow and task run (they arrive a few seconds
after the task ends). Prefect Cloud builds its asset lineage graph from the same events.

Asset keys are ``file://`` URIs of the resolved path. Prefect refuses keys with a space or any of
``# ? & % " ' < > [ ] { } | \\ ^ ` `` and keys over 512 characters, so percent-encoding cannot be
used (``%`` is refused too). Each space becomes ``+``; each refused character, control character,
``+`` and ``~`` becomes ``~HH`` per UTF-8 byte (a byte of an undecodable file name becomes its
own ``~HH``); other letters, accents included, are kept (``Café take 1.wav`` →
``Café+take+1.wav``). Distinct paths thus never share a key. A key that would be over 512
characters becomes ``tagbox://long-path/<16 hex of its sha256>/<trailing path components>``; the
payload's ``path`` still gives the full path.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Sequence
from pathlib import Path

from prefect import get_run_logger
from prefect.assets import Asset, AssetProperties, add_asset_metadata, materialize
from prefect.cache_policies import NO_CACHE
from prefect.types.names import MAX_ASSET_KEY_LENGTH, RESTRICTED_ASSET_CHARACTERS

from ..files import sha256_file

#: characters written as ``~HH`` escapes besides Prefect's refused ones and control characters
_ESCAPED = frozenset(RESTRICTED_ASSET_CHARACTERS) | {"+", "~"}


def _escape(ch: str) -> str:
    """One path character as it stands in an asset key."""
    if ch == " ":
        return "+"
    if ch in _ESCAPED or unicodedata.category(ch).startswith("C"):
        return "".join(f"~{byte:02X}" for byte in ch.encode("utf-8", "surrogateescape"))
    return ch


def asset_key(path: Path) -> str:
    """The asset key of a file: its resolved path as a ``file://`` URI (escaped as the module
    docstring says), or a ``tagbox://long-path/…`` key when that would exceed 512 characters."""
    posix = path.resolve().as_posix()
    encoded = "".join(map(_escape, posix if posix.startswith("/") else f"/{posix}"))
    key = f"file://{encoded}"
    if len(key) <= MAX_ASSET_KEY_LENGTH:
        return key
    prefix = f"tagbox://long-path/{hashlib.sha256(key.encode()).hexdigest()[:16]}"
    cut = len(encoded) - (MAX_ASSET_KEY_LENGTH - len(prefix) - 1)  # room for the tail and its "/"
    while "~" in encoded[cut - 2:cut]:  # never start inside a ~HH escape
        cut += 1
    slash = encoded.find("/", cut)  # start at a path component when one fits
    return prefix + (encoded[slash:] if slash != -1 else f"/{encoded[cut:]}")


def _describe_stems(stems: list[Path], keys: list[str], mixture: Path) -> None:
    """Attach each stem's path, size (bytes) and sha256 to its materialization event."""
    for stem, key in zip(stems, keys):
        metadata: dict[str, str | int] = {"path": str(stem), "mixture": str(mixture)}
        try:
            metadata |= {"bytes": stem.stat().st_size, "sha256": sha256_file(stem)}
        except OSError as exc:  # lineage is still worth recording without the checksum
            get_run_logger().warning("lineage of %s recorded without its sha256: %s", stem, exc)
        add_asset_metadata(key, metadata)


def record_lineage(mixture: Path, stems: Sequence[Path]) -> list[str]:
    """Record ``stems`` (published stem and residual files) as assets made from ``mixture``.

    Call it inside a flow run once the stem folder is in place; it runs one ``record-lineage``
    task, never cached (a cached task run emits no asset events). Hashing reads every stem once.

    Returns:
        the stems' asset keys, in ``stems`` order (none and no task run when ``stems`` is empty).
    """
    if not stems:
        return []
    source = Asset(key=asset_key(mixture),
                   properties=AssetProperties(name=mixture.name, description="input mixture"))
    assets = [Asset(key=asset_key(stem),
                    properties=AssetProperties(name=f"{stem.stem} stem of {mixture.name}",
                                               description=f"{stem.name} separated by TagBox from {mixture.name}"))
              for stem in stems]
    keys = [asset.key for asset in assets]
    task = materialize(*assets, by="tagbox", name="record-lineage", asset_deps=[source], cache_policy=NO_CACHE,
                       persist_result=False)(_describe_stems)
    task(list(stems), keys, mixture)
    return keys
