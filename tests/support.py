"""What many tests need, written once: the real CLI in a subprocess, real bench-dev excerpts, the
bundled example's audio, the null-sum check of a stem folder read back from disk, a pickle that runs code, a settings file, a
local HTTP server standing in for a download host, a local package index for pip, the real musicnn
wheel."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
#: the bundled example (a chorale, mono 22.05 kHz: mixture.flac and the true stems piano, bass, drums)
EXAMPLE = REPO / "examples" / "demo"
#: the console script of the venv running the tests (``.venv/bin/tagbox`` under `make test`)
TAGBOX = Path(sys.executable).with_name("tagbox")
#: the real CLI, as a program that also reports its own peak resident memory (KiB) on its last stdout line
_MEASURED = ("import resource, sys; from tagbox_pipeline.cli import main; code = main(sys.argv[1:]); "
             "print('maxrss', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss); sys.exit(code)")


#: steering settings of the fault runs: the warm start alone (the default ``steps = 0``: no optimiser,
#: whose first use imports torch's compiler stack, about 2 s of every process), 3 s windows, a small
#: NMF; files taken after 1 s; tracks in-process (no process start per track: deployment runs have
#: tests of their own). Tests that kill a run while chunks are steered use :data:`STEPPED_TOML`.
FAST_TOML = """
steps = 0
taggers = ["musicnn-mtat"]
[chunk]
window_seconds = 3.0
overlap_seconds = 0.25
margin_seconds = 0.25
[nmf]
components = 8
nmf_iterations = 10
[watch]
stable_seconds = 1.0
poll_seconds = 0.2
[runs]
mode = "in-process"
"""
#: the fast settings with one gradient step: the steered path, and chunks long enough for a kill to land
#: between them
STEPPED_TOML = FAST_TOML.replace("steps = 0", "steps = 1")


# ----------------------------------------------------------------------------------------------
# the CLI in a subprocess
# ----------------------------------------------------------------------------------------------

def cli_env(home: Path | None = None, api_url: str | None = None, **extra: str) -> dict[str, str]:
    """Environment of a CLI subprocess: one torch thread; with ``home``, its own PREFECT_HOME and
    either the Prefect API at ``api_url`` or (without it) an ephemeral server of its own."""
    env = os.environ | {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"} | extra
    if home is not None:
        env |= {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
        env.pop("PREFECT_API_URL", None)
        if api_url is not None:
            env["PREFECT_API_URL"] = api_url
    return env


def run_cli(args: list[str | Path], home: Path | None = None, api_url: str | None = None, *, cwd: Path = REPO,
            env: dict[str, str] | None = None, timeout: float = 300, preexec_fn: Callable[[], None] | None = None,
            measure: bool = False) -> subprocess.CompletedProcess:
    """Run ``tagbox ARGS`` to completion (the installed console script; see :func:`cli_env`).

    With ``measure`` the same CLI runs through ``python -c`` so that it prints its peak RSS last
    (see :func:`peak_rss_mib`).
    """
    command = [sys.executable, "-c", _MEASURED] if measure else [str(TAGBOX)]
    return subprocess.run([*command, *map(str, args)], cwd=cwd, env=env or cli_env(home, api_url),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def peak_rss_mib(result: subprocess.CompletedProcess) -> float:
    """Peak resident memory in MiB of a successful ``run_cli(..., measure=True)``."""
    assert result.returncode == 0, result.stderr[-2000:]
    return int(result.stdout.split("maxrss")[-1]) / 1024


@dataclass
class Running:
    """A CLI subprocess whose stderr is collected line by line while it runs."""

    process: subprocess.Popen
    lines: list[str] = field(default_factory=list)
    stdout: str = ""

    def wait_for(self, pattern: str, timeout: float = 120) -> str:
        """Block until a stderr line matches ``pattern`` (regex); returns it. Fails if the process ends first."""
        deadline = time.monotonic() + timeout
        seen = 0
        while time.monotonic() < deadline:
            for line in self.lines[seen:]:
                if re.search(pattern, line):
                    return line
            seen = len(self.lines)
            if self.process.poll() is not None and seen == len(self.lines):
                time.sleep(0.3)  # let the reader thread drain the pipe
                if not any(re.search(pattern, line) for line in self.lines):
                    raise AssertionError(f"process ended ({self.process.returncode}) before /{pattern}/:\n"
                                         + self.log()[-4000:])
            time.sleep(0.05)
        raise AssertionError(f"no /{pattern}/ within {timeout} s:\n" + self.log()[-4000:])

    def finish(self, timeout: float = 300) -> int:
        """Wait for the process to exit; returns its exit code (stdout kept in :attr:`stdout`)."""
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            kill_tree(self.process)
            raise AssertionError(f"process still running {timeout} s later (killed):\n" + self.log()[-4000:]) from None
        self.stdout = self.process.stdout.read() if self.process.stdout else ""
        return code

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM the process, then wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def interrupt(self, timeout: float = 60) -> int:
        """Ctrl-C (SIGINT) the process, then wait for it; returns its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
        return self.finish(timeout)

    def log(self) -> str:
        """Everything written to stderr so far."""
        return "".join(self.lines)


