"""Issue 4 bench: default settings on every bench-dev clip, scored against the true stems, plus baselines.

Each clip (10 s, 44.1 kHz stereo) is separated in memory through :func:`separation.separate` (the
product path; a 10 s clip is one chunk). Scores are SI-SDR improvements of the mono sum of each stem
over the mono mixture, in dB. Baselines on the same clips:

- ``mixture``: the mixture itself for every source (0 dB by definition),
- ``equal split``: mixture / S for every source (0 dB: SI-SDR is scale-invariant),
- ``HPSS``: librosa's harmonic/percussive split; drums get the percussive part, the pitched sources
  share the harmonic part equally (all of it when there are no drums),
- ``oracle NMF``: the default prior's components (stereo KL-NTF), each given wholly to the source whose true
  magnitude it overlaps most (the best this factorisation can do with hard gates),
- ``oracle IRM``: ideal ratio masks ``|S_s| / Σ|S_j|`` from the true stems.

Writes ``bench/results/separation.md`` with the machine line.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import librosa
import numpy as np
import soundfile as sf
import torch

from ..config import Settings, load_settings
from ..errors import UserError
from ..stft import istft, stft, wiener_shares
from ..paths import shared_dir
from ..priors.nmf import NMFPrior
from ..separation import Separator
from . import machine_line, write_result
from .metrics import mono, peak_rss_mib, real_time_factor, si_sdr_improvement

#: torch threads for speed measurements (the target is "on 2 CPU cores")
THREADS = 2
#: the percussive source name that HPSS gives its percussive part to
PERCUSSIVE = "drums"


@dataclass
class Clip:
    """One bench clip: mixture and true stems ``[channels, samples]`` float32 at ``sample_rate`` Hz."""

    id: str
    sample_rate: int
    mixture: np.ndarray
    stems: dict[str, np.ndarray]

    @property
    def sources(self) -> list[str]:
        return list(self.stems)

    @property
    def seconds(self) -> float:
        return self.mixture.shape[1] / self.sample_rate


def bench_dir() -> Path:
    """The bench-dev folder in the shared data (raises UserError when it is absent)."""
    shared = shared_dir()
    if shared is None or not (shared / "data" / "bench-dev" / "manifest.json").is_file():
        raise UserError("bench-dev data not found (set TAGBOX_SHARED or place shared/ beside the repo)")
    return shared / "data" / "bench-dev"


def load_clips(folder: Path | None = None, ids: list[str] | None = None) -> list[Clip]:
    """Read the clips listed in ``folder/manifest.json`` (all, or just ``ids``)."""
    folder = folder or bench_dir()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    clips = []
    for entry in manifest["clips"]:
        if ids is not None and entry["id"] not in ids:
            continue
        read = lambda name: sf.read(folder / entry["id"] / f"{name}.flac", dtype="float32", always_2d=True)
        mixture, rate = read("mixture")
        stems = {src["name"]: read(src["name"])[0].T.copy() for src in entry["sources"]}
        clips.append(Clip(entry["id"], rate, mixture.T.copy(), stems))
    return clips


def score(estimates: dict[str, np.ndarray], clip: Clip) -> dict[str, float]:
    """SI-SDRi (dB) of each source's estimate, mono sums against the true stem and the mixture."""
    mix = mono(clip.mixture)
    return {s: si_sdr_improvement(mono(estimates[s]), mono(clip.stems[s]), mix) for s in clip.sources}


def _masked(clip: Clip, masks: np.ndarray, n_fft: int, hop: int) -> dict[str, np.ndarray]:
    """Apply masks ``[S, F, T]`` (to every channel) or ``[S, C, F, T]`` to the mixture -> estimates per source."""
    spec = stft(torch.from_numpy(clip.mixture), n_fft, hop)
    masks = masks if masks.ndim == 4 else masks[:, None]
    audio = istft(torch.from_numpy(masks).to(spec.real.dtype) * spec[None], n_fft, hop,
                  clip.mixture.shape[1])
    return dict(zip(clip.sources, audio.numpy()))


