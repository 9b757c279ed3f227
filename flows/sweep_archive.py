"""The ``sweep-archive`` flow: separate every file of an archive not yet up to date (read-only)."""

from __future__ import annotations

from dataclasses import asdict
from datetime import date
from pathlib import Path
from typing import Any

from prefect import flow

from flows.separate_track import separate_track
from tagbox_pipeline.settings_check import load_checked_settings
from tagbox_pipeline.pipeline.logs import log_to_stderr
from tagbox_pipeline.pipeline.jobs import run_sweep


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"sweep-{Path(flow_run.parameters['archive']).name}-{date.today().isoformat()}"


@flow(name="sweep-archive", flow_run_name=_run_name)
def sweep_archive(archive: str, out: str, sources: list[str], config: str | None = None,
                  overrides: dict[str, Any] | None = None, dask: str | None = None,
                  dask_workers: int = 2) -> dict[str, Any]:
    """Sweep ``archive`` into ``out``; returns the report (also in ``OUT/sweep-report.json``).

    Each file is separated by a ``separate-<file name>`` run of ``separate-track``.
    """
    log_to_stderr()
    settings = load_checked_settings(Path(config) if config else None, overrides)
    report = run_sweep(Path(archive), Path(out), sources, settings, separate_track, dask, dask_workers)
    return asdict(report)
