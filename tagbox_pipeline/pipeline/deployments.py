"""`tagbox serve`: the watch and the nightly sweep as deployments served by one process.

Both are Prefect deployments (``watch-inbox/watch`` and ``sweep-archive/nightly``) served with
:func:`prefect.serve`, beside the track deployment ``separate-track/track`` whose runs they start
(one per file, see :mod:`.track_runs`); on start the watch deployment is run once (it watches until
stopped), the sweep runs on its Cron schedule (default 02:00 in the machine's local time zone).
With no ``PREFECT_API_URL`` set, one local server (SQLite, 127.0.0.1 only) is started for the
serving process and every run it starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import serve
from prefect.deployments import run_deployment
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.schedules import Cron

from ..layout import check_serve
from ..settings_check import load_checked_settings
from .inbox import move_folders
from .track_runs import shared_api, track_deployment

#: default schedule of the archive sweep: every day at 02:00
NIGHTLY_CRON = "0 2 * * *"
WATCH_DEPLOYMENT = "watch-inbox/watch"
SWEEP_DEPLOYMENT = "sweep-archive/nightly"


def local_timezone() -> str:
    """The machine's IANA time zone name (e.g. ``Europe/Berlin``), ``UTC`` when unknown."""
    import tzlocal

    try:
        return tzlocal.get_localzone_name() or "UTC"
    except Exception:  # noqa: BLE001 - tzlocal raises various errors on odd systems; UTC is a safe default
        return "UTC"


def build_deployments(inbox: Path | None, archive: Path | None, out: Path, sources: list[str],
                      config: Path | None, overrides: dict[str, Any], cron: str = NIGHTLY_CRON,
                      timezone: str | None = None, dask: str | None = None,
                      dask_workers: int = 2) -> list[RunnerDeployment]:
    """The watch deployment (when ``inbox`` is given), the nightly sweep (when ``archive`` is) and
    the track deployment both start runs of (concurrency limit ``[runs] concurrency``).

    Raises:
        LayoutError: when OUT, the inbox and the archive are not apart (see :func:`check_serve`).
    """
    check_serve(inbox, archive, out, move_folders(inbox) if inbox is not None else ())
    from flows.separate_track import separate_track
    from flows.sweep_archive import sweep_archive
    from flows.watch_inbox import watch_inbox

    settings = load_checked_settings(config, overrides)

    common = {"out": str(out.resolve()), "sources": sources, "config": str(config.resolve()) if config else None,
              "overrides": overrides, "dask": dask, "dask_workers": dask_workers}
    deployments = [track_deployment(separate_track, settings.runs.concurrency)]
    if inbox is not None:
        deployments.append(watch_inbox.to_deployment(
            name="watch", parameters={"inbox": str(inbox.resolve()), "once": False, **common},
            description="watch the inbox; every dropped file is separated once",
            entrypoint_type=EntrypointType.MODULE_PATH))
    if archive is not None:
        deployments.append(sweep_archive.to_deployment(
            name="nightly", parameters={"archive": str(archive.resolve()), **common},
            schedule=Cron(cron, timezone=timezone or local_timezone()),
            description="separate archive files whose stems are missing or stale",
            entrypoint_type=EntrypointType.MODULE_PATH))
    return deployments


def serve_deployments(deployments: list[RunnerDeployment], start_watch: bool = True) -> None:
    """Register the deployments, start one run of the watch, and serve until interrupted (one
    Prefect API for this process and the runs it executes, see :func:`.track_runs.shared_api`)."""
    with shared_api():
        for deployment in deployments:
            deployment.apply()
        if start_watch and any(d.name == "watch" for d in deployments):
            run_deployment(WATCH_DEPLOYMENT, timeout=0)
        serve(*deployments)
