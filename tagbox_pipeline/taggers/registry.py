"""Tagger registry: every tagger name -> how to load it and what users should know about it.

The four original musicnn models read the checkpoints of the ``musicnn`` wheel (the installed package,
or ``tagbox models fetch musicnn``); the eight sota taggers need their weights (``TAGBOX_MODEL_DIR``
or ``tagbox models fetch NAME``).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..errors import UserError
from ..weights import is_present, locate, verify
from . import musicnn_wheel, sota
from .base import Tagger
from .spectral import SpectralTagger

ORIGINAL_NAMES = ("MTT_musicnn", "MTT_vgg", "MSD_musicnn", "MSD_vgg")
DESCRIPTOR_NAMES = ("spectral",)


@dataclass(frozen=True)
class TaggerInfo:
    """What `tagbox taggers` shows about one tagger (input length in samples at 16 kHz; ``weights``:
    the name `tagbox models fetch` takes for its weights, empty when it needs none)."""

    name: str
    dataset: str
    input_samples: int
    weights_present: bool
    licence: str
    weights: str = ""

    @property
    def fetch_command(self) -> str:
        """The command that installs this tagger's weights (``tagbox models fetch musicnn`` for the
        four original musicnn taggers); empty when it needs none."""
        return f"tagbox models fetch {self.weights}" if self.weights else ""


def _original_info(name: str) -> TaggerInfo:
    return TaggerInfo(name, "mtat" if name.startswith("MTT") else "msd", 48000, musicnn_wheel.is_present(),
                      musicnn_wheel.LICENCE, musicnn_wheel.NAME)


def _original_load(name: str, device: str) -> Tagger:
    from .musicnn_tf import load_original

    return load_original(name, device)


def _original_digest(name: str) -> str:
    """sha256 of the wheel's checkpoint data of an original musicnn model."""
    from ..files import sha256_file

    return sha256_file(musicnn_wheel.package_dir() / name / ".data-00000-of-00001")


def _sota_info(name: str) -> TaggerInfo:
    spec = sota.weight_spec(name)
    arch, dataset = name.split("-")
    return TaggerInfo(name, dataset, sota.INPUT_SAMPLES[arch], is_present(spec), spec.licence, spec.name)


@dataclass(frozen=True)
class Family:
    """One kind of tagger: its names, and how to describe, load and fingerprint one of them."""

    names: tuple[str, ...]
    info: Callable[[str], TaggerInfo]
    load: Callable[[str, str], Tagger]
    digest: Callable[[str], str]


#: every tagger family, in listing order
FAMILIES = (
    Family(ORIGINAL_NAMES, _original_info, _original_load, _original_digest),
    Family(tuple(sorted(sota.SOTA_MODELS)), _sota_info, sota.load_sota,
           lambda name: verify(sota.weight_spec(name), locate(sota.weight_spec(name)))),
    Family(DESCRIPTOR_NAMES, lambda name: TaggerInfo(name, "spectral", 48000, True, "GPL-3.0-or-later (no weights)"),
           lambda name, device: SpectralTagger().to(device).freeze(), lambda name: "none (no weights)"),
)


def tagger_names() -> list[str]:
    """All registered tagger names: the original musicnn models, the sota ones, then the descriptors."""
    return [name for family in FAMILIES for name in family.names]


def _family(name: str) -> Family:
    """The family of ``name``.

    Raises:
        UserError: unknown name, listing close and known ones.
    """
    for family in FAMILIES:
        if name in family.names:
            return family
    close = difflib.get_close_matches(name, tagger_names(), n=3, cutoff=0.4)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    raise UserError(f"unknown tagger {name!r}{hint}; known taggers: {', '.join(tagger_names())}")


def info(name: str) -> TaggerInfo:
    """Registry facts about one tagger."""
    return _family(name).info(name)


def list_taggers() -> list[TaggerInfo]:
    """Facts about every registered tagger."""
    return [info(name) for name in tagger_names()]


@lru_cache(maxsize=None)
def _load(name: str, device: str) -> Tagger:
    return _family(name).load(name, device)


def get_tagger(name: str, device: str | torch.device = "cpu") -> Tagger:
    """A frozen tagger on ``device``, loaded once per process.

    Raises:
        UserError: unknown name (listing the known ones); WeightsError: weights missing or corrupt.
    """
    _family(name)
    return _load(name, str(torch.device(device)))


@lru_cache(maxsize=None)
def weights_digest(name: str) -> str:
    """sha256 of the weights file a tagger loads (for the original models: the wheel's checkpoint data)."""
    return _family(name).digest(name)
