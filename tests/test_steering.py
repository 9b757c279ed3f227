"""The default prior and steering on real rendered audio (bench-dev excerpts)."""

import dataclasses
import functools
import logging
import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from tagbox_pipeline import steering
from tagbox_pipeline.config import load_settings
from tagbox_pipeline.settings_check import load_checked_settings
from tagbox_pipeline.errors import UserError
from tagbox_pipeline.priors.nmf import NMFPrior
from tagbox_pipeline.separation import Separator

#: length in s of the piano + drums excerpt most tests separate (one window of every tagger)
SECONDS = 3


def excerpt(shared, clip_id, names, seconds=SECONDS):
    """The first ``seconds`` s of the named files of a bench-dev clip, as float32 [ch, n] by name."""
    folder = shared / "data" / "bench-dev" / clip_id
    return {name: sf.read(folder / f"{name}.flac", dtype="float32", frames=seconds * 44100)[0].T.copy()
            for name in names}


@pytest.fixture(scope="module")
def clip(shared):
    """The first ``SECONDS`` s of bench-dev d01 (piano + drums): mixture and stems."""
    return excerpt(shared, "d01", ("mixture", "piano", "drums"))


@pytest.fixture(scope="module")
def settings():
    return load_settings(overrides={"steps": 0})


@pytest.fixture(scope="module")
def models(settings):
    return steering.load_models(settings, "cpu")


def run(clip, sources, settings, models, seed=0, audio="mixture"):
    return steering.separate_chunk(torch.from_numpy(clip[audio]), 44100, sources, settings, models, seed)


@pytest.fixture(scope="module")
def default_run(clip, settings, models):
    """``default_run(*sources)``: the result of the default settings' request for ``sources`` on the
    clip's mixture, computed once per request for this file's tests (each run is several seconds)."""
    return functools.cache(lambda *sources: run(clip, list(sources), settings, models))


def test_masks_compete_and_stems_never_exceed_the_mix(clip, models):
    prior = NMFPrior(load_settings().nmf)
    state = prior.fit(torch.from_numpy(clip["mixture"]), 44100, 2, seed=0)
    with torch.no_grad():
        state.logits.normal_()
    masks = prior.masks(state)
    assert masks.min() >= 0 and masks.sum(dim=0).max() <= 1 + 1e-5
    stems = prior.stems(state)
    assert stems.shape == (2, 2, SECONDS * 44100)
    # the sources' share plus the rest share rebuild the mixture
    rest = torch.from_numpy(clip["mixture"]) - stems.sum(dim=0)
    all_masks_sum = prior.masks_for(state, torch.ones(1, state.logits.shape[1], 1))[0]  # every component
    audible = state.spec.abs() > 1e-4 * state.spec.abs().max()
    assert torch.allclose(all_masks_sum[audible], torch.ones_like(all_masks_sum[audible]), atol=1e-4)
    assert rest.pow(2).sum() < torch.from_numpy(clip["mixture"]).pow(2).sum()


def test_same_seed_same_stems_and_report(clip, settings, models, default_run):
    first, second = default_run("piano", "drums"), run(clip, ["piano", "drums"], settings, models)
    assert torch.equal(first.stems, second.stems)
    assert first.report["piano"]["tags"] == second.report["piano"]["tags"]


def test_each_stem_is_closer_to_its_source_than_the_mixture(clip, default_run):
    from tagbox_pipeline.bench.metrics import si_sdr_improvement

    result = default_run("piano", "drums")
    for index, name in enumerate(["piano", "drums"]):
        gain = si_sdr_improvement(result.stems[index].numpy().sum(0), clip[name].sum(0), clip["mixture"].sum(0))
        assert gain > 1.0, (name, gain)


def test_weights_do_not_change_during_steering(clip, models):
    stepped = load_settings(overrides={"steps": 2})
    before = [{k: v.clone() for k, v in t.state_dict().items()} for t in models.taggers]
    result = run(clip, ["piano", "drums"], stepped, models)
    assert torch.isfinite(result.stems).all()
    for tagger, saved in zip(models.taggers, before):
        assert all(torch.equal(saved[k], v) for k, v in tagger.state_dict().items())
        assert not any(p.requires_grad for p in tagger.parameters())


def test_source_absent_from_the_mix_gets_a_quiet_stem(clip, settings, models):
    result = run(clip, ["piano", "drums"], settings, models, audio="drums")
    piano, drums = (result.stems[i].pow(2).sum().item() for i in range(2))
    assert piano < 0.25 * drums, (piano, drums)


def test_silence_gives_silent_stems(settings, models):
    result = steering.separate_chunk(torch.zeros(2, 44100), 44100, ["piano"], settings, models, 0)
    assert result.stems.abs().max() == 0


