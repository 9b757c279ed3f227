"""The watch folder: a watchdog observer, a stability check, and exactly-once intake via the ledger.

A file is *taken* once its size and mtime have held still for ``stable_seconds`` and it decodes.
Taking it means: hash it, claim its sha256 in the ledger (content already done → moved to
``processed/`` as a duplicate, nothing recomputed), run the processing callable, then move it to
``INBOX/processed/``; on any failure it goes to ``INBOX/failed/`` beside ``<name>.error.txt``.
Moves never overwrite (``name (1).wav``...). One file's failure never stops the watcher. Up to
``concurrency`` files are taken at the same time, each in a thread of its own.
"""

from __future__ import annotations

import contextvars
import logging
import os
import queue
import signal
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

from ..files import move_no_overwrite, sha256_file, write_text_atomic
from .ledger import Ledger

log = logging.getLogger(__name__)

PROCESSED_DIR = "processed"
FAILED_DIR = "failed"
#: name endings of files still being written by browsers, editors and copy tools
TEMP_SUFFIXES = (".part", ".partial", ".tmp", ".temp", ".crdownload", ".download", ".swp", ".lock")
#: names of OS metadata files
SYSTEM_NAMES = frozenset({".DS_Store", "Thumbs.db", "desktop.ini"})

Outcome = Literal["processed", "duplicate", "failed", "gone", "interrupted"]


class TakeLater(Exception):
    """Raised by the processing callable when the file is not at fault (its run was interrupted):
    the file stays in the inbox and is taken again on the next start."""


def move_folders(inbox: Path) -> list[Path]:
    """Where taken files go: ``INBOX/processed`` and ``INBOX/failed``."""
    return [inbox / PROCESSED_DIR, inbox / FAILED_DIR]


def is_ignored(name: str) -> bool:
    """True for hidden files (dotfiles), Office lock files (``~$``), temp downloads and OS metadata."""
    return (name in SYSTEM_NAMES or name.startswith((".", "~$")) or name.lower().endswith(TEMP_SUFFIXES))


@dataclass
class _Seen:
    size: int
    mtime_ns: int
    since: float


@dataclass
class StabilityTracker:
    """Remembers each pending file's size and mtime and since when (monotonic s) they held still."""

    stable_seconds: float
    pending: dict[Path, _Seen] = field(default_factory=dict)

    def add(self, path: Path) -> None:
        """Start (or keep) tracking ``path``."""
        self.pending.setdefault(path, _Seen(-1, -1, time.monotonic()))

    def ready(self) -> list[Path]:
        """Files whose size and mtime have not changed for ``stable_seconds``; they leave the tracker.

        Files that disappeared are dropped.
        """
        now, out = time.monotonic(), []
        for path, seen in list(self.pending.items()):
            try:
                stat = path.lstat()
            except FileNotFoundError:
                del self.pending[path]
                continue
            if (stat.st_size, stat.st_mtime_ns) != (seen.size, seen.mtime_ns):
                self.pending[path] = _Seen(stat.st_size, stat.st_mtime_ns, now)
            elif now - seen.since >= self.stable_seconds:
                del self.pending[path]
                out.append(path)
        return sorted(out)


class _Events(FileSystemEventHandler):
    """Forwards the paths of created, modified and moved-in files to a queue."""

    def __init__(self, sink: queue.Queue[Path]) -> None:
        self.sink = sink

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory or event.event_type not in {"created", "modified", "moved", "closed"}:
            return
        target = getattr(event, "dest_path", "") or event.src_path
        self.sink.put(Path(os.fsdecode(target)))


def candidates(inbox: Path) -> list[Path]:
    """Files directly in ``inbox`` that are not ignored (directories and our sub-folders skipped)."""
    return sorted(p for p in inbox.iterdir() if not is_ignored(p.name) and (p.is_symlink() or p.is_file()))


@contextmanager
def observe(inbox: Path) -> Iterator[queue.Queue[Path]]:
    """Run a watchdog observer on ``inbox`` (not recursive) and yield the queue of touched paths."""
    events: queue.Queue[Path] = queue.Queue()
    observer = Observer()
    observer.schedule(_Events(events), str(inbox), recursive=False)
    observer.start()
    try:
        yield events
    finally:
        observer.stop()
        observer.join()


def error_report(path: Path, exc: BaseException) -> str:
    """The text of ``<name>.error.txt``: file, cause, UTC time and a short traceback summary."""
    frames = traceback.extract_tb(exc.__traceback__)[-6:]
    summary = "".join(traceback.format_list(frames))
    return (f"file: {path.name}\ncause: {exc}\nerror: {type(exc).__name__}\n"
            f"time: {datetime.now(timezone.utc).isoformat(timespec='seconds')}\n\ntraceback (last frames):\n{summary}")


