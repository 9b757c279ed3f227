"""The ``watch-inbox`` flow: take every file dropped into an inbox, once (see pipeline.inbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.separate_track import separate_track
from tagbox_pipeline.settings_check import load_checked_settings
from tagbox_pipeline.pipeline.logs import log_to_stderr
from tagbox_pipeline.pipeline.jobs import run_watch


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"watch-{Path(flow_run.parameters['inbox']).name}"


@flow(name="watch-inbox", flow_run_name=_run_name)
def watch_inbox(inbox: str, out: str, sources: list[str], config: str | None = None,
                overrides: dict[str, Any] | None = None, once: bool = False, dask: str | None = None,
                dask_workers: int = 2) -> dict[str, int]:
    """Watch ``inbox`` (until stopped, or until drained with ``once``); returns outcome counts.

    Each file is separated by a ``separate-<file name>`` run of ``separate-track`` (see
    :mod:`tagbox_pipeline.pipeline.track_runs`).
    """
    log_to_stderr()
    settings = load_checked_settings(Path(config) if config else None, overrides)
    return run_watch(Path(inbox), Path(out), sources, settings, separate_track, once, dask, dask_workers)
