"""Task runners for the chunk tasks: Prefect's thread pool by default, prefect-dask on request.

A local Dask cluster binds to 127.0.0.1 only and has no dashboard.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

#: LocalCluster keyword arguments: loopback only, no dashboard, one thread per worker process
LOCAL_CLUSTER_KWARGS = {"host": "127.0.0.1", "dashboard_address": None, "threads_per_worker": 1, "processes": True}


@contextmanager
def dask_address(dask: str | None, workers: int) -> Iterator[str | None]:
    """Yield the Dask scheduler address to use: ``dask`` itself, a local cluster's for "local", or None.

    The local cluster (``workers`` processes) lives as long as the ``with`` block, so every track of
    a watch or sweep shares it.
    """
    if dask != "local":
        yield dask
        return
    from distributed import LocalCluster

    with LocalCluster(n_workers=workers, **LOCAL_CLUSTER_KWARGS) as cluster:
        yield cluster.scheduler_address


def task_runner(address: str | None, max_workers: int = 1) -> TaskRunner:
    """A ``DaskTaskRunner`` on ``address``, else a ``ThreadPoolTaskRunner`` of ``max_workers`` threads.

    One thread by default: a chunk task already uses every core through torch, so running two
    at once on one machine only adds memory.
    """
    if address is None:
        return ThreadPoolTaskRunner(max_workers=max_workers)
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=address)