def baseline_mixture(clip: Clip, settings: Settings) -> dict[str, np.ndarray]:
    return {s: clip.mixture for s in clip.sources}


def baseline_equal_split(clip: Clip, settings: Settings) -> dict[str, np.ndarray]:
    return {s: clip.mixture / len(clip.sources) for s in clip.sources}


def baseline_hpss(clip: Clip, settings: Settings) -> dict[str, np.ndarray]:
    n_fft, hop = settings.nmf.n_fft, settings.nmf.hop
    mono_spec = stft(torch.from_numpy(clip.mixture.mean(axis=0)), n_fft, hop).numpy()
    harmonic, percussive = librosa.decompose.hpss(np.abs(mono_spec), mask=True)
    pitched = [s for s in clip.sources if s != PERCUSSIVE]
    masks = np.stack([percussive if s == PERCUSSIVE else harmonic / max(len(pitched), 1) for s in clip.sources])
    return _masked(clip, masks, n_fft, hop)


def baseline_oracle_nmf(clip: Clip, settings: Settings) -> dict[str, np.ndarray]:
    nmf = settings.nmf
    prior = NMFPrior(nmf)
    state = prior.fit(torch.from_numpy(clip.mixture), clip.sample_rate, len(clip.sources), settings.seed)
    stems = np.stack([clip.stems[s] for s in clip.sources])  # [S, channels, samples]
    truth = stft(torch.from_numpy(stems if nmf.stereo else stems.mean(axis=1, keepdims=True)), nmf.n_fft, nmf.hop).abs()
    overlap = prior.energies(state, truth)  # [S, K]
    owner = torch.nn.functional.one_hot(overlap.argmax(dim=0), len(clip.sources)).T.to(overlap.dtype)
    return _masked(clip, prior.masks_for(state, owner[:, :, None]).numpy(), nmf.n_fft, nmf.hop)


def baseline_irm(clip: Clip, settings: Settings) -> dict[str, np.ndarray]:
    n_fft, hop = settings.nmf.n_fft, settings.nmf.hop
    truth = torch.stack([stft(torch.from_numpy(clip.stems[s].mean(axis=0)), n_fft, hop).abs()
                         for s in clip.sources])
    return _masked(clip, wiener_shares(truth).numpy(), n_fft, hop)


BASELINES: dict[str, Callable[[Clip, Settings], dict[str, np.ndarray]]] = {
    "mixture": baseline_mixture,
    "equal split": baseline_equal_split,
    "HPSS": baseline_hpss,
    "oracle NMF": baseline_oracle_nmf,
    "oracle IRM": baseline_irm,
}


@dataclass
class Run:
    """Scores of one method over clips: ``scores[clip][source]`` in dB, and seconds per clip."""

    scores: dict[str, dict[str, float]]
    seconds: dict[str, float]
    failures: dict[str, str]

    def values(self, ids: list[str] | None = None) -> list[float]:
        return [v for c, per in self.scores.items() if ids is None or c in ids for v in per.values()]

    def by_class(self) -> dict[str, float]:
        groups: dict[str, list[float]] = defaultdict(list)
        for per in self.scores.values():
            for source, value in per.items():
                groups[source].append(value)
        return {s: statistics.fmean(v) for s, v in sorted(groups.items())}


#: request modes: every source of a clip in one request, or each source requested alone
MODES = ("all", "single")


def requests(clip: Clip, mode: str) -> list[list[str]]:
    """The source lists a clip is separated with in ``mode`` (see :data:`MODES`)."""
    return [clip.sources] if mode == "all" else [[source] for source in clip.sources]


