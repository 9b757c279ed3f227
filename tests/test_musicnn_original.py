"""The original musicnn taggers (read from the wheel's TF checkpoints) against goldens of the TF original."""

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tagbox_pipeline.errors import WeightsError
from tagbox_pipeline.taggers.musicnn_tf import ORIGINAL_MODELS, checkpoint_prefix, labels, load_original
from tagbox_pipeline.taggers.tf_bundle import read_bundle

INPUTS = ("music", "chirps")


@pytest.fixture(scope="module")
def taggers():
    return {name: load_original(name) for name in ORIGINAL_MODELS}


def golden(shared, model, name):
    return np.load(shared / "reference" / "musicnn" / f"{model}__{name}.npz")


def inventory(shared, model):
    """name -> (float64 sum, abs sum) of every tensor used by inference, from the reference inventory."""
    rows = {}
    for line in (shared / "reference" / "musicnn" / "variables" / f"{model}.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        cols = [c.strip() for c in line.split("|")]
        if cols[4] == "yes":
            rows[cols[0]] = (float(cols[9]), float(cols[10]))
    return rows


@pytest.mark.parametrize("model", ORIGINAL_MODELS)
def test_bundle_reader_matches_the_inventory(shared, model):
    tensors = read_bundle(checkpoint_prefix(model))
    for name, (total, absolute) in inventory(shared, model).items():
        values = tensors[name].astype(np.float64)
        assert values.sum() == pytest.approx(total, rel=1e-6, abs=1e-6), name
        assert np.abs(values).sum() == pytest.approx(absolute, rel=1e-6), name


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_damaged_bundle_is_a_weights_error_naming_the_file(tmp_path, damage):
    source = checkpoint_prefix("MTT_vgg")
    folder = tmp_path / "MTT_vgg"
    folder.mkdir()
    (folder / ".index").write_bytes(open(source + ".index", "rb").read())
    data = bytearray(open(source + ".data-00000-of-00001", "rb").read())
    if damage == "truncate":
        data = data[: len(data) // 2]
    else:
        data[1000] ^= 0xFF
    (folder / ".data-00000-of-00001").write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="data-00000-of-00001"):
        read_bundle(f"{folder}/")


@pytest.mark.parametrize("model", ORIGINAL_MODELS)
@pytest.mark.parametrize("name", INPUTS)
def test_network_and_preprocessing_match_the_goldens(shared, taggers, model, name):
    g = golden(shared, model, name)
    tagger = taggers[model]
    with torch.no_grad():
        logits = tagger.logits(torch.from_numpy(g["logmel"])).numpy()
        logmel = tagger.windows(tagger.logmel(torch.from_numpy(g["audio"])[None]))[0].numpy()
    assert np.abs(logits - g["logits"]).max() <= 1e-4
    assert np.abs(1 / (1 + np.exp(-logits)) - g["taggram"]).max() <= 1e-5
    diff = np.abs(logmel - g["logmel"])
    assert (diff > 1e-6).mean() <= 2e-3 and diff.max() <= 1e-3
    assert np.abs(logmel[0, 0] - g["logmel"][0, 0]).max() <= 1e-3  # zero (not reflect) padding


def test_labels_come_from_the_wheel(shared):
    assert labels("mtat") == json.loads((shared / "reference" / "musicnn" / "tags_MTT.json").read_text())
    assert labels("msd") == json.loads((shared / "reference" / "musicnn" / "tags_MSD.json").read_text())


@pytest.mark.parametrize("model", ORIGINAL_MODELS)
@pytest.mark.parametrize("name", INPUTS)
def test_tag_cli_reproduces_the_golden_taggram(shared, tmp_path, model, name):
    g = golden(shared, model, name)
    wav = tmp_path / f"{name}.wav"
    sf.write(wav, g["audio"], 16000, subtype="FLOAT")
    result = subprocess.run([sys.executable, "-m", "tagbox_pipeline.cli", "tag", str(wav), "--tagger", model, "--json"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    taggram = np.array(out["taggram"])
    assert out["sample_rate"] == 16000 and out["tags"] == labels(taggers_dataset(model))
    assert np.abs(taggram - g["taggram"]).max() <= 1e-4
    for window in range(len(taggram)):
        assert list(np.argsort(-taggram[window])[:5]) == list(np.argsort(-g["taggram"][window])[:5])


def taggers_dataset(model):
    return "mtat" if model.startswith("MTT") else "msd"


def test_gradients_reach_audio_and_weights_stay_frozen(shared, taggers):
    tagger = taggers["MTT_musicnn"]
    before = {k: v.clone() for k, v in tagger.state_dict().items()}
    audio = torch.from_numpy(golden(shared, "MTT_musicnn", "music")["audio"])[None].clone().requires_grad_(True)
    tagger(audio).mean().backward()
    assert torch.isfinite(audio.grad).all() and audio.grad.abs().sum() > 0
    assert all(torch.equal(before[k], v) for k, v in tagger.state_dict().items())


def test_short_input_is_padded_to_one_window(taggers):
    out = taggers["MTT_vgg"](torch.zeros(2, 16000))
    assert out.shape == (2, 1, 50) and torch.isfinite(out).all()


@pytest.mark.parametrize("model", ["MTT_musicnn", "MTT_vgg"])
def test_batch_norm_after_pooling_is_bit_exact(shared, model):
    """The pooled fast path normalises after max-pooling: the same bits as normalise-then-pool, also for
    channels whose batch-norm scale is negative (the checkpoints have such channels; one is forced here)."""
    from torch.nn import functional as F

    tagger = load_original(model)
    conv = tagger.net.timbral[0] if model.endswith("musicnn") else tagger.net.blocks[0]
    pool = (lambda y: y.amax(dim=3)) if model.endswith("musicnn") else (lambda y: F.max_pool2d(y, (4, 1), (2, 2)))
    x = tagger.logmel(torch.from_numpy(golden(shared, model, "music")["audio"])[None])[:, None, :187]
    with torch.no_grad():
        conv.bn.gamma[0] = -abs(conv.bn.gamma[0]) - 0.5
        assert (conv.bn.gamma < 0).any() and (conv.bn.gamma > 0).any()
        assert torch.equal(conv.pooled(x, pool), pool(conv(x)))


def test_rows_tagged_in_groups_match_one_pass(shared, taggers, monkeypatch):
    """Within the activation budget rows are tagged in groups; a budget of one row per pass gives the
    same taggram as tagging every row at once."""
    from tagbox_pipeline.taggers import budget

    tagger = taggers["MTT_musicnn"]
    audio = torch.from_numpy(golden(shared, "MTT_musicnn", "music")["audio"])[None]
    rows = torch.cat([audio, 0.5 * audio, audio.flip(-1)])
    one_row = budget.ActivationBudget(1)
    with torch.no_grad():
        together = tagger(rows)
        monkeypatch.setattr(budget, "BUDGET", one_row)
        grouped = tagger.tag(rows)
    assert one_row.peak == tagger.row_bytes(rows.shape[-1]), "one row at a time"
    assert grouped.shape == together.shape
    assert torch.allclose(grouped, together, atol=1e-6)


def test_rows_heard_over_a_context_are_tagged_as_their_sums_with_quiet_windows_chosen_from_the_rows(shared, taggers):
    """``tag(rows, skip, context)`` tags every row plus the context; the windows left out (NaN) are those
    the rows alone would leave out, so a near-silent row stays untagged although its sum is loud."""
    tagger = taggers["MTT_musicnn"]
    audio = torch.from_numpy(golden(shared, "MTT_musicnn", "music")["audio"])
    rows = torch.stack([audio, 0.3 * audio.flip(-1), 1e-3 * audio])
    context = 0.1 * audio.roll(len(audio) // 3)
    with torch.no_grad():
        summed = tagger.tag(rows + context)
        everything = tagger.tag(rows, 0.0, context)
        heard = tagger.tag(rows, 0.01, context)
        alone = tagger.tag(rows, 0.01)
    assert torch.allclose(everything, summed, atol=1e-6)
    untagged = heard.isnan().all(dim=-1)
    assert torch.equal(untagged, alone.isnan().all(dim=-1))
    assert untagged[2].all() and not untagged[:2].any(), untagged
    assert torch.allclose(heard[~untagged], summed[~untagged], atol=1e-6)


@pytest.mark.parametrize("shape, window, stride", [((2, 3, 187, 96), (4, 1), (2, 2)), ((2, 3, 93, 48), (2, 2), (2, 2)),
                                                   ((2, 3, 11, 6), (4, 4), (4, 4)), ((2, 3, 9, 7), (3, 2), (2, 3))])
def test_max_pool_by_strided_maxima_equals_torch_pooling(shape, window, stride):
    from torch.nn import functional as F

    from tagbox_pipeline.taggers.musicnn_tf import _max_pool

    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0))
    assert torch.equal(_max_pool(x, window, stride), F.max_pool2d(x, window, stride))
