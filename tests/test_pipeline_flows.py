"""Acceptance tests of the Prefect pipeline: real bench-dev audio, real Prefect runs, real watchdog
events, real subprocesses (and a real SIGKILL), a real 2-worker Dask LocalCluster.

Short excerpts (2–4.5 s), one steering step and 1.5 s chunk windows keep each run to seconds while a
track still has several chunks (the killed track has 5, more than the 3 that run at once).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
import soundfile as sf
import yaml

from support import FAST_TOML, REPO, STEPPED_TOML, cli_env, excerpt, null_sum_error, run_cli, start_cli
from tagbox_pipeline.files import sha256_file

SOURCES = ["drums", "piano"]


def _flows_toml(fast: str) -> str:
    """Fast settings ``fast`` with 1.5 s windows and the fcn-mtat tagger; the drums stem gets a post chain
    (raw kept in raw/)."""
    return fast.replace('taggers = ["musicnn-mtat"]', 'taggers = ["fcn-mtat"]').replace(
        "window_seconds = 3.0", "window_seconds = 1.5") + """[[post.drums]]
plugin = "Compressor"
params = { ratio = 4.0, threshold_db = -24.0 }
[[post.drums]]
plugin = "Limiter"
"""


#: settings of the in-process runs here: one gradient step (the steered path, and chunks long enough to
#: kill a run between them)
CONFIG = _flows_toml(STEPPED_TOML)
#: each track its own run (a process) of the separate-track/track deployment, two at a time, with the
#: warm start alone (no kill lands in these runs)
DEPLOYMENT_CONFIG = _flows_toml(FAST_TOML).replace('mode = "in-process"', 'mode = "deployment"\nconcurrency = 2')


def tagbox(*args: str, home: Path, api_url: str | None = None) -> subprocess.CompletedProcess:
    """Run the real CLI in a subprocess: its own Prefect home, and the test server at ``api_url``
    (faster) or its own ephemeral API server (the embedded default)."""
    return run_cli(list(args), home, api_url)


def stem_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every audio file of a stem folder (relative path → hash)."""
    return {str(p.relative_to(folder)): sha256_file(p) for p in sorted(folder.rglob("*.wav"))}


def assert_null_sum(folder: Path, mixture: Path) -> None:
    """Unprocessed stems (raw/ where a chain ran) + residual equal the mixture, up to the rounding of
    each file to its bit depth."""
    bits = {"PCM_16": 16, "PCM_24": 24, "PCM_32": 32}.get(sf.info(folder / "residual.wav").subtype, 32)
    assert null_sum_error(folder, mixture) <= (len(SOURCES) + 1) * 2.0 ** (1 - bits) + 1e-7


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "tagbox.toml"
    path.write_text(CONFIG)
    return path


