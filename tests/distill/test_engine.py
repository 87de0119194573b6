import pytest
import torch

from hypervldd.distill import (
    CovMatch,
    DivergenceError,
    EngineConfig,
    MomentMatching,
    SyntheticSet,
    cross_covariance,
    get_distiller,
)
from hypervldd.distill.covmatch import _stat_loss
from hypervldd.eval import StudentConfig

from .._synth import clustered_features

SMALL_STUDENT = StudentConfig(width=16)


@pytest.fixture(scope="module")
def real():
    fs, _ = clustered_features(n_img=80, caps=2, d_img=24, d_txt=12, seed=3)
    return fs


def _covmatch(**eng):
    base = dict(iterations=20, real_batch_size=32, log_every=2, lr_image=0.5, lr_text=0.5)
    return CovMatch(reset_every=7, student=SMALL_STUDENT, engine=EngineConfig(**{**base, **eng}))


class _Interrupt(Exception):
    pass


def test_resume_after_interruption_gives_the_identical_artifact(real, tmp_path):
    full = _covmatch(checkpoint_every=5).fit(real, 10, seed=4, checkpoint_dir=tmp_path / "a")
    a = full.save(tmp_path / "a.safetensors").read_bytes()

    def stop_at_12(syn, step):
        if step == 12:
            raise _Interrupt
        return {"n": float(syn.num_pairs)}

    def ok(syn, step):
        return {"n": float(syn.num_pairs)}

    d = _covmatch(checkpoint_every=5, validate_every=4)
    with pytest.raises(_Interrupt):
        d.fit(real, 10, seed=4, checkpoint_dir=tmp_path / "b", validate=stop_at_12)
    steps = sorted(p.name for p in (tmp_path / "b").iterdir())
    assert steps == ["step_00000005.safetensors", "step_00000010.safetensors"]
    # A fresh process would build a fresh distiller: do the same.
    resumed = _covmatch(checkpoint_every=5, validate_every=4).fit(
        real, 10, seed=4, checkpoint_dir=tmp_path / "b", resume=True, validate=ok
    )
    uninterrupted = _covmatch(checkpoint_every=5, validate_every=4).fit(
        real, 10, seed=4, checkpoint_dir=tmp_path / "c", validate=ok
    )
    b = resumed.save(tmp_path / "b.safetensors").read_bytes()
    c = uninterrupted.save(tmp_path / "c.safetensors").read_bytes()
    assert b == c
    assert [h for h in resumed.history if "validation" in h] == [
        {"step": s, "validation": {"n": 10.0}} for s in (4, 8, 12, 16, 20)
    ]
    # Validation does not change the optimisation: same tensors as the run without it.
    assert torch.equal(SyntheticSet.load(tmp_path / "a.safetensors").image, resumed.image)
    assert a != b  # the history (validation records) differs, so the files do too


def test_resume_refuses_a_different_run(real, tmp_path):
    _covmatch(checkpoint_every=5, iterations=5).fit(real, 10, seed=1, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="different run"):
        _covmatch(checkpoint_every=5).fit(real, 10, seed=2, checkpoint_dir=tmp_path, resume=True)
    with pytest.raises(ValueError, match="checkpoint_dir"):
        _covmatch(checkpoint_every=5).fit(real, 10, seed=2)


class _BlowsUp(MomentMatching):
    method = "test-blows-up"

    def _loss(self, step, image, text, data, gen):
        loss = super()._loss(step, image, text, data, gen)
        return loss * torch.nan if step >= 7 else loss


def test_nan_stops_and_keeps_the_last_good_checkpoint(real, tmp_path):
    d = _BlowsUp(engine=EngineConfig(iterations=20, checkpoint_every=5, real_batch_size=32))
    with pytest.raises(DivergenceError, match=r"step 8.*step_00000005"):
        d.fit(real, 10, seed=0, checkpoint_dir=tmp_path)
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["step_00000005.safetensors"]
    from hypervldd.distill._io import read_container

    tensors, manifest = read_container(tmp_path / names[0], expect_format="hypervldd.checkpoint")
    assert manifest["step"] == 5 and bool(torch.isfinite(tensors["syn.image"]).all())


