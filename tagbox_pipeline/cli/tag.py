"""`tagbox taggers` (what taggers exist) and `tagbox tag FILE --tagger NAME` (what a tagger hears)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

TAGGER_RATE = 16000


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``taggers`` and ``tag`` subcommands."""
    listing = subparsers.add_parser("taggers", help="list the taggers, their datasets and whether weights are present")
    listing.set_defaults(func=run_list)
    tag = subparsers.add_parser("tag", help="print the top tags of an audio file")
    tag.add_argument("file", type=Path, help="audio file (any rate; mixed to mono, resampled to 16 kHz)")
    tag.add_argument("--tagger", default="MTT_musicnn", help="tagger name (see `tagbox taggers`)")
    tag.add_argument("--top", type=_positive_int, default=5, help="how many tags to print (default 5)")
    tag.add_argument("--json", action="store_true", help="print one JSON object with the whole taggram")
    tag.set_defaults(func=run_tag)


def _positive_int(text: str) -> int:
    """argparse type: an integer of at least 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def run_list(args: argparse.Namespace) -> int:
    """Print the tagger table."""
    from ..taggers.registry import list_taggers

    table = Table("tagger", "dataset", "input (s)", "weights", "licence")
    for info in list_taggers():
        table.add_row(info.name, info.dataset, f"{info.input_samples / TAGGER_RATE:g}",
                      "present" if info.weights_present else f"missing ({info.fetch_command})", info.licence)
    Console().print(table)
    return 0


def load_mono_16k(path: Path):
    """The file as mono float32 at 16 kHz (soxr HQ resampling only when the rate differs)."""
    import soxr

    from ..audio_io import read_block, read_info

    info = read_info(path)
    audio = read_block(path, 0, info.frames).mean(axis=0)
    if info.sample_rate != TAGGER_RATE:
        audio = soxr.resample(audio, info.sample_rate, TAGGER_RATE, quality="HQ").astype("float32")
    return audio


def run_tag(args: argparse.Namespace) -> int:
    """Tag one file and print the top tags (or the JSON taggram)."""
    import torch

    from ..taggers.registry import get_tagger, info

    info(args.tagger)  # an unknown name fails before any audio is read
    audio = load_mono_16k(args.file)
    tagger = get_tagger(args.tagger)
    with torch.no_grad():
        taggram = tagger(torch.from_numpy(audio)[None])[0]
    mean = taggram.mean(dim=0)
    if args.json:
        print(json.dumps({"file": str(args.file), "tagger": tagger.name, "sample_rate": TAGGER_RATE,
                          "tags": list(tagger.tags), "taggram": taggram.tolist(), "mean": mean.tolist()}))
        return 0
    for index in mean.argsort(descending=True)[: args.top].tolist():
        print(f"{mean[index]:.3f}  {tagger.tags[index]}")
    return 0
