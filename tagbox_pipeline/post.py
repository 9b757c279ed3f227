"""Per-source post-processing chains (pedalboard), validated up front and applied in blocks.

A chain is a list of ``PluginSpec`` (plugin class name + keyword parameters) from ``settings.post``,
e.g. ``drums = [{plugin = "Compressor", params = {ratio = 4}}, {plugin = "Limiter"}]``.
Stems are streamed through the chain in blocks of :data:`BLOCK_FRAMES` samples with ``reset=False``
between blocks, so memory stays flat in the stem's length; the unprocessed stem is kept in ``raw/``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pedalboard
import soundfile as sf

#: samples per channel read, processed and written per block
BLOCK_FRAMES = 65536
#: folder (inside a stem folder) that keeps the stems as they were before their post chain
RAW_DIR = "raw"


class Spec(Protocol):
    """What a chain entry provides (``config.PluginSpec``)."""

    plugin: str
    params: Mapping[str, Any]


def make_plugin(plugin: str, params: Mapping[str, Any]) -> pedalboard.Plugin:
    """Instantiate one built-in pedalboard plugin by class name.

    Raises:
        ValueError: naming the unknown plugin, or the plugin and its bad/unknown parameter.
    """
    cls = getattr(pedalboard, plugin, None)
    builtin = isinstance(cls, type) and issubclass(cls, pedalboard.Plugin)
    if not builtin or plugin.startswith("_") or plugin in {"Plugin", "Pedalboard", "Chain", "Mix",
                                                          "PluginContainer", "ExternalPlugin",
                                                          "VST3Plugin", "AudioUnitPlugin"}:
        raise ValueError(f"unknown pedalboard plugin '{plugin}'")
    try:
        return cls(**dict(params))
    except TypeError:
        allowed = sorted(name for name in dir(cls) if not name.startswith(("_", "is_")) and
                         isinstance(getattr(cls, name, None), property))
        unknown = sorted(set(params) - set(allowed)) or sorted(params)
        raise ValueError(f"plugin '{plugin}': unknown or ill-typed parameter(s) {', '.join(unknown)} "
                         f"(known: {', '.join(allowed)})") from None
    except ValueError as exc:
        raise ValueError(f"plugin '{plugin}': {exc}") from None


def build_board(chain: Sequence[Spec]) -> pedalboard.Pedalboard:
    """A fresh :class:`pedalboard.Pedalboard` for one chain (plugins keep state: one board per stem)."""
    return pedalboard.Pedalboard([make_plugin(spec.plugin, spec.params) for spec in chain])


def process_file(src: Path, dst: Path, board: pedalboard.Pedalboard) -> None:
    """Stream ``src`` through ``board`` into ``dst`` (same rate, channels, length and subtype).

    Plugins with latency hold samples back; the missing tail is flushed with silence so the output
    is aligned with, and exactly as long as, the input.
    """
    with sf.SoundFile(src) as reader, sf.SoundFile(dst, "w", samplerate=reader.samplerate,
                                                   channels=reader.channels, subtype=reader.subtype,
                                                   format=reader.format) as writer:
        rate, channels, total = reader.samplerate, reader.channels, reader.frames
        written = 0
        for block in reader.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
            out = board.process(block.T.copy(), rate, reset=False)
            writer.write(out.T)
            written += out.shape[-1]
        while written < total:
            silence = np.zeros((channels, min(BLOCK_FRAMES, total - written)), dtype=np.float32)
            out = board.process(silence, rate, reset=False)[:, : total - written]
            writer.write(out.T)
            written += out.shape[-1]


def apply_chains(track_dir: Path, chains: Mapping[str, Sequence[Spec]], suffix: str) -> dict[str, list[str]]:
    """Apply the chain of every source that has one to ``track_dir/<source><suffix>``.

    The unprocessed stem moves to ``track_dir/raw/<source><suffix>``; stems without a chain, and
    the residual, are untouched. Returns ``{source: [plugin names]}`` for the stems processed.
    """
    applied: dict[str, list[str]] = {}
    for source, chain in chains.items():
        stem = track_dir / f"{source}{suffix}"
        if not chain or not stem.is_file():
            continue
        raw = track_dir / RAW_DIR / stem.name
        raw.parent.mkdir(exist_ok=True)
        stem.rename(raw)
        process_file(raw, stem, build_board(chain))
        applied[source] = [spec.plugin for spec in chain]
    return applied
