"""File names, moves and writes that never overwrite and never leave partial files behind."""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import shutil
import tempfile
import unicodedata
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: bytes read per call while hashing
_HASH_BLOCK = 1 << 20


def _read_umask() -> int:
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


#: the process umask, read once at import (reading it means setting it, which is not thread-safe)
_UMASK = _read_umask()


def default_mode(directory: bool = False) -> int:
    """Permission bits a plain ``open``/``mkdir`` would give under the umask; ``tempfile`` creates
    private 0600 files and 0700 folders, which would hide outputs from the rest of a studio."""
    return (0o777 if directory else 0o666) & ~_UMASK


def track_name(path: str | Path) -> str:
    """A safe folder name from an input file name: its stem, with separators, control characters and
    leading dots replaced (no path traversal, no hidden folders); non-Latin letters are kept."""
    stem = unicodedata.normalize("NFC", Path(path).stem)
    safe = "".join("_" if ch in '/\\:' or unicodedata.category(ch).startswith("C") else ch for ch in stem)
    safe = safe.strip().lstrip(".")
    return safe or "track"


def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes, read in 1 MiB blocks (memory flat in file size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def numbered_names(name: str, keep_suffix: bool = True) -> Iterator[str]:
    """``name``, then ``<stem> (1)<suffix>``, ``<stem> (2)<suffix>``... (``name (1)``... for folders:
    ``keep_suffix=False``, so ``Take.v2`` becomes ``Take.v2 (1)``)."""
    stem, suffix = (Path(name).stem, Path(name).suffix) if keep_suffix else (name, "")
    yield name
    for n in itertools.count(1):
        yield f"{stem} ({n}){suffix}"


def unique_path(folder: Path, name: str, keep_suffix: bool = True) -> Path:
    """``folder/name``, or the first free numbered name (see :func:`numbered_names`)."""
    return next(folder / candidate for candidate in numbered_names(name, keep_suffix)
                if not (folder / candidate).exists() and not (folder / candidate).is_symlink())


def move_no_overwrite(src: Path, folder: Path) -> Path:
    """Move ``src`` into ``folder`` under a free name and return the new path.

    A hard link to the new name is created first (``link`` fails rather than replace an existing
    name, so a concurrent writer is never clobbered), then the old name is removed. Symbolic links
    are moved as links, never followed. Falls back to a copy + remove across file systems.
    """
    folder.mkdir(parents=True, exist_ok=True)
    while True:
        target = unique_path(folder, src.name)
        try:
            os.link(src, target, follow_symlinks=False)
        except FileExistsError:
            continue
        except OSError:
            if src.is_symlink():
                os.symlink(os.readlink(src), target)
            else:
                _copy_no_overwrite(src, target)
        os.unlink(src)
        return target


def _copy_no_overwrite(src: Path, target: Path) -> None:
    with open(src, "rb") as reader, open(target, "xb") as writer:
        shutil.copyfileobj(reader, writer)
    shutil.copystat(src, target)


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary sibling and an atomic rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(handle, default_mode())
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(text)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_json_atomic(path: Path, payload: Any) -> None:
    """Write ``payload`` as indented JSON to ``path`` atomically."""
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
