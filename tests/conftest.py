"""Shared test fixtures: the read-only shared folder, isolated caches, one Prefect API server (with
its UI) for the CLI runs of the session, and a Prefect test harness per module for in-process runs."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


def _share_the_cores_among_xdist_workers() -> None:
    """Under ``pytest -n N`` each worker's torch, OpenMP and BLAS get cores // N threads (at least 1).
    Left at their defaults, CI's 2 workers on 2 cores run 4 busy-waiting threads, and a test's
    in-process separation takes up to 4x its time alone. Set before torch and numpy are imported."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        threads = str(max(1, (os.cpu_count() or 1) // workers))
        for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ.setdefault(name, threads)


_share_the_cores_among_xdist_workers()

from support import TAGBOX, cli_env, real_musicnn_wheel  # noqa: E402  (after the thread counts are set)
from tagbox_pipeline.paths import shared_dir

SHARED = shared_dir()


def pytest_configure(config: pytest.Config) -> None:
    """Point weights lookup at the shared tagger weights, and keep caches out of the user's home."""
    if SHARED is not None and "TAGBOX_MODEL_DIR" not in os.environ:
        os.environ["TAGBOX_MODEL_DIR"] = str(SHARED / "models" / "sota-music-tagging")


@pytest.fixture(scope="session")
def shared() -> Path:
    """The shared folder; tests that need it skip with a clear reason when it is absent."""
    if SHARED is None:
        pytest.skip("shared/ reference data not found (set TAGBOX_SHARED or place it beside the repo)")
    return SHARED


@pytest.fixture(scope="session")
def musicnn_wheel_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The real musicnn 0.1.0 wheel (see :func:`support.real_musicnn_wheel`); tests skip without it."""
    wheel = real_musicnn_wheel(tmp_path_factory.mktemp("musicnn-wheel"))
    if wheel is None:
        pytest.skip("the musicnn 0.1.0 wheel is not to be had (set TAGBOX_MUSICNN_WHEEL to a local copy)")
    return wheel


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty download cache, so nothing leaks in from the user's machine."""
    monkeypatch.setenv("TAGBOX_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect test server (temporary SQLite) for this module's in-process runs; yields its API URL."""
    from prefect.testing.utilities import prefect_test_harness

    saved = {key: os.environ.get(key) for key in ("PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")}
    os.environ["PREFECT_HOME"] = str(tmp_path_factory.mktemp("prefect-home"))
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    try:
        with prefect_test_harness(server_startup_timeout=120):
            from prefect.settings import get_current_settings

            yield str(get_current_settings().api.url)
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@dataclass(frozen=True)
class PrefectServer:
    """A ``prefect server start`` on 127.0.0.1, shared by the CLI runs that do not test the ephemeral one.

    Attributes:
        url: its API (``http://127.0.0.1:PORT/api``); the UI is served at ``ui``.
    """

    url: str
    pid: int
    home: Path

    @property
    def ui(self) -> str:
        """The Prefect UI's address (``http://127.0.0.1:PORT``)."""
        return self.url.removesuffix("/api")


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """Start one Prefect API server for the session (saves the ~10 s start-up of an ephemeral server per run)."""
    home = tmp_path_factory.mktemp("prefect-server-home")
    with socket.socket() as probe:  # a port free on 127.0.0.1 right now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/api"
    prefect = TAGBOX.with_name("prefect")
    process = subprocess.Popen([str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                               env=cli_env(home, PREFECT_UI_API_URL=url), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"prefect server did not start (exit {process.poll()})")
            time.sleep(0.25)
        yield PrefectServer(url, process.pid, home)
    finally:
        try:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(30)
