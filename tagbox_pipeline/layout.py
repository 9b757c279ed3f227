"""Folder layouts that could lose data are refused before any work starts.

Every folder a command reads or writes is resolved first (symbolic links and ``..`` followed,
``~`` expanded), then compared. A layout is refused, with one line naming both paths, when a
write, move or replace could touch an input or a folder that holds inputs:

- ``separate``: a track's stem folder (``OUT/<name>``) equal to, or holding, any input;
- ``watch``: OUT and the inbox overlapping (equal, or one inside the other): stems, the ledger
  and staging would be written among the files being taken; or OUT overlapping where taken files
  move to (``processed/``, ``failed/``, also when they are links elsewhere);
- ``sweep``: OUT and the archive overlapping: the archive is only ever read;
- ``serve``: both of those, and the inbox (or where its files move to) and the archive overlapping.

This is the first of two independent checks; the second guards the replace itself
(:func:`~tagbox_pipeline.stem_folders.place_folder`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from .errors import UserError
from .files import track_name


class LayoutError(UserError):
    """Two folders (or a folder and an input) of a command would touch each other; names both."""


def real(path: str | Path) -> Path:
    """``path`` absolute, with ``~``, symbolic links and ``..`` resolved (also when it does not exist yet)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _relation(a: Path, b: Path) -> str | None:
    """How resolved folder ``a`` relates to resolved folder ``b``: "is", "lies inside", "holds", or None."""
    if a == b:
        return "is"
    if b in a.parents:
        return "lies inside"
    if a in b.parents:
        return "holds"
    return None


def within(path: Path, folder: Path) -> bool:
    """True when ``path``, resolved, is ``folder`` (resolved) or lies inside it."""
    return _relation(real(path), real(folder)) in ("is", "lies inside")


def check_apart(out: Path, other: Path, role: str) -> None:
    """Refuse when the output folder ``out`` and ``other`` (the ``role``: inbox, archive) overlap.

    Raises:
        LayoutError: naming both folders as given and, when a link or ``..`` was involved, as resolved.
    """
    relation = _relation(real(out), real(other))
    if relation is None:
        return
    shown = f"the output folder {out}" + (f" ({real(out)})" if real(out) != Path(out).absolute() else "")
    target = f"the {role} {other}" + (f" ({real(other)})" if real(other) != Path(other).absolute() else "")
    raise LayoutError(f"{shown} {relation} {target}: stems, state and reports written there could replace or "
                      f"change its files; choose an output folder outside the {role} that does not hold it")


def check_inbox_archive(inbox: Path, archive: Path, what: str = "the inbox") -> None:
    """Refuse an inbox (or ``what``: a folder its files move to) and an archive that overlap: the
    watcher moves files the sweep reads."""
    relation = _relation(real(inbox), real(archive))
    if relation is not None:
        raise LayoutError(f"{what} {inbox} {relation} the archive {archive}: the watcher moves files there while "
                          f"the sweep reads the archive; keep them apart")


def check_separate(inputs: Sequence[Path], out: Path) -> None:
    """Refuse when the stem folder of one input (``OUT/<track name>``) is, or holds, any input.

    Raises:
        LayoutError: naming the input and the stem folder that would hold it.
    """
    resolved = [(path, real(path)) for path in inputs]
    for source in inputs:
        folder = real(out) / track_name(source)
        for path, location in resolved:
            if folder == location or folder in location.parents:
                whose = "its own stem folder" if path == source else f"the stem folder of {source}"
                raise LayoutError(f"{path} lies inside {folder}, {whose}, which a run would write; choose "
                                  f"another --out (e.g. a new empty folder)")


def check_watch(inbox: Path, out: Path, moves: Sequence[Path] = ()) -> None:
    """The layout of ``watch``: OUT apart from the inbox and from the folders taken files move to
    (``moves``: the inbox's ``processed/`` and ``failed/``, which may be links elsewhere)."""
    check_apart(out, inbox, "inbox")
    for folder in moves:
        check_apart(out, folder, f"inbox's {folder.name}/ folder")


def check_sweep(archive: Path, out: Path) -> None:
    """The layout of ``sweep``: OUT apart from the archive."""
    check_apart(out, archive, "archive")


def check_serve(inbox: Path | None, archive: Path | None, out: Path, moves: Sequence[Path] = ()) -> None:
    """The layout of ``serve``: each of ``watch`` and ``sweep``, and the inbox and ``moves`` apart from
    the archive."""
    if inbox is not None:
        check_watch(inbox, out, moves)
    if archive is not None:
        check_sweep(archive, out)
    if inbox is not None and archive is not None:
        check_inbox_archive(inbox, archive)
        for folder in moves:
            check_inbox_archive(folder, archive, f"the inbox's {folder.name}/ folder")