@pytest.fixture(scope="module")
def reference(shared: Path, config: Path, harness, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An uninterrupted in-process ``separate_track`` run with the default task runner."""
    from flows.separate_track import separate_track
    from tagbox_pipeline.config import load_settings

    root = tmp_path_factory.mktemp("reference")
    mix = excerpt(shared, "d01", root / "in" / "song.wav", seconds=4.5)
    outcome = separate_track(str(mix), str(root / "out"), SOURCES, load_settings(config))
    return {"mix": mix, "outcome": outcome, "folder": Path(outcome["folder"])}


def test_separate_track_writes_stems_post_and_artifacts(reference: dict) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    folder, outcome = reference["folder"], reference["outcome"]
    assert outcome["chunks"] >= 3 and outcome["computed"] == outcome["chunks"] and outcome["cached"] == 0
    for name in [*SOURCES, "residual"]:
        assert (folder / f"{name}.wav").is_file() and (folder / f"{name}.spectrogram.png").is_file()
    assert (folder / "raw" / "drums.wav").is_file() and not (folder / "raw" / "piano.wav").exists()
    assert_null_sum(folder, reference["mix"])
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["post"] == {"drums": ["Compressor", "Limiter"]} and manifest["raw_dir"] == "raw"
    assert not list((folder.parent / ".tagbox" / "staging").glob("*")), "no staging folder left"
    with get_client(sync_client=True) as client:
        keys = {a.key: a for a in client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(like_="tagbox-")))}
    assert {"tagbox-summary-song", "tagbox-progress-song", "tagbox-stems-song"} <= set(keys)
    table = json.loads(keys["tagbox-summary-song"].data)
    assert [row["source"] for row in table] == SOURCES and all(row["RTF"] > 0 for row in table)
    assert keys["tagbox-progress-song"].data == 100.0
    stems = keys["tagbox-stems-song"].data
    assert "drums.spectrogram.png" in stems and "file://" not in stems
    images = re.findall(r"!\[[^]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", stems)
    assert len(images) == len(SOURCES) + 1, "one embedded spectrogram per stem and the residual"
    assert all(base64.b64decode(i)[:8] == b"\x89PNG\r\n\x1a\n" and len(base64.b64decode(i)) <= 100_000 for i in images)


def test_the_track_records_its_stems_as_assets_made_from_the_mixture(reference: dict) -> None:
    """Issue 13 lineage: one materialization per stem file, each with the mixture as its upstream asset
    (the event details are in tests/test_pipeline_lineage.py)."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    from tagbox_pipeline.pipeline.lineage import asset_key

    wanted = {asset_key(reference["folder"] / f"{name}.wav") for name in [*SOURCES, "residual"]}
    deadline, made = time.monotonic() + 30, {}
    with get_client(sync_client=True) as client:
        while time.monotonic() < deadline and set(made) != wanted:
            events = client.read_events(filter=EventFilter(
                event=EventNameFilter(name=["prefect.asset.materialization.succeeded"]),
                resource=EventResourceFilter(id=sorted(wanted))), limit=50).events
            made = {e.resource.id: e for e in events}
            time.sleep(0.5)
    assert set(made) == wanted, sorted(made)
    mixture = asset_key(reference["mix"])
    assert all(mixture in {r.id for r in e.related if r.role == "asset"} for e in made.values())


def test_the_track_run_log_tells_the_story(reference: dict) -> None:
    """The track's own run log: what was asked, each chunk with p(tag) per source, the post chain, where
    the stems went and the real-time factor (not only Prefect's lines)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName, LogFilter, LogFilterFlowRunId

    with get_client(sync_client=True) as client:
        run = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["separate-song.wav"])))[0]
        deadline, messages = time.monotonic() + 20, []
        while time.monotonic() < deadline and not any("stems in" in m for m in messages):
            time.sleep(0.5)  # logs reach the API in batches
            messages = [log.message for log in client.read_logs(
                log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run.id])))]
    text = "\n".join(messages)
    chunks = reference["outcome"]["chunks"]
    assert "separating drums, piano in" in text and str(reference["mix"]) in text, text
    assert all(f"chunk {i}/{chunks}" in text for i in range(1, chunks + 1)), text
    assert re.search(r"chunk 1/\d+ \(computed\): p\(drums\) \d\.\d\d, p\(piano\) \d\.\d\d", text), text
    assert "post chain on drums: Compressor → Limiter" in text
    assert f"stems in {reference['folder']}" in text and "real-time factor" in text


def test_gpu_concurrency_limit_is_created_once(harness) -> None:
    from prefect.client.orchestration import get_client

    from tagbox_pipeline.pipeline.track import GPU_LIMIT, ensure_gpu_limit

    ensure_gpu_limit()
    ensure_gpu_limit()
    with get_client(sync_client=True) as client:
        limit = client.read_global_concurrency_limit_by_name(GPU_LIMIT)
    assert limit.limit >= 1 and limit.active


STARTUP_TIMEOUT = "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"


@pytest.mark.parametrize("given, expected", [(None, "180"), ("45", "45")])
def test_tagbox_waits_minutes_for_its_local_prefect_server_unless_told(given: str | None, expected: str) -> None:
    """Prefect gives its ephemeral API server 20 s to answer; on a busy 2-core machine (CI, 2026-12-07)
    it took longer and `tagbox watch` died with "Timed out ... ephemeral Prefect API server". `tagbox`
    waits 180 s; a value the user set is kept."""
    env = cli_env()
    env.pop(STARTUP_TIMEOUT, None)
    if given is not None:
        env[STARTUP_TIMEOUT] = given
    code = ("from tagbox_pipeline.cli import main; main(['taggers']); "
            "from prefect.settings import PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS as t; print(t.value())")
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == expected


def _finished_results(store: Path) -> set[str]:
    """Result files that hold a complete record (a file cut by the kill is not finished)."""
    done = set()
    for path in store.glob("chunk-*"):
        try:
            json.loads(path.read_bytes())
            done.add(path.name)
        except ValueError:
            pass
    return done


def test_sigkill_mid_track_then_resume_recomputes_nothing_finished(reference: dict, config: Path, harness: str,
                                                                   tmp_path: Path) -> None:
    out, store = tmp_path / "out", tmp_path / "out" / ".tagbox" / "results"
    script = ("import json, sys; from flows.separate_track import separate_track; "
              "from tagbox_pipeline.config import load_settings; "
              "print(json.dumps(separate_track(sys.argv[1], sys.argv[2], sys.argv[3].split(','), "
              "load_settings(sys.argv[4]))))")
    argv = [sys.executable, "-c", script, str(reference["mix"]), str(out), ",".join(SOURCES), str(config)]
    # the in-process reference's torch thread count: the gradient step's backward sums round differently
    # with 1 and 2 threads (a few 1e-8, see test_outputs_unchanged), enough to flip a 24-bit sample
    import torch

    env = cli_env(tmp_path / "home", harness, OMP_NUM_THREADS=str(torch.get_num_threads()))
    victim = subprocess.Popen(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    deadline = time.monotonic() + 240
    while not _finished_results(store) and victim.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    os.killpg(victim.pid, signal.SIGKILL)  # the run and its ephemeral API server die at once, like a crash
    victim.wait(30)
    finished = _finished_results(store)
    total = reference["outcome"]["chunks"]
    assert 1 <= len(finished) < total, f"kill landed outside the track ({len(finished)}/{total} chunks)"
    assert not (out / "song").exists(), "no stem folder from the killed run"

    rerun = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    outcome = json.loads(rerun.stdout.strip().splitlines()[-1])
    assert outcome["cached"] >= len(finished) and outcome["computed"] == total - outcome["cached"]
    assert not list(store.glob("chunk-*")), "a finished track's chunk results are removed"
    manifest = json.loads((out / "song" / "manifest.json").read_text())
    assert manifest["pipeline"]["cached"] == outcome["cached"]
    assert stem_hashes(out / "song") == stem_hashes(reference["folder"])
    assert not any((out / ".tagbox" / "staging").iterdir()), "the killed run's staging folder was cleaned up"


def _slow_copy(src: Path, dest: Path, pieces: int = 6, pause: float = 0.3) -> None:
    data = src.read_bytes()
    step = len(data) // pieces + 1
    with open(dest, "wb") as handle:
        for i in range(0, len(data), step):
            handle.write(data[i:i + step])
            handle.flush()
            time.sleep(pause)


def test_watch_once_processes_quarantines_and_dedupes(shared: Path, config: Path, harness: str,
                                                     tmp_path: Path) -> None:
    inbox, out, home = tmp_path / "inbox", tmp_path / "out", tmp_path / "home"
    originals = tmp_path / "originals"
    first = excerpt(shared, "d01", originals / "first take.wav", seconds=2.0)
    second = excerpt(shared, "d02", originals / "second.flac", seconds=2.0, subtype="PCM_16")
    broken = originals / "broken.wav"
    broken.write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + os.urandom(300))
    inbox.mkdir()
    (inbox / ".DS_Store").write_bytes(b"x")
    (inbox / "upload.wav.part").write_bytes(b"partial")
    shutil.copy(first, inbox / first.name)
    shutil.copy(broken, inbox / broken.name)
    args = ["watch", str(inbox), "--out", str(out), "--sources", ",".join(SOURCES), "--config", str(config), "--once"]
    watcher = start_cli(args, home)
    watcher.wait_for("watching")
    _slow_copy(second, inbox / second.name)  # while the watcher runs: events, not the start-up scan
    assert watcher.finish(300) == 0, watcher.log()[-3000:]
    assert "watch: 1 failed, 2 processed" in watcher.stdout

    processed = sorted(p.name for p in (inbox / "processed").iterdir())
    assert processed == sorted([first.name, second.name])
    for original in (first, second):
        assert sha256_file(inbox / "processed" / original.name) == sha256_file(original), "moved byte-identical"
        assert_null_sum(out / original.stem, original)
    assert sha256_file(inbox / "failed" / "broken.wav") == sha256_file(broken)
    reason = (inbox / "failed" / "broken.wav.error.txt").read_text()
    assert "cause:" in reason and "broken.wav" in reason and "time:" in reason
    assert sorted(p.name for p in inbox.iterdir()) == [".DS_Store", "failed", "processed", "upload.wav.part"]
    folders = sorted(p.name for p in out.iterdir() if not p.name.startswith("."))
    assert folders == sorted([first.stem, second.stem])

    # the same content under another name: nothing new is processed
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*") if ".tagbox" not in p.parts}
    shutil.copy(first, inbox / "renamed copy.wav")
    again = tagbox(*args, home=home, api_url=harness)  # first run: embedded API; this one: the test server
    assert again.returncode == 0, again.stderr[-3000:]
    assert "watch: 1 duplicate" in again.stdout
    assert (inbox / "processed" / "renamed copy.wav").is_file()
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*") if ".tagbox" not in p.parts} == before


def test_sweep_twice_is_read_only_and_second_run_processes_nothing(shared: Path, config: Path, harness: str,
                                                                   tmp_path: Path) -> None:
    archive, out, home = tmp_path / "archive", tmp_path / "stems", tmp_path / "home"
    excerpt(shared, "d03", archive / "2019" / "session a" / "take1.flac", seconds=1.5, subtype="PCM_16")
    (archive / "notes.txt").write_text("not audio")
    (archive / "2020").mkdir()
    (archive / "2020" / "bad.wav").write_bytes(b"not a wave file at all")
    before = {str(p): (p.stat().st_mtime_ns, sha256_file(p)) for p in archive.rglob("*") if p.is_file()}
    config = tmp_path / "deployment.toml"
    config.write_text(DEPLOYMENT_CONFIG)
    args = ["sweep", str(archive), "--out", str(out), "--sources", ",".join(SOURCES), "--config", str(config)]

    first = tagbox(*args, home=home, api_url=harness)  # each file its own track run (deployment mode)
    assert first.returncode == 1, first.stderr[-3000:]  # bad.wav failed, and says so
    report = json.loads((out / "sweep-report.json").read_text())
    assert report["counts"] == {"processed": 1, "skipped": 0, "failed": 1}
    assert report["failed"][0]["path"] == "2020/bad.wav" and "bad.wav" in report["failed"][0]["cause"]
    assert_null_sum(out / "2019" / "session a" / "take1", archive / "2019" / "session a" / "take1.flac")
    assert not (out / "2020").exists() and not (out / "notes").exists()

    second = tagbox(*args, home=home, api_url=harness)
    report = json.loads((out / "sweep-report.json").read_text())
    assert report["counts"]["processed"] == 0 and report["counts"]["skipped"] == 1, second.stdout
    after = {str(p): (p.stat().st_mtime_ns, sha256_file(p)) for p in archive.rglob("*") if p.is_file()}
    assert after == before, "the archive is never modified"

    from prefect.client.orchestration import get_client

    with get_client(sync_client=True) as client:
        latest = client.read_latest_artifacts()
    table = next(json.loads(a.data) for a in latest if a.key == "tagbox-sweep-archive")
    assert sorted(row["status"] for row in table) == ["failed", "skipped"]
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, FlowRunFilter, FlowRunFilterName

    with get_client(sync_client=True) as client:
        sweeps = client.read_flow_runs(flow_filter=FlowFilter(name=FlowFilterName(any_=["sweep-archive"])))
        tracks = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(
            any_=["separate-take1.flac", "separate-bad.wav"])))
    assert {r.name for r in sweeps} == {f"sweep-archive-{date.today().isoformat()}"}
    assert sorted((r.name, r.state.type.value) for r in tracks) == [  # bad.wav is tried again by each sweep
        ("separate-bad.wav", "FAILED"), ("separate-bad.wav", "FAILED"), ("separate-take1.flac", "COMPLETED")]
    assert all(r.deployment_id is not None and r.parent_task_run_id is None for r in tracks)


#: files dropped at once into the watched inbox: twice the concurrency (every file a process start)
DROPPED = 4


def test_dropped_files_are_one_track_run_each_at_most_two_at_once(shared: Path, harness: str,
                                                                  tmp_path: Path) -> None:
    """Issue 13: every file dropped into a watched inbox is its own top-level run of the
    separate-track/track deployment, named for the file, started once, at most [runs] concurrency
    (2) at the same time; the watcher's run is named for its inbox and publishes its counts."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterName

    inbox, ready, out, home = tmp_path / "drop box", tmp_path / "ready", tmp_path / "out", tmp_path / "home"
    inbox.mkdir()
    names = []
    for i in range(DROPPED):
        names.append(excerpt(shared, f"d0{1 + i % 8}", ready / f"drop {i:02d}.wav", start_s=1.0 + i // 8,
                             seconds=1.0, subtype="PCM_16").name)
    config = tmp_path / "deployment.toml"
    config.write_text(DEPLOYMENT_CONFIG.replace("stable_seconds = 1.0", "stable_seconds = 0.5"))
    watcher = start_cli(["watch", str(inbox), "--out", str(out), "--sources", "drums", "--config", str(config)],
                        home, harness)
    try:
        watcher.wait_for(r"watching .*drop box")
        for name in names:
            os.rename(ready / name, inbox / name)
        deadline = time.monotonic() + 400
        while time.monotonic() < deadline and watcher.process.poll() is None:
            if len(re.findall(r"tagbox - .*: stems in ", watcher.log())) >= len(names):
                break
            time.sleep(0.5)
    finally:
        code = watcher.interrupt()
    assert code == 0, watcher.log()[-3000:]
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == names, watcher.log()[-3000:]
    with get_client(sync_client=True) as client:
        deployment = client.read_deployment_by_name("separate-track/track")
        runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(like_="separate-drop ")))
        watch_runs = client.read_flow_runs(flow_run_filter=FlowRunFilter(name=FlowRunFilterName(any_=["watch-drop box"])))
        counts = {a.key: a for a in client.read_latest_artifacts()}["tagbox-watch-drop-box"]
    assert sorted(r.name for r in runs) == [f"separate-{name}" for name in names], "each file exactly one run"
    assert all(r.state.is_completed() and r.deployment_id == deployment.id and r.parent_task_run_id is None
               for r in runs), [(r.name, r.state, r.parent_task_run_id) for r in runs]
    spans = [(r.start_time, r.end_time) for r in runs]
    most = max(sum(start <= moment < end for start, end in spans) for moment, _ in spans)
    assert most == 2, f"{most} track runs at the same time (limit 2)"
    assert len(watch_runs) == 1 and json.loads(counts.data) == [{"outcome": "processed", "files": DROPPED}]


