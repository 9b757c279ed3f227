"""Folder layouts (issue 15): no layout a user can type may lose, move or change a file it should not.

Each case builds a real folder layout (real audio, real folders, real symbolic links), runs the
real CLI once and then checks, from the disk:

* the sha256 of every file the user had (inputs, archive, inbox, their own folders) is unchanged,
  and none of them moved, except an inbox file into ``processed/`` or ``failed/``;
* a refused layout exits 2 with one line that names both folders, and wrote nothing at all;
* an accepted one exits as expected, with stems in the expected folder (``name (n)`` when the
  name is taken by a folder that is not a stem folder of ours) and no partial output.

The layouts cover OUT equal to, inside, or the parent of the inbox / the archive / an input's
folder; the inbox inside the archive; the archive inside OUT; a stem folder name equal to an
existing non-stem folder; and symbolic-link variants of each kind.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from faultkit import SOURCES, changes, sha256_file, snapshot, stem_folder_problems
from support import FAST_TOML, excerpt, run_cli, write_toml

pytestmark = pytest.mark.faults


@dataclass
class Layout:
    """A built layout: the command line and what it must do.

    Attributes:
        args: the CLI arguments (after ``tagbox``).
        refused: True when the run must exit 2 naming ``names`` and write nothing.
        names: paths the refusal message must name.
        stems: stem folders that must exist afterwards (accepted runs).
        inbox: the inbox, whose files may move into its ``processed/`` / ``failed/``.
        code: expected exit code of an accepted run.
    """

    args: list[str]
    refused: bool
    names: list[Path] = field(default_factory=list)
    stems: list[Path] = field(default_factory=list)
    inbox: Path | None = None
    code: int = 0


def _song(shared: Path, path: Path, clip: str = "d01") -> Path:
    return excerpt(shared, clip, path, seconds=2.0)


def _user_folder(folder: Path, shared: Path) -> Path:
    """A folder of the user's own: a bounce and notes."""
    _song(shared, folder / "my_bounce.wav", "d02")
    (folder / "notes.txt").write_text("keep me\n", encoding="utf-8")
    return folder


def sweep_out_parent_of_archive(w: Path, shared: Path) -> Layout:
    """The issue's repro: `sweep /x/song --out /x`, the archive folder holding two takes."""
    _song(shared, w / "x" / "song" / "song.wav")
    _song(shared, w / "x" / "song" / "other.wav", "d05")
    return Layout(["sweep", str(w / "x" / "song"), "--out", str(w / "x")], True, [w / "x", w / "x" / "song"])


def sweep_out_is_archive(w: Path, shared: Path) -> Layout:
    """`sweep /arch --out /arch` with /arch/a.wav and /arch/a/a.wav (a's stem folder is the folder a/)."""
    _song(shared, w / "arch" / "a.wav")
    _song(shared, w / "arch" / "a" / "a.wav", "d05")
    return Layout(["sweep", str(w / "arch"), "--out", str(w / "arch")], True, [w / "arch"])


def sweep_out_inside_archive(w: Path, shared: Path) -> Layout:
    _song(shared, w / "arch" / "take.wav")
    return Layout(["sweep", str(w / "arch"), "--out", str(w / "arch" / "stems")], True,
                  [w / "arch" / "stems", w / "arch"])


def sweep_archive_deep_inside_out(w: Path, shared: Path) -> Layout:
    _song(shared, w / "x" / "a" / "b" / "take.wav")
    return Layout(["sweep", str(w / "x" / "a" / "b"), "--out", str(w / "x")], True, [w / "x", w / "x" / "a" / "b"])


def sweep_out_link_to_archive(w: Path, shared: Path) -> Layout:
    """OUT is a symbolic link to the archive."""
    _song(shared, w / "arch" / "take.wav")
    (w / "out").symlink_to(w / "arch", target_is_directory=True)
    return Layout(["sweep", str(w / "arch"), "--out", str(w / "out")], True, [w / "out", w / "arch"])


def sweep_archive_via_dotdot_inside_out(w: Path, shared: Path) -> Layout:
    """The archive given with `..` and a link, resolving inside OUT."""
    _song(shared, w / "x" / "song" / "take.wav")
    (w / "elsewhere").mkdir()
    (w / "elsewhere" / "link").symlink_to(w / "x", target_is_directory=True)
    archive = w / "elsewhere" / "link" / "song" / ".." / "song"
    return Layout(["sweep", str(archive), "--out", str(w / "x")], True, [w / "x", archive])


def sweep_link_under_out_into_archive(w: Path, shared: Path) -> Layout:
    """OUT is apart, but OUT/sub is a link into the archive's sub/: that file is refused, the rest done."""
    _song(shared, w / "arch" / "sub" / "deep.wav")
    _song(shared, w / "arch" / "top.wav", "d05")
    (w / "out").mkdir()
    (w / "out" / "sub").symlink_to(w / "arch" / "sub", target_is_directory=True)
    return Layout(["sweep", str(w / "arch"), "--out", str(w / "out")], False, stems=[w / "out" / "top"], code=1)


