"""Reading Jukebox VQ-VAE weights into one canonical state dict, safely.

Accepted layouts (all end up as the official key names, float32, e.g. ``encoders.0.level_blocks.0
.model.0.0.weight``):

* the official ``vqvae.pth.tar``: a dict whose ``model`` entry is the state dict, keys possibly
  prefixed ``module.`` (from DataParallel); torch's zip format or the older non-zip pickle format;
* a Hugging Face transformers ``JukeboxVQVAE`` state dict, or a ``JukeboxModel`` checkpoint whose
  VQ-VAE tensors carry the prefix ``vqvae.`` (other tensors, the transformer priors, are ignored).
  Its renamed keys are mapped back by rules (:func:`from_transformers_key`).

Files are read with ``torch.load(weights_only=True)``: a pickle that carries code is refused, never run.
Every missing, unexpected or mis-shaped tensor is a :class:`WeightsError` naming the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path

import torch

from ...errors import WeightsError
from ...weights import WeightSpec, load_state_dict, locate
from .vqvae import JukeboxVQVAE, VQVAEConfig

#: the licence of the official weights (it covers the code and the weights, and what they create)
LICENCE = "OpenAI Noncommercial Use License: no commercial use of the weights or of audio made with them"

#: the official file (primary: the code's current CDN prefix; fallback: the prefix used until 2020-11-12)
VQVAE_SPEC = WeightSpec(
    name="jukebox-5b-vqvae",
    relpath="jukebox/5b/vqvae.pth.tar",
    sha256=None,  # not published; size and sha256 are recorded beside the file on the first fetch
    urls=("https://openaipublic.azureedge.net/jukebox/models/5b/vqvae.pth.tar",
          "https://openaipublic.blob.core.windows.net/jukebox/models/5b/vqvae.pth.tar"),
    licence=LICENCE,
)

#: where the initial release kept it; urllib cannot read gs:// (use `gsutil cp` and then --weights)
DOCUMENTED_GS_URL = "gs://jukebox-assets/models/5b/vqvae.pth.tar"

#: environment variable naming a local weights file (offline use), like ``--weights``
WEIGHTS_ENV = "TAGBOX_JUKEBOX_WEIGHTS"

_HF_PREFIX = "vqvae."
_DDP_PREFIX = "module."
_HF_MARKERS = ("downsample_block", "upsample_block", "resnet_block", "proj_in", "proj_out", "codebook")
_ENC_STAGE = re.compile(r"^(encoders\.\d+\.level_blocks\.\d+)\.downsample_block\.(\d+)\.")
_ENC_PROJ = re.compile(r"^(encoders\.\d+\.level_blocks\.(\d+))\.proj_out\.")
_DEC_PROJ = re.compile(r"^(decoders\.\d+\.level_blocks\.\d+)\.proj_in\.")
_DEC_STAGE = re.compile(r"^(decoders\.\d+\.level_blocks\.\d+)\.upsample_block\.(\d+)\.")
_RES_UNIT = re.compile(r"\.resnet_block\.(\d+)\.conv1d_([12])\.")
_CODEBOOK = re.compile(r"^(bottleneck\.level_blocks\.\d+)\.codebook$")


def from_transformers_key(key: str, config: VQVAEConfig = VQVAEConfig()) -> str:
    """Official name of a transformers ``JukeboxVQVAE`` key (without the ``vqvae.`` prefix).

    Rules: encoder ``downsample_block.n`` -> ``model.{n // 2}.{n % 2}`` and ``proj_out`` ->
    ``model.{downs_t[l]}``; decoder ``proj_in`` -> ``model.0`` and ``upsample_block.n`` ->
    ``model.{n // 2 + 1}.{n % 2}``; residual ``resnet_block.d.conv1d_1/2`` -> ``model.d.model.1/3``;
    ``codebook`` -> ``k``. Other keys (``decoders.L.out``) are unchanged.
    """
    key = _ENC_STAGE.sub(lambda m: f"{m[1]}.model.{int(m[2]) // 2}.{int(m[2]) % 2}.", key)
    key = _ENC_PROJ.sub(lambda m: f"{m[1]}.model.{config.downs_t[int(m[2])]}.", key)
    key = _DEC_PROJ.sub(lambda m: f"{m[1]}.model.0.", key)
    key = _DEC_STAGE.sub(lambda m: f"{m[1]}.model.{int(m[2]) // 2 + 1}.{int(m[2]) % 2}.", key)
    key = _RES_UNIT.sub(lambda m: f".model.{m[1]}.model.{1 if m[2] == '1' else 3}.", key)
    return _CODEBOOK.sub(lambda m: f"{m[1]}.k", key)


@lru_cache(maxsize=4)
def expected_shapes(config: VQVAEConfig = VQVAEConfig()) -> dict[str, tuple[int, ...]]:
    """Canonical key -> tensor shape of the VQ-VAE described by ``config`` (built on the meta device)."""
    with torch.device("meta"):
        model = JukeboxVQVAE(config)
    return {key: tuple(value.shape) for key, value in model.state_dict().items()}


def _state_dict_of(payload: object, path: Path) -> Mapping[str, object]:
    """The tensor mapping inside a loaded checkpoint (official ``{"model": ...}`` or a plain state dict)."""
    if isinstance(payload, Mapping) and isinstance(payload.get("model"), Mapping):
        return payload["model"]
    if isinstance(payload, Mapping) and payload and all(isinstance(v, torch.Tensor) for v in payload.values()):
        return payload
    raise WeightsError("not a Jukebox VQ-VAE checkpoint (no 'model' state dict and no tensor mapping inside)", path)


def canonical_state(raw: Mapping[str, object], path: Path, config: VQVAEConfig = VQVAEConfig()
                    ) -> dict[str, torch.Tensor]:
    """Rename ``raw`` to the official layout and check it name by name and shape by shape.

    Raises:
        WeightsError: naming ``path`` and the missing, unexpected or mis-shaped tensors (first few of each).
    """
    items = {(k[len(_DDP_PREFIX):] if k.startswith(_DDP_PREFIX) else k): v for k, v in raw.items()}
    if any(k.startswith(_HF_PREFIX) for k in items):  # a JukeboxModel checkpoint: keep only the VQ-VAE
        items = {k[len(_HF_PREFIX):]: v for k, v in items.items() if k.startswith(_HF_PREFIX)}
    if any(marker in k for k in items for marker in _HF_MARKERS):
        renamed = {from_transformers_key(k, config): v for k, v in items.items()}
        if len(renamed) != len(items):
            raise WeightsError("transformers-layout keys collide after renaming (duplicate tensors)", path)
        items = renamed
    expected = expected_shapes(config)
    missing = [k for k in expected if k not in items]
    unexpected = [k for k in items if k not in expected]
    misshaped = [f"{k} {tuple(v.shape)} (expected {expected[k]})" for k, v in items.items()
                 if k in expected and (not isinstance(v, torch.Tensor) or tuple(v.shape) != expected[k])]
    problems = [f"{label} {len(keys)}: {', '.join(keys[:3])}{' …' if len(keys) > 3 else ''}"
                for label, keys in (("missing", missing), ("unexpected", unexpected), ("mis-shaped", misshaped))
                if keys]
    if problems:
        raise WeightsError("not the Jukebox 5b VQ-VAE (" + "; ".join(problems) + ")", path)
    if any(not v.is_floating_point() for v in items.values()):
        raise WeightsError("Jukebox VQ-VAE tensors must be floating point", path)
    return {k: items[k].to(torch.float32) for k in expected}


def load_checkpoint(path: str | Path, config: VQVAEConfig = VQVAEConfig()) -> dict[str, torch.Tensor]:
    """Read a VQ-VAE weights file (any accepted layout) into the canonical float32 state dict.

    Raises:
        WeightsError: naming the file, when it is missing, unreadable, carries pickled code, or does
            not hold exactly the 5b VQ-VAE's tensors.
    """
    path = Path(path)
    return canonical_state(_state_dict_of(load_state_dict(path), path), path, config)


def resolve_weights(explicit: str | Path | None) -> Path:
    """The weights file to use: ``explicit`` (``--weights``), else ``$TAGBOX_JUKEBOX_WEIGHTS``, else the
    model dir / cache (``tagbox models fetch jukebox-5b-vqvae``).

    Raises:
        WeightsError: when the named file does not exist, or nothing is found (saying how to get it).
    """
    chosen = explicit if explicit is not None else os.environ.get(WEIGHTS_ENV) or None
    if chosen is None:
        try:
            return locate(VQVAE_SPEC)
        except WeightsError as exc:
            raise WeightsError(f"{exc.cause}; offline, point --weights or ${WEIGHTS_ENV} at a copy of "
                               "vqvae.pth.tar", exc.path) from None
    path = Path(chosen).expanduser()
    if not path.is_file():
        origin = "--weights" if explicit is not None else WEIGHTS_ENV
        raise WeightsError(f"Jukebox VQ-VAE weights file not found (from {origin})", path)
    return path


def load_vqvae(path: str | Path, device: str | torch.device = "cpu") -> JukeboxVQVAE:
    """A frozen :class:`JukeboxVQVAE` (eval mode, no gradients on weights) with the weights of ``path``."""
    model = JukeboxVQVAE()
    model.load_state_dict(load_checkpoint(path), strict=True)
    return model.freeze().to(device)