def test_prefect_yaml_deploys_watch_and_nightly_sweep_to_a_work_pool(harness: str, tmp_path: Path) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.flows import load_flow_from_entrypoint

    from tagbox_pipeline.pipeline.deployments import local_timezone

    spec = yaml.safe_load((REPO / "deployments" / "prefect.yaml").read_text())
    deployments = {d["name"]: d for d in spec["deployments"]}
    assert set(deployments) == {"watch", "nightly", "track"}
    assert [s["cron"] for s in deployments["nightly"]["schedules"]] == ["0 2 * * *"]
    for deployment in deployments.values():
        flow = load_flow_from_entrypoint(str(REPO / deployment["entrypoint"]))
        assert set(deployment["parameters"]) <= set(flow.parameters.properties)
        assert deployment["work_pool"]["name"] == "tagbox"

    with get_client(sync_client=True) as client:
        client.create_work_pool(WorkPoolCreate(name="tagbox", type="process"))
    for extra in (["-n", "track"], ["-n", "watch"], ["-n", "nightly", "--timezone", local_timezone()]):
        done = subprocess.run([sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--prefect-file",
                               "deployments/prefect.yaml", *extra], cwd=REPO, capture_output=True, text=True,
                              env=cli_env(tmp_path / "home", harness) | {"TAGBOX_REPO": str(REPO)}, timeout=120)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    with get_client(sync_client=True) as client:
        registered = {d.name: d for d in client.read_deployments()}
    assert registered["watch"].work_pool_name == "tagbox" and not registered["watch"].schedules
    schedule = registered["nightly"].schedules[0].schedule
    assert (schedule.cron, schedule.timezone) == ("0 2 * * *", local_timezone())


