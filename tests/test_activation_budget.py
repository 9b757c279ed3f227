"""One activation budget per process, shared by the threads that tag at once (``taggers/budget.py``).

Checked with real threads: two threads tagging at once each get half of the budget and hold it
together (never more than the total); a unit larger than the whole budget still runs, alone; and
three threads tagging the bundled example with a real tagger through a small budget hold at most
that budget and get exactly the taggram of one thread tagging alone.
"""

from __future__ import annotations

import threading

import pytest
import torch

from support import example_audio
from tagbox_pipeline.taggers import budget
from tagbox_pipeline.taggers.base import to_tagger_rate
from tagbox_pipeline.taggers.registry import get_tagger

UNIT = 1000


def test_threads_tagging_at_once_hold_equal_shares_together() -> None:
    shared = budget.ActivationBudget(8 * UNIT)
    entered, holding = threading.Barrier(2, timeout=20), threading.Barrier(2, timeout=20)
    grants: list[int] = []
    errors: list[BaseException] = []

    def tag() -> None:
        try:
            with shared.tagging():
                entered.wait()
                with shared.reserve(UNIT, 100) as units:
                    grants.append(units)
                    holding.wait()  # both hold their share at the same moment
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=tag) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors, errors
    assert grants == [4, 4], "each of two tagging threads gets half of the budget"
    assert shared.peak == 8 * UNIT


def test_a_thread_alone_gets_the_whole_budget_and_a_unit_over_it_still_runs() -> None:
    shared = budget.ActivationBudget(8 * UNIT)
    with shared.tagging():
        with shared.reserve(UNIT, 100) as units:
            assert units == 8
        with shared.reserve(UNIT, 3) as units:
            assert units == 3
        with shared.reserve(20 * UNIT, 5) as units:
            assert units == 1, "one unit larger than the budget runs alone"
    assert shared.peak == 20 * UNIT


def test_threads_tagging_the_example_stay_within_the_budget_and_tag_as_one_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    tagger = get_tagger("MTT_musicnn")
    mix, rate = example_audio("mixture")
    audio = to_tagger_rate(torch.from_numpy(mix[:, : 8 * rate]), rate)
    rows = torch.cat([audio, 0.5 * audio, audio.flip(-1)])  # 6 rows
    unit = tagger.row_bytes(rows.shape[-1])
    with torch.no_grad():
        alone = tagger.tag(rows)
    small = budget.ActivationBudget(4 * unit)
    monkeypatch.setattr(budget, "BUDGET", small)
    results: list[torch.Tensor] = []

    def tag() -> None:
        with torch.no_grad():
            results.append(tagger.tag(rows))

    threads = [threading.Thread(target=tag) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert len(results) == 3
    assert unit <= small.peak <= small.total
    for result in results:
        assert torch.allclose(result, alone, atol=1e-6)
