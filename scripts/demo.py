"""`make demo`: separate the bundled example with the default settings (no server, no download).

Reads ``examples/demo/mixture.flac`` and its ``manifest.json`` (the requested sources, as in
bench-dev: ``{"sources": [{"name": "piano"}, ...]}``), writes the stems to ``build/demo/mixture/``
and prints where they are. When the true stems (``<source>.flac``) lie beside the mixture, it also
prints the SI-SDR improvement of each stem's mono sum over the mixture's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from tagbox_pipeline.config import Settings
from tagbox_pipeline.errors import UserError
from tagbox_pipeline.paths import REPO_DIR
from tagbox_pipeline.separation import separate_file

EXAMPLE = REPO_DIR / "examples" / "demo" / "mixture.flac"
OUT = REPO_DIR / "build" / "demo"


def _mono(path: Path) -> np.ndarray:
    return sf.read(path, dtype="float64", always_2d=True)[0].sum(axis=1)


def _print_scores(mixture: Path, track: Path, sources: list[str]) -> None:
    """SI-SDRi (dB) of each stem whose true stem lies beside the mixture."""
    from tagbox_pipeline.bench.metrics import si_sdr

    mix = _mono(mixture)
    for source in sources:
        truth_path = mixture.with_name(f"{source}.flac")
        if truth_path.exists():
            truth, estimate = _mono(truth_path), _mono(track / f"{source}.wav")
            gain = si_sdr(estimate, truth) - si_sdr(mix, truth)
            print(f"  {source:>10}: SI-SDRi {gain:+.2f} dB (true stem: {truth_path.name})")


def _listed_sources(mixture: Path) -> list[str]:
    """Source names from the ``manifest.json`` beside ``mixture``."""
    listing = mixture.with_name("manifest.json")
    try:
        return [entry["name"] for entry in json.loads(listing.read_text(encoding="utf-8"))["sources"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"cannot list the example's sources ({exc}); pass --sources", listing) from None


def main(argv: list[str] | None = None) -> int:
    """Separate the example (or ``--input``) into ``--out``; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", type=Path, default=EXAMPLE, help="mixture to separate (default: the example)")
    parser.add_argument("--out", type=Path, default=OUT, help="output folder (default: build/demo)")
    parser.add_argument("--sources", help="comma-separated sources (default: those in manifest.json beside the input)")
    args = parser.parse_args(argv)
    try:
        sources = args.sources.split(",") if args.sources else _listed_sources(args.input)
        started = time.monotonic()
        published = separate_file(args.input, args.out, sources, Settings())
    except UserError as exc:
        print(f"demo: error: {exc}", file=sys.stderr)
        return 2
    seconds = time.monotonic() - started
    print(f"separated {args.input.name} ({published.manifest['input']['duration_s']:.1f} s) into "
          f"{', '.join(sources)} in {seconds:.1f} s; stems in {published.folder}/")
    for path in published.files:
        print(f"  {path}")
    _print_scores(args.input, published.folder, sources)
    return 0


if __name__ == "__main__":
    sys.exit(main())
