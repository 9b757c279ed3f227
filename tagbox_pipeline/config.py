"""All settings in one pydantic model, read from TOML and overridable by CLI flags.

Every section forbids unknown keys, so a typo is an error that names the key. Names of taggers,
sources and post plugins are checked a layer up (:mod:`tagbox_pipeline.settings_check`). The settings hash
(:meth:`Settings.digest`) is part of every cache key (Prefect tasks, the sweep's up-to-date check).
Sections are owned by the module they configure; add fields there, with units in the description.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .errors import ConfigError


class Section(BaseModel):
    """Base for every settings section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ChunkSettings(Section):
    """How a track is cut into context windows (see :mod:`tagbox_pipeline.chunking`)."""

    window_seconds: float = Field(
        1048576 / 44100, gt=0, description="window length in s (default: Jukebox context, 2**20 samples at 44.1 kHz)"
    )
    overlap_seconds: float = Field(2.0, ge=0, description="crossfade length between windows in s")
    margin_seconds: float = Field(
        1.0, ge=0, description="context read beyond each side of a window's kept region and discarded, in s"
    )


class NMFSettings(Section):
    """The default CPU prior: KL-NTF components shared out between sources by tagger-steered gates."""

    components: int = Field(32, ge=2, le=512, description="number of NMF components K")
    stereo: bool = Field(True, description="factorise all channels jointly, each component with its own channel "
                                           "gains (NTF); false: factorise the mono downmix (plain NMF)")
    n_fft: int = Field(2048, ge=256, description="STFT size in samples at the input rate")
    hop: int = Field(512, ge=64, description="STFT hop in samples at the input rate")
    nmf_iterations: int = Field(150, ge=1, description="multiplicative-update iterations of the KL-NTF (NMF) fit")
    update_exponent: float = Field(1.5, gt=0, lt=2, description="exponent of each multiplicative update's factor "
                                   "(1: plain updates; 1.5: a longer step, about twice the fit per iteration)")
    pitched_start: int | Literal["auto"] = Field(
        "auto", description="components whose spectra start as harmonic combs at the mixture's most salient "
                            "pitches (semitones 41 Hz-2.5 kHz; capped at components), the others random; "
                            "0: all random; 'auto' (default): components x (1 - the chunk mixture's percussive "
                            "share), so a drum kit keeps random starts in proportion to its energy")
    temperature: float = Field(0.5, gt=0, description="softmax temperature of the competitive share-out")
    rest_logit: float = Field(-2.0, description="gate logit of the residual's share: -2 (default) gives it what "
                                                "sounds much less like any steered source (requested or rival) "
                                                "than an average component; 0 sends more doubt to the residual "
                                                "(see bench/results/quality.md)")
    evidence: Literal["isolated", "occlusion", "both"] = Field(
        "isolated", description="how the warm start hears a component: 'isolated' (each component tagged, over "
                                "the mixture context_gain down), "
                                "'occlusion' (the mixture tagged without it: what the taggers miss when it is "
                                "gone), 'both' (their logits added; twice the tagging; see bench/results/ablation.md)")
    context_gain: float = Field(0.1, ge=0, description="the isolated evidence hears each component over the chunk's "
                                                       "mixture at this gain (default 0.1: the mixture 20 dB down, "
                                                       "so a fragment is heard in the music it belongs to; 0: the "
                                                       "component alone, the default before 2026-12-06 evening)")
    quiet_share: float = Field(0.01, ge=0, lt=1, description="in each tagger window, the quietest components that "
                                                             "together hold less than this share of its energy are "
                                                             "not tagged alone (neutral evidence; 0: all are)")
    groups: int = Field(6, ge=0, description="the warm start also tags this many groups of components that sit and "
                                             "sound alike (k-means on the direction, register, envelope and "
                                             "harmonics cues; one more tagging per group), each adding "
                                             "group_weight x its evidence "
                                             "to its components (0, or fewer than two components per group: "
                                             "components alone)")
    group_weight: float = Field(0.25, ge=0, description="weight of a group's tag evidence beside its components' own")
    learning_rate: float = Field(0.15, gt=0, description="Adam learning rate of the gates")
    step_max_sources: int = Field(2, ge=1, description="the gradient steps (steps > 0) run when at most this many "
                                                       "sources are requested (a step's time and memory grow with the "
                                                       "sources it scores; a larger request gets the warm start alone)")
    step_complements: bool = Field(False, description="a gradient step also scores each estimate's complement (the "
                                                      "mixture without it) as not its source; false (default): the "
                                                      "estimates alone (half the taggings of a step)")
    block_seconds: float = Field(5.0, ge=0,
                                 description="time-block length of the gates in s (0: one gate per component)")
    spatial_weight: float = Field(1.0, ge=0, description="weight of the spatial cue in the warm start: each source's "
                                                         "components pulled towards one direction (0: tags only)")
    spatial_min_spread_degrees: float = Field(5.0, gt=0, description="smallest angular spread of a source's "
                                                                     "components, in degrees")
    register_weight: float = Field(0.5, ge=0, description="weight of the register cue in the warm start: each source's "
                                                          "components pulled towards one register (log2 Hz of their "
                                                          "strongest bin; 0: off)")
    envelope_weight: float = Field(0.3, ge=0, description="weight of the envelope cue in the warm start: each source's "
                                                          "components pulled towards one spectral envelope (cepstrum "
                                                          "of the log mel spectrum; 0: off)")
    harmonics_weight: float = Field(1.0, ge=0, description="weight of the harmonics cue in the warm start: each "
                                                           "source's components pulled towards one harmonic profile "
                                                           "(relative strengths of the first 8 harmonics over the "
                                                           "component's own fundamental; 0: off)")
    transient_weight: float = Field(4.0, ge=0, description="weight of the transient cue in the warm start: a drum "
                                                           "kit's share of each component is raised by this x the "
                                                           "component's transience (the burst share of its "
                                                           "activation, in [0, 1]; 0: off)")
    spatial_rounds: int = Field(5, ge=0, description="rounds of the warm start's refinement by the cues (direction, "
                                                     "register, envelope, harmonics <-> shares)")


