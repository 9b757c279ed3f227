"""The long-running jobs: watch an inbox, sweep an archive. Each track runs through a given flow.

The track flow is passed in (``flows.separate_track.separate_track``), so this module knows the
pipeline's rules and nothing about how flows are declared.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prefect import Flow
from prefect.artifacts import create_table_artifact

from ..audio_io import read_info
from ..config import Settings
from ..layout import check_sweep, check_watch
from ..files import track_name
from .artifacts import artifact_key
from .inbox import Intake, move_folders, watch
from .ledger import Ledger
from .runner import dask_address, task_runner
from .sweep import SweepReport, sweep, up_to_date
from .track import default_folder, state_dir

#: the track flow: ``track_flow(path, out, sources, settings, folder) -> TrackOutcome dict``
TrackFlow = Flow[..., dict[str, Any]]


def ledger_for(out: Path) -> Ledger:
    """The content-hash ledger of output folder ``out`` (``OUT/.tagbox/ledger.sqlite``)."""
    return Ledger(state_dir(out) / "ledger.sqlite")


def run_watch(inbox: Path, out: Path, sources: list[str], settings: Settings, track_flow: TrackFlow,
              once: bool, dask: str | None = None, dask_workers: int = 2) -> dict[str, int]:
    """Watch ``inbox`` and run ``track_flow`` on every new file; returns counts of outcomes."""
    check_watch(inbox, out, move_folders(inbox))
    inbox, out = inbox.resolve(), out.resolve()
    with dask_address(dask, dask_workers) as address:
        flow = track_flow.with_options(task_runner=task_runner(address))

        def process(path: Path, sha256: str) -> Path:
            done = default_folder(out, track_name(path), sha256)
            if up_to_date(done, sha256, settings.digest()):  # stems written, but the move was cut short
                return done
            return Path(flow(str(path), str(out), sources, settings)["folder"])

        intake = Intake(inbox, ledger_for(out), process, read_info, settings.digest())
        counts: Counter[str] = watch(inbox, intake, settings.watch.stable_seconds, settings.watch.poll_seconds, once)
    return dict(counts)


def run_sweep(archive: Path, out: Path, sources: list[str], settings: Settings, track_flow: TrackFlow,
              dask: str | None = None, dask_workers: int = 2) -> SweepReport:
    """Sweep ``archive`` read-only into ``out``; writes ``OUT/sweep-report.json`` and a table artifact."""
    check_sweep(archive, out)
    archive, out = archive.resolve(), out.resolve()
    with dask_address(dask, dask_workers) as address:
        flow = track_flow.with_options(task_runner=task_runner(address))

        def process(path: Path, folder: Path) -> Path:
            return Path(flow(str(path), str(out), sources, settings, str(folder))["folder"])

        report = sweep(archive, out, settings.digest(), track_name, process)
    path = report.write(out)
    rows = report.rows() or [{"status": "none", "path": "", "detail": "no audio files found"}]
    create_table_artifact(rows, key=artifact_key("sweep", archive.name),
                          description=f"sweep of {archive}: {len(report.processed)} processed, "
                                      f"{len(report.skipped)} skipped, {len(report.failed)} failed ({path})")
    return report
