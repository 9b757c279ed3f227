"""Crash and resume: `tagbox watch --once` killed with SIGKILL at seeded random points, then run again.

Five runs, each on its own OUT: the kill lands while chunks are being steered (after a random
number of chunk results were persisted, plus a random delay) or while stems are being written
(once the staging folder holds stem samples, or once every chunk is done and the folder is being
finished, plus a random delay). The re-run must complete, reuse every chunk result that was
finished at the kill (counted as cached, not computed, in the manifest: the result store
deletes a track's chunk results once its stems are out), produce stems
byte-identical to an uninterrupted run, leave no staging or temp files, and move the input to
``processed/`` byte-identical.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from faultkit import SOURCES, ledger_rows, partial_outputs, sha256_file
from support import STEPPED_TOML, excerpt, kill_tree, run_cli, start_cli, write_toml

pytestmark = pytest.mark.faults

#: the seed of the kill points (change it to explore others; the matrix records the ones used)
SEED = 20261124
RUNS = 5
#: 3.5 s of music in 2 s windows: 3 chunks (the edge chunks keep all but their inner margin), so a kill
#: can land between them
TRACK_SECONDS = 3.5


def _kill_points() -> list[tuple[str, int, float]]:
    """(phase, chunks finished or 0, delay in s) of each run, from :data:`SEED`."""
    rng = random.Random(SEED)
    phases = ["steering", "stems", "steering", "finishing", rng.choice(["steering", "stems", "finishing"])]
    return [(phase, rng.randint(1, 2) if phase == "steering" else 0, round(rng.uniform(0.0, 0.4), 3))
            for phase in phases[:RUNS]]


def _finished(store: Path) -> dict[str, int]:
    """Chunk result files that are complete (they parse) → their mtime (ns)."""
    done = {}
    for path in store.glob("chunk-*") if store.is_dir() else []:
        try:
            json.loads(path.read_bytes())
        except ValueError:
            continue
        done[path.name] = path.stat().st_mtime_ns
    return done


def _stem_samples_written(out: Path) -> bool:
    staging = out / ".tagbox" / "staging"
    return staging.is_dir() and any(p.stat().st_size > 1024 for p in staging.rglob("*.wav"))


def _stem_hashes(folder: Path) -> dict[str, str]:
    return {p.name: sha256_file(p) for p in sorted(folder.glob("*.wav"))}


@pytest.fixture(scope="module")
def track(shared: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return excerpt(shared, "d02", tmp_path_factory.mktemp("crash-input") / "take.wav", start_s=1.0,
                   seconds=TRACK_SECONDS)


@pytest.fixture(scope="module")
def crash_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stepped fast settings with 2 s windows."""
    return write_toml(tmp_path_factory.mktemp("crash-config") / "crash.toml",
                      STEPPED_TOML.replace("window_seconds = 3.0", "window_seconds = 2.0"))


@pytest.fixture(scope="module")
def reference(track: Path, crash_toml: Path, prefect_server, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted run: its stems and its chunk count."""
    root = tmp_path_factory.mktemp("crash-reference")
    inbox = root / "inbox"
    inbox.mkdir()
    (inbox / track.name).write_bytes(track.read_bytes())
    result = run_cli(["watch", str(inbox), "--out", str(root / "out"), "--sources", SOURCES, "--config",
                      str(crash_toml), "--once"], root / "home", prefect_server.url)
    assert result.returncode == 0, result.stderr[-3000:]
    manifest = json.loads((root / "out" / "take" / "manifest.json").read_text())
    assert manifest["pipeline"]["chunks"] >= 3, "the track must span several chunks"
    return {"hashes": _stem_hashes(root / "out" / "take"), "chunks": manifest["pipeline"]["chunks"]}


def _runs() -> list:
    """The runs as pytest parameters: the first kill of each phase runs in `make test`; a run that kills
    in a phase an earlier run already killed in is marked slow (`make test-all` and the fault matrix)."""
    phases = [phase for phase, _, _ in _kill_points()]
    again = pytest.mark.slow(reason="another kill point in a phase `make test` already kills in (a minute per run)")
    return [pytest.param(i, id=f"run{i}", marks=again if phase in phases[:i] else ()) for i, phase in enumerate(phases)]


@pytest.mark.parametrize("run", _runs())
def test_sigkill_then_resume(run: int, track: Path, crash_toml: Path, prefect_server, reference: dict,
                             tmp_path: Path, matrix) -> None:
    phase, after_chunks, delay = _kill_points()[run]
    matrix.describe(f"SIGKILL during {phase} (run {run + 1}/{RUNS}, seed {SEED})",
                    "re-run completes; finished chunks reused, not recomputed; stems identical to an "
                    "uninterrupted run; no partial files")
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    (inbox / track.name).write_bytes(track.read_bytes())
    original = sha256_file(inbox / track.name)
    store = out / ".tagbox" / "results"
    args = ["watch", str(inbox), "--out", str(out), "--sources", SOURCES, "--config", str(crash_toml), "--once"]

    victim = start_cli(args, tmp_path / "home", prefect_server.url)
    deadline = time.monotonic() + 240
    triggered = False
    while time.monotonic() < deadline and victim.process.poll() is None:
        if phase == "steering":
            triggered = len(_finished(store)) >= after_chunks
        elif phase == "stems":
            triggered = _stem_samples_written(out)
        else:
            triggered = len(_finished(store)) == reference["chunks"]
        if triggered:
            break
        time.sleep(0.01)
    time.sleep(delay)
    kill_tree(victim.process)
    finished = _finished(store)
    published_at_kill = (out / "take").exists()
    at_kill = f"killed {'after trigger' if triggered else 'WITHOUT trigger'} +{delay} s: " \
              f"{len(finished)}/{reference['chunks']} chunks finished, folder published: {published_at_kill}"
    partial_at_kill = [p for p in partial_outputs(out) if "staging" not in p]  # staging is the rerun's to clean

    rerun = run_cli(args, tmp_path / "home", prefect_server.url)
    folder = out / "take"
    manifest = json.loads((folder / "manifest.json").read_text()) if (folder / "manifest.json").exists() else {}
    pipe = manifest.get("pipeline", {})
    reran = "stems in" in rerun.stderr  # else the killed run had already finished and moved the input
    reused = not reran or (pipe.get("cached", -1) >= len(finished)
                           and pipe.get("computed") == reference["chunks"] - pipe.get("cached", 0))
    same = folder.is_dir() and _stem_hashes(folder) == reference["hashes"]
    leftovers = partial_outputs(out)
    moved = inbox / "processed" / track.name
    rows = ledger_rows(out)
    matrix.observe(f"{at_kill}; re-run exit {rerun.returncode}: computed {pipe.get('computed')}, cached "
                   f"{pipe.get('cached')}; finished chunks reused: {reused}; stems identical: {same}",
                   inputs_modified=int(moved.exists() and sha256_file(moved) != original),
                   partial_outputs=len(leftovers) + len(partial_at_kill), lost_files=int(not moved.exists()))
    assert triggered, "the kill point was never reached: " + victim.log()[-2000:]
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert not partial_at_kill, f"a published folder was incomplete at the kill: {partial_at_kill}"
    assert moved.is_file() and sha256_file(moved) == original
    assert [r["status"] for r in rows] == ["done"], rows
    assert same, "stems differ from the uninterrupted run"
    assert reused, f"{len(finished)} chunks were finished at the kill, the re-run reports {pipe}"
    assert not leftovers, leftovers