def sweep_stem_name_taken_by_user_folder(w: Path, shared: Path) -> Layout:
    """OUT/take is the user's own folder: stems go to OUT/take (1)."""
    _song(shared, w / "arch" / "take.wav")
    _user_folder(w / "out" / "take", shared)
    return Layout(["sweep", str(w / "arch"), "--out", str(w / "out")], False, stems=[w / "out" / "take (1)"])


def watch_out_is_inbox(w: Path, shared: Path) -> Layout:
    _song(shared, w / "inbox" / "take.wav")
    return Layout(["watch", str(w / "inbox"), "--out", str(w / "inbox"), "--once"], True, [w / "inbox"],
                  inbox=w / "inbox")


def watch_out_inside_inbox(w: Path, shared: Path) -> Layout:
    _song(shared, w / "inbox" / "take.wav")
    return Layout(["watch", str(w / "inbox"), "--out", str(w / "inbox" / "processed"), "--once"], True,
                  [w / "inbox" / "processed", w / "inbox"], inbox=w / "inbox")


def watch_out_parent_of_inbox(w: Path, shared: Path) -> Layout:
    """A track named like the inbox would have OUT/inbox, the inbox itself, as its stem folder."""
    _song(shared, w / "x" / "inbox" / "inbox.wav")
    return Layout(["watch", str(w / "x" / "inbox"), "--out", str(w / "x"), "--once"], True,
                  [w / "x", w / "x" / "inbox"], inbox=w / "x" / "inbox")


def watch_out_link_to_inbox(w: Path, shared: Path) -> Layout:
    _song(shared, w / "inbox" / "take.wav")
    (w / "out").symlink_to(w / "inbox", target_is_directory=True)
    return Layout(["watch", str(w / "inbox"), "--out", str(w / "out"), "--once"], True, [w / "out", w / "inbox"],
                  inbox=w / "inbox")


def serve_inbox_inside_archive(w: Path, shared: Path) -> Layout:
    _song(shared, w / "arch" / "inbox" / "take.wav")
    _song(shared, w / "arch" / "old.wav", "d05")
    return Layout(["serve", "--inbox", str(w / "arch" / "inbox"), "--archive", str(w / "arch"), "--out",
                   str(w / "out")], True, [w / "arch" / "inbox", w / "arch"])


def serve_out_is_archive(w: Path, shared: Path) -> Layout:
    _song(shared, w / "arch" / "old.wav")
    (w / "inbox").mkdir()
    return Layout(["serve", "--inbox", str(w / "inbox"), "--archive", str(w / "arch"), "--out", str(w / "arch")],
                  True, [w / "arch"])


def separate_out_parent_of_input_folder(w: Path, shared: Path) -> Layout:
    """`separate /x/song/song.wav /x/song/other.wav --out /x`: song's stem folder is /x/song itself."""
    a = _song(shared, w / "x" / "song" / "song.wav")
    b = _song(shared, w / "x" / "song" / "other.wav", "d05")
    return Layout(["separate", str(a), str(b), "--out", str(w / "x")], True, [a, w / "x" / "song"])


def separate_out_parent_via_link(w: Path, shared: Path) -> Layout:
    """The same, with OUT given as a link to /x."""
    a = _song(shared, w / "x" / "song" / "song.wav")
    (w / "xlink").symlink_to(w / "x", target_is_directory=True)
    return Layout(["separate", str(a), "--out", str(w / "xlink")], True, [a, w / "x" / "song"])


def separate_stem_name_taken_by_user_folder(w: Path, shared: Path) -> Layout:
    """The issue's repro: out/mix/ holds the user's my_bounce.wav: stems go to out/mix (1)."""
    mix = _song(shared, w / "in" / "mix.wav")
    _user_folder(w / "out" / "mix", shared)
    return Layout(["separate", str(mix), "--out", str(w / "out")], False, stems=[w / "out" / "mix (1)"])


def separate_stem_name_is_link_to_user_folder(w: Path, shared: Path) -> Layout:
    """out/mix is a link to a folder of the user's: neither is touched, stems go to out/mix (1)."""
    mix = _song(shared, w / "in" / "mix.wav")
    _user_folder(w / "mine", shared)
    (w / "out").mkdir()
    (w / "out" / "mix").symlink_to(w / "mine", target_is_directory=True)
    return Layout(["separate", str(mix), "--out", str(w / "out")], False, stems=[w / "out" / "mix (1)"])


def separate_out_is_input_folder(w: Path, shared: Path) -> Layout:
    """`separate in/mix.wav --out in`: safe (the stem folder in/mix holds no input)."""
    mix = _song(shared, w / "in" / "mix.wav")
    return Layout(["separate", str(mix), "--out", str(w / "in")], False, stems=[w / "in" / "mix"])


def separate_out_inside_input_folder(w: Path, shared: Path) -> Layout:
    mix = _song(shared, w / "in" / "mix.wav")
    return Layout(["separate", str(mix), "--out", str(w / "in" / "stems")], False, stems=[w / "in" / "stems" / "mix"])


