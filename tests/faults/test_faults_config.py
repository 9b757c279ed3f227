"""Faults of the run rather than of an input: bad source names, bad settings, an unwritable output
folder, corrupt or truncated weights, and weights that carry code.

None of them is the input's fault, so the good file in the inbox must stay exactly where it is,
unmodified and not quarantined; the CLI must stop with exit code 2 and one line naming the
culprit. Tagger weights replaced by a pickle that would write a marker file are refused by the CLI
and the marker never appears (the loaders themselves: test_faults_security.py).
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from faultkit import SOURCES, changes, sha256_file, snapshot
from support import evil_pickle, excerpt, run_cli, write_toml

pytestmark = pytest.mark.faults


@dataclass(frozen=True)
class RunFault:
    """A CLI run that must be refused before any input is touched."""

    key: str
    title: str
    expected: str
    must_say: tuple[str, ...]


def _one_line_error(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.strip()]


@pytest.fixture
def inbox(shared: Path, tmp_path: Path) -> tuple[Path, str]:
    """An inbox holding one good file; returns the inbox and the file's sha256."""
    path = excerpt(shared, "d01", tmp_path / "inbox" / "good.wav", seconds=2.0)
    return path.parent, sha256_file(path)


def _assert_refused(matrix, result: subprocess.CompletedProcess, inbox: Path, sha: str, root: Path,
                    before: dict, must_say: tuple[str, ...], skip: tuple[Path, ...] = ()) -> None:
    lines = _one_line_error(result)
    stray = changes(before, snapshot(root, skip))
    good = inbox / "good.wav"
    modified = int(not good.is_file() or sha256_file(good) != sha)
    matrix.observe(f"exit {result.returncode}: {lines[-1] if lines else '(no message)'}"[:300],
                   inputs_modified=modified, partial_outputs=len(stray), lost_files=int(not good.is_file()))
    assert result.returncode == 2, result.stderr[-3000:]
    assert len(lines) == 1 and lines[0].startswith("tagbox: error:"), result.stderr[-3000:]
    assert all(text in lines[0] for text in must_say), lines[0]
    assert not modified and sorted(p.name for p in inbox.iterdir()) == ["good.wav"], "input left in place"
    assert not stray, f"nothing may be written: {sorted(stray)}"


SOURCE_FAULTS = [
    RunFault("traversal_source", "source name '../x' (path traversal)", "exit 2, one line naming '../x'; nothing "
             "written", ("'../x'",)),
    RunFault("absolute_source", "source name '/etc/passwd'", "exit 2, one line naming it; nothing written",
             ("'/etc/passwd'",)),
    RunFault("unknown_source", "unknown source name 'kazoo'", "exit 2, one line listing the known sources",
             ("'kazoo'", "piano")),
]


@pytest.mark.parametrize("fault", SOURCE_FAULTS, ids=[f.key for f in SOURCE_FAULTS])
def test_bad_source_names_are_refused(fault: RunFault, inbox: tuple[Path, str], fast_toml: Path, tmp_path: Path,
                                      matrix) -> None:
    matrix.describe(fault.title, fault.expected)
    folder, sha = inbox
    name = {"traversal_source": "../x", "absolute_source": "/etc/passwd", "unknown_source": "kazoo"}[fault.key]
    before = snapshot(tmp_path)
    result = run_cli(["watch", str(folder), "--out", str(tmp_path / "out"), "--sources", f"piano,{name}",
                      "--config", str(fast_toml), "--once"], tmp_path.parent / f"{tmp_path.name}-home")
    _assert_refused(matrix, result, folder, sha, tmp_path, before, fault.must_say)


CONFIG_FAULTS = {
    "config_unknown_key": ("unknown settings key (typo 'stepz')", "stepz = 1\n", ("stepz",)),
    "config_bad_value": ("settings value out of range (steps = -1)", "steps = -1\n", ("steps",)),
    "config_format_path": ("settings value that is a path (format = '../../evil')", 'format = "../../evil"\n',
                           ("format",)),
    "config_not_toml": ("settings file that is not TOML", "this is = = not toml\n", ("not valid TOML",)),
}


@pytest.mark.parametrize("key", sorted(CONFIG_FAULTS))
def test_bad_settings_are_refused(key: str, inbox: tuple[Path, str], tmp_path: Path, matrix) -> None:
    title, text, must_say = CONFIG_FAULTS[key]
    matrix.describe(title, "exit 2, one line naming the file and key; nothing written")
    folder, sha = inbox
    config = write_toml(tmp_path / "bad.toml", text)
    before = snapshot(tmp_path)
    result = run_cli(["watch", str(folder), "--out", str(tmp_path / "out"), "--sources", SOURCES, "--config",
                      str(config), "--once"], tmp_path.parent / f"{tmp_path.name}-home")
    _assert_refused(matrix, result, folder, sha, tmp_path, before, (*must_say, "bad.toml"))