def test_divergence_without_checkpoints_says_so(real):
    d = _BlowsUp(engine=EngineConfig(iterations=20, real_batch_size=32))
    with pytest.raises(DivergenceError, match="no checkpoint"):
        d.fit(real, 10, seed=0)


def test_moment_matching_reduces_its_loss(real):
    n = real.num_captions
    d = get_distiller(
        "moment_matching",
        engine=EngineConfig(
            iterations=150,
            real_batch_size=n,
            log_every=1,
            lr_image=0.5,
            lr_text=0.5,
            optimizer="adam",
        ),
    )
    s = d.fit(real, 8, seed=0)
    losses = [h["loss"] for h in s.history]
    assert losses[-1] < 0.05 * losses[0]


def test_kmeans_init_picks_distinct_images_across_clusters():
    from hypervldd.distill import kmeans_init, prepare_real

    fs, label = clustered_features(n_img=90, caps=2, d_img=24, d_txt=12, k=6, seed=9)
    data = prepare_real(fs)
    a = kmeans_init(data, 6, torch.Generator().manual_seed(0))
    b = kmeans_init(data, 6, torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert len(set(fs.txt2img[a].tolist())) == 6
    assert len(set(label[fs.txt2img[a]].tolist())) >= 5
    s = get_distiller("moment_matching", engine=EngineConfig(iterations=1, init="kmeans"))
    assert len(set(fs.txt2img[s.fit(fs, 6, seed=0).source_indices].tolist())) == 6


def test_covmatch_defaults_follow_the_budget(real):
    for budget, rho, lam in [(10, 2.0, 0.1)]:
        s = _covmatch(iterations=3).fit(real, budget, seed=0)
        assert s.config["resolved"] == {"rho": rho, "lam": lam}
        assert s.method == "covmatch" and s.config["engine"]["iterations"] == 3
    d = CovMatch()
    d._resolve(200)
    assert (d._rho, d._lam) == (1.0, 0.1)
    d._resolve(500)
    assert (d._rho, d._lam) == (1.0, 0.5)
    assert CovMatch().config.engine.lr_image == 1.0 and CovMatch().config.reset_every == 50


def test_cross_covariance_and_loss_are_zero_at_the_target():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, 4, generator=g), torch.randn(50, 3, generator=g)
    c = cross_covariance(a, b)
    ref = ((a - a.mean(0)).T @ (b - b.mean(0))) / 50
    assert torch.allclose(c, ref)
    assert float(_stat_loss(a, b, a, b, 1.0, 0.3)) == pytest.approx(0.0, abs=1e-10)
    assert float(_stat_loss(a, b, a, b, 2.0, 0.3)) > 0


def test_engine_config_errors():
    with pytest.raises(ValueError, match="init"):
        EngineConfig(init="noise")
    with pytest.raises(ValueError, match="iterations"):
        EngineConfig(iterations=0)


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(real, tmp_path):
    _covmatch(checkpoint_every=5, iterations=10).fit(real, 10, seed=1, checkpoint_dir=tmp_path)
    latest = tmp_path / "step_00000010.safetensors"
    latest.write_bytes(latest.read_bytes()[:50])
    with pytest.warns(UserWarning, match="skipping unreadable checkpoint"):
        resumed = _covmatch(checkpoint_every=5, iterations=10).fit(
            real, 10, seed=1, checkpoint_dir=tmp_path, resume=True
        )
    fresh = _covmatch(iterations=10).fit(real, 10, seed=1)
    assert torch.equal(resumed.image, fresh.image) and torch.equal(resumed.text, fresh.text)


def test_distilled_set_evaluates(real, tmp_path):
    from hypervldd.eval import EvalProtocol, evaluate

    s = _covmatch(iterations=5).fit(real, 10, seed=0)
    loaded = SyntheticSet.load(s.save(tmp_path / "s.safetensors"))
    p = EvalProtocol(student=SMALL_STUDENT, epochs=3, seeds=(0,), lr_decay_epochs=())
    r = evaluate(loaded, real, p)
    assert r.n_train_pairs == 10 and r.train_storage_floats == loaded.storage_floats()
    assert 0.0 <= r.mean["mean"] <= 100.0


