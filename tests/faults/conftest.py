"""Fixtures of the fault matrix: the fast settings and the matrix recorder (the shared Prefect API
server is in ``tests/conftest.py``).

Every fault test states its case and the expected behaviour through the ``matrix`` fixture and
records what it observed (and the counts of modified inputs, partial outputs and lost files) as
it goes. When ``$TAGBOX_FAULTS_REPORT`` names a file, one JSON line per test is appended to it
(case, expected, observed, outcome, counts); ``python -m tagbox_pipeline.bench faults`` reads it
to generate ``bench/results/faults.md``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

from support import FAST_TOML, write_toml

#: environment variable naming the JSON-lines file the matrix rows are appended to
REPORT_ENV = "TAGBOX_FAULTS_REPORT"


@dataclass
class MatrixRow:
    """One row of the fault matrix."""

    case: str = ""
    expected: str = ""
    observed: str = ""
    inputs_modified: int = 0
    partial_outputs: int = 0
    lost_files: int = 0

    def describe(self, case: str, expected: str) -> MatrixRow:
        """Name the case and the behaviour the test asserts."""
        self.case, self.expected = case, expected
        return self

    def observe(self, text: str, inputs_modified: int = 0, partial_outputs: int = 0, lost_files: int = 0) -> None:
        """Record what happened (called before the assertions, so a failing row shows it too)."""
        self.observed = text
        self.inputs_modified += inputs_modified
        self.partial_outputs += partial_outputs
        self.lost_files += lost_files


@pytest.fixture
def matrix(request: pytest.FixtureRequest) -> MatrixRow:
    """This test's row of the fault matrix."""
    row = MatrixRow()
    request.node.stash[_ROW] = row
    return row


_ROW = pytest.StashKey[MatrixRow]()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    """Append the test's matrix row and outcome to ``$TAGBOX_FAULTS_REPORT`` (after its call, or a failed setup)."""
    outcome = yield
    report = outcome.get_result()
    target = os.environ.get(REPORT_ENV)
    row = item.stash.get(_ROW, None)
    if not target or (report.when == "setup" and report.passed) or report.when == "teardown":
        return
    row = row or MatrixRow(case=item.name)
    entry = asdict(row) | {"test": item.nodeid, "outcome": report.outcome, "seconds": round(report.duration, 1)}
    if report.skipped:
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        entry["observed"] = "skipped: " + reason.removeprefix("Skipped: ")
    elif report.failed and not row.observed:
        entry["observed"] = str(report.longrepr).strip().splitlines()[-1][:300]
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry) + "\n")


@pytest.fixture(scope="session")
def fast_toml(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fast settings file of the fault runs (see ``faultkit.FAST_TOML``)."""
    return write_toml(tmp_path_factory.mktemp("faults-config") / "fast.toml", FAST_TOML)
