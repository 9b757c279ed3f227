"""Security: what the project listens on, where it writes, and how it loads weights.

* `tagbox serve` (its ephemeral Prefect server, the served watch run, a Dask LocalCluster with
  ``--dask``) listens on loopback only: the listening sockets of its whole process tree are sampled
  with psutil while it separates a dropped file.
* `tagbox sweep` over an archive holding symlinks that lead outside it (a linked folder and a linked
  file) and odd names writes only under OUT, leaves the archive byte-for-byte unchanged and never
  processes what the links point to.
* Weights are loaded without running pickled code: a file whose ``__reduce__`` writes a marker file
  is refused by both loaders (the taggers' ``weights.load_state_dict`` and the Jukebox checkpoint
  loader) and by the CLI (``--prior jukebox --weights``), and the marker never appears.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from faultkit import SOURCES, Sampler, changes, copy_in, is_loopback, partial_outputs, sha256_file, snapshot
from support import evil_pickle, excerpt, run_cli, start_cli, write_toml
from tagbox_pipeline.errors import WeightsError
from tagbox_pipeline.priors.jukebox.checkpoint import load_checkpoint
from tagbox_pipeline.weights import load_state_dict

pytestmark = pytest.mark.faults


def test_serve_listens_on_loopback_only(shared: Path, fast_toml: Path, tmp_path: Path, matrix) -> None:
    matrix.describe("security: sockets of `tagbox serve --dask` (ephemeral Prefect server, served runs, Dask)",
                    "every listening socket on 127.0.0.1/::1 while a dropped file is separated; SIGTERM "
                    "stops serve (deployments paused)")
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    song = excerpt(shared, "d03", tmp_path / "originals" / "served.wav", seconds=2.0)
    (tmp_path / "archive").mkdir()
    config = write_toml(tmp_path / "served.toml", fast_toml.read_text().replace('mode = "in-process"',
                                                                                'mode = "deployment"'))
    server = start_cli(["serve", "--inbox", str(inbox), "--archive", str(tmp_path / "archive"), "--out", str(out),
                        "--sources", SOURCES, "--config", str(config), "--dask", "--dask-workers", "1"],
                       tmp_path / "home")
    sampler = Sampler(server.process.pid, period=0.3)
    done = False
    try:
        with sampler.running():
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and server.process.poll() is None and not done:
                if not (inbox / song.name).exists() and not (inbox / "processed" / song.name).exists() \
                        and any("watching" in line for line in server.lines):
                    copy_in(song, inbox)
                done = (out / "served" / "manifest.json").exists()
                time.sleep(0.3)
            time.sleep(1.0)  # one more sample with everything up
    finally:
        code = server.terminate(timeout=90)
    sockets = sorted(sampler.sockets)
    exposed = [s for s in sockets if not is_loopback(s[0])]
    names = sorted({s[2] for s in sockets})
    matrix.observe(f"{len(sockets)} listening socket(s) from {names}; exposed: {exposed}; file separated: {done}; "
                   f"exit on SIGTERM {code}")
    assert done, server.log()[-3000:]
    said = server.log() + server.stdout
    # issue 6: both deployments served, a dropped file separated (issue 13: by a run of the served track
    # deployment, its chunks on the local Dask cluster), SIGTERM stops
    assert "being served" in said and "watch-inbox/watch" in said and "sweep-archive/nightly" in said, said[-3000:]
    assert "separate-track/track" in said and "Flow run 'separate-served.wav'" in said, said[-3000:]
    assert (out / "served" / "residual.wav").is_file() and "Pausing all deployments" in said, said[-3000:]
    assert sockets and not exposed, sockets


def test_sweep_writes_only_under_out_and_never_follows_links(shared: Path, fast_toml: Path, prefect_server,
                                                            tmp_path: Path, matrix) -> None:
    matrix.describe("security: sweep over an archive with symlinks leading outside and odd names",
                    "writes only under OUT; archive and link targets unchanged; link targets not processed")
    archive, out, outside = tmp_path / "archive", tmp_path / "out", tmp_path / "outside"
    excerpt(shared, "d04", archive / "2021" / "Ñandú sessions" / "take 'one'.wav", seconds=2.0)
    excerpt(shared, "d05", outside / "private" / "secret.wav", seconds=2.0)
    (archive / "2021" / "linked folder").symlink_to(outside / "private", target_is_directory=True)
    (archive / "linked file.wav").symlink_to(outside / "private" / "secret.wav")
    before = snapshot(tmp_path)
    result = run_cli(["sweep", str(archive), "--out", str(out), "--sources", SOURCES, "--config", str(fast_toml)],
                     tmp_path.parent / f"{tmp_path.name}-home", prefect_server.url)
    changed = changes(before, snapshot(tmp_path))
    stray = sorted(p for p in changed if not p.startswith("out"))
    report = json.loads((out / "sweep-report.json").read_text()) if (out / "sweep-report.json").exists() else {}
    processed = [Path(entry["path"]).name for entry in report.get("processed", [])]
    problems = partial_outputs(out)
    matrix.observe(f"exit {result.returncode}; processed {processed}; {len(stray)} change(s) outside OUT",
                   partial_outputs=len(problems) + len(stray))
    assert result.returncode == 0, result.stderr[-3000:]
    assert processed == ["take 'one'.wav"], report
    assert not stray, stray
    assert (out / "2021" / "Ñandú sessions" / "take 'one'" / "manifest.json").is_file()
    assert not problems, problems


@pytest.mark.parametrize("loader, name", [(load_state_dict, "weights.load_state_dict"),
                                          (load_checkpoint, "Jukebox checkpoint loader")], ids=["taggers", "jukebox"])
def test_weight_loaders_refuse_pickled_code(loader, name: str, tmp_path: Path, matrix) -> None:
    """Neither weights loader (every tagger's, the Jukebox VQ-VAE's) ever executes pickled code."""
    matrix.describe(f"pickle carrying code -> {name}", "WeightsError naming the file; marker file not created")
    marker = tmp_path / "PWNED"
    evil = evil_pickle(tmp_path / "evil.pth.tar", marker)
    with pytest.raises(WeightsError) as caught:
        loader(evil)
    matrix.observe(f"{type(caught.value).__name__}: {caught.value}"[:300] + f"; marker exists: {marker.exists()}")
    assert str(evil) in str(caught.value) and not marker.exists()


def test_cli_refuses_jukebox_weights_carrying_code(shared: Path, fast_toml: Path, tmp_path: Path, matrix) -> None:
    matrix.describe("pickle carrying code -> `tagbox separate --prior jukebox --weights`",
                    "exit 2, one line naming the weights file; marker not created; nothing written")
    song = excerpt(shared, "d01", tmp_path / "in" / "song.wav", seconds=2.0)
    sha = sha256_file(song)
    marker = tmp_path / "PWNED"
    evil = evil_pickle(tmp_path / "vqvae.pth.tar", marker)
    result = run_cli(["separate", str(song), "--out", str(tmp_path / "out"), "--sources", SOURCES, "--config",
                      str(fast_toml), "--prior", "jukebox", "--device", "cpu", "--weights", str(evil)],
                     tmp_path / "home")
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    outputs = list((tmp_path / "out").rglob("*")) if (tmp_path / "out").exists() else []
    matrix.observe(f"exit {result.returncode}: {lines[-1] if lines else ''}"[:300] + f"; marker: {marker.exists()}",
                   inputs_modified=int(sha256_file(song) != sha), partial_outputs=len(outputs))
    assert not marker.exists(), "unpickling ran the payload"
    assert result.returncode == 2 and len(lines) == 1 and str(evil) in lines[0], result.stderr[-3000:]
    assert sha256_file(song) == sha and not outputs
