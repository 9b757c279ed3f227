"""Shared test fixtures: the read-only shared folder, isolated caches and Prefect home."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

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


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test gets an empty download cache, so nothing leaks in from the user's machine."""
    monkeypatch.setenv("TAGBOX_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
