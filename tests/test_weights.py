"""Weights: lookup, download with mirrors and sha256 check over a real local HTTP server, safe loading."""

import hashlib
from pathlib import Path

import pytest
import torch

from support import evil_pickle, serve_folder
from tagbox_pipeline import weights
from tagbox_pipeline.errors import WeightsError


@pytest.fixture()
def server(tmp_path):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    root = tmp_path / "www"
    root.mkdir()
    with serve_folder(root) as url:
        yield root, url


def _checkpoint(path: Path) -> str:
    torch.save({"w": torch.arange(10.0)}, path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fetch_falls_back_to_mirror_and_records_sidecar(server, monkeypatch, tmp_path):
    root, url = server
    monkeypatch.delenv("TAGBOX_MODEL_DIR", raising=False)
    digest = _checkpoint(root / "model.pth")
    spec = weights.WeightSpec("demo", "demo/model.pth", digest, (f"{url}/missing.pth", f"{url}/model.pth"))
    path = weights.fetch(spec)
    assert path == weights.cache_dir() / "models" / "demo" / "model.pth"
    assert weights.read_sidecar(path)["sha256"] == digest
    assert weights.locate(spec) == path
    assert torch.equal(weights.load_state_dict(path)["w"], torch.arange(10.0))
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".part")]


def test_sha256_mismatch_keeps_nothing(server, monkeypatch):
    root, url = server
    monkeypatch.delenv("TAGBOX_MODEL_DIR", raising=False)
    _checkpoint(root / "model.pth")
    spec = weights.WeightSpec("demo", "demo/model.pth", "0" * 64, (f"{url}/model.pth",))
    with pytest.raises(WeightsError, match="could not download demo"):
        weights.fetch(spec)
    folder = weights.cache_dir() / "models" / "demo"
    assert not folder.exists() or list(folder.iterdir()) == []


def test_missing_weights_say_where_they_were_looked_for(monkeypatch, tmp_path):
    monkeypatch.setenv("TAGBOX_MODEL_DIR", str(tmp_path / "models"))
    spec = weights.WeightSpec("demo", "demo/model.pth", None, ())
    with pytest.raises(WeightsError) as excinfo:
        weights.locate(spec)
    message = str(excinfo.value)
    assert str(tmp_path / "models" / "demo" / "model.pth") in message and "tagbox models fetch demo" in message


def test_corrupt_file_in_model_dir_is_reported(monkeypatch, tmp_path):
    monkeypatch.setenv("TAGBOX_MODEL_DIR", str(tmp_path))
    digest = _checkpoint(tmp_path / "good.pth")
    (tmp_path / "demo").mkdir()
    (tmp_path / "demo" / "model.pth").write_bytes((tmp_path / "good.pth").read_bytes()[:-10])
    with pytest.raises(WeightsError, match="corrupt weights"):
        weights.locate(weights.WeightSpec("demo", "demo/model.pth", digest, ()))


def test_pickle_carrying_code_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = evil_pickle(tmp_path / "evil.pth", marker)
    with pytest.raises(WeightsError, match="refused or corrupt"):
        weights.load_state_dict(path)
    assert not marker.exists()
