import shutil

import pytest
import torch
import torch.nn.functional as F
from torch.func import functional_call

from hypervldd.distill import (
    ArtifactError,
    DivergenceError,
    EngineConfig,
    SyntheticSet,
    prepare_real,
)
from hypervldd.distill.experts import (
    SIDES,
    ExpertConfig,
    _expert_seed,
    build_expert_student,
    train_experts,
)
from hypervldd.distill.matching import matching_gradients, unrolled_matching_loss
from hypervldd.distill.trajectory import (
    MTTConfig,
    MTTDistiller,
    _Objective,
    make_step_loss,
    soft_infonce,
)
from hypervldd.eval import EvalProtocol, StudentConfig, evaluate
from hypervldd.eval.student import batch_targets, symmetric_infonce

from .._synth import clustered_features

SMALL = StudentConfig(width=8)
EXPERTS = ExpertConfig(num_experts=2, epochs=3, batch_size=16)


@pytest.fixture(scope="module")
def real():
    fs, _ = clustered_features(n_img=30, caps=2, d_img=12, d_txt=10, seed=3)
    return fs


@pytest.fixture(scope="module")
def data(real):
    return prepare_real(real)


@pytest.fixture(scope="module")
def buffer(data):
    return train_experts(data, SMALL, EXPERTS)


def _objective(buffer, index, dtype=torch.float32):
    st = build_expert_student(12, 10, SMALL, EXPERTS, torch.Generator().manual_seed(0))
    st.requires_grad_(False)
    st.load_state_dict(buffer.load(index).init_state)
    return _Objective(st.to(dtype))


@pytest.mark.parametrize(
    ("batch", "dropout", "sim", "norm", "blend"),
    [
        (None, 0.0, False, "per_modality", False),
        (5, 0.3, True, "merged", False),
        (None, 0.0, True, "per_modality", True),
    ],
)
def test_recomputed_gradient_equals_full_unrolling(buffer, batch, dropout, sim, norm, blend):
    obj = _objective(buffer, 1, torch.float64)
    ex = buffer.load(1)
    steps = 4
    kw = dict(batch=batch, feature_dropout=dropout, blend=blend, sim_scale=0.5)
    step_loss = make_step_loss(obj, buffer.layouts, [5, 17, 3, 99], **kw)
    g = torch.Generator().manual_seed(2)
    m = 8
    inputs = [
        torch.randn(m, 12, generator=g, dtype=torch.float64),
        torch.randn(m, 10, generator=g, dtype=torch.float64),
    ]
    if sim:
        inputs += [
            1.0 + 0.1 * torch.randn(m, generator=g, dtype=torch.float64),
            torch.randn(m, 2, generator=g, dtype=torch.float64),
            0.2 * torch.randn(m, 2, generator=g, dtype=torch.float64),
        ]
    inputs = [x.requires_grad_(True) for x in inputs]
    log_lrs = torch.tensor([0.4, 0.25], dtype=torch.float64).log().requires_grad_(True)
    theta0 = [ex.trajectories[s][0].double() for s in SIDES]
    target = [ex.trajectories[s][2].double() for s in SIDES]

    full = unrolled_matching_loss(step_loss, theta0, target, log_lrs, inputs, steps, norm)
    want = torch.autograd.grad(full, [*inputs, log_lrs])
    loss, grads, lr_grad = matching_gradients(
        step_loss, theta0, target, log_lrs, inputs, steps, norm
    )
    tol = 1e3 * torch.finfo(torch.float64).eps
    assert torch.allclose(loss, full.detach(), rtol=tol, atol=0)
    for w, got in zip(want, [*grads, lr_grad], strict=True):
        assert w.abs().max() > 0
        assert torch.allclose(got, w, rtol=tol, atol=tol * float(w.abs().max()))
    # The replay matters: another step seed changes the gradient.
    other = make_step_loss(obj, buffer.layouts, [6, 17, 3, 99], **kw)
    _, grads2, _ = matching_gradients(other, theta0, target, log_lrs, inputs, steps, norm)
    if batch is not None or dropout > 0 or blend:
        assert not torch.allclose(grads2[0], grads[0])