def start_cli(args: list[str], home: Path, api_url: str | None = None,
              preexec_fn: Callable[[], None] | None = None) -> Running:
    """Start ``tagbox ARGS`` in the background (its own process group); stderr lines are collected."""
    process = subprocess.Popen([str(TAGBOX), *args], cwd=REPO, env=cli_env(home, api_url), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=preexec_fn)
    running = Running(process)

    def read() -> None:
        for line in process.stderr:
            running.lines.append(line)

    threading.Thread(target=read, daemon=True).start()
    return running


def kill_tree(process: subprocess.Popen) -> None:
    """SIGKILL the process group started by :func:`start_cli` (no-op when it is gone)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(30)


def example_audio(name: str) -> tuple[np.ndarray, int]:
    """A file of the bundled example (``mixture`` or a stem name) as float32 ``[channels, samples]``, and its rate in Hz."""
    audio, rate = sf.read(EXAMPLE / f"{name}.flac", dtype="float32", always_2d=True)
    return np.ascontiguousarray(audio.T), rate


def write_toml(path: Path, text: str) -> Path:
    """Write a settings file for a run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------
# real audio in, stem folders read back
# ----------------------------------------------------------------------------------------------

def mixture(shared: Path, clip: str) -> Path:
    """The bench-dev mixture of ``clip`` (``d01``..``d08``), 10 s, 44.1 kHz stereo, 24-bit FLAC."""
    return shared / "data" / "bench-dev" / clip / "mixture.flac"


def excerpt(shared: Path, clip: str, dest: Path, start_s: float = 2.0, seconds: float = 3.0,
            subtype: str = "PCM_24", rate: int | None = None, channels: int | None = None) -> Path:
    """Write ``seconds`` of a bench-dev mixture from ``start_s`` to ``dest`` (format from its suffix).

    ``rate`` resamples (soxr, as the engine does), ``channels`` mixes down to mono (1) or spreads
    the stereo pair over more channels (each extra channel a distinct blend of the two).
    """
    info = sf.info(mixture(shared, clip))
    start = int(start_s * info.samplerate)
    audio, sr = sf.read(mixture(shared, clip), start=start, stop=start + int(seconds * info.samplerate),
                        always_2d=True)
    if rate is not None and rate != sr:
        import soxr

        audio, sr = soxr.resample(audio, sr, rate), rate
    if channels == 1:
        audio = audio.mean(axis=1, keepdims=True)
    elif channels is not None and channels > 2:
        blends = np.linspace(0.0, 1.0, channels)
        audio = np.stack([(1 - b) * audio[:, 0] + b * audio[:, 1] for b in blends], axis=1) * 0.9
    dest.parent.mkdir(parents=True, exist_ok=True)
    sf.write(dest, audio, sr, subtype=subtype)
    return dest


def null_sum_error(folder: Path, mixture_path: Path) -> float:
    """Largest |sum of unprocessed stems + residual − mixture| over all samples (0 when exact).

    The stem files are those the folder's manifest lists; where a post chain ran, its ``raw/``
    copy is the unprocessed stem.
    """
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    mix, rate = sf.read(mixture_path, always_2d=True)
    total = np.zeros_like(mix)
    for name in manifest["output"]["files"]:
        raw = folder / "raw" / name
        stem, stem_rate = sf.read(raw if raw.exists() else folder / name, always_2d=True)
        if stem_rate != rate or stem.shape != mix.shape:
            return float("inf")
        total += stem
    return float(np.max(np.abs(total - mix)))


