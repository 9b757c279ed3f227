"""GPU check (issue 14): the ``gpu`` tests and the speed benches on CUDA -> ``bench/results/gpu.md``.

Run by ``scripts/gpu_check.sh`` on a machine with a CUDA device (``python -m tagbox_pipeline.bench gpu``),
in about 5 minutes:

- the ``gpu``-marked tests (``pytest -m gpu``), their summary line;
- the Jukebox steering step of the product (:func:`.jukebox.ours`, S = 3) on the random-weight
  checkpoint, float32 and bf16 autocast, on the bench's 5.9 s chunk and on a full 2**20-sample
  context; median seconds per step over :data:`REPEATS` after a warm-up;
- ``tagbox separate``'s engine on the device: the default NMF prior and the Jukebox prior (random
  weights, :data:`JUKEBOX_STEPS` steps) on one minute of the bench-dev mixtures, seconds per
  requested source per second of audio.

``--device cpu`` runs the same code on the CPU (a dry run of the script's path; slow). Random
weights cost what the real ones cost; no quality follows from them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from ..config import load_settings
from ..errors import UserError
from ..paths import REPO_DIR
from ..priors.jukebox import load_vqvae
from ..separation import Separator
from . import machine_line, write_result
from .jukebox import RATE, checkpoint_path, load_chunk, ours
from .separation import load_clips, table

REPEATS = 5
JUKEBOX_STEPS = 20
#: seconds of audio separated per engine row
ENGINE_SECONDS = 60
SOURCES = ["drums", "piano", "bass", "guitar"]


def synchronise(device: str) -> None:
    """Wait for the device's queued work (timings on CUDA are asynchronous)."""
    if device == "cuda":
        torch.cuda.synchronize()


def gpu_tests() -> str:
    """The last line of ``pytest -m gpu`` (its summary)."""
    run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-m", "gpu", "tests"], cwd=REPO_DIR,
                         capture_output=True, text=True)
    lines = [line for line in run.stdout.splitlines() if line.strip()]
    return f"exit {run.returncode}: {lines[-1] if lines else run.stderr.strip()[-200:]}"


def step_seconds(device: str, samples: int, autocast: str) -> float:
    """Median seconds of one product steering step (S = 3) on a chunk of ``samples`` samples."""
    chunk = load_chunk()
    mix = chunk.repeat(1, -(-samples // chunk.shape[1]))[:, :samples].to(device)
    step = ours(load_vqvae(checkpoint_path(), device), mix, 3, autocast=autocast)
    step()
    times = []
    for _ in range(REPEATS):
        synchronise(device)
        started = time.perf_counter()
        step()
        synchronise(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def engine_rtf(device: str, overrides: dict[str, object]) -> float:
    """Seconds per requested source per second of audio of :meth:`Separator.separate` on the device."""
    mixture = np.concatenate([clip.mixture for clip in load_clips()], axis=1)[:, : ENGINE_SECONDS * RATE]
    separator = Separator(load_settings(overrides={"device": device, **overrides}))
    separator.separate(mixture[:, :RATE], RATE, SOURCES)  # warm-up
    synchronise(device)
    started = time.perf_counter()
    separator.separate(mixture, RATE, SOURCES)
    synchronise(device)
    return (time.perf_counter() - started) / (mixture.shape[1] / RATE) / len(SOURCES)


def main(device: str = "cuda") -> None:
    """Run the checks on ``device`` and write ``bench/results/gpu.md``."""
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("no CUDA device is visible to torch: run the GPU check on a machine with one")
    started = time.perf_counter()
    name = torch.cuda.get_device_name() if device == "cuda" else "CPU (dry run)"
    tests = gpu_tests() if device == "cuda" else "not run (CPU dry run)"
    steps = [[f"{samples} samples ({samples / RATE:.1f} s)", autocast, f"{step_seconds(device, samples, autocast):.3f}"]
             for samples in (2**18, 2**20) for autocast in ("off", "bf16")]
    random_weights = str(checkpoint_path())
    engines = [["nmf (default)", f"{engine_rtf(device, {}):.3f}"],
               [f"jukebox, random weights, {JUKEBOX_STEPS} steps",
                f"{engine_rtf(device, {'prior': 'jukebox', 'jukebox.weights': random_weights, 'steps': JUKEBOX_STEPS}):.3f}"]]
    text = "\n\n".join([
        "# GPU check (issue 14): `scripts/gpu_check.sh`",
        f"Device: {name}. Host: {machine_line()}. Total {time.perf_counter() - started:.0f} s.",
        f"## gpu-marked tests\n\n- {tests}",
        "## Jukebox steering step (product path, S = 3, random-weight checkpoint)\n\n"
        + table(["chunk", "autocast", f"median s/step of {REPEATS}"], steps),
        f"## Engine on the device ({ENGINE_SECONDS} s of bench-dev mixtures, sources {', '.join(SOURCES)})\n\n"
        + table(["prior", "s per source per s of audio"], engines),
    ]) + "\n"
    write_result("gpu", text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="GPU check (default device: cuda)")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    main(parser.parse_args().device)
