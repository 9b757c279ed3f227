"""A content-hash ledger (SQLite, WAL) under OUT: every input's sha256 is processed exactly once.

One row per sha256 holds the status (``processing``, ``done``, ``failed``), the input's name and
where it went, the stem folder, the settings digest, the time (s since the epoch) and the error.
Because rows are keyed by content, a file dropped again or renamed is recognised as done.
A ``processing`` row left by a process that died (same host, pid gone) may be claimed again.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from ..errors import UserError

Status = Literal["processing", "done", "failed"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inputs (
    sha256 TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('processing', 'done', 'failed')),
    name TEXT NOT NULL,
    input_path TEXT,
    stems_path TEXT,
    settings_digest TEXT,
    owner TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    updated REAL NOT NULL,
    error TEXT
)
"""


@dataclass(frozen=True)
class Entry:
    """One ledger row."""

    sha256: str
    status: Status
    name: str
    input_path: str | None
    stems_path: str | None
    settings_digest: str | None
    owner: str | None
    attempts: int
    updated: float
    error: str | None


def current_owner() -> str:
    """``host:pid`` of this process, recorded with work it holds."""
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """False when ``owner`` (``host:pid``) is a process of this host that no longer exists."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine: assume alive
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class Ledger:
    """The SQLite ledger at ``path`` (created with its folder on first use).

    Every method opens its own short connection, so one ledger may be used from several threads
    and processes; writes take SQLite's write lock (``BEGIN IMMEDIATE``).
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as db:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise UserError(f"cannot open the ledger ({exc}); is the output folder writable?", self.path) from None

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def get(self, sha256: str) -> Entry | None:
        """The row for ``sha256``, or None."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM inputs WHERE sha256 = ?", (sha256,)).fetchone()
        return Entry(**dict(row)) if row is not None else None

    def claim(self, sha256: str, name: str, input_path: Path, settings_digest: str) -> bool:
        """Mark ``sha256`` as being processed by this process; False when it is done or in hand.

        A row that is ``failed`` or ``processing`` by a dead process is claimed again.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            row = db.execute("SELECT status, owner FROM inputs WHERE sha256 = ?", (sha256,)).fetchone()
            if row is not None and (
                row["status"] == "done" or (row["status"] == "processing" and owner_alive(row["owner"]))
            ):
                db.execute("ROLLBACK")
                return False
            db.execute(
                """INSERT INTO inputs (sha256, status, name, input_path, settings_digest, owner, attempts, updated)
                   VALUES (?, 'processing', ?, ?, ?, ?, 1, ?)
                   ON CONFLICT (sha256) DO UPDATE SET status = 'processing', name = excluded.name,
                       input_path = excluded.input_path, settings_digest = excluded.settings_digest,
                       owner = excluded.owner, attempts = attempts + 1, updated = excluded.updated,
                       error = NULL""",
                (sha256, name, str(input_path), settings_digest, current_owner(), time.time()),
            )
            db.execute("COMMIT")
            return True

    def finish(self, sha256: str, status: Status, input_path: Path | None, stems_path: Path | None = None,
               error: str | None = None) -> None:
        """Record the outcome of a claimed input: where it went, its stems and any error."""
        with self._connect() as db:
            db.execute(
                """UPDATE inputs SET status = ?, input_path = ?, stems_path = ?, error = ?, owner = NULL,
                   updated = ? WHERE sha256 = ?""",
                (status, None if input_path is None else str(input_path),
                 None if stems_path is None else str(stems_path), error, time.time(), sha256),
            )

    def entries(self) -> list[Entry]:
        """All rows, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT * FROM inputs ORDER BY updated").fetchall()
        return [Entry(**dict(row)) for row in rows]
