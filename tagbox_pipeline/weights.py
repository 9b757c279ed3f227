"""Model weights: where they are looked for, how they are downloaded and verified, how they are loaded.

Lookup order for a :class:`WeightSpec` with relative path ``rel``: ``$TAGBOX_MODEL_DIR/rel``, then the
user cache ``cache_dir()/models/rel``. Downloads try every URL in turn (primary, then mirrors), show a
progress bar, go to a temporary file that is checked against the pinned sha256 and then renamed into
the cache, and record size and sha256 in a ``<file>.json`` sidecar. Loading never executes pickled
code: :func:`load_state_dict` uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from .errors import WeightsError
from .paths import cache_dir
from .files import sha256_file, write_json_atomic

_BLOCK = 1 << 16


@dataclass(frozen=True)
class WeightSpec:
    """One weights file.

    Attributes:
        name: the name users type (``tagbox models fetch NAME``).
        relpath: path relative to the model dir / cache, e.g. ``mtat/fcn/best_model.pth``.
        sha256: pinned hex digest, or None when unknown (then recorded on first fetch).
        urls: download URLs, primary first, then mirrors.
        licence: the weights' licence, shown to users.
    """

    name: str
    relpath: str
    sha256: str | None = None
    urls: tuple[str, ...] = field(default_factory=tuple)
    licence: str = ""


def candidates(spec: WeightSpec) -> list[Path]:
    """Every path where ``spec`` is looked for, in order."""
    places = []
    if os.environ.get("TAGBOX_MODEL_DIR"):
        places.append(Path(os.environ["TAGBOX_MODEL_DIR"]) / spec.relpath)
    places.append(cache_dir() / "models" / spec.relpath)
    return places


def verify(spec: WeightSpec, path: Path) -> str:
    """sha256 of ``path``; raises WeightsError if it differs from the pinned digest, or, for a spec
    without one, from the digest recorded in its sidecar when it was downloaded."""
    digest = sha256_file(path)
    expected = spec.sha256 or (read_sidecar(path) or {}).get("sha256")
    if expected and digest != expected:
        raise WeightsError(
            f"corrupt weights for {spec.name}: sha256 {digest[:12]}… expected {expected[:12]}… "
            f"(delete it and run `tagbox models fetch {spec.name}`)",
            path,
        )
    return digest


def locate(spec: WeightSpec) -> Path:
    """The verified local file of ``spec``.

    Raises:
        WeightsError: if no candidate exists (saying where it looked and how to fetch) or a file is corrupt.
    """
    for path in candidates(spec):
        if path.is_file():
            verify(spec, path)
            return path
    looked = ", ".join(str(p) for p in candidates(spec))
    raise WeightsError(
        f"weights for {spec.name} not found (looked in {looked}); run `tagbox models fetch {spec.name}` "
        "or set TAGBOX_MODEL_DIR to a folder holding them"
    )


def is_present(spec: WeightSpec) -> bool:
    """Whether a file for ``spec`` exists in one of the candidate places (not verified)."""
    return any(path.is_file() for path in candidates(spec))


def _download(url: str, target: Path, label: str) -> None:
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https/http URLs from specs)
        total = int(response.headers.get("Content-Length") or 0) or None
        columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, transient=True) as progress, open(target, "wb") as out:
            task = progress.add_task(label, total=total)
            while block := response.read(_BLOCK):
                out.write(block)
                progress.advance(task, len(block))


def fetch(spec: WeightSpec, force: bool = False, check: Callable[[Path], object] | None = None) -> Path:
    """Download ``spec`` into the user cache (atomically, sha256-checked) and return its path.

    An already cached, valid file is returned as is unless ``force``. ``check`` (optional) inspects
    each downloaded file before it is kept and raises WeightsError to reject it (then the next URL is
    tried) — useful when no sha256 is pinned.

    Raises:
        WeightsError: when every URL failed or the downloaded bytes do not match the pinned sha256.
    """
    dest = cache_dir() / "models" / spec.relpath
    if dest.is_file() and not force:
        verify(spec, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for url in spec.urls:
        handle, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(handle)
        temp = Path(temp_name)
        try:
            _download(url, temp, f"{spec.name} ({url.split('/')[2]})")
            digest = verify(spec, temp)
            if check is not None:
                check(temp)
            os.replace(temp, dest)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{url}: {exc}")
            continue
        except WeightsError as exc:
            errors.append(f"{url}: {exc.cause}")
            continue
        finally:
            temp.unlink(missing_ok=True)
        write_json_atomic(dest.with_name(dest.name + ".json"), {"url": url, "size": dest.stat().st_size, "sha256": digest})
        return dest
    raise WeightsError(f"could not download {spec.name}: " + "; ".join(errors) if errors else "no URL known", dest)


def load_state_dict(path: Path) -> dict[str, Any]:
    """Load a torch checkpoint safely (no code execution); any failure is a WeightsError naming the file."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise WeightsError("weights file not found", path) from None
    except Exception as exc:  # unpickling errors of any kind: corrupt, truncated or carrying code
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"not a loadable weights file (refused or corrupt: {first[:200]})", path) from None


def read_sidecar(path: Path) -> dict[str, Any] | None:
    """The recorded download facts next to a cached file, if any."""
    sidecar = path.with_name(path.name + ".json")
    return json.loads(sidecar.read_text()) if sidecar.is_file() else None
