"""One track through Prefect: plan, one cached task per chunk (all sources batched), then the
engine's publish step (:func:`~tagbox_pipeline.publish.publish_track`) and the UI artifacts.

Why one task per chunk with every source batched, not one per (chunk, source): the sources of a
chunk compete for the same mixture energy (their masks share it out and sum to at most one), so
they must be steered together in one pass; splitting them would change the result, not just the
schedule. It is also cheaper: the prior is fitted and the mixture analysed once per chunk.

A chunk task's result is persisted as a file in ``OUT/.tagbox/results`` under a cache key over
(audio sha256, chunk index, sources, settings digest, weight sha256s), so a run restarted after a
crash loads finished chunks instead of recomputing them. On CUDA a task holds one slot of the
global concurrency limit ``gpu`` while it steers.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import threading
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import get_run_logger, task
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext

from ..config import Settings
from ..publish import publish_track
from ..separation import Separator
from ..stem_folders import choose_folder
from ..steering import ChunkResult
from ..track_plan import TrackPlan, evidence_text
from .artifacts import ChunkProgress, publish_stems, publish_summary
from .ledger import current_owner, owner_alive
from .lineage import record_lineage
from .runner import task_runner

#: name of the global concurrency limit taken by steering tasks on CUDA
GPU_LIMIT = "gpu"
#: pipeline state folder inside OUT (ledger, result store, staging)
STATE_DIR = ".tagbox"

_SEPARATOR: dict[str, Separator] = {}
_SEPARATOR_LOCK = threading.Lock()


def separator_for(settings: Settings) -> Separator:
    """This process's :class:`Separator` for ``settings``: chunk tasks (threads, or Dask worker
    processes) load the models once per process and settings, not once per chunk."""
    key = settings.model_dump_json()
    with _SEPARATOR_LOCK:
        if key not in _SEPARATOR:
            _SEPARATOR.clear()
            _SEPARATOR[key] = Separator(settings)
        return _SEPARATOR[key]


def state_dir(out: Path) -> Path:
    """``OUT/.tagbox``: ledger, chunk result store and staging folders."""
    return out / STATE_DIR


def chunk_cache_key(audio_sha256: str, index: int, sources: list[str], settings_digest: str,
                    weights_sha256: dict[str, str]) -> str:
    """The cache key (and result file name) of one chunk's steering result.

    Args:
        weights_sha256: ``{model name: sha256 of its weights}`` for the taggers and the prior.
    """
    payload = json.dumps([audio_sha256, index, list(sources), settings_digest, sorted(weights_sha256.items())])
    return f"chunk-{hashlib.sha256(payload.encode()).hexdigest()}"


def _cache_key_from_parameters(context: TaskRunContext, parameters: dict[str, Any]) -> str:
    return parameters["cache_key"]


@task(name="steer-chunk", persist_result=True, cache_result_in_memory=False,
      cache_key_fn=_cache_key_from_parameters, task_run_name="steer-chunk-{index}")
def steer_chunk(plan: TrackPlan, index: int, cache_key: str) -> ChunkResult:
    """Steer every requested source of chunk ``index`` at once; returns the engine's ChunkResult.

    ``cache_key`` is only read by the cache policy (see :func:`chunk_cache_key`). The result is
    persisted but not kept in memory: Prefect's result store keeps up to 1000 records in an LRU
    shared by the runs of a process, so a long-running watcher held every chunk's stems it had
    separated (measured: +1.7 MiB per 1 s file over 280 files).
    """
    separator = separator_for(plan.settings)
    if separator.device == "cuda":
        with concurrency(GPU_LIMIT, occupy=1):
            return separator.run_chunk(plan, index)
    return separator.run_chunk(plan, index)


def ensure_gpu_limit() -> None:
    """Create the global concurrency limit ``gpu`` (one slot per visible GPU) when it is missing."""
    import torch
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            client.read_global_concurrency_limit_by_name(GPU_LIMIT)
        except ObjectNotFound:
            client.create_global_concurrency_limit(
                GlobalConcurrencyLimitCreate(name=GPU_LIMIT, limit=max(1, torch.cuda.device_count())))


@dataclass
class TrackOutcome:
    """What one ``separate_track`` run did."""

    input: str
    sha256: str
    folder: str
    chunks: int
    computed: int
    cached: int
    seconds: float
    real_time_factor: float
    post: dict[str, list[str]]


def default_folder(out: Path, name: str, sha256: str) -> Path:
    """``OUT/<name>``, unless it is taken (by stems of other content, or by anything not ours); then
    the first ``OUT/<name> (n)`` that is free or holds stems of the same content."""
    return choose_folder(out, name, lambda manifest: (manifest.get("input") or {}).get("sha256") == sha256)


def _summary_rows(sources: list[str], reports: list[dict], duration: float) -> list[dict]:
    rows = []
    for source in sources:
        entries = [r[source] for r in reports if source in r]
        seconds = sum(float(e.get("seconds", 0.0)) for e in entries)
        probs = [float(e["p_tag"]) for e in entries if e.get("p_tag") is not None]  # None: silent chunk, not steered
        tags = sorted({t for e in entries for t in e.get("tags", [])})
        rows.append({"source": source, "tags": ", ".join(tags),
                     "mean p(tag)": round(sum(probs) / len(probs), 4) if probs else None,
                     "seconds": round(seconds, 2),
                     "RTF": round(seconds / duration, 3) if duration > 0 else None})
    return rows


def log_chunk(logger: Any, done: int, total: int, state: str, report: dict[str, dict[str, Any]]) -> None:
    """One line per finished chunk: i/n, computed or cached, p(tag) per source and the rivals heard
    (see :mod:`tagbox_pipeline.rivals`); a silent chunk is a warning."""
    if all(entry.get("p_tag") is None for entry in report.values()):
        logger.warning("chunk %d/%d (%s): digital silence, not steered (silent stems)", done, total, state)
        return
    probs = ", ".join(f"p({source}) {entry['p_tag']:.2f}" for source, entry in report.items())
    rivals = {name: p for entry in report.values() for name, p in entry.get("rivals", {}).items()}
    heard = f"; against {', '.join(f'{name} {p:.2f}' for name, p in rivals.items())}" if rivals else ""
    logger.info("chunk %d/%d (%s): %s%s", done, total, state, probs, heard)


def remove_stale_staging(root: Path) -> None:
    """Delete staging folders (``host:pid-id``) left by processes of this host that died (e.g. SIGKILL)."""
    if root.is_dir():
        for entry in root.iterdir():
            if not owner_alive(entry.name.rsplit("-", 1)[0]):
                shutil.rmtree(entry, ignore_errors=True)


def run_track(path: Path, out: Path, sources: list[str], settings: Settings, folder: Path | None = None,
              dask: str | None = None, chunks_ahead: int = 2) -> TrackOutcome:
    """Separate ``path`` into ``folder`` (default :func:`default_folder`) inside a Prefect flow run.

    Chunk tasks run on :func:`~.runner.task_runner` (one thread here, or the Dask scheduler at
    ``dask``), submitted at most ``chunks_ahead`` ahead of the one being assembled, so memory
    stays flat in track length. The engine publishes the folder (staged under
    ``OUT/.tagbox/staging``, post chains and spectrograms included, guarded atomic replace).
    Once it is in place the track's chunk results are deleted from the result store (they exist
    to resume a crashed run, and take about 1.3× the size of the stems).
    """
    started = time.monotonic()
    logger = get_run_logger()
    out = out.resolve()
    separator = separator_for(settings)
    plan = separator.plan(path, sources)
    sources = plan.sources
    if plan.detected is not None:
        logger.info("%s: detected %s", plan.path, evidence_text(plan.detected))
    logger.info("%s: %.1f s, %d Hz, %d channel(s); separating %s in %d chunk(s) with %s", plan.path,
                plan.duration, plan.info.sample_rate, plan.info.channels, ", ".join(sources), len(plan.chunks),
                ", ".join(separator.models.describe()["taggers"]))
    for name, why in separator.models.skipped.items():
        logger.warning("tagger %s skipped: %s", name, why)
    if separator.device == "cuda":
        ensure_gpu_limit()
    weights = dict(separator.models.weights_sha256())
    digest = settings.digest()
    n_chunks = len(plan.chunks)
    steer = steer_chunk.with_options(result_storage=state_dir(out) / "results")
    progress = ChunkProgress(plan.name, n_chunks)
    states: Counter[str] = Counter()
    reports: list[dict] = []

    keys = [chunk_cache_key(plan.sha256, index, sources, digest, weights) for index in range(n_chunks)]

    def chunk_results() -> Iterator[ChunkResult]:
        pending: deque = deque()
        with task_runner(dask) as runner:
            for index, key in enumerate(keys):
                pending.append(runner.submit(steer, {"plan": plan, "index": index, "cache_key": key}))
                if len(pending) > chunks_ahead:
                    yield _collect(pending.popleft())
            while pending:
                yield _collect(pending.popleft())

    def _collect(future: Any) -> ChunkResult:
        result = future.result()
        state = "cached" if future.state.name == "Cached" else "computed"
        states[state] += 1
        reports.append(result.report)
        progress.advance()
        log_chunk(logger, len(reports), n_chunks, state, result.report)
        return result

    def pipeline_info() -> dict[str, Any]:
        return {"pipeline": {"chunks": n_chunks, "computed": states["computed"], "cached": states["cached"],
                             "seconds": round(time.monotonic() - started, 3)}}

    staging = state_dir(out) / "staging" / f"{current_owner()}-{uuid.uuid4().hex[:12]}"
    remove_stale_staging(staging.parent)
    try:
        published = publish_track(plan, chunk_results(), folder or default_folder(out, plan.name, plan.sha256),
                                  separator.models, staging=staging, spectrograms=True, annotate=pipeline_info)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    seconds = time.monotonic() - started
    for key in keys:  # the stems are out: the chunk results only served a resume, free their disk
        (state_dir(out) / "results" / key).unlink(missing_ok=True)
    for source, plugins in published.post.items():
        logger.info("post chain on %s: %s (unprocessed stem kept in raw/)", source, " → ".join(plugins))
    logger.info("stems in %s (%.1f s, real-time factor %.2f per source; %d chunk(s) computed, %d cached)",
                published.folder, seconds, seconds / max(plan.duration, 1e-9) / len(sources), states["computed"],
                states["cached"])
    publish_stems(plan.name, published.folder, published.files)
    record_lineage(path, published.files)
    duration = plan.duration
    publish_summary(plan.name, _summary_rows(sources, reports, duration))
    return TrackOutcome(str(path), plan.sha256, str(published.folder), n_chunks, states["computed"], states["cached"],
                        round(seconds, 3), round(seconds / duration, 3) if duration > 0 else 0.0, published.post)


def outcome_dict(outcome: TrackOutcome) -> dict:
    """A TrackOutcome as a JSON-able dict (the flow's return value)."""
    return asdict(outcome)
