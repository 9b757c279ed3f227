"""Loading Jukebox VQ-VAE weights: official (zip and legacy pickle, ``module.`` prefix), transformers layout,
and clear, file-naming errors for anything else."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from jukebox_convert import transformers_key, write_legacy_checkpoint, write_transformers_checkpoint
from support import evil_pickle
from tagbox_pipeline.errors import WeightsError
from tagbox_pipeline.priors.jukebox import load_checkpoint
from tagbox_pipeline.priors.jukebox.checkpoint import from_transformers_key


@pytest.fixture(scope="module")
def official(shared: Path) -> Path:
    return shared / "reference" / "jukebox" / "vqvae_random_5b.pth.tar"


@pytest.fixture(scope="module")
def canonical(official: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(official)


def _raw_model(path: Path) -> dict[str, torch.Tensor]:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


def assert_identical(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    assert all(a[k].dtype == b[k].dtype and torch.equal(a[k], b[k]) for k in a)


def test_official_file_loads_every_tensor_unchanged(official: Path, canonical, shared: Path) -> None:
    listed = [line.split("\t")[0] for line in
              (shared / "reference" / "jukebox" / "state_dict_keys.txt").read_text().splitlines()]
    assert list(canonical) == listed and len(listed) == 669
    assert_identical(canonical, _raw_model(official))
    assert sum(t.numel() for t in canonical.values()) == 1_878_979


def test_renaming_rules_match_the_verified_transformers_table(shared: Path) -> None:
    rows = [line.split("\t") for line in (shared / "reference" / "jukebox" / "hf_key_mapping.txt")
            .read_text().splitlines() if not line.startswith("#")]
    assert len(rows) == 669
    assert all(from_transformers_key(hf) == ours and transformers_key(ours) == hf for ours, hf in rows)


def test_transformers_layout_loads_to_identical_tensors(official: Path, canonical, tmp_path: Path) -> None:
    prior_tensor = {"priors.0.transformer.embed.weight": torch.ones(3, 4)}  # a JukeboxModel holds the priors too
    path = write_transformers_checkpoint(_raw_model(official), tmp_path / "pytorch_model.bin", prior_tensor)
    assert next(iter(torch.load(path, weights_only=True))).startswith("vqvae.encoders.0.level_blocks.0.downsample")
    assert_identical(load_checkpoint(path), canonical)


def test_legacy_serialisation_and_module_prefix_load_to_identical_tensors(official: Path, canonical,
                                                                          tmp_path: Path) -> None:
    legacy = write_legacy_checkpoint(official, tmp_path / "legacy.pth.tar")
    assert not legacy.read_bytes().startswith(b"PK\x03\x04") and official.read_bytes().startswith(b"PK\x03\x04")
    assert_identical(load_checkpoint(legacy), canonical)
    checkpoint = torch.load(official, weights_only=True)
    checkpoint["model"] = {f"module.{k}": v for k, v in checkpoint["model"].items()}
    torch.save(checkpoint, tmp_path / "ddp.pth.tar")
    assert_identical(load_checkpoint(tmp_path / "ddp.pth.tar"), canonical)


def _broken(official: Path, dest: Path, change) -> Path:
    checkpoint = torch.load(official, weights_only=True)
    change(checkpoint["model"])
    torch.save(checkpoint, dest)
    return dest


@pytest.mark.parametrize(("change", "words"), [
    (lambda m: m.pop("decoders.0.out.bias"), "missing 1: decoders.0.out.bias"),
    (lambda m: m.update({"decoders.3.out.bias": torch.zeros(1)}), "unexpected 1: decoders.3.out.bias"),
    (lambda m: m.update({"bottleneck.level_blocks.1.k": torch.zeros(1024, 64)}),
     "mis-shaped 1: bottleneck.level_blocks.1.k (1024, 64) (expected (2048, 64))"),
    (lambda m: m.update({"decoders.0.out.bias": torch.zeros(1, dtype=torch.int64)}), "floating point"),
])
def test_wrong_tensors_are_a_weights_error_naming_the_file(official: Path, tmp_path: Path, change, words) -> None:
    path = _broken(official, tmp_path / "vqvae.pth.tar", change)
    with pytest.raises(WeightsError) as caught:
        load_checkpoint(path)
    assert str(path) in str(caught.value) and words in str(caught.value)


def test_not_a_checkpoint_and_missing_file_name_the_file(tmp_path: Path) -> None:
    for path, words in ((tmp_path / "absent.pth.tar", "not found"),
                        (tmp_path / "notes.pth.tar", "not a loadable weights file"),
                        (tmp_path / "list.pth.tar", "not a Jukebox VQ-VAE checkpoint")):
        if path.name == "notes.pth.tar":
            path.write_text("just some text\n")
        elif path.name == "list.pth.tar":
            torch.save([1, 2, 3], path)
        with pytest.raises(WeightsError) as caught:
            load_checkpoint(path)
        assert str(path) in str(caught.value) and words in str(caught.value)


def test_pickle_carrying_code_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    for legacy in (False, True):
        path = evil_pickle(tmp_path / f"evil-{legacy}.pth.tar", marker, legacy)
        with pytest.raises(WeightsError) as caught:
            load_checkpoint(path)
        assert str(path) in str(caught.value) and "refused" in str(caught.value)
    assert not marker.exists()