def test_short_and_mono_chunks_work(clip, settings, models):
    short = torch.from_numpy(clip["mixture"][:1, :8820])  # 0.2 s, mono
    result = steering.separate_chunk(short, 44100, ["piano", "drums"], settings, models, 0)
    assert result.stems.shape == (2, 1, 8820) and torch.isfinite(result.stems).all()


def test_unknown_and_untaggable_sources_are_user_errors(clip, settings, models):
    with pytest.raises(UserError, match="unknown source"):
        run(clip, ["pianno"], settings, models)
    alone = settings.model_copy(update={"rivals": settings.rivals.model_copy(update={"enabled": False})})
    with pytest.raises(UserError, match="no chosen tagger has a tag for any of the sources organ"):
        run(clip, ["organ"], alone, models)  # without rivals nothing is named to be the complement of


def test_a_source_no_tagger_names_is_separated_alone_as_what_its_rivals_leave(clip, settings, models):
    """Issue 12: organ alone (no tag in the offline taggers) is extracted, not refused: the rivals heard
    in the chunk are named, the organ stem gets what they do not claim."""
    result = run(clip, ["organ"], settings, models)
    rivals = result.report["organ"]["rivals"]
    assert result.stems.shape == (1, 2, SECONDS * 44100) and torch.isfinite(result.stems).all()
    assert rivals and result.report["organ"]["tags"] == [] and 0 < result.stems.pow(2).sum()
    assert result.stems.pow(2).sum() < torch.from_numpy(clip["mixture"]).pow(2).sum()


def test_one_requested_source_competes_against_the_rivals_heard_and_only_it_is_returned(clip, settings, models,
                                                                                       default_run):
    from tagbox_pipeline.rivals import candidates_for

    result = default_run("drums")
    rivals = result.report["drums"]["rivals"]
    assert result.stems.shape[0] == 1 and set(result.report) == {"drums"}
    assert rivals and all(p >= settings.rivals.threshold for p in rivals.values()), rivals
    assert len(rivals) <= settings.rivals.max_count and list(rivals.values()) == sorted(rivals.values(), reverse=True)
    assert set(rivals) <= set(candidates_for(["drums"], settings.rivals.candidates, models.taggers, models.only))
    without = settings.model_copy(update={"rivals": settings.rivals.model_copy(update={"enabled": False})})
    alone = run(clip, ["drums"], without, models)
    assert not alone.report["drums"]["rivals"] and not torch.equal(alone.stems, result.stems)
    assert default_run("piano", "drums").report["drums"]["rivals"] == {}, "two sources: no rivals"


def with_faint_offset(settings, offset):
    return settings.model_copy(update={"rivals": settings.rivals.model_copy(update={"faint_logit_offset": offset})})


@pytest.fixture(scope="module")
def harp_clip(shared):
    """The first 6 s of bench-dev d08 (violin + harp): mixture and harp (in its first 3 s the taggers
    hear a third rival, flute, as faintly as the piano)."""
    return excerpt(shared, "d08", ("mixture", "harp"), seconds=6)


def test_a_faint_rival_does_not_take_the_requested_source(harp_clip, settings, models):
    """Issue 12: in the harp + violin excerpt the taggers hear strings clearly and piano faintly (the
    harp, heard as a piano): at the usual offset the piano rival takes harp components; at the faint
    offset it takes fewer of them and the harp stem is closer to the true harp."""
    from tagbox_pipeline.bench.metrics import si_sdr

    faint, usual = settings.rivals.faint_logit_offset, settings.rivals.logit_offset
    results = {offset: run(harp_clip, ["harp"], with_faint_offset(settings, offset), models) for offset in (faint, usual)}
    rivals = results[faint].report["harp"]["rivals"]
    assert faint < usual and rivals == results[usual].report["harp"]["rivals"]
    assert sorted(p >= settings.rivals.faint_below for p in rivals.values()) == [False, True], rivals
    harp = harp_clip["harp"].sum(axis=0)
    scores = {offset: si_sdr(result.stems[0].sum(dim=0).numpy(), harp) for offset, result in results.items()}
    assert scores[faint] > scores[usual] + 0.5, scores


def test_every_rival_of_a_source_without_a_tag_keeps_the_usual_offset(harp_clip, settings, models):
    """Organ (no tag offline) is what its rivals leave: a faint one is not pushed down."""
    offsets = (settings.rivals.faint_logit_offset, settings.rivals.logit_offset)
    assert offsets[0] != offsets[1]
    results = [run(harp_clip, ["organ"], with_faint_offset(settings, offset), models) for offset in offsets]
    assert torch.equal(results[0].stems, results[1].stems)
    rivals = results[0].report["organ"]["rivals"]
    assert any(p < settings.rivals.faint_below for p in rivals.values()), rivals


def with_prior(models, settings):
    """``models`` with a prior built from ``settings.nmf`` (the prior reads its settings once, when loaded)."""
    return dataclasses.replace(models, prior=NMFPrior(settings.nmf))