def run_engine(clips: list[Clip], settings: Settings, mode: str = "all") -> tuple[Run, float]:
    """Separate every clip with ``settings`` via the product path; returns scores and mean RTF per source.

    In ``single`` mode each source is its own request and is scored alone. A request the engine
    refuses (e.g. a source no chosen tagger knows) is recorded as a failure of ``clip`` or
    ``clip/source``.
    """
    separator = Separator(settings)
    run, rtfs = Run({}, {}, {}), []
    for clip in clips:
        for sources in requests(clip, mode):
            key = clip.id if mode == "all" else f"{clip.id}/{sources[0]}"
            started = time.perf_counter()
            try:
                stems = separator.separate(clip.mixture, clip.sample_rate, sources)
            except UserError as exc:
                run.failures[key] = str(exc)
                continue
            seconds = time.perf_counter() - started
            run.seconds[key] = seconds
            rtfs.append(real_time_factor(seconds, clip.seconds, len(sources)))
            truth = Clip(clip.id, clip.sample_rate, clip.mixture, {s: clip.stems[s] for s in sources})
            run.scores.setdefault(clip.id, {}).update(score(stems.sources, truth))
    return run, statistics.fmean(rtfs) if rtfs else float("nan")


def run_baseline(clips: list[Clip], settings: Settings, method: Callable[[Clip, Settings], dict[str, np.ndarray]]
                 ) -> Run:
    """Score a baseline over the clips."""
    run = Run({}, {}, {})
    for clip in clips:
        started = time.perf_counter()
        run.scores[clip.id] = score(method(clip, settings), clip)
        run.seconds[clip.id] = time.perf_counter() - started
    return run


def fmt(value: float) -> str:
    """A dB value with sign and one decimal ('–' for NaN)."""
    return "–" if value != value else f"{value:+.1f}"


def summary_row(name: str, run: Run, ids: list[str] | None = None) -> list[str]:
    """name, mean, median, number of scored sources."""
    values = run.values(ids)
    if not values:
        return [name, "–", "–", "0"]
    return [name, fmt(statistics.fmean(values)), fmt(statistics.median(values)), str(len(values))]


def table(header: list[str], rows: list[list[str]]) -> str:
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


def main() -> None:
    """Run the default settings and the baselines over bench-dev; write ``bench/results/separation.md``."""
    torch.set_num_threads(THREADS)
    settings = load_settings()
    clips = load_clips()
    engine, rtf = run_engine(clips, settings)
    baselines = {name: run_baseline(clips, settings, method) for name, method in BASELINES.items()}
    methods = {"default (tagbox)": engine, **baselines}
    per_clip = [[c.id, s, *(fmt(m.scores.get(c.id, {}).get(s, float("nan"))) for m in methods.values())]
                for c in clips for s in c.sources]
    classes = sorted({s for c in clips for s in c.sources})
    per_class = [[s, *(fmt(m.by_class().get(s, float("nan"))) for m in methods.values())] for s in classes]
    failures = "\n".join(f"- {c}: not separated: {cause}" for c, cause in engine.failures.items()) or "- none"
    text = "\n\n".join([
        "# Separation bench (issue 4): bench-dev, default settings",
        f"Machine: {machine_line()}. The CPU may be shared with other jobs: timings are upper bounds.",
        f"Settings: prior `{settings.prior}`, taggers `{', '.join(settings.taggers)}`, steps {settings.steps}, "
        f"K={settings.nmf.components} ({'stereo KL-NTF' if settings.nmf.stereo else 'mono KL-NMF'}, spatial weight "
        f"{settings.nmf.spatial_weight:g}, {settings.nmf.block_seconds:g} s gate blocks), n_fft {settings.nmf.n_fft}, "
        f"seed {settings.seed}. Score: SI-SDRi of the mono sum in dB; oracle NMF = the same factorisation, each "
        "component given to the source it overlaps most.",
        "## Summary\n\n" + table(["method", "mean SI-SDRi", "median", "sources scored"],
                                 [summary_row(n, m) for n, m in methods.items()]),
        f"Default: real-time factor per requested source {rtf:.2f} (mean over clips; target ≤ 2.0), "
        f"peak RSS {peak_rss_mib():.0f} MiB.",
        "## Clips the default could not separate\n\n" + failures,
        "## Per source class (mean dB)\n\n" + table(["source", *methods], per_class),
        "## Per clip and source (dB)\n\n" + table(["clip", "source", *methods], per_clip),
    ]) + "\n"
    write_result("separation", text)
