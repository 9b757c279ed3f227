"""Which folders the engine may replace, and putting a finished stem folder in place.

The last line of defence against data loss, independent of the layout checks made before any work
(:mod:`tagbox_pipeline.layout`): an existing folder is only ever replaced when its ``manifest.json``
says it is a stem folder written by us *and* it holds nothing but the files that manifest names.
Anything else (a user's folder, an archive folder, a symbolic link, a stem folder a user added a
bounce to) is left alone and the new stems go to ``<name> (n)``. When an old stem folder is
replaced, only its own files are deleted, one by one; whatever else turned up in it meanwhile is
kept in a visible folder.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .files import numbered_names, unique_path
from .post import RAW_DIR
from .spectrogram import spectrogram_name

_log = logging.getLogger(__name__)

#: ``manifest["kind"]`` of every stem folder we write
STEM_FOLDER_KIND = "tagbox-stems"
MANIFEST = "manifest.json"
def read_manifest(folder: Path) -> dict[str, Any] | None:
    """``folder/manifest.json`` as a dict, or None when it is missing, unreadable or not a JSON object."""
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return manifest if isinstance(manifest, dict) else None


def _is_ours(manifest: dict[str, Any]) -> bool:
    # manifests written before "kind" existed carry the tagbox version and the list of stem files
    versions = manifest.get("versions")
    return manifest.get("kind") == STEM_FOLDER_KIND or (isinstance(versions, dict) and "tagbox" in versions)


def own_entries(manifest: dict[str, Any]) -> set[str]:
    """Relative paths a stem folder of ``manifest`` may hold: the manifest, its stems, their
    spectrograms, and ``raw/`` with the unprocessed stems."""
    files = (manifest.get("output") or {}).get("files") or []
    names = {name for name in files if isinstance(name, str) and "/" not in name and name not in {"", ".", ".."}}
    return ({MANIFEST, RAW_DIR} | names | {spectrogram_name(n) for n in names}
            | {f"{RAW_DIR}/{n}" for n in names})


def is_stem_folder(folder: Path) -> bool:
    """True when ``folder`` is a real folder (not a link) holding a stem folder manifest of ours and
    nothing but that manifest's own entries (see :func:`own_entries`)."""
    if folder.is_symlink() or not folder.is_dir():
        return False
    manifest = read_manifest(folder)
    if manifest is None or not _is_ours(manifest):
        return False
    allowed = own_entries(manifest)
    for path in folder.rglob("*"):
        rel = path.relative_to(folder).as_posix()
        if rel not in allowed or path.is_symlink() or (rel == RAW_DIR) != path.is_dir():
            return False
    return True


def choose_folder(parent: Path, name: str, reuse: Callable[[dict[str, Any]], bool]) -> Path:
    """The first of ``parent/name``, ``parent/name (1)``... that is free, or a stem folder of ours
    whose manifest ``reuse`` accepts (e.g. "same input"): where a track's stems belong."""
    def usable(folder: Path) -> bool:
        if not folder.exists() and not folder.is_symlink():
            return True
        manifest = read_manifest(folder)
        return manifest is not None and is_stem_folder(folder) and reuse(manifest)

    return next(parent / n for n in numbered_names(name, keep_suffix=False) if usable(parent / n))


def folder_for_input(parent: Path, name: str, path: Path) -> Path:
    """``parent/name``, or the first ``parent/name (n)`` that is free or holds the stems of input ``path``."""
    return choose_folder(parent, name, lambda manifest: (manifest.get("input") or {}).get("path") == str(path))


def _remove_own(old: Path, name: str) -> None:
    """Delete a replaced stem folder's own files one by one; keep anything else in a visible folder."""
    manifest = read_manifest(old) or {}
    for rel in sorted(own_entries(manifest) - {RAW_DIR}, key=lambda r: -r.count("/")):
        path = old / rel
        if path.is_file() and not path.is_symlink():
            path.unlink()
    for folder in (old / RAW_DIR, old):
        try:
            folder.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # something not ours appeared in it: never delete that
            kept = unique_path(old.parent, f"{name} (kept)", keep_suffix=False)
            os.rename(old, kept)
            _log.warning("tagbox: %s held files that are not ours; they are kept in %s", old, kept)
            return


def place_folder(staged: Path, dest: Path) -> Path:
    """Move the finished folder ``staged`` to ``dest`` atomically; returns where it went.

    ``dest`` is replaced only when :func:`is_stem_folder` holds for it (checked before and again
    after it is renamed aside, so a file added in between is never lost); otherwise the stems go
    to the first free ``dest (n)``. Readers see the old complete folder or the new one, never a mix.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    target, old = dest, None
    if dest.exists() or dest.is_symlink():
        if is_stem_folder(dest):
            old = dest.with_name(f".{dest.name}.old-{uuid.uuid4().hex[:8]}")
            os.rename(dest, old)
            if not is_stem_folder(old):  # changed since the check: put it back untouched
                os.rename(old, dest)
                old = None
        if old is None:
            target = unique_path(dest.parent, dest.name, keep_suffix=False)
            _log.warning("tagbox: %s is not a stem folder of ours (or holds other files): it is left alone, "
                         "the stems go to %s", dest, target)
    try:
        os.rename(staged, target)
    except OSError:
        if old is not None:  # the old folder goes back where it was
            os.rename(old, dest)
        raise
    if old is not None:
        _remove_own(old, dest.name)
    return target
