"""The archive sweep: a read-only recursive walk, mirrored output folders and an up-to-date check.

The archive is only ever read, and OUT lies outside it (checked before the walk, see
:mod:`tagbox_pipeline.layout`). Each audio file ``ARCHIVE/a/b/take.flac`` gets its stems in
``OUT/a/b/<track folder>/`` (or ``<track folder> (n)`` when that name is taken by anything but
its own stems); it is skipped when that folder's ``manifest.json`` records the same input sha256,
settings digest and requested sources. A stem folder that would resolve into the archive (a symbolic link under
OUT) is refused for that file. Results go to ``OUT/sweep-report.json`` (written atomically).
"""

from __future__ import annotations

import contextvars
import json
import os
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..files import sha256_file, write_json_atomic
from ..layout import LayoutError, real, within
from ..stem_folders import folder_for_input
from ..track_plan import AUTO
from .inbox import is_ignored

REPORT_NAME = "sweep-report.json"
#: file name endings the sweep treats as audio (what libsndfile decodes)
AUDIO_SUFFIXES = frozenset({".wav", ".wave", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".aifc",
                            ".w64", ".rf64", ".caf"})


def walk(archive: Path) -> Iterator[Path]:
    """Audio files under ``archive`` in sorted order; hidden/temp names and symlinks skipped."""
    for folder, dirs, files in os.walk(archive, followlinks=False):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not is_ignored(d))
        for name in sorted(files):
            path = here / name
            if not is_ignored(name) and path.suffix.lower() in AUDIO_SUFFIXES and not path.is_symlink():
                yield path


def track_folder(out: Path, archive: Path, path: Path, track_name: Callable[[Path], str]) -> Path:
    """Where the stems of archive file ``path`` belong: OUT / (its folder relative to ARCHIVE) / track name."""
    return out / path.parent.relative_to(archive) / track_name(path)





def up_to_date(folder: Path, sha256: str, settings_digest: str, sources: list[str]) -> bool:
    """True when ``folder/manifest.json`` records this input sha256, settings digest and requested sources."""
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return (manifest_input_sha256(manifest) == sha256 and manifest_settings_digest(manifest) == settings_digest
            and manifest_request(manifest) == sorted(sources))


def manifest_request(manifest: dict) -> list[str]:
    """The sources a manifest's stems were asked for, sorted (``["auto"]`` when they were detected)."""
    return [AUTO] if manifest.get("detected") else sorted(manifest.get("sources") or [])


def manifest_input_sha256(manifest: dict) -> str | None:
    """The input's sha256 recorded in an engine manifest."""
    entry = manifest.get("input")
    return entry.get("sha256") if isinstance(entry, dict) else manifest.get("input_sha256")


def manifest_settings_digest(manifest: dict) -> str | None:
    """The settings digest recorded in a manifest (by the pipeline, or the engine)."""
    return manifest.get("settings_digest") or (manifest.get("pipeline") or {}).get("settings_digest")


@dataclass
class SweepReport:
    """What a sweep did: processed, skipped (up to date) and failed files, with causes."""

    archive: str
    out: str
    settings_digest: str
    started: float = field(default_factory=time.time)
    finished: float | None = None
    processed: list[dict] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)

    def rows(self) -> list[dict]:
        """One row per file (status, path, detail) for a table artifact."""
        return ([{"status": "processed", "path": r["path"], "detail": r["stems"]} for r in self.processed]
                + [{"status": "skipped", "path": r["path"], "detail": r["reason"]} for r in self.skipped]
                + [{"status": "failed", "path": r["path"], "detail": r["cause"]} for r in self.failed])

    def write(self, out: Path) -> Path:
        """Write the report to ``out/sweep-report.json`` atomically and return its path."""
        payload = asdict(self) | {"counts": {"processed": len(self.processed), "skipped": len(self.skipped),
                                             "failed": len(self.failed)}}
        write_json_atomic(out / REPORT_NAME, payload)
        return out / REPORT_NAME


def sweep(archive: Path, out: Path, settings_digest: str, sources: list[str], track_name: Callable[[Path], str],
          process: Callable[[Path, Path], Path], concurrency: int = 1,
          on_outcome: Callable[[SweepReport], None] | None = None) -> SweepReport:
    """Walk ``archive`` and call ``process(path, stem folder)`` for every file not up to date (same
    input, settings and requested ``sources``), up to ``concurrency`` files at once (threads running
    in copies of this thread's context).

    A failure of one file is recorded with its cause and the sweep goes on; ``on_outcome`` gets the
    report after each file. The report's lists are in the walk's order.
    """
    report = SweepReport(str(archive), str(out), settings_digest)
    claimed: dict[Path, str] = {}
    work: list[tuple[str, Path, Path]] = []
    for path in walk(archive):
        rel = str(path.relative_to(archive))
        folder = track_folder(out, archive, path, track_name)
        if folder in claimed:
            report.failed.append({"path": rel, "cause": f"its stem folder {folder} is already that of "
                                                        f"{claimed[folder]}; rename one of the two"})
            continue
        claimed[folder] = rel
        try:
            if within(folder.parent, archive):
                raise LayoutError(f"its stem folder {folder} resolves to {real(folder)}, inside the archive "
                                  f"{archive} (a symbolic link under the output folder); the archive is only read")
            folder = folder_for_input(folder.parent, folder.name, path.absolute())
            if up_to_date(folder, sha256_file(path), settings_digest, sources):
                report.skipped.append({"path": rel, "reason": "stems up to date", "stems": str(folder)})
                continue
            work.append((rel, path, folder))
        except Exception as exc:  # noqa: BLE001 - one bad file is reported, the sweep goes on
            report.failed.append({"path": rel, "cause": f"{type(exc).__name__}: {exc}"})

    def separate(rel: str, path: Path, folder: Path) -> None:
        started = time.monotonic()
        try:
            stems = process(path, folder)
            report.processed.append({"path": rel, "stems": str(stems), "seconds": round(time.monotonic() - started, 2)})
        except Exception as exc:  # noqa: BLE001 - one bad file is reported, the sweep goes on
            report.failed.append({"path": rel, "cause": f"{type(exc).__name__}: {exc}"})

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="tagbox-sweep") as pool:
        for future in as_completed([pool.submit(contextvars.copy_context().run, separate, *item) for item in work]):
            future.result()
            if on_outcome is not None:
                on_outcome(report)
    order = {rel: i for i, (rel, _, _) in enumerate(work)}
    report.processed.sort(key=lambda row: order.get(row["path"], -1))
    report.failed.sort(key=lambda row: order.get(row["path"], -1))
    report.finished = time.time()
    return report
