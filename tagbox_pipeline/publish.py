"""The engine's last step: chunk results in, a finished stem folder out.

:func:`publish_track` crossfades the chunk results into stem files in a hidden staging folder,
runs the post chains (unprocessed stems kept in ``raw/``), draws spectrograms when asked, writes
the manifest once, and puts the folder in place with the guarded atomic replace of
:func:`~tagbox_pipeline.stem_folders.place_folder`. The CLI, the Prefect flows and the library
all publish through it, so a stem folder is the same whoever wrote it.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .assembly import assemble
from .audio_io import FileSamples
from .files import default_mode, write_json_atomic
from .post import RAW_DIR, apply_chains
from .spectrogram import write_spectrograms
from .stem_folders import MANIFEST, STEM_FOLDER_KIND, place_folder
from .stems import StemWriter
from .steering import ChunkResult, Models
from .track_plan import TrackPlan

#: a stem folder's manifest.json content
Manifest = dict[str, Any]


@dataclass(frozen=True)
class Published:
    """A finished stem folder.

    Attributes:
        folder: where it went (``dest``, or ``dest (n)`` when ``dest`` was not ours to replace).
        manifest: its manifest.json content.
        files: the stems and the residual, in manifest order.
        spectrograms: PNGs written beside them (empty unless asked for).
    """

    folder: Path
    manifest: Manifest
    files: list[Path]
    spectrograms: list[Path]

    @property
    def post(self) -> dict[str, list[str]]:
        """``{source: [plugin names]}`` of the post chains applied."""
        return self.manifest["post"]


def _versions() -> dict[str, str]:
    names = {"tagbox": "tagbox-pipeline", "torch": "torch", "numpy": "numpy", "prefect": "prefect",
             "soundfile": "soundfile"}
    return {key: importlib.metadata.version(dist) for key, dist in names.items()}


def _rivals(sources: list[str], chunks: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per source, the rivals it was separated against (left in the residual) with the highest
    p(instrument | chunk mixture) of any chunk: the evidence that they play."""
    found: dict[str, dict[str, float]] = {source: {} for source in sources}
    for chunk in chunks:
        for source in sources:
            for rival, p in chunk["report"].get(source, {}).get("rivals", {}).items():
                found[source][rival] = max(p, found[source].get(rival, 0.0))
    return found


def _manifest(plan: TrackPlan, writer: StemWriter, chunks: list[dict[str, Any]], models: Models | None,
              post: dict[str, list[str]], spectrograms: list[Path]) -> Manifest:
    info, settings = plan.info, plan.settings
    return {
        "kind": STEM_FOLDER_KIND,
        "input": {"path": str(plan.path), "sha256": plan.sha256, "sample_rate": info.sample_rate,
                  "channels": info.channels, "frames": info.frames, "format": info.format,
                  "subtype": info.subtype, "duration_s": info.duration},
        "output": {"subtype": writer.subtype, "format": settings.format, "files": [p.name for p in writer.paths],
                   "spectrograms": [p.name for p in spectrograms]},
        "sources": {source: sorted({tag for c in chunks for tag in c["report"].get(source, {}).get("tags", [])})
                    for source in plan.sources},
        "rivals": _rivals(plan.sources, chunks),
        "detected": plan.detected,
        "post": post,
        "raw_dir": RAW_DIR if post else None,
        "models": {"prior": settings.prior, "taggers": settings.taggers} if models is None else models.describe(),
        "weights_sha256": None if models is None else models.weights_sha256(),
        "settings": settings.model_dump(mode="json"),
        "settings_digest": settings.digest(),
        "chunks": chunks,
        "versions": _versions(),
        "started": plan.created,
        "finished": datetime.now(timezone.utc).isoformat(),
    }


def publish_track(plan: TrackPlan, results: Iterable[ChunkResult], dest: Path, models: Models | None = None, *,
                  staging: Path | None = None, spectrograms: bool = False,
                  annotate: Callable[[], dict[str, Any]] | None = None) -> Published:
    """Turn ``plan``'s chunk results (in chunk order) into the stem folder ``dest``.

    Finished regions are written as soon as they are complete, with the residual computed from
    the mixture re-read from the input, so memory stays flat in track length; the residual is the
    mixture minus the stems as stored, before any post chain (raw stems + residual = mixture).

    Args:
        dest: the stem folder; replaced only when it is a stem folder of ours, else ``dest (n)``.
        models: adds the sha256 of every weights file used and the device to the manifest.
        staging: folder for the hidden work folder (default ``dest``'s parent; same file system).
        spectrograms: draw ``<stem>.spectrogram.png`` beside every stem and the residual.
        annotate: called once the stems are written; its keys are added to the manifest.

    Raises:
        ValueError: when results are missing, extra, or of the wrong shape.
        OSError: when a file cannot be written (the staging folder is removed).
    """
    info, settings = plan.info, plan.settings
    root = staging or dest.parent
    root.mkdir(parents=True, exist_ok=True)
    temp = Path(tempfile.mkdtemp(prefix=f".{plan.name}.tmp-", dir=root))
    try:
        temp.chmod(default_mode(directory=True))
        mixture = FileSamples(plan.path)

        with StemWriter(temp, info, plan.sources, settings.format) as writer:
            def sink(start: int, block: np.ndarray) -> None:
                writer.write(block, mixture.read(start, start + block.shape[-1]))

            chunks = assemble(plan.chunks, results, sink, len(plan.sources), info.channels, info.sample_rate)
            writer.close()
        post = apply_chains(temp, {s: c for s, c in settings.post.items() if s in plan.sources},
                            f".{settings.format}")
        pngs = write_spectrograms(plan.name, writer.paths) if spectrograms else []
        manifest = _manifest(plan, writer, chunks, models, post, pngs) | (annotate() if annotate else {})
        write_json_atomic(temp / MANIFEST, manifest)
        folder = place_folder(temp, dest)
    finally:
        shutil.rmtree(temp, ignore_errors=True)  # gone already when published
    return Published(folder, manifest, [folder / p.name for p in writer.paths], [folder / p.name for p in pngs])
