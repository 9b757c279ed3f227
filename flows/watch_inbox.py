"""The ``watch-inbox`` flow: take every file dropped into an inbox, once (see pipeline.inbox)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow

from flows.separate_track import separate_track
from tagbox_pipeline.settings_check import load_checked_settings
from tagbox_pipeline.pipeline.logs import log_to_stderr
from tagbox_pipeline.pipeline.jobs import run_watch


@flow(name="watch-inbox")
def watch_inbox(inbox: str, out: str, sources: list[str], config: str | None = None,
                overrides: dict[str, Any] | None = None, once: bool = False, dask: str | None = None,
                dask_workers: int = 2) -> dict[str, int]:
    """Watch ``inbox`` (until stopped, or until drained with ``once``); returns outcome counts."""
    log_to_stderr()
    settings = load_checked_settings(Path(config) if config else None, overrides)
    return run_watch(Path(inbox), Path(out), sources, settings, separate_track, once, dask, dask_workers)
