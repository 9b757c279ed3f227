"""Issue 8 bench: named variants of the engine over bench-dev -> ``bench/results/quality.md``.

Each variant is a set of settings overrides on top of the defaults, run through the product path
(:func:`tagbox_pipeline.bench.separation.run_engine`). Bench-dev is split into a tuning part (the
first five clips, used to choose the default) and a confirmation part (the last three, only
reported), so a variant that wins only where it was tuned shows up as such.
"""

from __future__ import annotations

import statistics
from typing import Any

import torch

from ..config import load_settings
from ..errors import UserError
from . import machine_line, write_result
from ..separation import Separator
from .separation import THREADS, Clip, fmt, load_clips, run_engine, score, summary_row, table

TUNE = ["d01", "d02", "d03", "d04", "d05"]
CONFIRM = ["d06", "d07", "d08"]

#: the default run on a mono downmix of every clip: no stereo cue to use (how the default generalises
#: to mono material or to sources panned alike)
DOWNMIX = "default on a mono downmix (no stereo cue)"
#: variant name -> settings overrides (dotted keys, as on the command line)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    DOWNMIX: {},
    "previous default (mono NMF, MTT_musicnn + spectral, 3 s blocks)": {
        "nmf.stereo": False, "taggers": ["MTT_musicnn", "spectral"], "nmf.block_seconds": 3.0},
    "mono NMF of the downmix (nmf.stereo = false)": {"nmf.stereo": False},
    "no spatial refinement (nmf.spatial_weight = 0)": {"nmf.spatial_weight": 0.0},
    "without MTT_vgg": {"taggers": ["MTT_musicnn", "spectral"]},
    "no per-source tagger (synth by MTT_musicnn + MTT_vgg)": {"source_taggers": {}},
    "rest_logit -1": {"nmf.rest_logit": -1.0},
    "3 s gate blocks": {"nmf.block_seconds": 3.0},
    "one gate per component (no time blocks)": {"nmf.block_seconds": 0.0},
    "3 gradient steps": {"steps": 3},
}
#: variants also scored with each source requested alone (the residual share matters there)
SINGLE = ["default", "rest_logit -1"]


def downmixed(clips: list[Clip]) -> list[Clip]:
    """The clips with a one-channel mixture (the mean of its channels); stems unchanged."""
    return [Clip(c.id, c.sample_rate, c.mixture.mean(axis=0, keepdims=True), c.stems) for c in clips]


def single_source_mean(clips: list, settings) -> tuple[float, int]:
    """Mean SI-SDRi (dB) with every source requested alone, over the pairs the engine accepts."""
    separator = Separator(settings)
    values = []
    for clip in clips:
        for source in clip.sources:
            try:
                stems = separator.separate(clip.mixture, clip.sample_rate, [source])
            except UserError:  # e.g. organ alone: no chosen tagger names it
                continue
            values.append(score({source: stems.sources[source]}, Clip(clip.id, clip.sample_rate, clip.mixture,
                                                                      {source: clip.stems[source]}))[source])
    return statistics.fmean(values), len(values)


def main() -> None:
    """Run every variant over bench-dev and write the ablation table."""
    torch.set_num_threads(THREADS)
    clips = load_clips(ids=TUNE + CONFIRM)
    rows, class_rows, single_rows, failures = [], [], [], []
    classes = sorted({s for c in clips for s in c.sources})
    for name, overrides in VARIANTS.items():
        try:
            run, rtf = run_engine(downmixed(clips) if name == DOWNMIX else clips, load_settings(overrides=overrides))
        except UserError as exc:  # e.g. a tagger's weights are not installed here
            failures.append(f"- {name}: not run: {exc}")
            continue
        rows.append([*summary_row(name, run), summary_row("", run, TUNE)[1], summary_row("", run, CONFIRM)[1],
                     f"{rtf:.2f}"])
        by_class = run.by_class()
        class_rows.append([name, *(fmt(by_class.get(s, float("nan"))) for s in classes)])
        failures += [f"- {name}, {clip}: {cause}" for clip, cause in run.failures.items()]
        if name in SINGLE:
            mean, pairs = single_source_mean(clips, load_settings(overrides=overrides))
            single_rows.append([name, fmt(mean), str(pairs)])
    text = "\n\n".join([
        "# Quality ablation (issue 8): bench-dev variants",
        f"Machine: {machine_line()}. The CPU may be shared with other jobs: real-time factors are upper bounds.",
        f"Tune clips: {', '.join(TUNE)}; confirm clips: {', '.join(CONFIRM)}. Score: SI-SDRi of the mono sum (dB); "
        "RTF = seconds per requested source per second of audio.",
        table(["variant", "mean", "median", "sources", "mean tune-5", "mean confirm-3", "RTF/source"], rows),
        "## Per source class (mean dB)\n\n" + table(["variant", *classes], class_rows),
        "## Each source requested alone (mean SI-SDRi, dB)\n\nWhat a user extracting one instrument from a "
        "fuller mix gets: here the residual share (`nmf.rest_logit`) keeps what is not the source.\n\n"
        + table(["variant", "mean", "pairs"], single_rows),
        "## Clips a variant could not separate\n\n" + ("\n".join(failures) or "- none"),
    ]) + "\n"
    write_result("quality", text)

