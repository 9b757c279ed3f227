"""Model weights: where they are looked for, how they are downloaded and verified, how they are loaded.

Lookup order for a :class:`WeightSpec` with relative path ``rel``: ``$TAGBOX_MODEL_DIR/rel``, then the
user cache ``cache_dir()/models/rel``. Downloads try every URL in turn (primary, then mirrors; a
spec may instead, or after them, name a ``fetcher`` that produces the file itself, e.g. with pip),
show a progress bar, go to a temporary file that is checked against the pinned sha256 and then
renamed into the cache, and record size and sha256 in a ``<file>.json`` sidecar. An archive spec (``members`` set,
e.g. a wheel) is not kept: the pinned members are unpacked from the checked download into a
temporary folder, each checked against its own pin, and that folder is renamed to ``rel``. Loading
never executes pickled code: :func:`load_state_dict` uses ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

from .errors import WeightsError
from .paths import cache_dir
from .files import default_mode, sha256_file, write_json_atomic

_BLOCK = 1 << 16


@dataclass(frozen=True)
class WeightSpec:
    """One weights file, or the folder of files unpacked from one downloaded zip archive.

    Attributes:
        name: the name users type (``tagbox models fetch NAME``).
        relpath: path relative to the model dir / cache, e.g. ``mtat/fcn/best_model.pth`` (for an
            archive: the folder its members are unpacked into, each at its path inside the archive).
        sha256: pinned hex digest (of the archive, for an archive), or None when unknown (then
            recorded on first fetch).
        urls: download URLs, primary first, then mirrors.
        licence: the weights' licence, shown to users.
        members: for an archive: (path inside the archive, pinned sha256) of every file to unpack.
        fetcher: tried after ``urls``: puts the file (the archive) at the path it is given, returns
            where it came from (recorded in the sidecar's ``url``), and raises WeightsError naming
            what failed. Its file is checked and unpacked like a download.
    """

    name: str
    relpath: str
    sha256: str | None = None
    urls: tuple[str, ...] = field(default_factory=tuple)
    licence: str = ""
    members: tuple[tuple[str, str], ...] = ()
    fetcher: Callable[[Path], str] | None = field(default=None, repr=False)


def _exists(spec: WeightSpec, path: Path) -> bool:
    """Whether ``path`` holds ``spec``'s file, or for an archive spec its unpacked folder."""
    return path.is_dir() if spec.members else path.is_file()


def candidates(spec: WeightSpec) -> list[Path]:
    """Every path where ``spec`` is looked for, in order."""
    places = []
    if os.environ.get("TAGBOX_MODEL_DIR"):
        places.append(Path(os.environ["TAGBOX_MODEL_DIR"]) / spec.relpath)
    places.append(cache_dir() / "models" / spec.relpath)
    return places


def _checked_digest(name: str, path: Path, expected: str | None) -> str:
    """sha256 of the file ``path``; raises WeightsError if it is missing or differs from ``expected``."""
    if not path.is_file():
        raise WeightsError(f"incomplete weights for {name}: file missing (run `tagbox models fetch {name} --force`)",
                           path)
    digest = sha256_file(path)
    if expected and digest != expected:
        raise WeightsError(
            f"corrupt weights for {name}: sha256 {digest[:12]}… expected {expected[:12]}… "
            f"(delete it and run `tagbox models fetch {name}`)",
            path,
        )
    return digest


def verify(spec: WeightSpec, path: Path) -> str:
    """sha256 of ``path``; raises WeightsError if it differs from the pinned digest, or, for a spec
    without one, from the digest recorded in its sidecar when it was downloaded.

    For an archive spec ``path`` is the unpacked folder: every member is checked against its pin and
    the archive's pinned digest is returned.
    """
    if spec.members:
        for member, expected in spec.members:
            _checked_digest(spec.name, path / member, expected)
        return spec.sha256 or ""
    return _checked_digest(spec.name, path, spec.sha256 or (read_sidecar(path) or {}).get("sha256"))


def locate(spec: WeightSpec) -> Path:
    """The verified local file of ``spec``.

    Raises:
        WeightsError: if no candidate exists (saying where it looked and how to fetch) or a file is corrupt.
    """
    for path in candidates(spec):
        if _exists(spec, path):
            verify(spec, path)
            return path
    looked = ", ".join(str(p) for p in candidates(spec))
    raise WeightsError(
        f"weights for {spec.name} not found (looked in {looked}); run `tagbox models fetch {spec.name}` "
        "or set TAGBOX_MODEL_DIR to a folder holding them"
    )


def is_present(spec: WeightSpec) -> bool:
    """Whether a file (an archive spec: a folder) for ``spec`` exists in one of the candidate places (not verified)."""
    return any(_exists(spec, path) for path in candidates(spec))


def _download(url: str, target: Path, label: str) -> None:
    """Download ``url`` to the file ``target`` with a progress bar labelled ``label``."""
    with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 (https/http URLs from specs)
        total = int(response.headers.get("Content-Length") or 0) or None
        columns = ("[progress.description]{task.description}", BarColumn(), DownloadColumn(), TransferSpeedColumn())
        with Progress(*columns, transient=True) as progress, open(target, "wb") as out:
            task = progress.add_task(label, total=total)
            while block := response.read(_BLOCK):
                out.write(block)
                progress.advance(task, len(block))


def _replace_folder(new: Path, dest: Path) -> None:
    """Rename the folder ``new`` to ``dest``; an existing ``dest`` is renamed aside first, then deleted."""
    old = None
    if dest.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent))
        os.replace(dest, old)
    os.replace(new, dest)
    if old is not None:
        shutil.rmtree(old)