def test_steps_that_score_only_the_request_raise_its_tag_and_move_its_rivals_too(clip, settings, models,
                                                                                default_run):
    """``rivals.in_loss = false``: the loss scores the requested source alone; ``nmf.step_complements =
    false``: its estimate alone, not the mixture without it. The steps still pay off, and each
    choice is another loss."""
    def lean(in_loss, complements):
        return settings.model_copy(update={
            "steps": 2, "rivals": settings.rivals.model_copy(update={"in_loss": in_loss}),
            "nmf": settings.nmf.model_copy(update={"step_complements": complements})})

    def stepped(in_loss, complements):
        return run(clip, ["drums"], lean(in_loss, complements), with_prior(models, lean(in_loss, complements)))

    warm, leanest = default_run("drums"), stepped(False, False)
    assert leanest.report["drums"]["rivals"], "the chunk has rivals: the test needs them"
    assert (warm.report["drums"]["steps"], leanest.report["drums"]["steps"]) == (0, 2)
    # (the warm start's transient cue already gives the drums much of what steps used to; on this 3 s
    # excerpt two lean steps still raise p(drums) 0.227 -> 0.242; on the first 6 s they added 0.007)
    assert leanest.report["drums"]["p_tag"] > warm.report["drums"]["p_tag"] + 0.004
    request_only = stepped(False, True)
    assert not torch.equal(leanest.stems, request_only.stems), "scoring the complement too is another loss"
    assert not torch.equal(request_only.stems, stepped(True, True).stems), "scoring the rivals too is another loss"


def test_a_request_of_more_sources_than_the_step_limit_gets_the_warm_start_alone_and_says_so(clip, settings, models,
                                                                                              default_run, caplog):
    limited = settings.model_copy(update={"steps": 2, "nmf": settings.nmf.model_copy(update={"step_max_sources": 1})})
    limited_models = with_prior(models, limited)
    two = run(clip, ["piano", "drums"], limited, limited_models)
    assert torch.equal(two.stems, default_run("piano", "drums").stems)
    assert [two.report[s]["steps"] for s in ("piano", "drums")] == [0, 0]
    one_second = clip["mixture"][:, :44100]
    separator = Separator(limited, limited_models)
    with caplog.at_level(logging.WARNING, logger="tagbox_pipeline.separation"):
        separator.separate(one_second, 44100, ["drums"])
    assert not caplog.records, "a request within the limit gets its steps, silently"
    with caplog.at_level(logging.WARNING, logger="tagbox_pipeline.separation"):
        separator.separate(one_second, 44100, ["piano", "drums"])
    assert [r.getMessage() for r in caplog.records] == [
        "tagbox: 2 sources requested: no gradient steps (steps = 2 runs for requests of at most 1 sources, "
        "[nmf] step_max_sources)"]


def test_a_run_without_steps_does_not_load_the_optimiser(clip, tmp_path):
    """Building the first torch optimiser imports torch's compiler stack (about 2 s of every command's
    start-up): a run with ``steps = 0`` never builds one, a run with steps does (1.5 s of music, the
    weight-free tagger alone, no per-source tagger: what is measured is the import, not the separation)."""
    path = tmp_path / "mixture.npy"
    np.save(path, clip["mixture"][:, :int(1.5 * 44100)])
    script = (
        "import sys, numpy, torch\n"
        "from tagbox_pipeline import steering\n"
        "from tagbox_pipeline.config import load_settings\n"
        "mix = torch.from_numpy(numpy.load(sys.argv[1]))\n"
        "for steps in (0, 1):\n"
        "    settings = load_settings(overrides={'steps': steps, 'taggers': ['spectral'], 'source_taggers': {}})\n"
        "    steering.separate_chunk(mix, 44100, ['drums'], settings, steering.load_models(settings), 0)\n"
        "    print(steps, 'torch._dynamo' in sys.modules)\n")
    result = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=300,
                            env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.split("\n")[:2] == ["0 False", "1 True"], result.stdout


