"""`tagbox taggers` and `tagbox tag` in real subprocesses."""

import json
import subprocess
import sys

import pytest


def tagbox(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "tagbox_pipeline.cli", *map(str, args)],
                          capture_output=True, text=True, timeout=300, **kwargs)


def test_taggers_lists_all_twelve():
    result = tagbox("taggers")
    assert result.returncode == 0
    for name in ["MTT_musicnn", "MSD_vgg", "fcn-mtat", "crnn-msd", "musicnn-jamendo"]:
        assert name in result.stdout


def test_tag_json_shape(shared):
    result = tagbox("tag", shared / "data" / "bench-dev" / "d01" / "drums.flac", "--tagger", "fcn-mtat", "--json")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"file", "tagger", "sample_rate", "tags", "taggram", "mean"}
    assert out["sample_rate"] == 16000 and len(out["tags"]) == 50 and all(len(w) == 50 for w in out["taggram"])
    assert out["tags"][max(range(50), key=out["mean"].__getitem__)] in {"drums", "beat", "techno"}


def test_tag_top_k_prints_k_lines(shared):
    result = tagbox("tag", shared / "data" / "bench-dev" / "d01" / "piano.flac", "--tagger", "musicnn-mtat", "--top", "3")
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


def test_unknown_tagger_exits_2(shared):
    result = tagbox("tag", shared / "data" / "bench-dev" / "d01" / "piano.flac", "--tagger", "fcn-mtatt")
    assert result.returncode == 2 and "did you mean fcn-mtat" in result.stderr
