"""Ablation: named variants of the engine on the cells that have no wide-pan cue -> ``bench/results/ablation.md``.

Each variant is a set of settings overrides on top of the offline default, scored on ``studio × all``,
``mono × all`` and ``studio × single`` (see :mod:`.quality`), split into tune and confirm clips; a
variant that only wins where it was tuned shows up as such. A variant whose weights are not
installed is listed as not run. The table is rewritten after every variant (those still to come are
listed as not run yet), so a run cut short keeps what it measured; variants run cheapest first.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import UserError
from . import machine_line, write_result
from .quality import CONFIRM, TUNE, offline_settings, variant_clips
from .separation import THREADS, load_clips, run_engine, summary_row, table

#: the cells every variant is scored on: (set variant, request mode)
CELLS = [("studio", "all"), ("mono", "all"), ("studio", "single")]
#: variant name -> settings overrides (dotted keys, as on the command line)
VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "components heard alone (nmf.context_gain = 0, the default before 2026-12-06 evening)":
        {"nmf.context_gain": 0.0},
    "occlusion evidence (nmf.evidence = occlusion)": {"nmf.evidence": "occlusion"},
    "isolated + occlusion evidence (nmf.evidence = both)": {"nmf.evidence": "both"},
    "rest_logit 0 (the default before 2026-12-02)": {"nmf.rest_logit": 0.0},
    "softer rivals (rivals.logit_offset = 0)": {"rivals.logit_offset": 0.0},
    "faint rivals at the usual offset (rivals.faint_logit_offset = -1, the default before 2026-12-07)":
        {"rivals.faint_logit_offset": -1.0},
    "sharper share-out (nmf.temperature = 0.25)": {"nmf.temperature": 0.25},
    "without MTT_vgg": {"taggers": ["MTT_musicnn", "spectral"]},
    "no spatial cue (nmf.spatial_weight = 0)": {"nmf.spatial_weight": 0.0},
    "no register cue (nmf.register_weight = 0)": {"nmf.register_weight": 0.0},
    "no envelope cue (nmf.envelope_weight = 0)": {"nmf.envelope_weight": 0.0},
    "no harmonics cue (nmf.harmonics_weight = 0, the default before 2026-12-06 night)":
        {"nmf.harmonics_weight": 0.0},
    "no timbre cues (the default before 2026-12-06)": {"nmf.register_weight": 0.0, "nmf.envelope_weight": 0.0,
                                                       "nmf.harmonics_weight": 0.0, "rivals.cue_trust": 1.0},
    "rivals' cues in full (rivals.cue_trust = 1)": {"rivals.cue_trust": 1.0},
    "mono NMF of the downmix (nmf.stereo = false)": {"nmf.stereo": False},
    "3 s gate blocks": {"nmf.block_seconds": 3.0},
    "one gate per component (no time blocks)": {"nmf.block_seconds": 0.0},
    "no transient cue for drums (nmf.transient_weight = 0)": {"nmf.transient_weight": 0.0},
    "no percussive drum detection (rivals.percussive_share = 1)": {"rivals.percussive_share": 1.0},
    "neither drum cue (the default before 2026-12-06 midday)": {"nmf.transient_weight": 0.0,
                                                                "rivals.percussive_share": 1.0},
    "no component groups (nmf.groups = 0)": {"nmf.groups": 0},
    "groups and 1 gradient step (steps = 1)": {"steps": 1},
    "no groups, 1 gradient step (the default before 2026-12-06 evening)": {"nmf.groups": 0, "steps": 1},
    "12 component groups (nmf.groups = 12)": {"nmf.groups": 12},
    "group evidence at half weight of a component's (nmf.group_weight = 0.5)": {"nmf.group_weight": 0.5},
    "every component tagged (nmf.quiet_share = 0)": {"nmf.quiet_share": 0.0},
    "steps score the complements too (steps = 1, nmf.step_complements = true)": {"steps": 1,
                                                                                  "nmf.step_complements": True},
    "steps score the rivals too (steps = 1, rivals.in_loss = true)": {"steps": 1, "rivals.in_loss": True},
    "steps for every request (steps = 1, nmf.step_max_sources = 8)": {"steps": 1, "nmf.step_max_sources": 8},
    "3 gradient steps": {"steps": 3},
    "64 components": {"nmf.components": 64},
    "10 gradient steps at lr 0.5": {"steps": 10, "nmf.learning_rate": 0.5},
}


def render(rows: list[list[str]], failures: list[str], pending: list[str]) -> str:
    """The ablation table of the variants measured so far; ``pending`` are listed as not run yet."""
    header = ["variant"] + [f"{v} × {m} {part}" for v, m in CELLS for part in ("mean", "tune-5", "confirm-3")]
    return "\n\n".join([
        "# Ablation: engine variants on the studio and mono cells (offline default + overrides)",
        f"Machine: {machine_line()}. The CPU may be shared with other jobs: real-time factors are upper bounds.",
        f"Tune clips: {', '.join(TUNE)}; confirm clips: {', '.join(CONFIRM)}. Mean SI-SDRi of the mono sum (dB); "
        "RTF = seconds per requested source per second of audio, in the last cell.",
        table([*header, "RTF/source"], rows),
        "## Requests a variant could not separate\n\n" + ("\n".join(failures) or "- none"),
        "## Not run yet\n\n" + ("\n".join(f"- {name}" for name in pending) or "- none"),
    ]) + "\n"


def main() -> None:
    """Score every variant on :data:`CELLS`, rewriting the ablation table after each one."""
    torch.set_num_threads(THREADS)
    clips = variant_clips(load_clips(ids=TUNE + CONFIRM))
    rows: list[list[str]] = []
    failures: list[str] = []
    names = list(VARIANTS)
    for done, name in enumerate(names, start=1):
        row = [name]
        for variant, mode in CELLS:
            try:
                run, rtf = run_engine(clips[variant], offline_settings(VARIANTS[name]), mode)
            except UserError as exc:  # e.g. a tagger's weights are not installed here
                failures.append(f"- {name}: not run: {exc}")
                break
            row += [summary_row("", run)[1], summary_row("", run, TUNE)[1], summary_row("", run, CONFIRM)[1]]
            failures += [f"- {name}, {variant} × {mode}, {what}: {cause}" for what, cause in run.failures.items()]
        else:
            rows.append([*row, f"{rtf:.2f}"])
        write_result("ablation", render(rows, failures, names[done:]))