def test_serve_builds_the_watch_and_nightly_deployments(config: Path, tmp_path: Path) -> None:
    """What `tagbox serve` serves; serving itself (a dropped file separated, SIGTERM stops it, loopback
    sockets only) runs in tests/faults/test_faults_security.py::test_serve_listens_on_loopback_only."""
    from tagbox_pipeline.pipeline.deployments import build_deployments, local_timezone

    from tagbox_pipeline.layout import LayoutError

    built = {d.name: d for d in build_deployments(tmp_path / "inbox", tmp_path / "archive", tmp_path / "out",
                                                  SOURCES, config, {"steps": 1})}
    assert set(built) == {"watch", "nightly", "track"} and not built["watch"].schedules
    assert built["track"].flow_name == "separate-track" and built["track"].concurrency_limit == 1
    assert built["nightly"].schedules[0].schedule.cron == "0 2 * * *"
    assert built["nightly"].schedules[0].schedule.timezone == local_timezone()
    with pytest.raises(LayoutError, match="the output folder .* lies inside the archive"):  # OUT inside the archive
        build_deployments(tmp_path / "inbox", tmp_path, tmp_path / "out", SOURCES, config, {})


def test_dask_local_cluster_gives_the_same_stems(reference: dict, config: Path, tmp_path: Path) -> None:
    from flows.separate_track import separate_track
    from tagbox_pipeline.config import load_settings
    from tagbox_pipeline.pipeline.runner import dask_address, task_runner

    with dask_address("local", 2) as address:
        from distributed import Client

        with Client(address) as client:
            assert len(client.scheduler_info()["workers"]) == 2
            assert address.startswith("tcp://127.0.0.1:")
        flow = separate_track.with_options(task_runner=task_runner(address))
        outcome = flow(str(reference["mix"]), str(tmp_path / "out"), SOURCES, load_settings(config))
    assert outcome["computed"] == reference["outcome"]["chunks"]
    assert stem_hashes(Path(outcome["folder"])) == stem_hashes(reference["folder"])
