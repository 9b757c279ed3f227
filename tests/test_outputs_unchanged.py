"""Regression lock: the default settings write the stems they wrote before the engine was restructured
(issue 15). Every stem file of two bench-dev clips (one whole, one an excerpt), separated through the
library's file path, is fingerprinted: its frames, channels and subtype exactly, and the RMS of every
0.1 s of every channel (recorded with ``python tests/test_outputs_unchanged.py --record``, the suite's
environment, in ``tests/data/default_stem_fingerprints.json``).

Re-recorded once for issue 14: ``d01-default`` (one chunk) was unchanged by the speed work (bounded
batches, BN and ReLU after pooling, in-place NTF buffers, the tuned allocator); the multi-chunk
``d02-small-windows`` case changed on purpose, because the first and last cores of a track now keep
all of their window but the inner margin. Re-recorded for issue 12 (2026-12-02): the default
``nmf.rest_logit`` moved from 0 to −2 (every cell of the quality matrix improved,
``bench/results/quality.md``), which changes both cases on purpose. Re-recorded for issue 12
(2026-12-03): the defaults ``nmf.quiet_share`` 0 → 0.01 and one gradient step (``steps`` 1, scoring
the requested sources' estimates alone, for requests of at most two sources) change both cases on
purpose. Re-recorded for issue 12 (2026-12-06): the warm start's register and envelope cues
(``nmf.register_weight``, ``nmf.envelope_weight``) change both cases on purpose. Re-recorded for issue
12 (2026-12-06, midday): the transient cue of drum kits (``nmf.transient_weight``) changes
``d01-default`` (piano and drums) on purpose; ``d02-small-windows`` (no drums) is unchanged.
Re-recorded for issue 12 (2026-12-06, evening): components tagged over the chunk's mixture 20 dB down
(``nmf.context_gain`` 0.1) change both cases on purpose. Re-recorded for issue 12 (2026-12-07): the NTF
forms its ratios in blocks of frames (a third faster), which changes only the order of float sums: frame
RMS moved by up to 2e-6 (beyond ``ATOL``), the bench's SI-SDRi by at most 1e-4 dB.

Until 2026-12-03 this lock compared sha256 digests of the files. They are not the same on every
x86-64 CPU: oneDNN and ATen pick kernels by the instruction sets a CPU has (AVX-512 or AVX2 only;
``ONEDNN_MAX_CPU_ISA=SSE41`` or ``ATEN_CPU_CAPABILITY=default`` show it on one machine), and the
stems then differ by a few 24-bit steps (at most 6e-7, more than 100 dB below the stem). The
fingerprint tolerates that (``RTOL``, ``ATOL``) and nothing that a changed setting or algorithm
does: ``rest_logit = -1.9`` instead of −2 moves frame RMS by far more.

The warm start alone is bit-identical across thread counts on one machine (test_nmf_prior); with the
default gradient step, 1 and 2 threads differ by a few 1e-8 (the backward pass's sums). A
changed fingerprint means the default output changed: re-record only for a change that is meant to
change the stems, and say so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

FINGERPRINTS = Path(__file__).with_name("data") / "default_stem_fingerprints.json"
#: length of one RMS frame in s
FRAME_SECONDS = 0.1
#: tolerance of every frame RMS (relative, absolute): a few 24-bit steps between CPUs pass, a changed setting fails
RTOL, ATOL = 1e-4, 1e-7
#: (case name, clip, seconds of it, settings overrides): the default settings on a whole clip, and
#: small windows on an excerpt (several chunks, crossfades)
CASES = [("d01-default", "d01", 10.0, {}),
         ("d02-small-windows", "d02", 4.0, {"chunk.window_seconds": 1.5, "chunk.overlap_seconds": 0.5,
                                         "chunk.margin_seconds": 0.25})]


def _clip_sources(shared: Path, clip: str) -> list[str]:
    manifest = json.loads((shared / "data" / "bench-dev" / "manifest.json").read_text())
    return [s["class"] for c in manifest["clips"] if c["id"] == clip for s in c["sources"]]


def fingerprint(path: Path) -> dict:
    """Frames, channels, subtype and the RMS of every :data:`FRAME_SECONDS` of every channel of an audio file."""
    audio, rate = sf.read(path, dtype="float64", always_2d=True)
    frame = round(FRAME_SECONDS * rate)
    count = -(-len(audio) // frame)
    padded = np.pad(audio, ((0, count * frame - len(audio)), (0, 0)))
    rms = np.sqrt(np.square(padded).reshape(count, frame, -1).mean(axis=1))  # [frames, channels]
    info = sf.info(path)
    return {"frames": info.frames, "channels": info.channels, "subtype": info.subtype,
            "rms": [[float(f"{v:.9g}") for v in row] for row in rms.T]}


def stem_fingerprints(shared: Path, clip: str, seconds: float, overrides: dict, out: Path) -> dict[str, dict]:
    """Separate the first ``seconds`` of bench-dev ``clip`` (as a 24-bit WAV) with the default settings
    plus ``overrides``: {stem file name: :func:`fingerprint`}."""
    from tagbox_pipeline.config import load_settings
    from tagbox_pipeline.separation import separate_file

    rate = 44100
    audio, _ = sf.read(shared / "data" / "bench-dev" / clip / "mixture.flac", frames=int(seconds * rate))
    mixture = out / "mixture.wav"
    out.mkdir(parents=True, exist_ok=True)
    sf.write(mixture, audio, rate, subtype="PCM_24")
    separate_file(mixture, out, _clip_sources(shared, clip), load_settings(overrides=overrides))
    return {p.name: fingerprint(p) for p in sorted((out / "mixture").glob("*.wav"))}


def assert_same_stems(found: dict[str, dict], recorded: dict[str, dict]) -> None:
    """The same stem files, of the same shape and subtype, with every frame RMS within the tolerance."""
    assert sorted(found) == sorted(recorded)
    for name, expected in recorded.items():
        got = found[name]
        assert {k: got[k] for k in ("frames", "channels", "subtype")} == \
            {k: expected[k] for k in ("frames", "channels", "subtype")}, name
        np.testing.assert_allclose(got["rms"], expected["rms"], rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("case, clip, seconds, overrides", CASES, ids=[c[0] for c in CASES])
def test_default_stems_are_the_recorded_ones(shared, tmp_path, case, clip, seconds, overrides):
    recorded = json.loads(FINGERPRINTS.read_text())[case]
    assert_same_stems(stem_fingerprints(shared, clip, seconds, overrides, tmp_path), recorded)


if __name__ == "__main__" and sys.argv[1:] == ["--record"]:
    import tempfile

    from tagbox_pipeline.paths import shared_dir

    with tempfile.TemporaryDirectory() as temp:
        table = {case: stem_fingerprints(shared_dir(), clip, seconds, overrides, Path(temp) / case)
                 for case, clip, seconds, overrides in CASES}
    FINGERPRINTS.write_text(json.dumps(table, sort_keys=True) + "\n")
    print(f"recorded {FINGERPRINTS}")
