"""The fault harness: makes each bad input for real, runs the real CLI, and checks what it left behind.

Everything here works on real files: excerpts of the bench-dev mixtures (cut short so runs stay
fast), bytes cut out of real FLAC/WAV files, a real PNG, real symlinks and directories. The
checkers read the outputs back from disk (stem folders, manifests, the inbox's ``processed/`` and
``failed/`` folders) rather than trusting what the CLI says.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

REPO = Path(__file__).resolve().parents[2]
#: the console script of the venv running the tests (``.venv/bin/tagbox`` under `make test`)
TAGBOX = Path(sys.executable).with_name("tagbox")
#: sources every fault run asks for
SOURCES = "piano,drums"
#: steering settings of the fault runs: one step, 3 s windows, a small NMF; files taken after 1 s
FAST_TOML = """
steps = 1
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
"""


# ----------------------------------------------------------------------------------------------
# inputs
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


def empty_file(dest: Path) -> Path:
    """A 0-byte file."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(b"")
    return dest


def truncated_flac(shared: Path, dest: Path, keep: float = 0.6) -> Path:
    """A real bench-dev FLAC cut after ``keep`` of its bytes (valid header, frames missing)."""
    data = mixture(shared, "d04").read_bytes()
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_bytes(data[: int(len(data) * keep)])
    return dest


def truncated_wav_header(source_wav: Path, dest: Path, keep: int = 30) -> Path:
    """The first ``keep`` bytes of a real WAV: RIFF/WAVE and part of the fmt chunk, no data chunk."""
    dest.write_bytes(source_wav.read_bytes()[:keep])
    return dest


def text_file(dest: Path) -> Path:
    """A text file (named by the caller, e.g. ``notes.wav``)."""
    dest.write_text("Session notes: bounce the chorus again, the bass is too loud.\n" * 20, encoding="utf-8")
    return dest


def png_file(dest: Path, width: int = 16, height: int = 8) -> Path:
    """A real, valid PNG image (a small gradient) written with zlib + struct."""
    rows = b"".join(b"\x00" + bytes((x * 16 + y) % 256 for x in range(width) for _ in range(3))
                    for y in range(height))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    dest.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
                     + chunk(b"IEND", b""))
    return dest


