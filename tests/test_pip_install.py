"""Installs like a Python package: a plain ``pip install`` into a fresh venv (no make), then the default
taggers' checkpoints with the one command the error names, ``tagbox models fetch musicnn`` (the fresh
venv's own pip downloading the real wheel from a real local package index, pip's configuration files
left out), then ``tagbox separate`` with default settings."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from support import REPO, assert_stems_null_sum, cli_env, pip_env, serve_folder, simple_index
from tagbox_pipeline.taggers.musicnn_wheel import URL_ENV

pytestmark = pytest.mark.slow(reason="builds a fresh venv: pip installs torch and the project (2-4 min); `make test` "
                                     "installs the project too, editable")


def _source_copy(dest: Path) -> Path:
    """The files of the working tree that git tracks or would track (no .venv, no build output), copied
    to ``dest``: pip builds there, never in the checkout."""
    listed = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=REPO,
                            capture_output=True, check=True).stdout.decode()
    for name in filter(None, listed.split("\0")):
        if (REPO / name).is_file():  # a tracked file deleted in the working tree is left out
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, dest / name)
    return dest


def _timed(seconds: dict[str, float], step: str, command: list[str | Path]) -> None:
    """Run a set-up command to success, adding its wall time to ``seconds[step]``."""
    start = time.monotonic()
    result = subprocess.run([str(part) for part in command], capture_output=True, text=True, timeout=900)
    seconds[step] = time.monotonic() - start
    assert result.returncode == 0, f"{step} failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"


def _mixture(path: Path, seconds: float = 4.0, rate: int = 44100) -> Path:
    """A 16-bit stereo wav: decaying kick-drum hits with noise on every half second over a held A4."""
    t = np.arange(int(seconds * rate)) / rate
    since = t % 0.5
    hits = np.exp(-30 * since) * np.sin(2 * np.pi * 60 * since)
    hits += 0.3 * np.exp(-40 * since) * np.random.default_rng(0).standard_normal(t.size)
    tone = 0.2 * np.sin(2 * np.pi * 440 * t)
    sf.write(path, 0.6 * np.stack([hits + tone, 0.8 * hits + tone], axis=1), rate, subtype="PCM_16")
    return path


def test_pip_install_fetch_musicnn_then_separate(tmp_path, musicnn_wheel_file):
    seconds: dict[str, float] = {}
    venv = tmp_path / "venv"
    _timed(seconds, "python -m venv", [sys.executable, "-m", "venv", venv])
    pip = [venv / "bin" / "python", "-m", "pip", "install", "-q"]
    _timed(seconds, "pip install torch==2.13.0", [*pip, "torch==2.13.0"])
    _timed(seconds, "pip install <project>", [*pip, _source_copy(tmp_path / "src")])
    print("fresh venv set-up, seconds:", {step: round(value, 1) for step, value in seconds.items()})

    tagbox = venv / "bin" / "tagbox"
    mixture = _mixture(tmp_path / "x.wav")
    simple_index(tmp_path / "index", musicnn_wheel_file)
    with serve_folder(tmp_path / "index") as base:
        env = cli_env(tmp_path / "prefect", XDG_CACHE_HOME=str(tmp_path / "xdg-cache"), **pip_env(f"{base}/simple/"))
        for name in ("TAGBOX_CACHE_DIR", "TAGBOX_MODEL_DIR", URL_ENV):  # a real user's: platform cache, pip
            env.pop(name, None)

        def run(*args: str | Path) -> subprocess.CompletedProcess:
            return subprocess.run([tagbox, *map(str, args)], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=600)

        missing = run("separate", mixture, "--sources", "drums", "--out", tmp_path / "out")
        assert missing.returncode == 2 and "run `tagbox models fetch musicnn`" in missing.stderr, missing.stderr
        fetched = run("models", "fetch", "musicnn")
        assert fetched.returncode == 0, fetched.stderr
        assert "from pip download --no-deps --only-binary :all: musicnn==0.1.0)" in fetched.stdout, fetched.stdout
    package = tmp_path / "xdg-cache" / "tagbox" / "models" / "musicnn-0.1.0" / "musicnn"
    path = run("models", "path", "musicnn")
    assert path.returncode == 0 and path.stdout.strip() == str(package)
    verified = run("models", "verify", "musicnn")
    assert verified.returncode == 0 and verified.stdout.strip().endswith("OK"), verified.stderr
    separated = run("separate", mixture, "--sources", "drums", "--out", tmp_path / "out")
    assert separated.returncode == 0, separated.stderr[-4000:]
    track = tmp_path / "out" / "x"
    assert_stems_null_sum(track, mixture, ["drums", "residual"], 44100, 2, "PCM_16")