def test_blending_mixes_both_modalities_with_one_draw_and_keeps_targets(buffer):
    # RepBlend: x <- lam x + (1 - lam) x[perm], the same (lam, perm) for images and texts.
    obj = _objective(buffer, 0, torch.float64)
    ex = buffer.load(0)
    params = [ex.trajectories[s][0].double() for s in SIDES]
    g = torch.Generator().manual_seed(4)
    m = 7
    img = torch.randn(m, 12, generator=g, dtype=torch.float64)
    txt = torch.randn(m, 10, generator=g, dtype=torch.float64)
    step_loss = make_step_loss(obj, buffer.layouts, [11], batch=None, blend=True)
    got = step_loss(0, params, [img, txt])

    draw = torch.Generator().manual_seed(11)
    lam = float(torch.rand((), generator=draw))
    perm = torch.randperm(m, generator=draw)
    pd = {}
    for side, p in zip(SIDES, params, strict=True):
        pd.update(buffer.layouts[side].unflatten(p, prefix="student."))

    def loss(i, t):
        return functional_call(obj, pd, (i, t, None))

    mixed = loss(lam * img + (1 - lam) * img[perm], lam * txt + (1 - lam) * txt[perm])
    assert 0.0 < lam < 1.0 and not torch.equal(perm, torch.arange(m))
    assert torch.allclose(got, mixed, rtol=1e-12, atol=0)
    assert not torch.allclose(got, loss(img, txt))  # it did mix
    # Mixing the texts with another permutation would break the pairs: a different loss.
    other = loss(lam * img + (1 - lam) * img[perm], lam * txt + (1 - lam) * txt[perm.roll(1)])
    assert not torch.allclose(got, other)


def test_one_inner_step_on_real_data_reproduces_one_expert_step(data):
    # One epoch of a full-batch expert is one SGD step: the inner loop must reproduce it.
    experts = ExpertConfig(num_experts=1, epochs=1, batch_size=10_000)
    buf = train_experts(data, SMALL, experts)
    ex = buf.load(0)
    gen = torch.Generator().manual_seed(_expert_seed(experts.seed, 0))
    st = build_expert_student(12, 10, SMALL, experts, gen)
    perm = torch.randperm(data.num_pairs, generator=gen)  # the expert's batch order
    targets = batch_targets(perm, similarity=None, group=data.pair_group)
    obj = _Objective(st.requires_grad_(False))
    theta = [ex.trajectories[s][0].clone().requires_grad_(True) for s in SIDES]
    params = {}
    for s, t in zip(SIDES, theta, strict=True):
        params.update(buf.layouts[s].unflatten(t, "student."))
    img, txt = data.pair_image[perm], data.pair_text[perm]
    loss = functional_call(obj, params, (img, txt, targets))
    grads = torch.autograd.grad(loss, theta)
    for s, t, g in zip(SIDES, theta, grads, strict=True):
        step = t.detach() - experts.lr * g
        assert torch.allclose(step, ex.trajectories[s][1], atol=1e-6, rtol=1e-5)
    # ... at the experts' temperature tau (logits -d / tau), not log(1 / tau).
    assert float(st.tau) == pytest.approx(SMALL.temperature, rel=1e-6)
    with torch.no_grad():
        d = st.distance(st.encode_image(img), st.encode_text(txt))
        assert float(loss) == pytest.approx(float(symmetric_infonce(-d / 0.07, targets)), 1e-5)
        wrong = symmetric_infonce(-d * torch.log(torch.tensor(1 / 0.07)), targets)
        assert abs(float(loss) - float(wrong)) > 0.1


def test_buffer_on_disk_manifest_pairing_and_float16(data, buffer, tmp_path):
    disk = train_experts(data, SMALL, EXPERTS, tmp_path / "b")
    man = disk.manifest()
    assert [e["index"] for e in man["experts"]] == [0, 1]
    assert man["experts"][1]["files"] == {
        "init": "init_0001.safetensors",
        "image": "image_0001.safetensors",
        "text": "text_0001.safetensors",
    }
    assert [p["name"] for p in man["parameters"]["image"]] == [
        "image_head.proj.weight",
        "image_head.proj.bias",
    ]
    assert man["optimizer"] == {
        "name": "sgd",
        "lr": 0.1,
        "momentum": 0.0,
        "weight_decay": 0.0,
        "batch_size": 16,
        "epochs": 3,
    }
    assert man["identity"]["data_fingerprint"] == data.fingerprint
    for s in SIDES:  # disk and memory agree bit for bit, epochs 0..3
        reopened = type(disk).open(tmp_path / "b").load(1).trajectories[s]
        assert reopened.shape == (4, disk.layouts[s].numel)
        assert torch.equal(reopened, buffer.load(1).trajectories[s])
    # Pairing is by the manifest's index, checked against each file's header: swapping
    # two experts' image files is detected instead of silently mixing experts.
    shutil.copy(tmp_path / "b" / "image_0000.safetensors", tmp_path / "swap")
    shutil.copy(
        tmp_path / "b" / "image_0001.safetensors", tmp_path / "b" / "image_0000.safetensors"
    )
    with pytest.raises(ArtifactError, match="expert 1 side 'image'.*expects expert 0"):
        type(disk).open(tmp_path / "b").load(0)
    half = train_experts(
        data,
        SMALL,
        ExpertConfig(num_experts=1, epochs=3, batch_size=16, dtype="float16"),
        tmp_path / "h",
    )
    t16 = type(half).open(tmp_path / "h").load(0).trajectories["text"]
    t32 = buffer.load(0).trajectories["text"]
    assert torch.allclose(t16, t32, rtol=2 * torch.finfo(torch.float16).eps, atol=1e-4)
    assert not torch.equal(t16, t32)
    assert (tmp_path / "h" / "text_0000.safetensors").stat().st_size < (
        tmp_path / "b" / "text_0001.safetensors"
    ).stat().st_size