def silence(dest: Path, seconds: float = 600.0, rate: int = 16000) -> Path:
    """``seconds`` of digital silence (all-zero 16-bit mono samples), written block by block."""
    block = np.zeros(rate * 10, dtype=np.int16)
    dest.parent.mkdir(parents=True, exist_ok=True)
    with sf.SoundFile(dest, "w", rate, 1, "PCM_16") as handle:
        for _ in range(int(seconds // 10)):
            handle.write(block)
    return dest


def nan_inf_wav(shared: Path, dest: Path) -> Path:
    """A 32-bit float WAV of real music with one NaN and one +Inf sample in it."""
    excerpt(shared, "d05", dest, seconds=2.0, subtype="FLOAT")
    audio, rate = sf.read(dest, dtype="float32", always_2d=True)
    audio[rate // 2, 0] = np.nan
    audio[rate, 1] = np.inf
    sf.write(dest, audio, rate, subtype="FLOAT")
    return dest


def write_in_pieces(source: Path, dest: Path, seconds: float, pieces: int) -> threading.Thread:
    """Start a thread that copies ``source`` to ``dest`` in ``pieces`` writes spread over ``seconds``."""
    data = source.read_bytes()
    step = -(-len(data) // pieces)

    def copy() -> None:
        with open(dest, "wb") as handle:
            for i in range(0, len(data), step):
                handle.write(data[i: i + step])
                handle.flush()
                time.sleep(seconds / pieces)

    thread = threading.Thread(target=copy, daemon=True)
    thread.start()
    return thread


def evil_pickle(dest: Path, marker: Path) -> Path:
    """A file that unpickles by *running code*: its ``__reduce__`` writes ``marker``.

    Saved with ``torch.save`` so it has the zip layout of a real checkpoint; a loader that uses
    full pickle (``weights_only=False``) creates ``marker``.
    """
    import torch

    class Payload:
        def __reduce__(self):  # noqa: D105 - the attack
            return (exec, (f"open({str(marker)!r}, 'w').write('code ran')",))

    torch.save({"state_dict": Payload(), "model": Payload()}, dest)
    return dest


# ----------------------------------------------------------------------------------------------
# file-system snapshots and checks
# ----------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def snapshot(root: Path, skip: tuple[Path, ...] = ()) -> dict[str, tuple[str, str]]:
    """Every entry under ``root`` (symlinks not followed): relative path → (kind, sha256 / link target)."""
    entries: dict[str, tuple[str, str]] = {}
    skipped = tuple(s.resolve() for s in skip)
    for folder, dirs, files in os.walk(root, followlinks=False):
        here = Path(folder)
        dirs[:] = [d for d in dirs if (here / d).resolve() not in skipped or (here / d).is_symlink()]
        for name in [*dirs, *files]:
            path = here / name
            rel = str(path.relative_to(root))
            if path.is_symlink():
                entries[rel] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[rel] = ("dir", "")
            else:
                entries[rel] = ("file", sha256_file(path))
    return entries


def changes(before: dict[str, tuple[str, str]], after: dict[str, tuple[str, str]]) -> set[str]:
    """Relative paths created, deleted or changed between two snapshots."""
    return {p for p in before.keys() | after.keys() if before.get(p) != after.get(p)}


def partial_outputs(out: Path) -> list[str]:
    """Everything under ``out`` that is not a complete, published result.

    Flags temp names (``.tmp``, ``.part``, ``.old-``), hidden folders other than the pipeline's
    ``.tagbox`` state folder, leftover staging folders, and stem folders whose ``manifest.json``
    is missing or lists a file that is absent or does not decode. Returns the problems found.
    """
    problems: list[str] = []
    if not out.exists():
        return problems
    for path in out.rglob("*"):
        rel = path.relative_to(out)
        if rel.parts[0] == ".tagbox":
            if len(rel.parts) >= 3 and rel.parts[1] == "staging":
                problems.append(f"leftover staging entry {rel}")
            continue
        if re.search(r"\.tmp|\.part$|\.old-", path.name) or (path.name.startswith(".") and path.name != ".tagbox"):
            problems.append(f"temp or hidden entry {rel}")
    for manifest_dir in {p.parent for p in out.rglob("*.wav") if ".tagbox" not in p.relative_to(out).parts}:
        problems += [f"{manifest_dir.relative_to(out)}: {p}" for p in stem_folder_problems(manifest_dir)]
    return problems


def stem_folder_problems(folder: Path) -> list[str]:
    """Problems of one stem folder: missing manifest, listed files missing or undecodable, lengths differing."""
    if folder.name == "raw":  # unprocessed stems of a post chain, checked with their folder
        return []
    manifest_path = folder / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return [f"no readable manifest.json ({exc})"]
    problems = []
    frames = manifest.get("input", {}).get("frames")
    for name in manifest.get("output", {}).get("files", []):
        try:
            info = sf.info(folder / name)
        except (OSError, RuntimeError, sf.LibsndfileError) as exc:
            problems.append(f"{name}: {exc}")
            continue
        if frames is not None and info.frames != frames:
            problems.append(f"{name}: {info.frames} frames, input has {frames}")
    return problems


def null_sum_error(folder: Path, mixture_path: Path) -> float:
    """Largest |sum of unprocessed stems + residual − mixture| over all samples (0 when exact)."""
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


def ledger_rows(out: Path) -> list[dict]:
    """Rows of the watch ledger ``OUT/.tagbox/ledger.sqlite`` (read-only connection)."""
    import sqlite3

    db = sqlite3.connect(f"file:{out / '.tagbox' / 'ledger.sqlite'}?mode=ro", uri=True)
    db.row_factory = sqlite3.Row
    try:
        return [dict(row) for row in db.execute("SELECT * FROM inputs")]
    finally:
        db.close()


# ----------------------------------------------------------------------------------------------
# running the CLI
# ----------------------------------------------------------------------------------------------

def cli_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    """Environment of a CLI subprocess: its own PREFECT_HOME; the given Prefect API, else an ephemeral server."""
    env = os.environ | {"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                        "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("PREFECT_API_URL", None)
    if api_url is not None:
        env["PREFECT_API_URL"] = api_url
    return env


def run_cli(args: list[str], home: Path, api_url: str | None = None, timeout: float = 300,
            preexec_fn: Callable[[], None] | None = None) -> subprocess.CompletedProcess:
    """Run ``tagbox ARGS`` to completion in a subprocess (cwd: the repository)."""
    return subprocess.run([str(TAGBOX), *args], cwd=REPO, env=cli_env(home, api_url), capture_output=True,
                          text=True, timeout=timeout, preexec_fn=preexec_fn)


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


def process_tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and all its descendants (those still alive)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def listening(pid: int) -> set[tuple[str, int, str]]:
    """(address, port, process name) of every listening TCP socket of ``pid``'s process tree."""
    found = set()
    for proc in process_tree(pid):
        try:
            for conn in proc.net_connections("inet"):
                if conn.status == psutil.CONN_LISTEN:
                    found.add((conn.laddr.ip, conn.laddr.port, proc.name()))
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


def is_loopback(address: str) -> bool:
    """True for 127.0.0.0/8 and ::1 (and IPv4-mapped loopback)."""
    import ipaddress

    ip = ipaddress.ip_address(address.split("%")[0])
    return ip.is_loopback or (ip.version == 6 and ip.ipv4_mapped is not None and ip.ipv4_mapped.is_loopback)


@dataclass
class Sampler:
    """Samples a process tree every ``period`` s in a thread: peak RSS (bytes) and listening sockets."""

    pid: int
    period: float = 0.2
    peak_rss: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    sockets: set[tuple[str, int, str]] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            total = 0
            for proc in process_tree(self.pid):
                try:
                    total += proc.memory_info().rss
                except psutil.NoSuchProcess:
                    continue
            if total:
                self.rss.append((time.monotonic() - started, total))
                self.peak_rss = max(self.peak_rss, total)
            self.sockets |= listening(self.pid)
            self._stop.wait(self.period)

    @contextmanager
    def running(self) -> Iterator[Sampler]:
        """Sample while the ``with`` block runs."""
        thread = threading.Thread(target=self._run, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            thread.join(10)


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def write_toml(path: Path, text: str = FAST_TOML) -> Path:
    """Write a settings file for the runs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def copy_in(src: Path, inbox: Path, name: str | None = None) -> Path:
    """Copy ``src`` into ``inbox`` (as ``name``) through a hidden temp name and a rename: it appears whole."""
    dest = inbox / (name or src.name)
    temp = inbox / f".incoming-{os.getpid()}-{dest.name}"
    shutil.copyfile(src, temp)
    os.replace(temp, dest)
    return dest
