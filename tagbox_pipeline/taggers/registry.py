"""Tagger registry: every tagger name -> how to load it and what users should know about it.

The four original musicnn models ship inside the pip ``musicnn`` wheel (no download); the eight sota
taggers need their weights (``TAGBOX_MODEL_DIR`` or ``tagbox models fetch NAME``).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from functools import lru_cache

import torch

from ..errors import UserError
from ..weights import is_present, locate, verify
from . import sota
from .base import Tagger
from .spectral import SpectralTagger

ORIGINAL_NAMES = ("MTT_musicnn", "MTT_vgg", "MSD_musicnn", "MSD_vgg")
DESCRIPTOR_NAMES = ("spectral",)


@dataclass(frozen=True)
class TaggerInfo:
    """What `tagbox taggers` shows about one tagger (input length in samples at 16 kHz)."""

    name: str
    dataset: str
    input_samples: int
    weights_present: bool
    licence: str


def tagger_names() -> list[str]:
    """All registered tagger names: the original musicnn models first, then the sota ones."""
    return list(ORIGINAL_NAMES) + sorted(sota.SOTA_MODELS) + list(DESCRIPTOR_NAMES)


def _check(name: str) -> None:
    if name not in tagger_names():
        close = difflib.get_close_matches(name, tagger_names(), n=3, cutoff=0.4)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"unknown tagger {name!r}{hint}; known taggers: {', '.join(tagger_names())}")


def info(name: str) -> TaggerInfo:
    """Registry facts about one tagger."""
    _check(name)
    if name in ORIGINAL_NAMES:
        return TaggerInfo(name, "mtat" if name.startswith("MTT") else "msd", 48000, True, "ISC (musicnn, MTG-UPF)")
    if name in DESCRIPTOR_NAMES:
        return TaggerInfo(name, "spectral", 48000, True, "GPL-3.0-or-later (no weights)")
    spec = sota.weight_spec(name)
    arch, dataset = name.split("-")
    return TaggerInfo(name, dataset, sota.INPUT_SAMPLES[arch], is_present(spec), spec.licence)


def list_taggers() -> list[TaggerInfo]:
    """Facts about every registered tagger."""
    return [info(name) for name in tagger_names()]


@lru_cache(maxsize=None)
def _load(name: str, device: str) -> Tagger:
    if name in ORIGINAL_NAMES:
        from .musicnn_tf import load_original

        return load_original(name, device)
    if name in DESCRIPTOR_NAMES:
        return SpectralTagger().to(device).freeze()
    return sota.load_sota(name, device)


def get_tagger(name: str, device: str | torch.device = "cpu") -> Tagger:
    """A frozen tagger on ``device``, loaded once per process.

    Raises:
        UserError: unknown name (listing the known ones); WeightsError: weights missing or corrupt.
    """
    _check(name)
    return _load(name, str(torch.device(device)))


@lru_cache(maxsize=None)
def weights_digest(name: str) -> str:
    """sha256 of the weights file a tagger loads (for the original models: the wheel's checkpoint data)."""
    _check(name)
    if name in DESCRIPTOR_NAMES:
        return "none (no weights)"
    if name in ORIGINAL_NAMES:
        import importlib.util
        from pathlib import Path

        from ..files import sha256_file

        package = Path(importlib.util.find_spec("musicnn").submodule_search_locations[0])
        return sha256_file(package / name / ".data-00000-of-00001")
    return verify(sota.weight_spec(name), locate(sota.weight_spec(name)))