# -- validation-best selection (engine.keep_best) ----------------------------------------
def _peak_at(best_step):
    """A validator whose score peaks at ``best_step`` (and is a pure function of the step)."""

    def score(syn, step):
        return {"mean": -abs(step - best_step), "n": float(syn.num_pairs)}

    return score


def test_keep_best_returns_the_set_of_the_best_validation_step(real):
    picked = _covmatch(validate_every=4, keep_best=True).fit(real, 10, seed=4, validate=_peak_at(8))
    stopped_there = _covmatch(iterations=8).fit(real, 10, seed=4)
    assert torch.equal(picked.image, stopped_there.image)
    assert torch.equal(picked.text, stopped_there.text)
    assert picked.config["selected"] == {"step": 8, "metric": "mean", "value": 0.0}
    # The initialisation and every check are in the history the set carries.
    steps = [h["step"] for h in picked.history if "validation" in h]
    assert steps == [0, 4, 8, 12, 16, 20]
    assert "selected" not in stopped_there.config


def real_pairs(fs):  # the engine's view of the real features
    from hypervldd.distill import prepare_real

    return prepare_real(fs)


def test_keep_best_candidates_include_the_initialisation_and_the_final_step(real):
    init = _covmatch(validate_every=4, keep_best=True).fit(real, 10, seed=4, validate=_peak_at(0))
    src = init.source_indices
    want = torch.nn.functional.normalize(real_pairs(real).pair_image[src], dim=-1)
    assert init.config["selected"]["step"] == 0
    assert torch.equal(init.image, want)
    # 10 iterations with checks every 4: step 10 is validated although 10 % 4 != 0.
    last = _covmatch(iterations=10, validate_every=4, keep_best=True).fit(
        real, 10, seed=4, validate=_peak_at(10)
    )
    plain = _covmatch(iterations=10).fit(real, 10, seed=4)
    assert last.config["selected"]["step"] == 10
    assert torch.equal(last.image, plain.image)
    # Ties keep the earlier set; NaN scores never win.
    flat = _covmatch(validate_every=4, keep_best=True).fit(
        real, 10, seed=4, validate=lambda s, k: {"mean": float("nan") if k == 0 else 1.0}
    )
    assert flat.config["selected"]["step"] == 4


def test_keep_best_resumes_to_the_identical_artifact(real, tmp_path):
    def stop_at_16(syn, step):
        if step == 16:
            raise _Interrupt
        return _peak_at(8)(syn, step)

    cfg = dict(checkpoint_every=5, validate_every=4, keep_best=True)
    with pytest.raises(_Interrupt):
        _covmatch(**cfg).fit(real, 10, seed=4, checkpoint_dir=tmp_path / "b", validate=stop_at_16)
    # The step-15 checkpoint holds the step-8 set as the best so far; no check after
    # the resume beats it, so only the checkpointed copy can give the right answer.
    resumed = _covmatch(**cfg).fit(
        real, 10, seed=4, checkpoint_dir=tmp_path / "b", resume=True, validate=_peak_at(8)
    )
    whole = _covmatch(**cfg).fit(
        real, 10, seed=4, checkpoint_dir=tmp_path / "c", validate=_peak_at(8)
    )
    assert resumed.config["selected"]["step"] == 8
    assert (
        resumed.save(tmp_path / "b.safetensors").read_bytes()
        == whole.save(tmp_path / "c.safetensors").read_bytes()
    )
    # A finished run resumed again returns the same selection without optimising.
    again = _covmatch(**cfg).fit(
        real, 10, seed=4, checkpoint_dir=tmp_path / "c", resume=True, validate=_peak_at(8)
    )
    assert torch.equal(again.image, whole.image)


def test_keep_best_refuses_what_it_cannot_select_on(real):
    with pytest.raises(ValueError, match="validate_every"):
        EngineConfig(keep_best=True)
    with pytest.raises(ValueError, match="validate callback"):
        _covmatch(validate_every=4, keep_best=True).fit(real, 10, seed=4)
    with pytest.raises(ValueError, match="select_metric"):
        _covmatch(validate_every=4, keep_best=True).fit(
            real, 10, seed=4, validate=lambda s, k: {"recall": 1.0}
        )
    with pytest.raises(ValueError, match="NaN at every check"):
        _covmatch(validate_every=4, keep_best=True).fit(
            real, 10, seed=4, validate=lambda s, k: {"mean": float("nan")}
        )


