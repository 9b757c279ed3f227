"""Asset lineage (issue 13 item 3): a real flow run records mixture → stem assets, read back from the API."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagbox_pipeline.files import sha256_file
from tagbox_pipeline.pipeline.lineage import asset_key, record_lineage

#: seconds to wait for the emitted events to be stored by the test server
EVENT_DEADLINE_S = 30.0


def write_wav(path: Path, seed: int) -> Path:
    """A 0.1 s stereo 16-bit WAV of noise at 8 kHz."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.random.default_rng(seed).uniform(-0.5, 0.5, (800, 2)), 8000, subtype="PCM_16")
    return path


def test_asset_key_escapes_and_bounds() -> None:
    """Keys are valid Prefect asset keys for any path, distinct for distinct paths, at most 512 characters."""
    from prefect.assets import Asset

    plain = Path("/music/Café take 1.wav")
    assert asset_key(plain) == "file:///music/Café+take+1.wav"
    assert asset_key(Path("/a/x+y~z%#?.wav")) == "file:///a/x~2By~7Ez~25~23~3F.wav"
    assert asset_key(Path(os.fsdecode(b"/a/\xff.wav"))) == "file:///a/~FF.wav"  # undecodable byte
    assert asset_key(Path("/a/b c.wav")) != asset_key(Path("/a/b+c.wav"))

    deep = Path("/" + "d" * 250, "e" * 250, "drums.wav")
    one_name = Path("/" + "~" * 250 + ".wav")  # one component of 750 escaped characters
    for path in (deep, one_name):
        key = asset_key(path)
        Asset(key=key)  # raises on a refused character or length
        assert key.startswith("tagbox://long-path/") and len(key) <= 512
        assert key != asset_key(path.with_name("other" + path.suffix))
    assert asset_key(deep).endswith("e/drums.wav")
    assert asset_key(one_name).endswith("~7E.wav")
    assert record_lineage(plain, []) == []  # nothing to record: no task run, no flow run needed


def test_record_lineage_in_flow_run(harness: str, tmp_path: Path) -> None:
    """One materialization per stem, keyed by the stem's file, with the mixture as its upstream asset."""
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventResourceFilter

    mixture = write_wav(tmp_path / "in" / "Mix & Café 1.wav", 0)
    folder = tmp_path / "out" / "Mix & Café 1"
    stems = [write_wav(folder / "drums.wav", 1), write_wav(folder / "Café take 1.wav", 2),
             write_wav(tmp_path.joinpath("x" * 250, "y" * 250, "residual.wav"), 3)]

    @flow(name="lineage-test")
    def separate() -> list[str]:
        return record_lineage(mixture, stems)

    keys = separate()
    assert keys[1] == f"file://{tmp_path.resolve().as_posix()}/out/Mix+~26+Café+1/Café+take+1.wav"
    assert keys[2].startswith("tagbox://long-path/") and keys[2].endswith("/residual.wav")
    mixture_key = asset_key(mixture)
    assert mixture_key.endswith("/in/Mix+~26+Café+1.wav")

    wanted = EventFilter(event=EventNameFilter(prefix=["prefect.asset."]),
                         resource=EventResourceFilter(id=[*keys, mixture_key]))
    deadline = time.monotonic() + EVENT_DEADLINE_S
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=wanted, limit=50).events
            if len(events) >= len(keys) + 1 or time.monotonic() > deadline:
                break
            time.sleep(0.2)

    made = {e.resource.id: e for e in events if e.event == "prefect.asset.materialization.succeeded"}
    assert sorted(made) == sorted(keys), [e.event for e in events]
    assert [e.resource.id for e in events if e.event == "prefect.asset.referenced"] == [mixture_key]
    for key, stem in zip(keys, stems):
        event = made[key]
        assets = [r.id for r in event.related if r.role == "asset"]
        assert assets == [mixture_key]
        assert any(r.role == "asset-materialized-by" and r.id == "tagbox" for r in event.related)
        assert {"flow-run", "task-run"} <= {r.role for r in event.related}
        assert event.resource.name == f"{stem.stem} stem of Mix & Café 1.wav"
        assert event.payload["path"] == str(stem) and event.payload["mixture"] == str(mixture)
        assert event.payload["sha256"] == sha256_file(stem)
        assert event.payload["bytes"] == stem.stat().st_size