def _read_only(out: Path) -> str:
    """Make ``out`` read-only for this process: a read-only tmpfs when root (root ignores modes), else mode 0555."""
    out.mkdir()
    if os.geteuid() != 0:
        out.chmod(0o555)
        return "mode 0555"
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tagbox-faults", str(out)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"running as root and cannot mount a read-only tmpfs ({mounted.stderr.strip()})")
    return "read-only tmpfs"


def test_read_only_output_folder(inbox: tuple[Path, str], fast_toml: Path, tmp_path: Path, matrix) -> None:
    matrix.describe("read-only output folder", "exit 2, one line naming OUT; the input stays in the inbox")
    folder, sha = inbox
    out = tmp_path / "out"
    how = _read_only(out)
    try:
        before = snapshot(tmp_path)
        result = run_cli(["watch", str(folder), "--out", str(out), "--sources", SOURCES, "--config", str(fast_toml),
                          "--once"], tmp_path.parent / f"{tmp_path.name}-home")
        _assert_refused(matrix, result, folder, sha, tmp_path, before, (str(out), "not writable"))
        matrix.observed += f" [{how}]"
    finally:
        if how == "read-only tmpfs":
            subprocess.run(["umount", str(out)], check=False)
        else:
            out.chmod(0o755)


def test_unusable_prefect_home(inbox: tuple[Path, str], fast_toml: Path, tmp_path: Path, matrix) -> None:
    matrix.describe("PREFECT_HOME that cannot be made (under a file), no PREFECT_API_URL",
                    "exit 2, one line naming the folder (not Prefect's server time-out two minutes later)")
    folder, sha = inbox
    (tmp_path / "a file").write_text("not a folder")
    home = tmp_path / "a file" / "prefect"
    before = snapshot(tmp_path)
    result = run_cli(["watch", str(folder), "--out", str(tmp_path / "out"), "--sources", SOURCES, "--config",
                      str(fast_toml), "--once"], home)
    _assert_refused(matrix, result, folder, sha, tmp_path, before, (str(home), "not writable", "PREFECT_HOME"))


@pytest.fixture
def tagger_weights(shared: Path) -> Path:
    """The pinned weights file of the fault runs' tagger (musicnn-mtat) in the shared model folder."""
    from tagbox_pipeline.taggers import sota

    path = shared / "models" / "sota-music-tagging" / sota.weight_spec("musicnn-mtat").relpath
    if not path.is_file():
        pytest.skip(f"tagger weights not in shared/ ({path})")
    return path


WEIGHT_FAULTS = {
    "weights_truncated": ("truncated tagger weights file", lambda data, _: data[: len(data) // 3]),
    "weights_corrupt": ("corrupt tagger weights file (bytes flipped)",
                        lambda data, _: data[:4096] + bytes(b ^ 0xFF for b in data[4096:8192]) + data[8192:]),
    "weights_with_code": ("tagger weights replaced by a pickle that runs code", None),
}


@pytest.mark.parametrize("key", sorted(WEIGHT_FAULTS))
def test_bad_tagger_weights_stop_the_run(key: str, tagger_weights: Path, inbox: tuple[Path, str], fast_toml: Path,
                                         tmp_path: Path, matrix) -> None:
    """A damaged weights file is named with its cause; no input is quarantined for it; no code runs."""
    title, damage = WEIGHT_FAULTS[key]
    matrix.describe(title, "exit 2, one line naming the weights file and 'corrupt'; input untouched; no code ran")
    folder, sha = inbox
    models = tmp_path / "models"
    bad = models / tagger_weights.relative_to(tagger_weights.parents[2])
    bad.parent.mkdir(parents=True)
    marker = tmp_path / "PWNED-weights"
    if damage is None:
        evil_pickle(bad, marker)
    else:
        bad.write_bytes(damage(tagger_weights.read_bytes(), marker))
    before = snapshot(tmp_path, skip=(models,))
    env_models = os.environ.get("TAGBOX_MODEL_DIR")
    os.environ["TAGBOX_MODEL_DIR"] = str(models)
    try:
        result = run_cli(["watch", str(folder), "--out", str(tmp_path / "out"), "--sources", SOURCES, "--config",
                          str(fast_toml), "--once"], tmp_path.parent / f"{tmp_path.name}-home")
    finally:
        if env_models is None:
            os.environ.pop("TAGBOX_MODEL_DIR")
        else:
            os.environ["TAGBOX_MODEL_DIR"] = env_models
    _assert_refused(matrix, result, folder, sha, tmp_path, before, (str(bad), "corrupt"), skip=(models,))
    assert not marker.exists(), "unpickling ran the payload"


def test_load_state_dict_names_truncated_file(tagger_weights: Path, tmp_path: Path, matrix) -> None:
    from tagbox_pipeline.errors import WeightsError
    from tagbox_pipeline.weights import load_state_dict

    matrix.describe("truncated checkpoint -> weights.load_state_dict", "WeightsError naming the file")
    cut = tmp_path / "cut.pth"
    cut.write_bytes(tagger_weights.read_bytes()[:5000])
    with pytest.raises(WeightsError) as caught:
        load_state_dict(cut)
    matrix.observe(str(caught.value)[:300])
    assert str(cut) in str(caught.value)