def test_a_partial_engine_override_keeps_the_methods_own_engine_defaults():
    # Trajectory matching's engine is Adam at 1e-3; overriding only its iterations must
    # not fall back to EngineConfig()'s SGD at 1.0 (nor its 10,000 iterations for RAHA).
    mtt = get_distiller("mtt", {"engine": {"iterations": 7}, "experts": {"epochs": 2}})
    assert mtt.config.engine.iterations == 7
    assert (mtt.config.engine.optimizer, mtt.config.engine.lr_image) == ("adam", 1e-3)
    assert mtt.config.experts.epochs == 2 and mtt.config.experts.num_experts == 20
    raha = get_distiller("raha", {"engine": {"validate_every": 50, "keep_best": True}})
    assert raha.config.engine.iterations == 2000 and raha.config.engine.keep_best
    with pytest.raises(ValueError, match="unknown key"):
        get_distiller("mtt", {"engine": {"iteration": 7}})


@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m.update(step=5),
        lambda m: m["optimizers"]["main"]["param_groups"][0].update(lr=50.0),
        lambda m: m["history"][0].update(loss=0.0),
    ],
)
def test_an_edited_checkpoint_manifest_is_refused(real, tmp_path, edit):
    from .test_artifact import _rewrite_manifest

    _covmatch(checkpoint_every=5, iterations=10).fit(real, 10, seed=1, checkpoint_dir=tmp_path)
    _rewrite_manifest(tmp_path / "step_00000010.safetensors", edit)
    with pytest.warns(UserWarning, match="step_00000010.*checksum mismatch"):
        resumed = _covmatch(checkpoint_every=5, iterations=10).fit(
            real, 10, seed=1, checkpoint_dir=tmp_path, resume=True
        )
    fresh = _covmatch(iterations=10).fit(real, 10, seed=1)
    assert torch.equal(resumed.image, fresh.image) and torch.equal(resumed.text, fresh.text)
    assert resumed.history == fresh.history


def test_a_new_run_refuses_a_directory_with_another_runs_checkpoints(real, tmp_path):
    _covmatch(checkpoint_every=5, iterations=10).fit(real, 10, seed=1, checkpoint_dir=tmp_path)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert sorted(before) == ["step_00000005.safetensors", "step_00000010.safetensors"]
    for seed in (2, 1):  # another run, and the same run started afresh without resume
        with pytest.raises(ValueError, match=r"already holds 2 checkpoint.*--resume"):
            _covmatch(checkpoint_every=5, iterations=10).fit(
                real, 10, seed=seed, checkpoint_dir=tmp_path
            )
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        _covmatch(checkpoint_every=5).fit(real, 10, seed=1, checkpoint_dir=tmp_path / "file")


def test_retention_never_deletes_another_runs_checkpoints(real, tmp_path):
    other, mine = tmp_path / "other", tmp_path / "mine"
    _covmatch(checkpoint_every=1, iterations=3).fit(real, 10, seed=7, checkpoint_dir=other)
    cfg = dict(checkpoint_every=4, iterations=12, keep_checkpoints=1, validate_every=4)

    def stop_at_8(s, step):
        if step == 8:
            raise _Interrupt
        return {"mean": 0.0}

    with pytest.raises(_Interrupt):  # interrupted after its step-4 checkpoint
        _covmatch(**cfg).fit(real, 10, seed=1, checkpoint_dir=mine, validate=stop_at_8)
    foreign = {}
    for p in other.iterdir():  # older steps of another run in the same directory
        foreign[p.name] = p.read_bytes()
        (mine / p.name).write_bytes(foreign[p.name])
    assert sorted(foreign) == ["step_00000002.safetensors", "step_00000003.safetensors"]
    _covmatch(**cfg).fit(
        real, 10, seed=1, checkpoint_dir=mine, resume=True, validate=lambda s, k: {"mean": 0.0}
    )
    left = sorted(p.name for p in mine.iterdir())
    assert left == [*sorted(foreign), "step_00000012.safetensors"]
    assert all((mine / n).read_bytes() == b for n, b in foreign.items())
