"""The two independent guards against data loss (issue 15), on real folders, files and links:
the layout checks made before any work, and the check at the replace itself."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tagbox_pipeline.files import sha256_file
from tagbox_pipeline.layout import LayoutError, check_separate, check_serve, check_sweep, check_watch
from tagbox_pipeline.stem_folders import STEM_FOLDER_KIND, choose_folder, is_stem_folder, place_folder


def stem_folder(folder: Path, files: tuple[str, ...] = ("drums.wav", "residual.wav"), sha: str = "a" * 64) -> Path:
    """A stem folder as we write it: the listed stems, their spectrograms, raw/drums.wav, the manifest."""
    (folder / "raw").mkdir(parents=True)
    for name in files:
        (folder / name).write_bytes(b"RIFF" + name.encode())
        (folder / name.replace(".wav", ".spectrogram.png")).write_bytes(b"png")
    (folder / "raw" / files[0]).write_bytes(b"raw")
    manifest = {"kind": STEM_FOLDER_KIND, "input": {"sha256": sha, "path": "/music/x.wav"},
                "output": {"files": list(files)}}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    return folder


def staged(tmp_path: Path, name: str = ".new") -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "drums.wav").write_bytes(b"new stems")
    return folder


def tree(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): sha256_file(p) for p in folder.rglob("*") if p.is_file()}


def test_only_our_own_untouched_stem_folder_counts_as_one(tmp_path: Path) -> None:
    ours = stem_folder(tmp_path / "ours")
    assert is_stem_folder(ours)
    added = stem_folder(tmp_path / "added")
    (added / "my_bounce.wav").write_bytes(b"user")
    nested = stem_folder(tmp_path / "nested")
    (nested / "raw" / "notes.txt").write_text("user")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "manifest.json").write_text(json.dumps({"output": {"files": []}}))
    link = tmp_path / "link"
    link.symlink_to(ours, target_is_directory=True)
    inner_link = stem_folder(tmp_path / "inner_link")
    (inner_link / "drums.wav").unlink()
    (inner_link / "drums.wav").symlink_to(tmp_path / "foreign" / "manifest.json")
    escape = stem_folder(tmp_path / "escape")
    manifest = json.loads((escape / "manifest.json").read_text())
    manifest["output"]["files"].append("../../etc")
    (escape / "manifest.json").write_text(json.dumps(manifest))
    assert [is_stem_folder(f) for f in (added, nested, foreign, link, inner_link, tmp_path / "missing")] == [False] * 6
    assert is_stem_folder(escape), "a listed name with a separator is ignored, never trusted"


def test_place_replaces_our_folder_and_leaves_anything_else_alone(tmp_path: Path) -> None:
    ours = stem_folder(tmp_path / "song")
    assert place_folder(staged(tmp_path), ours) == ours
    assert tree(ours) == {"drums.wav": sha256_file(ours / "drums.wav")} and (ours / "drums.wav").read_bytes() == b"new stems"
    user = tmp_path / "mix"
    user.mkdir()
    (user / "my_bounce.wav").write_bytes(b"the user's bounce")
    before = tree(user)
    assert place_folder(staged(tmp_path), user) == tmp_path / "mix (1)"
    assert tree(user) == before
    assert place_folder(staged(tmp_path), user) == tmp_path / "mix (2)", "never onto a taken name"
    link = tmp_path / "linked"
    link.symlink_to(user, target_is_directory=True)
    assert place_folder(staged(tmp_path), link) == tmp_path / "linked (1)"
    assert link.is_symlink() and tree(user) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["linked", "linked (1)", "mix", "mix (1)", "mix (2)", "song"]


def test_choose_folder_reuses_only_our_folder_of_the_same_content(tmp_path: Path) -> None:
    stem_folder(tmp_path / "take", sha="a" * 64)
    same = lambda m: m["input"]["sha256"] == "a" * 64  # noqa: E731
    other = lambda m: m["input"]["sha256"] == "b" * 64  # noqa: E731
    assert choose_folder(tmp_path, "take", same) == tmp_path / "take"
    assert choose_folder(tmp_path, "take", other) == tmp_path / "take (1)"
    (tmp_path / "take (1)").mkdir()
    assert choose_folder(tmp_path, "take", other) == tmp_path / "take (2)"
    assert choose_folder(tmp_path, "Take.v2", other) == tmp_path / "Take.v2", "dots in a folder name are kept"


@pytest.fixture
def folders(tmp_path: Path) -> Path:
    for name in ("x/song", "x/inbox", "arch/a", "out"):
        (tmp_path / name).mkdir(parents=True)
    for name in ("x/song/song.wav", "x/song/other.wav", "arch/a.wav", "arch/a/a.wav"):
        (tmp_path / name).write_bytes(b"audio")
    (tmp_path / "xlink").symlink_to(tmp_path / "x", target_is_directory=True)
    return tmp_path


@pytest.mark.parametrize("check, args, named", [
    (check_sweep, ("x/song", "x"), ("x/song", "x")),
    (check_sweep, ("arch", "arch"), ("arch",)),
    (check_sweep, ("arch", "arch/stems"), ("arch/stems",)),
    (check_sweep, ("x/song", "xlink"), ("xlink", "x/song")),
    (check_sweep, ("xlink/song/../song", "x"), ("xlink/song/../song", "x")),
    (check_watch, ("x/inbox", "x"), ("x/inbox",)),
    (check_watch, ("x/inbox", "x/inbox/processed"), ("x/inbox/processed",)),
    (check_watch, ("x/inbox", "xlink/inbox"), ("xlink/inbox",)),
])
def test_overlapping_folders_are_refused_naming_both(folders: Path, check, args, named) -> None:
    with pytest.raises(LayoutError) as refused:
        check(*(folders / a for a in args))
    assert all(str(folders / n) in str(refused.value) for n in named), str(refused.value)


def test_apart_folders_pass(folders: Path) -> None:
    check_sweep(folders / "arch", folders / "out")
    check_watch(folders / "x" / "inbox", folders / "out")
    check_serve(folders / "x" / "inbox", folders / "arch", folders / "out")
    check_separate([folders / "x" / "song" / "song.wav"], folders / "x" / "song")  # stems in x/song/song/
    check_separate([folders / "arch" / "a.wav"], folders / "out")
    with pytest.raises(LayoutError, match="the inbox .* lies inside the archive"):
        check_serve(folders / "arch" / "a", folders / "arch", folders / "out")


def test_a_stem_folder_that_would_hold_an_input_is_refused(folders: Path) -> None:
    song, other = folders / "x" / "song" / "song.wav", folders / "x" / "song" / "other.wav"
    with pytest.raises(LayoutError, match=f"{song} lies inside {folders / 'x' / 'song'}, its own stem folder"):
        check_separate([song, other], folders / "x")
    with pytest.raises(LayoutError, match=f"{other} lies inside {folders / 'x' / 'song'}, the stem folder of {song}"):
        check_separate([other, song], folders / "x")
    with pytest.raises(LayoutError, match=f"{folders / 'arch' / 'a' / 'a.wav'} lies inside"):
        check_separate([folders / "arch" / "a.wav", folders / "arch" / "a" / "a.wav"], folders / "arch")
    with pytest.raises(LayoutError, match="lies inside"):
        check_separate([song], folders / "xlink")


def test_where_taken_files_move_must_lie_apart_from_out_and_the_archive(folders: Path) -> None:
    """The inbox's processed/ may be a link: to OUT, or into the archive, is refused naming both."""
    inbox = folders / "x" / "inbox"
    (inbox / "processed").symlink_to(folders / "out", target_is_directory=True)
    moves = [inbox / "processed", inbox / "failed"]
    with pytest.raises(LayoutError, match=f"the output folder {folders / 'out'} is the inbox's processed/ folder"):
        check_watch(inbox, folders / "out", moves)
    check_watch(inbox, folders / "elsewhere", moves)
    (inbox / "processed").unlink()
    (inbox / "processed").symlink_to(folders / "arch" / "a", target_is_directory=True)
    refused = f"the inbox's processed/ folder {inbox / 'processed'} lies inside the archive"
    with pytest.raises(LayoutError, match=refused):
        check_serve(inbox, folders / "arch", folders / "out", moves)
