"""Regression lock: the default settings write exactly the stems they wrote before the engine was
restructured (issue 15). The sha256 of every stem file of two bench-dev clips (one whole, one an excerpt),
separated through the library's file path, was recorded with the code before the change
(``TAGBOX_MODEL_DIR=../shared/models/sota-music-tagging python tests/test_outputs_unchanged.py --record``,
the suite's environment) in ``tests/data/default_stem_digests.json``.

Re-recorded once since, for issue 14: ``d01-default`` (one chunk) is unchanged by the speed work
(bounded batches, BN and ReLU after pooling, in-place NTF buffers, the tuned allocator); the
multi-chunk ``d02-small-windows`` case changed on purpose, because the first and last cores of a
track now keep all of their window but the inner margin (fewer windows per track; with the old
plan, the batching alone moved its samples by at most 9e-8).

Re-recorded for issue 12 (2026-12-02): the default ``nmf.rest_logit`` moved from 0 to −2 (every cell of
the quality matrix improved, ``bench/results/quality.md``), which changes both cases on purpose.

The stems are bit-identical across thread counts (see test_engine_separation); these digests hold
on this project's machine kind (x86-64, torch 2.13 CPU). A changed digest means the default
output changed: re-record only for a change that is meant to change the stems, and say so.
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import soundfile as sf

DIGESTS = Path(__file__).with_name("data") / "default_stem_digests.json"
#: (case name, clip, seconds of it, settings overrides): the default settings on a whole clip, and
#: small windows on an excerpt (several chunks, crossfades)
CASES = [("d01-default", "d01", 10.0, {}),
         ("d02-small-windows", "d02", 4.0, {"chunk.window_seconds": 1.5, "chunk.overlap_seconds": 0.5,
                                         "chunk.margin_seconds": 0.25})]


def _clip_sources(shared: Path, clip: str) -> list[str]:
    manifest = json.loads((shared / "data" / "bench-dev" / "manifest.json").read_text())
    return [s["class"] for c in manifest["clips"] if c["id"] == clip for s in c["sources"]]


def stem_digests(shared: Path, clip: str, seconds: float, overrides: dict, out: Path) -> dict[str, str]:
    """Separate the first ``seconds`` of bench-dev ``clip`` (as a 24-bit WAV) with the default settings
    plus ``overrides``: {stem file name: sha256}."""
    from tagbox_pipeline.config import load_settings
    from tagbox_pipeline.separation import separate_file

    rate = 44100
    audio, _ = sf.read(shared / "data" / "bench-dev" / clip / "mixture.flac", frames=int(seconds * rate))
    mixture = out / "mixture.wav"
    out.mkdir(parents=True, exist_ok=True)
    sf.write(mixture, audio, rate, subtype="PCM_24")
    separate_file(mixture, out, _clip_sources(shared, clip), load_settings(overrides=overrides))
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((out / "mixture").glob("*.wav"))}


@pytest.mark.slow
@pytest.mark.parametrize("case, clip, seconds, overrides", CASES, ids=[c[0] for c in CASES])
def test_default_stems_are_bit_identical_to_the_recorded_ones(shared, tmp_path, case, clip, seconds, overrides):
    recorded = json.loads(DIGESTS.read_text())[case]
    assert stem_digests(shared, clip, seconds, overrides, tmp_path) == recorded


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    from tagbox_pipeline.paths import shared_dir

    with tempfile.TemporaryDirectory() as temp:
        table = {case: stem_digests(shared_dir(), clip, seconds, overrides, Path(temp) / case)
                 for case, clip, seconds, overrides in CASES}
    DIGESTS.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(json.dumps(table, indent=1))
