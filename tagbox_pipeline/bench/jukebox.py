"""Issue 5 bench: one Jukebox steering step on CPU, our product path against a re-creation of the seed's step.

One steering step = decode the steered latents, ratio masks against the mixture, taggers on the
masked estimates, loss, backward, Adam step. Input: the first ``2**18`` samples (5.9 s) of bench-dev
clip d01 (44.1 kHz stereo). Weights: the random-weight, official-format checkpoint
``shared/reference/jukebox/vqvae_random_5b.pth.tar`` through our loader (random weights cost exactly
what the real ones cost; they make any quality figure meaningless, so none is given).

- **ours**: the product path. :meth:`JukeboxPrior.fit` once per chunk (not timed), then per step
  the product's own :func:`tagbox_pipeline.steering.steering_step`: ``prior.estimates``
  (straight-through quantiser, only the steered level's decoder, all sources in one batch, mixture
  STFTs and resamplers cached per chunk), the taggers on estimates and complements, the two-sided
  loss (or the multi-hot BCE when reference-faithful), backward, Adam.
- **baseline (seed step)**: our own re-creation of the TagBox seed's step (its code is not used or
  copied): one source at a time (no batching); straight-through quantisation of the latents of all
  three levels and a forward pass of all three levels' decoders, of which only level 0's audio is
  used (what the seed's VQ-VAE forward path did); the reference's STFTs at 2048/1024/512 (hop n/2)
  recomputed every step; ratio masks ``|G| / max(|X|, |G|)``; masked audio averaged over FFT sizes;
  a freshly built 44.1 -> 16 kHz resampler every step; two taggers (MTT_musicnn and MTT_vgg); BCE
  of each tagger's window-mean tag vector against the multi-hot target, averaged; backward; Adam.
  Its VQ-VAE is our module with the same weights, so the difference measured is the algorithmic work
  per step, not a different conv implementation. A step for S sources costs S baseline steps.

- **decoder alone**: level 0's decoder forward + backward w.r.t. the latents of one source, float32.
  Both the baseline and our level-0 step contain exactly this work per source, so baseline seconds per
  source / this time bounds the per-source speedup at level 0.

Each variant runs alone in a fresh Python process (same interpreter and environment, torch at 2
threads; ``python -m tagbox_pipeline.bench.jukebox --variant KEY``): it loads the VQ-VAE and the chunk,
builds only its step, runs one warm-up and ``REPEATS`` timed steps, and prints the seconds as JSON; the
variants run one after another and the table gives the medians. Timed interleaved in one process (all
variants alive at once) the figures were distorted. Writes ``bench/results/jukebox.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import julius
import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F

from ..config import load_settings
from ..errors import UserError
from ..stft import istft, ratio_mask, stft
from ..objective import SourceTags
from ..paths import shared_dir
from ..priors.jukebox import JukeboxPrior, JukeboxVQVAE, load_vqvae
from ..priors.jukebox.quantiser import straight_through
from ..steering import steering_step
from ..taggers.base import Tagger
from ..taggers.registry import get_tagger
from . import machine_line, write_result

#: chunk length in samples at 44.1 kHz (5.94 s)
CHUNK = 2**18
RATE = 44100
THREADS = 2
REPEATS = 3
#: sources requested for S = 1 and S = 3 (all named by the MagnaTagATune taggers)
SOURCES = {1: ["piano"], 3: ["piano", "drums", "guitar"]}
#: the two taggers of the baseline (the seed paired Jukebox with musicnn- and VGG-style MTT/MSD taggers)
SEED_TAGGERS = ["MTT_musicnn", "MTT_vgg"]
SEED_FFT_SIZES = (2048, 1024, 512)
LEARNING_RATE = 10.0


def checkpoint_path() -> Path:
    """The random-weight official-format checkpoint in the shared folder (UserError when absent)."""
    shared = shared_dir()
    path = None if shared is None else shared / "reference" / "jukebox" / "vqvae_random_5b.pth.tar"
    if path is None or not path.is_file():
        raise UserError("Jukebox reference checkpoint not found (set TAGBOX_SHARED or place shared/ beside the repo)")
    return path


def load_chunk() -> torch.Tensor:
    """``[2, CHUNK]`` float32: the start of bench-dev clip d01 (44.1 kHz stereo)."""
    shared = shared_dir()
    path = None if shared is None else shared / "data" / "bench-dev" / "d01" / "mixture.flac"
    if path is None or not path.is_file():
        raise UserError("bench-dev clip d01 not found (set TAGBOX_SHARED or place shared/ beside the repo)")
    audio, rate = sf.read(path, dtype="float32", always_2d=True, frames=CHUNK)
    assert rate == RATE and audio.shape[0] == CHUNK, (rate, audio.shape)
    return torch.from_numpy(np.ascontiguousarray(audio.T))


Step = Callable[[], None]


@dataclass(frozen=True)
class Variant:
    """One timed configuration: ``build(vqvae, mix)()`` runs one step for ``sources`` sources."""

    key: str
    label: str
    sources: int
    build: Callable[[JukeboxVQVAE, torch.Tensor], Step]
    note: str = ""


def ours(vqvae: JukeboxVQVAE, mix: torch.Tensor, n_sources: int, taggers: list[str] | None = None,
         **jukebox: object) -> Step:
    """The product's own steering step (:func:`tagbox_pipeline.steering.steering_step`) for the given settings,
    on the device of ``vqvae`` and ``mix``."""
    overrides: dict[str, object] = {"prior": "jukebox", **{f"jukebox.{k}": v for k, v in jukebox.items()}}
    if taggers is not None:
        overrides["taggers"] = taggers
    settings = load_settings(None, overrides)
    prior = JukeboxPrior(vqvae, settings.jukebox)
    models = [get_tagger(name, mix.device) for name in settings.taggers]
    source_tags = SourceTags.build(SOURCES[n_sources], models)
    state = prior.fit(mix, RATE, n_sources, seed=0)
    return steering_step(prior, state, mix.mean(dim=0), RATE, models, source_tags)


def seed_step(vqvae: JukeboxVQVAE, mix: torch.Tensor, source: str) -> Step:
    """Our re-creation of the seed's per-source step (see the module docstring); one source."""
    taggers: list[Tagger] = [get_tagger(name) for name in SEED_TAGGERS]
    targets = []
    for tagger, indices in zip(taggers, SourceTags.build([source], taggers).indices[0]):
        target = torch.zeros(len(tagger.tags))
        target[indices] = 1.0
        targets.append(target)
    with torch.no_grad():  # once per song in the seed: normalise, reconstruct, encode all levels
        mono = mix.mean(dim=0)
        mono = (mono / mono.abs().max())[None]
        reference = vqvae.decode(vqvae.encode(mono, 0), 0)[0]
        latents = [vqvae.latents(reference[None], level).clone().requires_grad_(True) for level in range(3)]
    optimiser = torch.optim.Adam(latents, lr=LEARNING_RATE)

    def step() -> None:
        quantised = [straight_through(lat, vqvae.codebook(level)) for level, lat in enumerate(latents)]
        decoded = [vqvae.decode_latents(q, level) for level, q in enumerate(quantised)]
        audio = decoded[0][0, :CHUNK]  # levels 1 and 2 are decoded and thrown away
        masked = []
        for n_fft in SEED_FFT_SIZES:
            spec = stft(reference, n_fft, n_fft // 2)  # recomputed every step
            mask = ratio_mask(stft(audio, n_fft, n_fft // 2).abs(), spec.abs())
            masked.append(istft(mask * spec, n_fft, n_fft // 2, CHUNK))
        estimate = torch.stack(masked).mean(dim=0)[None]
        audio16 = julius.ResampleFrac(RATE, 16000)(estimate)  # kernel rebuilt every step
        losses = []
        for tagger, target in zip(taggers, targets):
            mean_tags = tagger(audio16).mean(dim=1)[0]
            losses.append(F.binary_cross_entropy(mean_tags.clamp(1e-7, 1 - 1e-7), target))
        loss = torch.stack(losses).mean()
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()

    return step


def bf16_error(vqvae: JukeboxVQVAE, mix: torch.Tensor) -> float:
    """Relative L2 error of the steered estimates with bf16 autocast against float32 (same latents, S = 3)."""
    exact = JukeboxPrior(vqvae, load_settings(None, {"prior": "jukebox"}).jukebox)
    half = JukeboxPrior(vqvae, load_settings(None, {"prior": "jukebox", "jukebox.autocast": "bf16"}).jukebox)
    state = exact.fit(mix, RATE, 3)
    with torch.no_grad():
        a, b = exact.estimates(state), half.estimates(state)
    return float((a - b).norm() / a.norm().clamp_min(1e-12))


def decoder_step(vqvae: JukeboxVQVAE, mix: torch.Tensor) -> Step:
    """Level 0's decoder forward + backward w.r.t. the latents of one source (float32), nothing else."""
    with torch.no_grad():
        latents = vqvae.latents(mix.mean(dim=0)[None], 0).requires_grad_(True)

    def step() -> None:
        latents.grad = None
        vqvae.decode_latents(latents, 0).sum().backward()

    return step


#: the table's rows, in the order they are timed (the first is the baseline)
VARIANTS = [
    Variant("baseline", "baseline: seed step (per source, 3 decoders, 2 taggers)", 1,
            lambda vqvae, mix: seed_step(vqvae, mix, "piano"), "S sources = S separate steps"),
    Variant("ours-s1", "ours, default (level 0, taggers MTT_musicnn + MTT_vgg + spectral)", 1,
            lambda vqvae, mix: ours(vqvae, mix, 1)),
    Variant("ours-s3", "ours, default (level 0, taggers MTT_musicnn + MTT_vgg + spectral)", 3,
            lambda vqvae, mix: ours(vqvae, mix, 3)),
    Variant("ours-seed-taggers", "ours, level 0, baseline's taggers (MTT_musicnn + MTT_vgg)", 3,
            lambda vqvae, mix: ours(vqvae, mix, 3, SEED_TAGGERS), "like-for-like taggers"),
    Variant("ours-level1", "ours, levels = [1] (hop 32)", 3, lambda vqvae, mix: ours(vqvae, mix, 3, levels=[1])),
    Variant("ours-level2", "ours, levels = [2] (hop 128)", 3, lambda vqvae, mix: ours(vqvae, mix, 3, levels=[2])),
    Variant("ours-bf16", "ours, level 0, autocast = bf16", 3,
            lambda vqvae, mix: ours(vqvae, mix, 3, autocast="bf16")),
]
#: timed like a row, reported in the notes
DECODER = Variant("decoder-level0", "level-0 decoder forward + backward alone (float32)", 1, decoder_step)
BY_KEY = {variant.key: variant for variant in [*VARIANTS, DECODER]}


def time_here(key: str, repeats: int = REPEATS) -> list[float]:
    """Seconds of each of ``repeats`` steps of variant ``key``, built alone in this process after one warm-up."""
    torch.set_num_threads(THREADS)
    step = BY_KEY[key].build(load_vqvae(checkpoint_path()), load_chunk())
    step()
    times: list[float] = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def time_alone(variant: Variant) -> float:
    """Median seconds per step of ``variant``, timed by :func:`time_here` in a fresh Python process."""
    command = [sys.executable, "-m", f"{__package__}.jukebox", "--variant", variant.key]
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True)
    times: list[float] = json.loads(result.stdout.splitlines()[-1])
    print(f"{variant.key} [S={variant.sources}]: " + ", ".join(f"{t:.2f}s" for t in times), flush=True)
    return statistics.median(times)


def main() -> None:
    """Time each variant and the decoder alone in its own process and write ``bench/results/jukebox.md``."""
    started = time.perf_counter()
    medians = {variant.key: time_alone(variant) for variant in [*VARIANTS, DECODER]}
    threads_before = torch.get_num_threads()
    torch.set_num_threads(THREADS)
    try:
        error = bf16_error(load_vqvae(checkpoint_path()), load_chunk())
    finally:
        torch.set_num_threads(threads_before)
    baseline = medians[VARIANTS[0].key] / VARIANTS[0].sources

    def speedup(variant: Variant) -> float:
        """Baseline seconds per source / ``variant``'s seconds per source."""
        return baseline / (medians[variant.key] / variant.sources)

    rows = []
    for variant in VARIANTS:
        seconds = medians[variant.key]
        note = f" ({variant.note})" if variant.note else ""
        rows.append(f"| {variant.label}{note} | {variant.sources} | {seconds:.2f} | {seconds / variant.sources:.2f} | "
                    f"{speedup(variant):.2f}× |")
    decoder = medians[DECODER.key]
    default = BY_KEY["ours-s3"]
    total = time.perf_counter() - started
    lines = [
        "# Jukebox steering step (CPU)",
        "",
        f"Generated by `python -m tagbox_pipeline.bench jukebox`. Machine: {machine_line()}. No GPU was available "
        "for this task: GPU figures are not measured.",
        "",
        f"One steering step (decode the steered latents, ratio masks, taggers, loss, backward, Adam) on a "
        f"{CHUNK}-sample chunk ({CHUNK / RATE:.2f} s at 44.1 kHz, bench-dev clip d01), median of {REPEATS} "
        f"repetitions after one warm-up, each variant alone in a fresh Python process, {THREADS} torch threads, "
        f"bench run {total:.0f} s. Speedup = baseline seconds per source / variant seconds per source.",
        "",
        "| variant | S | s/step | s/step/source | speedup vs baseline |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        "- **baseline**: our re-creation of the seed's step (the seed's code does not run here and is not "
        "copied): one source at a time; all three levels quantised and decoded, level 0's audio used; mixture "
        "STFTs (2048/1024/512, hop n/2) recomputed and a 44.1 → 16 kHz resampler rebuilt every step; "
        "MTT_musicnn + MTT_vgg, BCE against the multi-hot target. Its VQ-VAE is ours with the same weights, "
        "so the speedups measure algorithmic work, not a faster convolution.",
        "- **ours**: the product path (`JukeboxPrior.fit` once, then the body of `steering.separate_chunk`'s "
        "loop). The default loss tags every estimate *and* its complement (2S tagger inputs per step); "
        "the baseline tags S.",
        f"- **Bound at level 0**: level 0's decoder forward + backward alone w.r.t. one source's latents "
        f"(float32, own process, median of {REPEATS}) takes {decoder:.2f} s. Our level-0 step contains exactly "
        f"that work for each source (the baseline contains it too), so the per-source speedup at level 0 cannot "
        f"exceed {baseline:.2f} / {decoder:.2f} = {baseline / decoder:.2f}×; the default S = {default.sources} "
        f"row measures {speedup(default):.2f}×. (The bound is for float32 arithmetic; bf16 autocast changes "
        "the arithmetic itself.)",
        f"- `levels = [1]` / `[2]` decode with the cheaper level-1/2 decoders (hop 32/128, coarser audio); "
        f"bf16 autocast changes the estimates by {error:.1e} relative L2 (float32 vs bf16 decoder, same "
        "latents). The checkpoint has **random weights**, so no quality claim follows from any row.",
        "- Each variant runs alone in a fresh Python process (same interpreter and environment), one after "
        "another: timed interleaved in one process, with all variants alive at once, the figures were distorted "
        "(that table had the baseline at 9.8 s/step).",
        "- Timings on a shared 2-core machine are contended; compare rows only within one run.",
        "- Licence: the Jukebox VQ-VAE weights are under OpenAI's Noncommercial Use License, which also "
        "covers what they create: stems made with `--prior jukebox` may not be used commercially.",
    ]
    write_result("jukebox", "\n".join(lines) + "\n")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Jukebox steering-step bench (no --variant: the whole bench)")
    parser.add_argument("--variant", choices=sorted(BY_KEY), help="time only this variant here; print JSON seconds")
    args = parser.parse_args()
    if args.variant is None:
        main()
    else:
        print(json.dumps(time_here(args.variant)))