class RivalSettings(Section):
    """The other instruments a chunk is separated against (see :mod:`tagbox_pipeline.rivals`)."""

    enabled: bool = Field(True, description="steer the requested sources against the other instruments the "
                                            "taggers hear in each chunk (their stems go to the residual)")
    candidates: list[str] = Field(
        default_factory=lambda: ["drums", "bass", "piano", "guitar", "vocals", "strings", "flute", "synth",
                                 "harpsichord", "harp", "sitar"],
        description="instruments that may be rivals (one per family of tags)")
    max_requested: int = Field(1, ge=0, description="rivals are looked for when at most this many sources are "
                                                    "requested, or when none of them has a tag (more sources "
                                                    "compete among themselves; see bench/results/quality.md)")
    threshold: float = Field(0.1, ge=0, le=1, description="p(instrument | chunk mixture) from which it is a rival")
    percussive_share: float = Field(0.2, ge=0, le=1, description="a drum kit is heard (as a rival, and by --sources "
                                                                 "auto) when at least this share of the chunk "
                                                                 "mixture's energy is percussive (HPSS), with that "
                                                                 "share as its evidence if the tags give less (1: "
                                                                 "the tags alone)")
    max_count: int = Field(4, ge=0, description="most rivals per chunk (the most probable first)")
    unnamed_min: int = Field(1, ge=0, description="rivals kept, heard or not, when no requested source has a tag "
                                                  "(each is scored as what the named ones leave)")
    in_loss: bool = Field(False, description="gradient steps (steps > 0, two-sided loss) score the rivals' "
                                             "estimates too; false (default): only the requested sources (the "
                                             "rivals move through the competition; a step costs a fraction)")
    logit_offset: float = Field(-1.0, description="added to the rivals' gate logits in the warm start: below 0 a "
                                                 "rival takes only the components clearly its own")
    faint_below: float = Field(0.2, ge=0, le=1, description="a rival heard with p(instrument | chunk mixture) below "
                                                            "this is faint (the taggers barely hear it, or hear the "
                                                            "requested source as it)")
    faint_logit_offset: float = Field(-6.0, description="added instead of logit_offset to a faint rival's gate "
                                                        "logits, when a requested source has a tag: it takes only "
                                                        "components that sound far more like it than like the "
                                                        "request (a source without a tag gets logit_offset for "
                                                        "every rival: they define it)")
    cue_trust: float = Field(0.5, ge=0, le=1, description="scale of a rival's consistency cues (direction, register, "
                                                         "envelope) in the warm start: it holds only part of its "
                                                         "instrument, so where its share sits is less certain")


class DetectionSettings(Section):
    """``--sources auto``: which instruments get a stem (see :mod:`tagbox_pipeline.detection`)."""

    threshold: float = Field(0.2, ge=0, le=1, description="p(instrument | chunk mixture), in its most probable chunk, "
                                                         "from which an instrument of rivals.candidates gets a stem")
    max_sources: int = Field(6, ge=1, description="most stems written for a track (the most probable first)")