def _unpack(spec: WeightSpec, archive: Path, dest: Path) -> None:
    """Unpack ``spec``'s members from the zip ``archive`` into a temporary folder beside ``dest``, check
    each against its pin, then rename that folder to ``dest``. Member files are copied, never executed.

    Raises:
        WeightsError: the archive is not a zip, lacks a member, or a member does not match its pin.
    """
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent))
    staging.chmod(default_mode(directory=True))
    try:
        with zipfile.ZipFile(archive) as bundle:
            for member, _ in spec.members:
                target = staging / member
                target.parent.mkdir(parents=True, exist_ok=True)
                with bundle.open(member) as source, open(target, "wb") as out:
                    shutil.copyfileobj(source, out, _BLOCK)
        verify(spec, staging)
        _replace_folder(staging, dest)
    except (zipfile.BadZipFile, KeyError) as exc:
        raise WeightsError(f"not the archive of {spec.name} ({exc})", archive) from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _sources(spec: WeightSpec) -> list[tuple[str | None, Callable[[Path], str]]]:
    """What :func:`fetch` tries in turn, each with the label its failure is reported under: every URL
    (labelled with itself), then the spec's fetcher (unlabelled: its errors name what failed)."""
    def from_url(url: str) -> Callable[[Path], str]:
        def download(target: Path) -> str:
            _download(url, target, f"{spec.name} ({url.split('/')[2]})")
            return url
        return download

    return [*((url, from_url(url)) for url in spec.urls), *([(None, spec.fetcher)] if spec.fetcher else [])]


def fetch(spec: WeightSpec, force: bool = False, check: Callable[[Path], object] | None = None) -> Path:
    """Download ``spec`` into the user cache (atomically, sha256-checked) and return its path.

    An already cached, valid file is returned as is unless ``force``. The URLs are tried in turn,
    then the spec's ``fetcher``. ``check`` (optional) inspects each downloaded file before it is kept
    and raises WeightsError to reject it (then the next source is tried) — useful when no sha256 is
    pinned. An archive spec's download is unpacked (see :func:`_unpack`) and then deleted; the
    returned path is the unpacked folder.

    Raises:
        WeightsError: when every source failed or the downloaded bytes do not match the pinned sha256.
    """
    dest = cache_dir() / "models" / spec.relpath
    if _exists(spec, dest) and not force:
        verify(spec, dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    errors = []
    for label, produce in _sources(spec):
        handle, temp_name = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
        os.close(handle)
        temp = Path(temp_name)
        where = f"{label}: " if label else ""
        try:
            source = produce(temp)
            digest = _checked_digest(spec.name, temp, spec.sha256)
            if check is not None:
                check(temp)
            size = temp.stat().st_size
            if spec.members:
                _unpack(spec, temp, dest)
            else:
                os.replace(temp, dest)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            errors.append(f"{where}{exc}")
            continue
        except WeightsError as exc:
            errors.append(f"{where}{exc.cause}")
            continue
        finally:
            temp.unlink(missing_ok=True)
        write_json_atomic(dest.with_name(dest.name + ".json"), {"url": source, "size": size, "sha256": digest})
        return dest
    raise WeightsError(f"could not download {spec.name}: " + ("; ".join(errors) or "no URL known"), dest)


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
