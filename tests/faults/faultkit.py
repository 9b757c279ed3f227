"""The fault harness: makes each bad input for real and checks what the real CLI left behind
(running the CLI and cutting bench-dev excerpts is :mod:`support`'s job, shared with the other tests).

Everything here works on real files: bytes cut out of real FLAC/WAV files, a real PNG, real symlinks and directories. The
checkers read the outputs back from disk (stem folders, manifests, the inbox's ``processed/`` and
``failed/`` folders) rather than trusting what the CLI says.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import struct
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil
import soundfile as sf

from support import excerpt, mixture

#: sources every fault run asks for
SOURCES = "piano,drums"


# ----------------------------------------------------------------------------------------------
# inputs
# ----------------------------------------------------------------------------------------------

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


# ----------------------------------------------------------------------------------------------
# file-system snapshots and checks
# ----------------------------------------------------------------------------------------------

def sha256_file(path: Path) -> str:
    """sha256 (hex) of a file's bytes (hashed here, not by the code under test)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


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
# watching a running CLI
# ----------------------------------------------------------------------------------------------

def process_tree(pid: int) -> list[psutil.Process]:
    """The process ``pid`` and all its descendants (those still alive)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def anon_huge_pages(pid: int) -> int:
    """Bytes of process ``pid``'s anonymous memory in transparent huge pages (0 where unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("AnonHugePages:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def transparent_huge_pages() -> str:
    """The kernel's transparent huge page mode (the bracketed word of its setting), or "unknown"."""
    try:
        text = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return "unknown"
    return text[text.find("[") + 1:text.find("]")] if "[" in text else text.strip()


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
    """Samples a process tree every ``period`` s in a thread: peak RSS (bytes) and listening sockets,
    and, to explain a peak, the most processes seen in the tree at once and the most of its RSS held
    in transparent huge pages (``AnonHugePages``, bytes)."""

    pid: int
    period: float = 0.2
    peak_rss: int = 0
    rss: list[tuple[float, int]] = field(default_factory=list)
    most_processes: int = 0
    peak_huge_pages: int = 0
    sockets: set[tuple[str, int, str]] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def _run(self) -> None:
        started = time.monotonic()
        while not self._stop.is_set():
            total, huge, tree = 0, 0, process_tree(self.pid)
            for proc in tree:
                try:
                    total += proc.memory_info().rss
                    huge += anon_huge_pages(proc.pid)
                except psutil.NoSuchProcess:
                    continue
            self.most_processes = max(self.most_processes, len(tree))
            self.peak_huge_pages = max(self.peak_huge_pages, huge)
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


def copy_in(src: Path, inbox: Path, name: str | None = None) -> Path:
    """Copy ``src`` into ``inbox`` (as ``name``) through a hidden temp name and a rename: it appears whole."""
    dest = inbox / (name or src.name)
    temp = inbox / f".incoming-{os.getpid()}-{dest.name}"
    shutil.copyfile(src, temp)
    os.replace(temp, dest)
    return dest