class JukeboxSettings(Section):
    """The GPU prior: Jukebox 5b VQ-VAE latents. Its weights are for non-commercial use only."""

    weights: Path | None = Field(None, description="path to vqvae.pth.tar (else $TAGBOX_JUKEBOX_WEIGHTS, else cache)")
    levels: list[Literal[0, 1, 2]] = Field(
        [0], min_length=1, description="VQ-VAE level(s) steered: 0 (hop 8), 1 (hop 32), 2 (hop 128); only these "
                                       "are decoded, their audio averaged")
    learning_rate: float = Field(10.0, gt=0, description="Adam learning rate on the latents")
    fft_sizes: list[Annotated[int, Field(ge=64)]] = Field([2048, 1024, 512], min_length=1,
                                 description="FFT sizes of the ratio masks, in samples at the chunk's rate")
    peak_normalise: bool = Field(False, description="scale each chunk's mono downmix to peak 1 before encoding")
    autocast: Literal["off", "bf16", "fp16"] = Field(
        "off", description="mixed precision of the decoder: bf16/fp16 on CUDA, bf16 on CPU")
    reference_faithful: bool = Field(False, description="reproduce the seed code's choices (not its codebook bug)")


class PluginSpec(Section):
    """One pedalboard plugin: its class name and keyword parameters."""

    plugin: str = Field(description="pedalboard class name, e.g. 'Compressor'")
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)


class WatchSettings(Section):
    """Watch-folder behaviour."""

    stable_seconds: float = Field(2.0, ge=0, description="size and mtime must hold still this long, in s")
    poll_seconds: float = Field(0.5, gt=0, description="how often pending files are re-checked, in s")


class RunSettings(Section):
    """How the watch and the sweep run each track (see :mod:`tagbox_pipeline.pipeline.track_runs`)."""

    mode: Literal["deployment", "in-process"] = Field(
        "deployment", description="'deployment': each track is its own run of the separate-track/track "
                                  "deployment (own process, retried and re-run on its own); 'in-process': a "
                                  "child run in the watcher's or sweep's process (no start-up cost per track)")
    concurrency: int = Field(1, ge=1, description="tracks separated at the same time")


class Settings(Section):
    """Everything that changes what the pipeline produces (plus a few run-time knobs)."""

    prior: Literal["nmf", "jukebox"] = "nmf"
    taggers: list[str] = Field(
        default_factory=lambda: ["MTT_musicnn", "MTT_vgg", "spectral"],
        description="tagger names (see `tagbox taggers`)"
    )
    source_taggers: dict[str, list[str]] = Field(
        default_factory=lambda: {"synth": ["fcn-jamendo"]},
        description="extra taggers consulted only for the named sources, when their weights are installed "
                    "(default chosen by the quality bench: MTG-Jamendo's 'synthesizer' tag for synth)")
    steps: int = Field(0, ge=0, description="gradient steps per chunk after the tagging warm start, for requests "
                                            "of at most nmf.step_max_sources sources (0, the default: warm start "
                                            "only; 1 adds about 0.1 dB on single-stem requests for a fifth more "
                                            "time; see README)")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    format: Literal["wav", "flac"] = "wav"
    chunk: ChunkSettings = Field(default_factory=ChunkSettings)
    nmf: NMFSettings = Field(default_factory=NMFSettings)
    rivals: RivalSettings = Field(default_factory=RivalSettings)
    detection: DetectionSettings = Field(default_factory=DetectionSettings)
    jukebox: JukeboxSettings = Field(default_factory=JukeboxSettings)
    post: dict[str, list[PluginSpec]] = Field(default_factory=dict, description="per-source pedalboard chains")
    watch: WatchSettings = Field(default_factory=WatchSettings)
    runs: RunSettings = Field(default_factory=RunSettings)

    def digest(self) -> str:
        """sha256 (hex) of the settings that change the stems; run-time knobs (device, watch, runs) excluded."""
        payload = self.model_dump(mode="json", exclude={"device", "watch", "runs"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    message = first["msg"].removeprefix("Value error, ")
    return f"setting '{key}': {message}" if key else f"setting {message}"


def load_settings(path: Path | None = None, overrides: dict[str, Any] | None = None) -> Settings:
    """Read settings from a TOML file (optional) and apply flat or dotted CLI overrides.

    Args:
        path: TOML file; its top-level keys are :class:`Settings` fields, sections are tables.
        overrides: values from CLI flags, e.g. ``{"steps": 2, "nmf.components": 16}``; None values are ignored.

    Raises:
        ConfigError: naming the file and the bad key, for unreadable TOML or invalid settings.
    """
    data: dict[str, Any] = {}
    if path is not None:
        try:
            data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("config file not found", path) from None
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"not valid TOML ({exc})", path) from None
    for dotted, value in (overrides or {}).items():
        if value is None:
            continue
        target = data
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        target[leaf] = value
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc), path) from None