@dataclass
class Intake:
    """Takes stable files from one inbox: ledger claim, processing, and the final move.

    Args:
        inbox: the watched folder.
        ledger: the content-hash ledger (under OUT).
        process: ``process(path, sha256) -> stem folder``; raises on failure.
        probe: raises when ``path`` does not decode as audio (e.g. ``AudioReadError``).
        settings_digest: recorded in the ledger with each input.
    """

    inbox: Path
    ledger: Ledger
    process: Callable[[Path, str], Path]
    probe: Callable[[Path], object]
    settings_digest: str

    def quarantine(self, path: Path, exc: BaseException) -> Path:
        """Move ``path`` to ``failed/`` and write ``<moved name>.error.txt`` beside it."""
        moved = move_no_overwrite(path, self.inbox / FAILED_DIR)
        write_text_atomic(moved.with_name(moved.name + ".error.txt"), error_report(path, exc))
        log.warning("quarantined %s: %s", path.name, exc)
        return moved

    def take(self, path: Path) -> Outcome:
        """Process one stable file and move it; never raises for a problem with the file."""
        if not path.exists() and not path.is_symlink():
            log.warning("%s vanished before it was processed", path.name)
            return "gone"
        sha = None
        try:
            if path.is_symlink():
                raise ValueError("symbolic links are not taken from the inbox (move the file itself in)")
            self.probe(path)
            sha = sha256_file(path)
            if not self.ledger.claim(sha, path.name, path, self.settings_digest):
                entry = self.ledger.get(sha)
                moved = move_no_overwrite(path, self.inbox / PROCESSED_DIR)
                log.info("%s: same content as %s, already %s; moved to %s", path.name,
                         entry.name if entry else "?", entry.status if entry else "?", moved)
                return "duplicate"
            stems = self.process(path, sha)
            moved = move_no_overwrite(path, self.inbox / PROCESSED_DIR)
            self.ledger.finish(sha, "done", moved, stems)
            log.info("%s: stems in %s", path.name, stems)
            return "processed"
        except TakeLater as exc:
            if sha is not None:
                self.ledger.finish(sha, "failed", path, error=f"interrupted: {exc}")
            log.warning("%s: interrupted, left in the inbox for the next start (%s)", path.name, exc)
            return "interrupted"
        except FileNotFoundError as exc:
            if not path.exists() and not path.is_symlink():
                if sha is not None:
                    self.ledger.finish(sha, "failed", None, error=f"input vanished: {exc}")
                log.warning("%s vanished before it was processed", path.name)
                return "gone"
            return self._fail(path, sha, exc)
        except Exception as exc:  # noqa: BLE001 - any failure of one file quarantines it, the watcher goes on
            return self._fail(path, sha, exc)

    def _fail(self, path: Path, sha: str | None, exc: BaseException) -> Outcome:
        try:
            moved = self.quarantine(path, exc)
        except OSError as move_error:
            log.error("could not quarantine %s: %s", path, move_error)
            moved = None
        if sha is not None:
            self.ledger.finish(sha, "failed", moved, error=str(exc))
        return "failed"


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While inside: the first Ctrl-C (SIGINT) sets ``stop`` (the file in progress finishes and is
    recorded, then the watcher ends); a second one aborts at once (KeyboardInterrupt).

    A signal handler, rather than a KeyboardInterrupt raised wherever the main thread happens to be,
    because an interrupt landing inside the Prefect engine or a library can be swallowed there.
    SIGTERM is left to Prefect (an orchestrator's cancel: the run stops at once and is resumed
    later without redoing finished chunks). Only the main thread can install handlers; elsewhere
    this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("Ctrl-C: stopping after the file in progress (press it again to abort)")
        stop.set()

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def watch(inbox: Path, intake: Intake, stable_seconds: float, poll_seconds: float, once: bool,
          stop: threading.Event | None = None, concurrency: int = 1,
          on_outcome: Callable[[Counter[str]], None] | None = None) -> Counter[str]:
    """Watch ``inbox`` and take every stable file; returns the count of each outcome.

    Files already present are caught up first. Up to ``concurrency`` files are taken at once (each
    in a daemon thread running in a copy of this thread's context, so Prefect sees the watcher's
    run); ``on_outcome`` gets the counts after each file. With ``once`` the loop ends as soon as
    nothing is pending or in hand (every file seen was processed, found duplicate or quarantined);
    otherwise it runs until ``stop`` is set, or until Ctrl-C (see :func:`stop_on_signals`): files
    in hand finish, files not yet taken stay in the inbox.
    """
    inbox.mkdir(parents=True, exist_ok=True)
    inbox = inbox.resolve()
    tracker, outcomes = StabilityTracker(stable_seconds), Counter[str]()
    stop = stop or threading.Event()
    ready: list[Path] = []
    finished: queue.Queue[Outcome] = queue.Queue()
    in_hand = 0

    def take(path: Path) -> None:
        finished.put(intake.take(path))

    with stop_on_signals(stop), observe(inbox) as events:
        for path in candidates(inbox):
            tracker.add(path)
        log.info("watching %s (%d file(s) already there)", inbox, len(tracker.pending))
        while True:
            while not finished.empty():
                outcomes[finished.get_nowait()] += 1
                in_hand -= 1
                if on_outcome is not None:
                    on_outcome(outcomes)
            if stop.is_set():
                if not in_hand:
                    break
                time.sleep(poll_seconds)  # Ctrl-C: the files in hand finish first
                continue
            while not events.empty():
                path = events.get_nowait()
                if path.parent == inbox and not is_ignored(path.name) and not path.is_dir():
                    tracker.add(path)
            ready += [path for path in tracker.ready() if path not in ready]
            while ready and in_hand < concurrency:
                in_hand += 1
                threading.Thread(target=contextvars.copy_context().run, args=(take, ready.pop(0)),
                                 name="tagbox-take", daemon=True).start()
            if once and not tracker.pending and not ready and not in_hand and events.empty():
                break
            stop.wait(poll_seconds)
    return outcomes
