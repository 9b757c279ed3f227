"""How the watch and the sweep run each track: as its own run of the ``separate-track/track``
deployment (``[runs] mode = "deployment"``, the default) or in this process (``"in-process"``).

Deployment runs: each file becomes a top-level flow run named ``separate-<file name>`` of the
deployment ``separate-track/track``, created with :func:`prefect.deployments.run_deployment` and
executed by whatever serves that deployment: the runner :func:`serving` starts inside
``tagbox watch`` and ``tagbox sweep``, the one ``tagbox serve`` runs, or the workers of a work pool
(``deployments/prefect.yaml``, past one machine). Each track so runs in a process of its own (a
crash or an out-of-memory kill takes one track, not the watcher; its memory goes back to the OS
when it ends), up to ``[runs] concurrency`` at once (the deployment's concurrency limit, and as
many waiting threads in the watcher), fails and is retried on its own, and can be re-run from the
UI. The price is one process start per track (Python, torch, Prefect and the models imported
again; measured in ``docs/pipeline.md``); for archives of many short clips ``"in-process"`` avoids
it: the track is then a child run of the watcher's or the sweep's run, in its process.

Why :func:`run_deployment` rather than an event with a deployment trigger: the watcher needs each
run's end to move the file to ``processed/`` or ``failed/`` and to close its ledger row (exactly
once); ``run_deployment`` waits for the run and returns its final state, where a trigger would
start the run and leave no way back to the file.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
from prefect import Flow
from prefect.deployments import run_deployment
from prefect.deployments.runner import EntrypointType, RunnerDeployment
from prefect.runner import Runner

from ..config import Settings
from .inbox import TakeLater

#: name of the track deployment under the ``separate-track`` flow
TRACK_DEPLOYMENT = "track"
#: how often (s) the runner looks for new track runs and the watcher for their end
POLL_SECONDS = 1.0

#: ``launch(path, folder) -> folder``: separate one file into that stem folder (raises on failure)
Launch = Callable[[Path, Path], Path]


class TrackRunFailed(RuntimeError):
    """The track's run failed (the file or the settings are at fault): the file is quarantined."""


class TrackRunInterrupted(TakeLater):
    """The track's run crashed or was cancelled (Ctrl-C, a kill, the machine): not the file's
    fault, so it stays where it is and is taken again later (its finished chunks are reused)."""


def deployment_name(track_flow: Flow) -> str:
    """``separate-track/track``: the full name of the track deployment of ``track_flow``."""
    return f"{track_flow.name}/{TRACK_DEPLOYMENT}"


def track_deployment(track_flow: Flow, concurrency: int) -> RunnerDeployment:
    """The deployment that runs ``track_flow`` for one file, at most ``concurrency`` runs at once."""
    return track_flow.to_deployment(
        name=TRACK_DEPLOYMENT, concurrency_limit=concurrency, entrypoint_type=EntrypointType.MODULE_PATH,
        description="separate one audio file into stems; started by the watch and the sweep, one run per file")


def _track_processes(before: set[int]) -> list[psutil.Process]:
    """Live child processes of this one not in ``before`` (the runner's track processes), leaving out
    multiprocessing's resource tracker (it lives until this process ends)."""
    alive = []
    for child in psutil.Process().children():
        try:
            if (child.pid not in before and child.status() != psutil.STATUS_ZOMBIE
                    and "resource_tracker" not in " ".join(child.cmdline())):
                alive.append(child)
        except psutil.Error:  # it ended meanwhile
            continue
    return alive


