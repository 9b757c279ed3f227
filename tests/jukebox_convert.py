"""Test helpers: write a Jukebox VQ-VAE checkpoint in other layouts (the transformers port, legacy pickle).

The transformers renaming here is the inverse of the loader's rules, written independently (by
regular expressions over the official names); tests compare its output with the shared verified
key table, so a wrong rule on either side shows up.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

DOWNS_T = (3, 2, 2)


def transformers_key(key: str) -> str:
    """transformers ``JukeboxVQVAE`` name of an official key (without the ``vqvae.`` prefix)."""
    key = re.sub(r"\.model\.(\d+)\.model\.1\.", lambda m: f".resnet_block.{m[1]}.conv1d_1.", key)
    key = re.sub(r"\.model\.(\d+)\.model\.3\.", lambda m: f".resnet_block.{m[1]}.conv1d_2.", key)
    block = re.match(r"^(encoders|decoders)\.\d+\.level_blocks\.(\d+)\.model\.(\d+)(?:\.(\d+))?\.(.*)$", key)
    if block:
        kind, level_block, i, j, rest = block.groups()
        head = key[: block.start(3) - len("model.")]
        if kind == "encoders":
            name = "proj_out" if int(i) == DOWNS_T[int(level_block)] else f"downsample_block.{2 * int(i) + int(j)}"
        else:
            name = "proj_in" if int(i) == 0 else f"upsample_block.{2 * int(i) + int(j) - 2}"
        return f"{head}{name}.{rest}"
    return re.sub(r"^(bottleneck\.level_blocks\.\d+)\.k$", r"\1.codebook", key)


def write_transformers_checkpoint(state: dict[str, torch.Tensor], dest: Path, extra: dict | None = None) -> Path:
    """A ``JukeboxModel``-style state dict file: ``vqvae.``-prefixed renamed keys (plus ``extra`` tensors)."""
    renamed = {f"vqvae.{transformers_key(k)}": v.clone() for k, v in state.items()}
    torch.save({**renamed, **(extra or {})}, dest)
    return dest


def write_legacy_checkpoint(source: Path, dest: Path) -> Path:
    """The same checkpoint in torch's older non-zip serialisation (as torch 1.4 wrote the released file)."""
    torch.save(torch.load(source, map_location="cpu", weights_only=True), dest, _use_new_zipfile_serialization=False)
    return dest
