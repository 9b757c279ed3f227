"""Source vocabulary: names -> tags per dataset, errors for unknown or path-like names."""

import pytest

from tagbox_pipeline.errors import UserError
from tagbox_pipeline.taggers.vocabulary import _SOURCES, dataset_tags, known_sources, resolve_source, tag_indices


def test_every_mapped_tag_exists_in_its_dataset():
    for name, per_dataset in _SOURCES.items():
        for dataset, tags in per_dataset.items():
            assert set(tags) <= set(dataset_tags(dataset)), (name, dataset)


def test_tag_lists_have_fifty_tags_each():
    assert [len(dataset_tags(d)) for d in ("mtat", "msd", "jamendo")] == [50, 50, 50]
    assert dataset_tags("spectral") == ("low",)


def test_drums_map_to_drum_tags_and_indices():
    drums = resolve_source("Drums")
    assert drums.name == "drums"
    tags = dataset_tags("mtat")
    assert [tags[i] for i in tag_indices(drums, tags, "mtat")] == ["drums", "beat", "beats"]


def test_bass_has_no_mtat_tag_but_a_jamendo_one():
    bass = resolve_source("bass")
    assert tag_indices(bass, dataset_tags("mtat"), "mtat") == []
    assert [dataset_tags("jamendo")[i] for i in tag_indices(bass, dataset_tags("jamendo"), "jamendo")] == ["instrument---bass"]


def test_aliases_and_raw_tags_are_accepted():
    assert resolve_source("synthesizer").name == "synth"
    techno = resolve_source("techno")
    assert techno.tags == {"mtat": ["techno"]}


def test_unknown_name_lists_closest_names():
    with pytest.raises(UserError, match="closest known names: piano"):
        resolve_source("pianno")


@pytest.mark.parametrize("bad", ["../x", "a/b", "..", ".hidden", "", "x\\y", "a\x00b"])
def test_path_like_names_are_refused(bad):
    with pytest.raises(UserError):
        resolve_source(bad)


def test_known_sources_cover_the_bench_dev_sources():
    assert {"piano", "drums", "flute", "guitar", "bass", "violin", "harpsichord", "cello", "choir", "organ",
            "synth", "strings", "harp"} <= set(known_sources())