def test_buffer_resumes_and_refuses_a_mismatch(data, buffer, tmp_path, real):
    one = ExpertConfig(num_experts=1, epochs=3, batch_size=16)
    train_experts(data, SMALL, one, tmp_path)
    first = (tmp_path / "image_0000.safetensors").read_bytes()
    grown = train_experts(data, SMALL, EXPERTS, tmp_path)  # resumes with expert 1
    assert len(grown) == 2 and (tmp_path / "image_0000.safetensors").read_bytes() == first
    for s in SIDES:
        assert torch.equal(grown.load(1).trajectories[s], buffer.load(1).trajectories[s])
    with pytest.raises(ValueError, match=r"\['experts'\] differ"):
        train_experts(data, SMALL, ExpertConfig(num_experts=2, epochs=3, lr=0.05), tmp_path)
    other, _ = clustered_features(n_img=30, caps=2, d_img=12, d_txt=10, seed=4)
    with pytest.raises(ValueError, match="data_fingerprint"):
        train_experts(prepare_real(other), SMALL, EXPERTS, tmp_path)


def _mtt(engine=None, **over):
    eng = dict(iterations=6, log_every=1, optimizer="adam", lr_image=0.01, lr_text=0.01)
    eng.update(engine or {})
    base = dict(syn_steps=3, max_start_epoch=2, student=SMALL, experts=EXPERTS)
    base.update(over)
    return MTTDistiller(**base, engine=EngineConfig(**eng))


class _Stop(Exception):
    pass


def test_mtt_resumes_to_the_identical_artifact_with_lrs_and_similarity(real, tmp_path):
    eng = dict(checkpoint_every=2, validate_every=4)
    over = dict(similarity_rank=2, batch_syn=4, feature_dropout=0.1)

    def ok(syn, step):
        return {"pairs": float(syn.num_pairs)}

    def stop(syn, step):
        if step == 4:
            raise _Stop
        return ok(syn, step)

    full = _mtt(eng, **over).fit(real, 6, seed=1, checkpoint_dir=tmp_path / "a", validate=ok)

    with pytest.raises(_Stop):
        _mtt(eng, **over).fit(real, 6, seed=1, checkpoint_dir=tmp_path / "b", validate=stop)
    resumed = _mtt(eng, **over).fit(
        real, 6, seed=1, checkpoint_dir=tmp_path / "b", resume=True, validate=ok
    )
    a = full.save(tmp_path / "a.safetensors").read_bytes()
    assert resumed.save(tmp_path / "b.safetensors").read_bytes() == a
    loaded = SyntheticSet.load(tmp_path / "a.safetensors")
    assert set(loaded.learned_lrs) == {"image", "text"}
    assert loaded.learned_lrs["image"] != pytest.approx(0.1, abs=1e-6)  # it learned
    s = loaded.similarity
    assert s.left.shape == (6, 2) and s.scale == pytest.approx(0.5)
    assert not torch.equal(s.right, torch.zeros(6, 2))  # R starts at 0 and moved
    assert loaded.storage_floats() == 6 * 12 + 6 * 10 + 6 * (2 * 2 + 1) + 1 + 2
    assert (tmp_path / "a" / "experts" / "manifest.json").is_file()
    assert loaded.config["resolved"]["num_experts"] == 2


def test_mtt_unroll_and_recompute_give_the_same_run(real):
    a = _mtt(gradient="unroll").fit(real, 5, seed=0)
    b = _mtt(gradient="recompute").fit(real, 5, seed=0)
    assert torch.allclose(a.image, b.image, atol=1e-5)
    assert [h["loss"] for h in a.history] == pytest.approx([h["loss"] for h in b.history], 1e-4)


class _BlowsUp(MTTDistiller):
    method = "test-mtt-blows-up"

    def _loss(self, step, image, text, data, gen):
        loss = super()._loss(step, image, text, data, gen)
        return loss * torch.nan if step >= 3 else loss


def test_nan_stops_and_keeps_the_last_good_checkpoint(real, tmp_path):
    eng = EngineConfig(iterations=10, checkpoint_every=2, optimizer="adam", lr_image=0.01)
    d = _BlowsUp(syn_steps=2, student=SMALL, experts=EXPERTS, engine=eng)
    with pytest.raises(DivergenceError, match=r"step 4.*step_00000002"):
        d.fit(real, 5, seed=0, checkpoint_dir=tmp_path)
    assert sorted(p.name for p in tmp_path.glob("step_*")) == ["step_00000002.safetensors"]


