"""One track through Prefect: plan, one cached task per chunk (all sources batched), assemble, post.

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
import time
import uuid
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import task
from prefect.concurrency.sync import concurrency
from prefect.context import TaskRunContext

from .. import separation
from ..config import Settings
from .artifacts import ChunkProgress, publish_stems, publish_summary, write_spectrograms
from .files import replace_dir, unique_path, write_json_atomic
from .ledger import current_owner, owner_alive
from .post import RAW_DIR, apply_chains

#: name of the global concurrency limit taken by steering tasks on CUDA
GPU_LIMIT = "gpu"
#: pipeline state folder inside OUT (ledger, result store, staging)
STATE_DIR = ".tagbox"

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


@task(name="steer-chunk", persist_result=True, cache_key_fn=_cache_key_from_parameters,
      task_run_name="steer-chunk-{index}")
def steer_chunk(plan: separation.TrackPlan, index: int, cache_key: str) -> Any:
    """Steer every requested source of chunk ``index`` at once; returns the engine's ChunkResult.

    Models are loaded once per worker process. ``cache_key`` is only read by the cache policy
    (see :func:`chunk_cache_key`).
    """
    models = separation.load_models(plan.settings)
    if separation.resolve_device(plan.settings) == "cuda":
        with concurrency(GPU_LIMIT, occupy=1):
            return separation.run_chunk(plan, index, models)
    return separation.run_chunk(plan, index, models)


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
    """``OUT/<name>``, unless it holds stems of other content; then ``OUT/<name> (n)``."""
    folder = out / name
    try:
        held = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))["input"]["sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        held = None
    if not folder.exists() or held == sha256:
        return folder
    return unique_path(out, name)


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


def remove_stale_staging(root: Path) -> None:
    """Delete staging folders (``host:pid-id``) left by processes of this host that died (e.g. SIGKILL)."""
    if root.is_dir():
        for entry in root.iterdir():
            if not owner_alive(entry.name.rsplit("-", 1)[0]):
                shutil.rmtree(entry, ignore_errors=True)


def run_track(path: Path, out: Path, sources: list[str], settings: Settings, folder: Path | None = None,
              chunks_ahead: int = 2) -> TrackOutcome:
    """Separate ``path`` into ``folder`` (default ``OUT/<track>``) inside a Prefect flow run.

    Chunk tasks are submitted at most ``chunks_ahead`` ahead of the one being assembled, so
    memory stays flat in track length. Once the stem folder is in place the track's chunk results
    are deleted from the result store (they exist to resume a crashed run, and take about 1.3×
    the size of the stems). The stem folder appears atomically (staged under
    ``OUT/.tagbox/staging``, then renamed), post chains and spectrograms included.
    """
    started = time.monotonic()
    out = out.resolve()
    plan = separation.plan_track(path, sources, settings)
    models = separation.load_models(settings)
    if separation.resolve_device(settings) == "cuda":
        ensure_gpu_limit()
    weights = dict(models.weights_sha256())
    digest = settings.digest()
    n_chunks = len(plan.chunks)
    steer = steer_chunk.with_options(result_storage=state_dir(out) / "results")
    progress = ChunkProgress(plan.name, n_chunks)
    states: Counter[str] = Counter()
    reports: list[dict] = []

    keys = [chunk_cache_key(plan.sha256, index, sources, digest, weights) for index in range(n_chunks)]

    def chunk_results() -> Iterator[Any]:
        pending: deque = deque()
        for index, key in enumerate(keys):
            pending.append(steer.submit(plan, index, key))
            if len(pending) > chunks_ahead:
                yield _collect(pending.popleft())
        while pending:
            yield _collect(pending.popleft())

    def _collect(future: Any) -> Any:
        result = future.result()
        states["cached" if future.state.name == "Cached" else "computed"] += 1
        reports.append(result.report)
        progress.advance()
        return result

    staging = state_dir(out) / "staging" / f"{current_owner()}-{uuid.uuid4().hex[:12]}"
    remove_stale_staging(staging.parent)
    try:
        separation.assemble_track(plan, chunk_results(), staging, models)
        track_dir = staging / plan.name
        suffix = f".{settings.format}"
        post = apply_chains(track_dir, {s: c for s, c in settings.post.items() if s in sources}, suffix)
        names = [f"{name}{suffix}" for name in [*sources, "residual"]]
        write_spectrograms(plan.name, [track_dir / name for name in names])
        seconds = time.monotonic() - started
        pipeline_info = {"settings_digest": digest, "weights_sha256": weights, "post": post,
                         "raw_dir": RAW_DIR if post else None, "chunks": n_chunks, "computed": states["computed"],
                         "cached": states["cached"], "seconds": round(seconds, 3)}
        data = json.loads((track_dir / "manifest.json").read_text(encoding="utf-8"))
        write_json_atomic(track_dir / "manifest.json", data | {"pipeline": pipeline_info})
        folder = folder or default_folder(out, plan.name, plan.sha256)
        replace_dir(track_dir, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    for key in keys:  # the stems are out: the chunk results only served a resume, free their disk
        (state_dir(out) / "results" / key).unlink(missing_ok=True)
    publish_stems(plan.name, folder, [folder / name for name in names])
    duration = plan.duration
    publish_summary(plan.name, _summary_rows(sources, reports, duration))
    return TrackOutcome(str(path), plan.sha256, str(folder), n_chunks, states["computed"], states["cached"],
                        round(seconds, 3), round(seconds / duration, 3) if duration > 0 else 0.0, post)


def outcome_dict(outcome: TrackOutcome) -> dict:
    """A TrackOutcome as a JSON-able dict (the flow's return value)."""
    return asdict(outcome)