def test_the_loss_backpropagated_row_by_row_has_the_gradient_of_one_pass(clip, settings, models):
    """The step backpropagates one row's tagger graph at a time (memory); the gradient must be the
    one a single backward pass of the summed loss gives, for the two-sided and the multi-hot loss."""
    from tagbox_pipeline.objective import SourceTags, multi_hot_bce, source_probabilities, tag_nll
    source_tags = SourceTags.build(["piano", "drums"], models.taggers)
    first = slice(0, 3 * 44100)  # 3 s: one window of every tagger
    mono = torch.from_numpy(clip["mixture"][:, first]).mean(dim=0)
    stems = torch.stack([torch.from_numpy(clip[name][:, first]).mean(dim=0) for name in ("piano", "drums")])
    gains = torch.tensor([[0.8], [1.1]], requires_grad=True)

    def gradients(row_loss, rows_of):
        gains.grad = None
        steering.backward_by_row(rows_of(gains * stems), row_loss)
        by_row = gains.grad.clone()
        gains.grad = None
        rows = rows_of(gains * stems)
        sum(row_loss(rows[r:r + 1], r) for r in range(len(rows))).backward()
        return by_row, gains.grad.clone()

    def two_sided(row, r):
        return tag_nll(source_probabilities(row, 44100, models.taggers, source_tags)[0, 0, r % 2], heard=r < 2)

    by_row, at_once = gradients(two_sided, lambda estimates: torch.cat([estimates, mono - estimates]))
    assert by_row.abs().min() > 0 and torch.allclose(by_row, at_once, rtol=1e-4, atol=1e-7)
    whole = multi_hot_bce(gains * stems, 44100, models.taggers, source_tags)
    by_row, at_once = gradients(lambda row, r: multi_hot_bce(row, 44100, models.taggers, source_tags, [r]),
                                lambda estimates: estimates)
    assert torch.allclose(by_row, at_once, rtol=1e-4, atol=1e-7)
    gains.grad = None
    whole.backward()
    assert torch.allclose(by_row, gains.grad, rtol=1e-4, atol=1e-7), "per-row terms add up to the seed's loss"


def test_an_instrument_sharing_a_tag_with_the_request_is_never_its_rival(models):
    from tagbox_pipeline.rivals import candidates_for

    candidates = load_settings().rivals.candidates
    assert "strings" not in candidates_for(["cello"], candidates, models.taggers, models.only)  # MTAT 'strings'
    assert "vocals" not in candidates_for(["choir"], candidates, models.taggers, models.only)
    assert "guitar" not in candidates_for(["acoustic guitar"], candidates, models.taggers, models.only)
    assert {"drums", "piano", "strings"} <= set(candidates_for(["organ"], candidates, models.taggers, models.only))


def test_a_source_no_tagger_names_gets_what_the_named_ones_do_not_claim(clip, settings, models):
    result = run(clip, ["drums", "organ"], settings, models)
    assert result.report["organ"]["tags"] == [] and torch.isfinite(result.stems).all()
    assert result.stems[1].pow(2).sum() > 0


def test_a_per_source_tagger_scores_only_its_sources(clip, shared):
    settings = load_settings(overrides={"steps": 0, "source_taggers": {"drums": ["fcn-mtat"]}})
    models = steering.load_models(settings, "cpu")
    assert [t.name for t in models.taggers] == ["MTT_musicnn", "MTT_vgg", "spectral", "fcn-mtat"]
    assert models.describe()["source_taggers"] == {"fcn-mtat": ["drums"]}
    report = run(clip, ["piano", "drums"], settings, models).report
    mtat = lambda name, tags: [f"{name}:{tag}" for tag in tags]
    drum_tags = ["drums", "beat", "beats"]
    assert report["drums"]["tags"] == (mtat("MTT_musicnn", drum_tags) + mtat("MTT_vgg", drum_tags)
                                       + mtat("fcn-mtat", drum_tags))
    # fcn-mtat has "piano" but is not used for it
    assert report["piano"]["tags"] == ["MTT_musicnn:piano", "MTT_vgg:piano"]


def test_a_per_source_tagger_without_weights_is_skipped_and_named(clip, monkeypatch, tmp_path):
    monkeypatch.setenv("TAGBOX_MODEL_DIR", str(tmp_path))  # no sota weights here (and the cache is empty)
    settings = load_settings(overrides={"steps": 0, "source_taggers": {"synth": ["crnn-jamendo"]}})
    models = steering.load_models(settings, "cpu")
    assert [t.name for t in models.taggers] == ["MTT_musicnn", "MTT_vgg", "spectral"]
    assert "tagbox models fetch crnn-jamendo" in models.describe()["skipped_taggers"]["crnn-jamendo"]
    result = run(clip, ["piano", "synth"], settings, models)
    assert sorted(result.report["synth"]["tags"]) == ["MTT_musicnn:electronic", "MTT_musicnn:synth",
                                                      "MTT_vgg:electronic", "MTT_vgg:synth"]
    assert torch.isfinite(result.stems).all()


def test_unknown_names_in_tagger_settings_are_config_errors_naming_the_key():
    from tagbox_pipeline.errors import ConfigError

    for overrides, words in (({"taggers": ["fcn-mtta"]}, "taggers: unknown tagger 'fcn-mtta'"),
                             ({"source_taggers": {"synthh": ["fcn-jamendo"]}}, "source_taggers: unknown source"),
                             ({"source_taggers": {"synth": ["fcn-jam"]}}, "source_taggers: unknown tagger")):
        with pytest.raises(ConfigError, match=words):
            load_checked_settings(overrides=overrides)