def assert_stems_null_sum(track: Path, mixture_path: Path, stems: list[str], rate: int, channels: int,
                          subtype: str) -> np.ndarray:
    """Every ``<stem>.wav`` in ``track`` has the given rate (Hz), channels, the mixture's length and
    ``subtype``, holds finite samples, and all of them sum back to the mixture within −90 dB.

    Returns the mixture as float64 ``[samples, channels]``.
    """
    mix = sf.read(mixture_path, dtype="float64", always_2d=True)[0]
    total = np.zeros_like(mix)
    for stem in stems:
        info = sf.info(track / f"{stem}.wav")
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (rate, channels, len(mix), subtype)
        data = sf.read(track / f"{stem}.wav", dtype="float64", always_2d=True)[0]
        assert np.isfinite(data).all()
        total += data
    error_db = 10 * np.log10(np.sum((total - mix) ** 2) / np.sum(mix ** 2) + 1e-300)
    assert error_db <= -90, f"stems + residual = mixture within {error_db:.1f} dB"
    return mix


# ----------------------------------------------------------------------------------------------
# hostile files
# ----------------------------------------------------------------------------------------------

def evil_pickle(dest: Path, marker: Path, legacy: bool = False) -> Path:
    """A file that unpickles by *running code*: its ``__reduce__`` writes ``marker``.

    Saved with ``torch.save`` (the zip layout of a real checkpoint, or with ``legacy`` the old
    pickle layout); a loader that uses full pickle (``weights_only=False``) creates ``marker``.
    """
    import torch

    class Payload:
        def __reduce__(self):  # noqa: D105 - the attack
            return (exec, (f"open({str(marker)!r}, 'w').write('code ran')",))

    torch.save({"state_dict": Payload(), "model": {"x": Payload()}}, dest, _use_new_zipfile_serialization=not legacy)
    return dest


# ----------------------------------------------------------------------------------------------
# downloads
# ----------------------------------------------------------------------------------------------

@contextmanager
def serve_folder(root: Path) -> Iterator[str]:
    """A real HTTP server on 127.0.0.1 serving the files of ``root`` while the block runs; yields its
    base URL (``http://127.0.0.1:PORT``)."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


def simple_index(root: Path, *wheels: Path, project: str = "musicnn") -> None:
    """Lay out a PEP 503 "simple" package index under ``root`` (served, its URL is ``BASE/simple/``):
    ``simple/PROJECT/index.html`` links to copies of ``wheels`` in ``root/files/``, each with the
    ``#sha256=`` of its bytes as real indexes give it (no wheels: a project page without files)."""
    (root / "files").mkdir(parents=True, exist_ok=True)
    links = []
    for wheel in wheels:
        shutil.copy(wheel, root / "files" / wheel.name)
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        links.append(f'<a href="../../files/{wheel.name}#sha256={digest}">{wheel.name}</a><br/>')
    page = root / "simple" / project / "index.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text("<!DOCTYPE html>\n<html><body>\n" + "\n".join(links) + "\n</body></html>\n")


def pip_env(index_url: str) -> dict[str, str]:
    """Environment for pip that asks the index at ``index_url`` alone: no configuration file (with
    ``PIP_CONFIG_FILE=os.devnull`` pip reads none, not even the global ``/etc/xdg/pip`` one with its
    constraints), no extra index, no find-links, no constraint, no cache, no prompts."""
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_INDEX_URL": index_url, "PIP_EXTRA_INDEX_URL": "",
            "PIP_FIND_LINKS": "", "PIP_CONSTRAINT": "", "PIP_NO_CACHE_DIR": "1", "PIP_NO_INPUT": "1"}


def real_musicnn_wheel(folder: Path) -> Path | None:
    """The real ``musicnn-0.1.0-py3-none-any.whl``: ``$TAGBOX_MUSICNN_WHEEL`` (a local copy) when set,
    else put into ``folder`` by ``pip download`` from the package index the set-up installs it from
    (pip's cache answers repeats); None when neither has it."""
    from tagbox_pipeline.taggers.musicnn_wheel import WHEEL

    if os.environ.get("TAGBOX_MUSICNN_WHEEL"):
        return Path(os.environ["TAGBOX_MUSICNN_WHEEL"])
    fetched = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "musicnn==0.1.0",
                              "-d", str(folder)], capture_output=True, text=True, timeout=600)
    wheel = folder / WHEEL
    return wheel if fetched.returncode == 0 and wheel.is_file() else None