@contextmanager
def serving(deployment: RunnerDeployment) -> Iterator[None]:
    """Register ``deployment`` and execute its runs from a Prefect runner in a background thread of
    this process while inside. On leaving, the track processes it started (whose runs have ended)
    are given up to 30 s to exit, because the runner's stop cancels what it still runs (and marks
    a run that had completed as cancelled); then it stops."""
    runner = Runner(name=f"tagbox-tracks-{os.getpid()}", query_seconds=POLL_SECONDS, limit=None,
                    pause_on_shutdown=False)
    loop = asyncio.new_event_loop()
    ready, failure = threading.Event(), []

    async def main() -> None:
        try:
            await runner.aadd_deployment(deployment)
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread below
            failure.append(exc)
            raise
        finally:
            ready.set()
        await runner.start()

    before = {child.pid for child in psutil.Process().children()}
    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), name="tagbox-runner", daemon=True)
    thread.start()
    ready.wait()
    if failure:
        raise failure[0]
    try:
        yield
        deadline = time.monotonic() + 30  # a track process whose run is final may still be closing down:
        while _track_processes(before) and time.monotonic() < deadline:  # stopping now would cancel it
            time.sleep(0.1)
    finally:
        if runner.started:
            asyncio.run_coroutine_threadsafe(runner.astop(), loop).result(timeout=60)
        thread.join(timeout=60)


@contextmanager
def shared_api() -> Iterator[str | None]:
    """While inside, this process and the track runs it starts use one Prefect API: the configured
    ``PREFECT_API_URL``, or one local server started here (else every track process would start an
    ephemeral server of its own, about 10 s each). Yields the URL (None when Prefect has its own)."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if get_current_settings().api.url:
        yield get_current_settings().api.url
        return
    from prefect.server.api.server import SubprocessASGIServer

    server = SubprocessASGIServer()
    server.start(timeout=120)
    saved = os.environ.get("PREFECT_API_URL")
    os.environ["PREFECT_API_URL"] = server.api_url  # the runner's track processes inherit it
    try:
        with temporary_settings({PREFECT_API_URL: server.api_url}):
            yield server.api_url
    finally:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        APILogWorker.drain_all()  # logs and events still queued for the server go out before it stops
        EventsWorker.drain_all()
        if saved is None:
            os.environ.pop("PREFECT_API_URL", None)
        else:
            os.environ["PREFECT_API_URL"] = saved
        server.stop()


@contextmanager
def tracks_served_here(track_flow: Flow, settings: Settings) -> Iterator[None]:
    """For a job started from the command line: with ``[runs] mode = "deployment"``, one Prefect API
    for this process and its track runs (:func:`shared_api`) and a runner of the track deployment
    (:func:`serving`) while inside; nothing to do in-process."""
    if settings.runs.mode == "in-process":
        yield
        return
    with shared_api(), serving(track_deployment(track_flow, settings.runs.concurrency)):
        yield


def run_track_deployment(name: str, parameters: dict[str, Any], run_name: str) -> None:
    """Start a run ``run_name`` of deployment ``name`` (a top-level run, not a child of the caller's)
    and wait for its end.

    Raises:
        TrackRunFailed: when the run failed (its message says why).
        TrackRunInterrupted: when it crashed or was cancelled.
    """
    run = run_deployment(name, parameters=parameters, flow_run_name=run_name, as_subflow=False,
                         poll_interval=POLL_SECONDS, timeout=None)
    state = run.state
    if state is None or state.is_completed():
        return
    message = f"track run {run_name} ended {state.name}: {state.message or 'no message'}"
    if state.is_crashed() or state.is_cancelled() or state.is_cancelling():
        raise TrackRunInterrupted(message)
    raise TrackRunFailed(message)


def track_launcher(track_flow: Flow, out: Path, sources: list[str], settings: Settings,
                   dask: str | None) -> Launch:
    """How this job separates one file, per ``settings.runs.mode``: a run of the track deployment,
    or ``track_flow`` called here (a child run); chunk tasks on Dask when ``dask`` is an address."""
    if settings.runs.mode == "in-process":
        def launch(path: Path, folder: Path) -> Path:
            return Path(track_flow(str(path), str(out), sources, settings, str(folder), dask)["folder"])
        return launch
    name, fixed = deployment_name(track_flow), {"out": str(out), "sources": sources,
                                                "settings": settings.model_dump(mode="json"), "dask": dask}

    def launch_run(path: Path, folder: Path) -> Path:
        run_track_deployment(name, {"path": str(path), "folder": str(folder), **fixed}, f"separate-{path.name}")
        return folder
    return launch_run
