"""The long-running jobs: watch an inbox, sweep an archive. Each track runs through a given flow.

The track flow is passed in (``flows.separate_track.separate_track``), so this module knows the
pipeline's rules and nothing about how flows are declared.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from prefect import Flow, get_run_logger
from prefect.artifacts import create_table_artifact

from ..audio_io import read_info
from ..config import Settings
from ..layout import check_sweep, check_watch
from ..files import track_name
from .artifacts import RunningCounts, artifact_key
from .inbox import Intake, move_folders, watch
from .ledger import Ledger
from .runner import dask_address
from .sweep import SweepReport, sweep, up_to_date
from .track import default_folder, state_dir
from .track_runs import track_launcher

#: the track flow: ``track_flow(path, out, sources, settings, folder, dask) -> TrackOutcome dict``
TrackFlow = Flow[..., dict[str, Any]]


def ledger_for(out: Path) -> Ledger:
    """The content-hash ledger of output folder ``out`` (``OUT/.tagbox/ledger.sqlite``)."""
    return Ledger(state_dir(out) / "ledger.sqlite")


def _counts_text(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items())) or "nothing yet"


def run_watch(inbox: Path, out: Path, sources: list[str], settings: Settings, track_flow: TrackFlow,
              once: bool, dask: str | None = None, dask_workers: int = 2) -> dict[str, int]:
    """Watch ``inbox`` and separate every new file (see :func:`~.track_runs.track_launcher`); returns
    counts of outcomes, also logged and published as a table artifact as they change."""
    check_watch(inbox, out, move_folders(inbox))
    inbox, out = inbox.resolve(), out.resolve()
    logger = get_run_logger()
    counts = RunningCounts("watch", inbox.name, f"files taken from {inbox}")

    def on_outcome(outcomes: Counter[str]) -> None:
        logger.info("watch %s: %s", inbox, _counts_text(outcomes))
        counts.update(outcomes)

    with dask_address(dask, dask_workers) as address:
        launch = track_launcher(track_flow, out, sources, settings, address)

        def process(path: Path, sha256: str) -> Path:
            done = default_folder(out, track_name(path), sha256)
            if up_to_date(done, sha256, settings.digest(), sources):  # stems written, but the move was cut short
                return done
            return launch(path, done)

        intake = Intake(inbox, ledger_for(out), process, read_info, settings.digest())
        outcomes = watch(inbox, intake, settings.watch.stable_seconds, settings.watch.poll_seconds, once,
                         concurrency=settings.runs.concurrency, on_outcome=on_outcome)
    counts.close()
    return dict(outcomes)


def run_sweep(archive: Path, out: Path, sources: list[str], settings: Settings, track_flow: TrackFlow,
              dask: str | None = None, dask_workers: int = 2) -> SweepReport:
    """Sweep ``archive`` read-only into ``out``; writes ``OUT/sweep-report.json`` and a table artifact,
    and keeps a counts artifact up to date as files finish."""
    check_sweep(archive, out)
    archive, out = archive.resolve(), out.resolve()
    logger = get_run_logger()
    counts = RunningCounts("sweep-counts", archive.name, f"files of {archive} so far")

    def on_outcome(report: SweepReport) -> None:
        tally = {"processed": len(report.processed), "skipped": len(report.skipped), "failed": len(report.failed)}
        logger.info("sweep %s: %s", archive, _counts_text(tally))
        counts.update(tally)

    with dask_address(dask, dask_workers) as address:
        launch = track_launcher(track_flow, out, sources, settings, address)
        report = sweep(archive, out, settings.digest(), sources, track_name, launch, settings.runs.concurrency, on_outcome)
    counts.close()
    path = report.write(out)
    rows = report.rows() or [{"status": "none", "path": "", "detail": "no audio files found"}]
    create_table_artifact(rows, key=artifact_key("sweep", archive.name),
                          description=f"sweep of {archive}: {len(report.processed)} processed, "
                                      f"{len(report.skipped)} skipped, {len(report.failed)} failed ({path})")
    return report