def test_soft_infonce_matches_the_evaluation_loss_and_passes_gradient_at_zero():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(5, 5, generator=g)
    t = torch.eye(5) + 0.3 * torch.randn(5, 5, generator=g)  # some entries negative
    assert float(soft_infonce(logits, t)) == pytest.approx(float(symmetric_infonce(logits, t)))
    assert float(soft_infonce(logits, None)) == float(symmetric_infonce(logits, None))
    z = torch.zeros(5, 5, requires_grad=True)
    soft_infonce(logits, torch.eye(5) + z).backward()
    off = ~torch.eye(5, dtype=torch.bool)  # a normalised one-hot row is scale-free on its diagonal
    assert bool((z.grad[off].abs() > 0).all())


def test_config_errors():
    with pytest.raises(ValueError, match="exceeds experts.epochs"):
        MTTConfig(max_start_epoch=10, expert_epochs=2)
    with pytest.raises(ValueError, match="gradient"):
        MTTConfig(gradient="tesla")
    with pytest.raises(ValueError, match="experts.dtype"):
        ExpertConfig(dtype="int8")
    with pytest.raises(ValueError, match="feature_dropout"):
        MTTConfig(feature_dropout=1.0)


def test_mtt_improves_over_its_initialisation():
    # Tiny data, few iterations: the gain is small (about 1-2 points of mean recall
    # over 300 test images) but the run is deterministic on CPU.
    torch.set_num_threads(1)
    fs, _ = clustered_features(n_img=120, d_img=48, d_txt=24, seed=0)
    test, _ = clustered_features(n_img=300, d_img=48, d_txt=24, seed=1)
    student = StudentConfig(width=16, geometry="euclidean")
    d = MTTDistiller(
        syn_steps=8,
        max_start_epoch=3,
        student=student,
        experts=ExpertConfig(num_experts=3, epochs=4, batch_size=32),
        engine=EngineConfig(iterations=40, optimizer="adam", lr_image=0.001, lr_text=0.001),
    )
    syn = d.fit(fs, 10, seed=2)
    img, txt = fs.pairs()
    init = SyntheticSet(
        image=F.normalize(img[syn.source_indices], dim=-1),
        text=F.normalize(txt[syn.source_indices], dim=-1),
        method="init",
    )
    proto = EvalProtocol(
        student=student,
        epochs=24,
        momentum=0.0,
        weight_decay=0.0,
        lr_decay_epochs=(),
        seeds=(0, 1, 2, 3, 4),
    )
    before = evaluate(init, test, proto).mean["mean"]
    after = evaluate(syn, test, proto).mean["mean"]
    assert after > before + 1.0


def test_compare_runs_mtt_with_the_protocol_student(real):
    from hypervldd.pipeline import _with_protocol_student, compare

    proto = EvalProtocol(student=StudentConfig(width=6), epochs=2, seeds=(0,))
    cfg = _with_protocol_student("mtt", {"syn_steps": 2}, proto)
    assert cfg["student"]["width"] == 6 and cfg["syn_steps"] == 2
    assert _with_protocol_student("mtt", {"student": {"width": 3}}, proto)["student"] == {
        "width": 3
    }
    assert _with_protocol_student("covmatch", None, proto) is None
    small = {
        "syn_steps": 2,
        "experts": {"num_experts": 1, "epochs": 2, "batch_size": 32},
        "engine": {"iterations": 2},
    }
    res = compare(
        {"train": real, "test": real},
        ["mtt"],
        [4],
        protocol=proto,
        references=False,
        method_configs={"mtt": small},
    )
    (row,) = res.rows
    assert row.method == "mtt" and row.storage_floats == 4 * (12 + 10) + 2
    assert 0.0 <= row.metrics_mean["mean"] <= 100.0


def test_an_edited_buffer_manifest_is_refused(data, tmp_path):
    import json

    from hypervldd.distill import ExpertBuffer

    train_experts(data, SMALL, ExpertConfig(num_experts=1, epochs=3, batch_size=16), tmp_path)
    path = tmp_path / "manifest.json"
    good = path.read_text()
    assert ExpertBuffer.open(tmp_path).entries[0]["seed"] == json.loads(good)["experts"][0]["seed"]
    m = json.loads(good)
    m["experts"][0]["losses"][0] += 1.0
    path.write_text(json.dumps(m))
    with pytest.raises(ArtifactError, match="manifest.json: checksum mismatch"):
        ExpertBuffer.open(tmp_path)
    del m["sha256"]  # an older buffer: still read, with a warning
    m["experts"][0]["losses"][0] -= 1.0
    path.write_text(json.dumps(m))
    with pytest.warns(UserWarning, match="has no checksum"):
        assert len(ExpertBuffer.open(tmp_path)) == 1
