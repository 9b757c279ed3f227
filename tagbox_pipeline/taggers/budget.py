"""One activation budget for all the tagging of a process, shared by the threads that tag at once.

A tagger forward pass holds activations in proportion to how many analysis windows it runs (a
tagger states its bytes per window). Tracks separated side by side (``[runs] concurrency``, chunk
tasks in threads) each tag, so a budget per call would let the memory grow with the concurrency;
here every pass first *reserves* its bytes from one process-wide :data:`BUDGET`. A thread gets at
most an equal share of the total among the threads tagging at that moment (all of it when alone),
never less than one unit (one row, or one batch of windows), and waits until its share is free, so
the activations held at once stay within the total, whatever the number of threads (a single
unit larger than the total runs alone).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: bytes of tagger activations all threads of this process may hold at once
ACTIVATION_BUDGET = 384 * 2**20


class ActivationBudget:
    """Bytes of activations shared by the threads of a process (see the module docstring).

    Attributes:
        total: bytes all holders together may hold.
        peak: the most bytes held at once so far (for tests and diagnostics).
    """

    def __init__(self, total: int) -> None:
        self.total = total
        self.peak = 0
        self._held = 0
        self._tagging = 0
        self._changed = threading.Condition()

    @contextmanager
    def tagging(self) -> Iterator[None]:
        """Count the calling thread among those tagging (their number sets each one's share) for the block."""
        with self._changed:
            self._tagging += 1
        try:
            yield
        finally:
            with self._changed:
                self._tagging -= 1
                self._changed.notify_all()

    @contextmanager
    def reserve(self, unit: int, units: int) -> Iterator[int]:
        """Hold up to ``units`` × ``unit`` bytes for the block; yields how many units were granted (≥ 1).

        The grant is this thread's share, ``total / threads tagging`` (call within :meth:`tagging`),
        rounded down to whole units and at least one; the call waits until that much is free, or
        until nothing is held when one unit exceeds the total.
        """
        with self._changed:
            share = self.total // max(1, self._tagging)
            granted = max(1, min(units, share // max(1, unit)))
            need = granted * unit
            self._changed.wait_for(lambda: self._held + need <= self.total or self._held == 0)
            self._held += need
            self.peak = max(self.peak, self._held)
        try:
            yield granted
        finally:
            with self._changed:
                self._held -= need
                self._changed.notify_all()


#: the budget every tagger of this process reserves from
BUDGET = ActivationBudget(ACTIVATION_BUDGET)