def watch_stem_name_taken_by_user_folder(w: Path, shared: Path) -> Layout:
    """OUT/take is the user's own folder when take.wav is dropped: stems go to OUT/take (1)."""
    _song(shared, w / "inbox" / "take.wav")
    _user_folder(w / "out" / "take", shared)
    return Layout(["watch", str(w / "inbox"), "--out", str(w / "out"), "--once"], False,
                  stems=[w / "out" / "take (1)"], inbox=w / "inbox")


CASES: dict[str, Callable[[Path, Path], Layout]] = {f.__name__: f for f in [
    sweep_out_parent_of_archive, sweep_out_is_archive, sweep_out_inside_archive, sweep_archive_deep_inside_out,
    sweep_out_link_to_archive, sweep_archive_via_dotdot_inside_out, sweep_link_under_out_into_archive,
    sweep_stem_name_taken_by_user_folder, watch_out_is_inbox, watch_out_inside_inbox, watch_out_parent_of_inbox,
    watch_out_link_to_inbox, serve_inbox_inside_archive, serve_out_is_archive, separate_out_parent_of_input_folder,
    separate_out_parent_via_link, separate_stem_name_taken_by_user_folder, separate_stem_name_is_link_to_user_folder,
    separate_out_is_input_folder, separate_out_inside_input_folder, watch_stem_name_taken_by_user_folder,
]}


def _leftovers(world: Path) -> list[str]:
    """Temp, staging or set-aside entries left anywhere in the layout."""
    return [str(p.relative_to(world)) for p in world.rglob("*")
            if ".tmp-" in p.name or ".old-" in p.name or (p.parent.name == "staging" and p.parent.parent.name == ".tagbox")]


def _user_files(world: Path, home: Path) -> dict[str, str]:
    """sha256 of every regular file under ``world`` (links not followed), the Prefect home left out."""
    found = {}
    for folder, dirs, files in os.walk(world, followlinks=False):
        dirs[:] = [d for d in dirs if Path(folder, d) != home]
        for name in files:
            path = Path(folder, name)
            if not path.is_symlink():
                found[str(path.relative_to(world))] = sha256_file(path)
    return found


@pytest.mark.parametrize("key", list(CASES))
def test_no_layout_loses_or_changes_a_user_file(key: str, shared: Path, tmp_path: Path, prefect_server,
                                                matrix) -> None:
    world, home = tmp_path / "world", tmp_path / "home"
    layout = CASES[key](world, shared)
    command = " ".join(a.replace(str(world) + "/", "") for a in layout.args)
    matrix.describe(f"layout {key.replace('_', ' ')}: `tagbox {command}`",
                    "refused before any work: exit 2, one line naming both folders; nothing written" if layout.refused
                    else "accepted; every user file byte-identical and in place; stems in "
                         + ", ".join(str(s.relative_to(world)) for s in layout.stems))
    config = write_toml(tmp_path / "fast.toml", FAST_TOML)
    before_files = _user_files(world, home)
    before_tree = snapshot(world)
    done = run_cli([*layout.args, "--sources", SOURCES, "--config", str(config)], home, prefect_server.url)
    after_files = _user_files(world, home)
    moved_ok = {rel for rel in before_files if layout.inbox is not None
                and (world / rel).parent == layout.inbox and rel not in after_files
                and any(sha == before_files[rel] for other, sha in after_files.items()
                        if other.startswith(str((layout.inbox / "processed").relative_to(world)))
                        or other.startswith(str((layout.inbox / "failed").relative_to(world))))}
    lost = [rel for rel in before_files if rel not in after_files and rel not in moved_ok]
    modified = [rel for rel in before_files if rel in after_files and after_files[rel] != before_files[rel]]
    message = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    said = [line.strip() for line in done.stdout.splitlines() if line.strip()]  # the command's own report
    partial = [] if layout.refused else [p for s in layout.stems for p in stem_folder_problems(s)] + _leftovers(world)
    report = message if layout.refused else " / ".join(said[-3:])
    matrix.observe(f"exit {done.returncode}: {report[:300].replace(str(world) + '/', '')}"
                   + ("" if layout.refused else "; stems in "
                      + ", ".join(str(s.relative_to(world)) for s in layout.stems if s.is_dir())),
                   inputs_modified=len(modified), partial_outputs=len(partial), lost_files=len(lost))
    assert not lost and not modified, (lost, modified, done.stderr[-2000:])
    if layout.refused:
        assert done.returncode == 2, done.stderr[-2000:]
        assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr, done.stderr
        for name in layout.names:
            assert str(name) in message, (name, message)
        assert not changes(before_tree, snapshot(world)), "a refused layout writes nothing"
    else:
        assert done.returncode == layout.code, done.stderr[-3000:]
        for folder in layout.stems:
            assert folder.is_dir() and not folder.is_symlink() and not stem_folder_problems(folder), folder
        assert not partial, partial
        if layout.code == 1:  # the one file whose stem folder would resolve into the archive
            assert any("inside the archive" in line and "deep.wav" in line for line in said), said
