"""`tagbox taggers` and `tagbox tag` in real subprocesses."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch

from support import cli_env, run_cli

DATA = Path(__file__).parent / "data"


def tagbox(*args, **kwargs):
    return run_cli(list(args), **kwargs)


def test_taggers_lists_all_twelve():
    result = tagbox("taggers")
    assert result.returncode == 0
    for name in ["MTT_musicnn", "MSD_vgg", "fcn-mtat", "crnn-msd", "musicnn-jamendo"]:
        assert name in result.stdout


def test_tag_json_shape(shared):
    result = tagbox("tag", DATA / "drums.flac", "--tagger", "fcn-mtat", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"file", "tagger", "sample_rate", "tags", "taggram", "mean"}
    assert out["sample_rate"] == 16000 and len(out["tags"]) == 50 and all(len(w) == 50 for w in out["taggram"])
    assert out["tags"][max(range(50), key=out["mean"].__getitem__)] in {"drums", "beat", "techno"}


def test_tag_top_k_prints_k_lines(shared):
    result = tagbox("tag", DATA / "piano.flac", "--tagger", "musicnn-mtat", "--top", "3")
    assert result.returncode == 0 and len(result.stdout.strip().splitlines()) == 3
    assert "piano" in result.stdout


@pytest.mark.parametrize("make, cause", [
    (lambda p: p / "missing.wav", "file not found"),
    (lambda p: (p / "text.wav").write_text("hello") and p / "text.wav", ""),
    (lambda p: (p / "dir.wav").mkdir() or p / "dir.wav", ""),
])
def test_bad_files_exit_2_with_one_line(tmp_path, make, cause):
    path = make(tmp_path)
    result = tagbox("tag", path, "--tagger", "fcn-mtat")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and str(path) in lines[0] and cause in lines[0] and "Traceback" not in result.stderr


def test_unknown_tagger_exits_2():
    result = tagbox("tag", DATA / "piano.flac", "--tagger", "fcn-mtatt")
    assert result.returncode == 2 and "did you mean fcn-mtat" in result.stderr


def test_16k_input_is_tagged_as_is(shared, tmp_path):
    """A 16 kHz file is not resampled: the JSON taggram equals the tagger on the file's samples."""
    from tagbox_pipeline.taggers.registry import get_tagger

    audio, rate = sf.read(DATA / "drums.flac", dtype="float32")
    audio = soxr.resample(audio, rate, 16000).astype(np.float32)[:16000 * 4]
    path = tmp_path / "drums16k.wav"
    sf.write(path, audio, 16000, subtype="FLOAT")
    result = tagbox("tag", path, "--tagger", "musicnn-mtat", "--json")
    assert result.returncode == 0, result.stderr
    with torch.no_grad():
        expected = get_tagger("musicnn-mtat")(torch.from_numpy(audio)[None])[0]
    assert np.abs(np.array(json.loads(result.stdout)["taggram"]) - expected.numpy()).max() < 1e-5


def test_missing_weights_exit_2_naming_where_it_looked(tmp_path):
    result = tagbox("tag", DATA / "piano.flac", "--tagger", "crnn-msd",
                    env=cli_env(TAGBOX_MODEL_DIR=str(tmp_path), TAGBOX_CACHE_DIR=str(tmp_path / "c")))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(tmp_path / "msd" / "crnn" / "best_model.pth") in result.stderr and "tagbox models fetch" in result.stderr


def test_top_must_be_positive():
    result = tagbox("tag", DATA / "piano.flac", "--tagger", "fcn-mtat", "--top", "0")
    assert result.returncode == 2 and "at least 1" in result.stderr


def test_taggers_listing_names_the_fetch_command_of_missing_weights(tmp_path, monkeypatch, capsys):
    """Without the musicnn package and any weights (as after a plain `pip install`): each missing
    tagger's row names the exact command that installs its weights."""
    from tagbox_pipeline.cli.tag import run_list
    from tagbox_pipeline.taggers import musicnn_wheel

    monkeypatch.setattr(musicnn_wheel, "_installed_package", lambda: None)
    monkeypatch.setenv("TAGBOX_MODEL_DIR", str(tmp_path / "no-weights"))
    monkeypatch.setenv("COLUMNS", "200")
    assert run_list(None) == 0
    rows = {line.split("│")[1].strip(): line for line in capsys.readouterr().out.splitlines() if "│" in line}
    for name in ("MTT_musicnn", "MTT_vgg", "MSD_musicnn", "MSD_vgg"):
        assert "missing (tagbox models fetch musicnn)" in rows[name]
    assert "missing (tagbox models fetch crnn-msd)" in rows["crnn-msd"]
    assert "missing (tagbox models fetch fcn-mtat)" in rows["fcn-mtat"]
    assert " present " in rows["spectral"]
