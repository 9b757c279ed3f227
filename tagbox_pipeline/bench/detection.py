"""``--sources auto`` bench: which instruments detection finds in the bench-dev mixtures -> ``bench/results/detection.md``.

Every clip of every set variant (:mod:`.conditions`) goes through the product's detection
(:func:`tagbox_pipeline.detection.detect_sources`, offline default) at several thresholds. A
detected candidate is right when it shares a tag with a true source of the clip (strings for a
violin, vocals for a choir); a true source is found when some detected candidate is right for it.
Sources no chosen tagger names (organ offline) cannot be found and are counted apart.
"""

from __future__ import annotations

import torch

from ..audio_io import ArraySamples
from ..detection import detect_sources
from ..errors import UserError
from ..rivals import candidates_for
from ..separation import Separator
from ..track_plan import plan_chunks
from . import machine_line, write_result
from .quality import offline_settings, variant_clips
from .separation import THREADS, load_clips, table

THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5)


def main() -> None:
    """Detect on every clip of every variant at each threshold; write precision and recall per threshold."""
    torch.set_num_threads(THREADS)
    settings = offline_settings({"detection.threshold": 0.0, "detection.max_sources": 64})
    separator = Separator(settings)
    taggers, only = separator.models.taggers, separator.models.only
    defaults = offline_settings().detection
    rows, lines, unnamable = [], [], set()
    evidence: dict[tuple[str, str], dict[str, float]] = {}
    truth: dict[str, list[str]] = {}
    for variant, clips in variant_clips(load_clips()).items():
        for clip in clips:
            truth[clip.id] = clip.sources
            chunks = plan_chunks(clip.mixture.shape[1], clip.sample_rate, settings)
            evidence[variant, clip.id] = detect_sources(ArraySamples(clip.mixture), chunks, clip.sample_rate,
                                                        taggers, only, settings)

    def right(candidate: str, source: str) -> bool:
        return candidate == source or not candidates_for([source], [candidate], taggers, only)

    for source in {s for sources in truth.values() for s in sources}:
        try:
            candidates_for([source], [], taggers, only)
        except UserError:
            unnamable.add(source)
    for threshold in THRESHOLDS:
        hits = detected = found = wanted = 0
        for (variant, clip_id), scores in evidence.items():
            chosen = [c for c, p in scores.items() if p >= threshold][:defaults.max_sources]
            sources = [s for s in truth[clip_id] if s not in unnamable]
            detected += len(chosen)
            hits += sum(any(right(c, s) for s in sources) for c in chosen)
            wanted += len(sources)
            found += sum(any(right(c, s) for c in chosen) for s in sources)
        rows.append([f"{threshold:.1f}" + (" (default)" if threshold == defaults.threshold else ""),
                     f"{hits}/{detected}", f"{hits / max(detected, 1):.2f}", f"{found}/{wanted}",
                     f"{found / max(wanted, 1):.2f}"])
    for (variant, clip_id), scores in evidence.items():
        shown = ", ".join(f"{c} {p:.2f}" for c, p in scores.items() if p >= 0.1)
        lines.append(f"- {variant} {clip_id} (true: {', '.join(truth[clip_id])}): {shown}")
    text = "\n\n".join([
        "# Detection for `--sources auto` on bench-dev (offline default)",
        f"Machine: {machine_line()}.",
        "Every clip in every set variant (rendered, studio, mono: 24 mixtures). Precision: detected candidates "
        "that share a tag with a true source of the clip; recall: true sources found. Sources no chosen tagger "
        f"names, never detectable, are left out of recall: {', '.join(sorted(unnamable)) or 'none'}.",
        table(["threshold", "right / detected", "precision", "found / true", "recall"], rows),
        "## Evidence per mixture (p ≥ 0.1, p of the most probable chunk)\n\n" + "\n".join(lines),
    ]) + "\n"
    write_result("detection", text)
    print(text)
