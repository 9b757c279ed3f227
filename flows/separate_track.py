"""The ``separate-track`` flow: one audio file to a stem folder (see tagbox_pipeline.pipeline.track)."""

from __future__ import annotations

from pathlib import Path

from prefect import flow

from tagbox_pipeline.config import Settings
from tagbox_pipeline.pipeline.track import outcome_dict, run_track


def _run_name() -> str:
    from prefect.runtime import flow_run

    return f"separate-{Path(flow_run.parameters['path']).name}"


@flow(name="separate-track", flow_run_name=_run_name)
def separate_track(path: str, out: str, sources: list[str], settings: Settings | None = None,
                   folder: str | None = None, dask: str | None = None) -> dict:
    """Separate ``path`` into ``sources`` + residual under ``out`` (or exactly into ``folder``).

    Chunks are cached tasks (a restart skips finished ones), run on the Dask scheduler at ``dask``
    when given; returns the TrackOutcome as a dict (folder, chunks, computed, cached, seconds,
    real-time factor, post chains).
    """
    outcome = run_track(Path(path), Path(out), sources, settings or Settings(),
                        Path(folder) if folder else None, dask)
    return outcome_dict(outcome)
