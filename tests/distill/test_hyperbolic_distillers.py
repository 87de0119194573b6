"""RAHA and full-dataset rank alignment as distillers on the engine."""

from __future__ import annotations

import pytest
import torch

from hypervldd.distill import SyntheticSet, get_distiller
from hypervldd.eval.features import FeatureSet


def _clustered(n: int = 120, k: int = 6, seed: int = 0) -> FeatureSet:
    g = torch.Generator().manual_seed(seed)
    ci, ct = torch.randn(k, 24, generator=g), torch.randn(k, 16, generator=g)
    lab = torch.randint(0, k, (n,), generator=g)
    img = ci[lab] + 0.3 * torch.randn(n, 24, generator=g)
    txt = ct[lab] + 0.3 * torch.randn(n, 16, generator=g)
    return FeatureSet(img, txt, torch.arange(n))


SMALL_STUDENT = {"width": 16}


def _fit(method: str, extra: dict, seed: int = 0) -> SyntheticSet:
    cfg = {"student": SMALL_STUDENT, "engine": {"iterations": 12, "real_batch_size": 32}, **extra}
    return get_distiller(method, cfg).fit(_clustered(), 6, seed)


def test_raha_distiller_runs_moves_the_pairs_and_is_deterministic() -> None:
    a = _fit("raha", {})
    b = _fit("raha", {})
    assert a.method == "raha" and a.num_pairs == 6
    assert torch.isfinite(a.image).all() and torch.isfinite(a.text).all()
    assert torch.equal(a.image, b.image) and torch.equal(a.text, b.text)
    short = _fit("raha", {"engine": {"iterations": 1, "real_batch_size": 32}})
    assert not torch.allclose(a.image, short.image)  # later steps keep changing the pairs
    faithful = _fit("raha", {"loss": {"faithful": True}})
    assert not torch.allclose(a.image, faithful.image)  # the corrections change the result


def test_rank_align_distiller_runs_and_records_its_config(tmp_path) -> None:  # noqa: ANN001
    s = _fit("rank_align", {"experts": 1, "expert_epochs": 2, "anchors": 16})
    assert s.method == "rank_align" and s.num_pairs == 6
    assert torch.isfinite(s.image).all()
    assert s.config["experts"] == 1
    path = s.save(tmp_path / "ra.safetensors")
    back = SyntheticSet.load(path)
    assert torch.equal(back.image, s.image) and back.method == "rank_align"
    pw = _fit("rank_align", {"experts": 1, "expert_epochs": 2, "variant": "pairwise"})
    assert not torch.allclose(pw.image, s.image)


ONLINE = {"embedding": "online", "reset_every": 5, "anchors": 16}


class _Stop(Exception):
    pass


def test_rank_align_online_student_moves_the_embedding_and_differs_from_the_expert() -> None:
    from hypervldd.distill.base import prepare_real

    data = prepare_real(_clustered())
    cfg = {"student": SMALL_STUDENT, "engine": {"iterations": 12, "real_batch_size": 32}}
    d = get_distiller("rank_align", {**cfg, **ONLINE})
    d._setup(data, 6, torch.Generator().manual_seed(0))
    assert set(d._aux_modules()) == {"student"} and not d._experts
    gen = torch.Generator().manual_seed(1)
    st0, img0, _ = d._current_embedding(0, data, gen)
    before = [p.detach().clone() for p in st0.parameters()]
    st1, img1, txt1 = d._current_embedding(1, data, gen)
    # One SGD step on a real batch moved the student, and the full real set was re-encoded
    # by the moved student: every real pair, in the current embedding.
    assert any(not torch.equal(a, p) for a, p in zip(before, st1.parameters(), strict=True))
    assert img1.shape[0] == data.num_pairs and not torch.allclose(img0, img1)
    with torch.no_grad():
        torch.testing.assert_close(img1, st1.encode_image(data.pair_image))
        torch.testing.assert_close(txt1, st1.encode_text(data.pair_text))
    online = _fit("rank_align", ONLINE)
    expert = _fit("rank_align", {"experts": 1, "expert_epochs": 2, "anchors": 16})
    assert online.config["embedding"] == "online" and torch.isfinite(online.image).all()
    assert not torch.allclose(online.image, expert.image)
    again = _fit("rank_align", ONLINE)
    assert torch.equal(online.image, again.image) and torch.equal(online.text, again.text)


def test_rank_align_online_resume_is_bit_identical(tmp_path) -> None:  # noqa: ANN001
    cfg = {
        "student": SMALL_STUDENT,
        "engine": {
            "iterations": 12,
            "real_batch_size": 32,
            "checkpoint_every": 4,
            "validate_every": 1,
        },
        **ONLINE,
    }

    def stop_at_7(syn, step):  # noqa: ANN001, ANN202
        if step >= 7:
            raise _Stop
        return {"n": float(syn.num_pairs)}

    def ok(syn, step):  # noqa: ANN001, ANN202
        return {"n": float(syn.num_pairs)}

    data = _clustered()
    with pytest.raises(_Stop):
        get_distiller("rank_align", cfg).fit(
            data, 6, 3, checkpoint_dir=tmp_path / "a", validate=stop_at_7
        )
    assert (tmp_path / "a" / "step_00000004.safetensors").exists()
    resumed = get_distiller("rank_align", cfg).fit(
        data, 6, 3, checkpoint_dir=tmp_path / "a", resume=True, validate=ok
    )
    whole = get_distiller("rank_align", cfg).fit(
        data, 6, 3, checkpoint_dir=tmp_path / "b", validate=ok
    )
    a = resumed.save(tmp_path / "a.safetensors").read_bytes()
    b = whole.save(tmp_path / "b.safetensors").read_bytes()
    assert a == b


def test_rank_align_config_rejects_bad_online_settings() -> None:
    from hypervldd.distill.hyperbolic import RankAlignConfig

    with pytest.raises(ValueError, match="embedding"):
        RankAlignConfig(embedding="moving")
    with pytest.raises(ValueError, match="reset_every"):
        RankAlignConfig(reset_every=0)
    with pytest.raises(ValueError, match="student_lr"):
        RankAlignConfig(student_lr=0.0)


TRAJECTORY = {"embedding": "trajectory", "experts": 2, "expert_epochs": 3, "anchors": 16}


def _set_up(extra: dict, seed: int = 0):  # noqa: ANN202
    from hypervldd.distill.base import prepare_real

    data = prepare_real(_clustered())
    cfg = {"student": SMALL_STUDENT, "engine": {"iterations": 12, "real_batch_size": 32}}
    d = get_distiller("rank_align", {**cfg, **extra})
    d._setup(data, 6, torch.Generator().manual_seed(seed))
    return d, data


def test_rank_align_trajectory_pool_holds_every_epoch_snapshot_and_its_real_points() -> None:
    d, data = _set_up({**TRAJECTORY, "min_epoch": 2})
    # 2 experts x epochs 2..3
    assert len(d._experts) == 4 and len(d._real_points) == 4
    params = [torch.cat([p.flatten() for p in st.parameters()]) for st in d._experts]
    for i in range(4):
        assert not any(p.requires_grad for p in d._experts[i].parameters())
        for j in range(i):
            assert not torch.allclose(params[i], params[j])  # distinct snapshots
    # The last snapshot of each trajectory is the expert the "expert" embedding trains
    # from the same generator (taking snapshots draws nothing from it).
    ex, _ = _set_up({**TRAJECTORY, "embedding": "expert"})
    for snap, expert in zip((d._experts[1], d._experts[3]), ex._experts, strict=True):
        for a, b in zip(snap.parameters(), expert.parameters(), strict=True):
            assert torch.equal(a, b)
    # Each snapshot's cached points are its images of every real pair.
    gen = torch.Generator().manual_seed(5)
    for _ in range(3):
        st, img, txt = d._current_embedding(0, data, gen)
        with torch.no_grad():
            torch.testing.assert_close(img, st.encode_image(data.pair_image))
            torch.testing.assert_close(txt, st.encode_text(data.pair_text))
    # Images are cached once per distinct image, not once per caption.
    assert d._real_points[0][0].shape[0] == torch.unique(data.pair_group).numel()


def test_rank_align_trajectory_sampling_is_deterministic_and_covers_the_pool() -> None:
    d, data = _set_up(TRAJECTORY)
    assert len(d._experts) == 6

    def draws(seed: int) -> list[int]:
        gen = torch.Generator().manual_seed(seed)
        ids = {id(st): k for k, st in enumerate(d._experts)}
        return [ids[id(d._current_embedding(s, data, gen)[0])] for s in range(60)]

    first, again, other = draws(1), draws(1), draws(2)
    assert first == again and first != other
    assert set(first) == set(range(6))  # 60 draws from 6 snapshots hit every one
    traj = _fit("rank_align", TRAJECTORY)
    expert = _fit("rank_align", {**TRAJECTORY, "embedding": "expert"})
    assert traj.config["embedding"] == "trajectory" and torch.isfinite(traj.image).all()
    assert not torch.allclose(traj.image, expert.image)
    assert torch.equal(traj.image, _fit("rank_align", TRAJECTORY).image)


def test_rank_align_trajectory_resume_is_bit_identical(tmp_path) -> None:  # noqa: ANN001
    cfg = {
        "student": SMALL_STUDENT,
        "engine": {
            "iterations": 12,
            "real_batch_size": 32,
            "checkpoint_every": 4,
            "validate_every": 1,
        },
        **TRAJECTORY,
    }

    def stop_at_7(syn, step):  # noqa: ANN001, ANN202
        if step >= 7:
            raise _Stop
        return {"n": float(syn.num_pairs)}

    def ok(syn, step):  # noqa: ANN001, ANN202
        return {"n": float(syn.num_pairs)}

    data = _clustered()
    with pytest.raises(_Stop):
        get_distiller("rank_align", cfg).fit(
            data, 6, 3, checkpoint_dir=tmp_path / "a", validate=stop_at_7
        )
    resumed = get_distiller("rank_align", cfg).fit(
        data, 6, 3, checkpoint_dir=tmp_path / "a", resume=True, validate=ok
    )
    whole = get_distiller("rank_align", cfg).fit(
        data, 6, 3, checkpoint_dir=tmp_path / "b", validate=ok
    )
    a = resumed.save(tmp_path / "a.safetensors").read_bytes()
    b = whole.save(tmp_path / "b.safetensors").read_bytes()
    assert a == b


def test_rank_align_config_rejects_bad_trajectory_settings() -> None:
    from hypervldd.distill.hyperbolic import RankAlignConfig

    assert RankAlignConfig(embedding="trajectory", expert_epochs=3, min_epoch=3).min_epoch == 3
    with pytest.raises(ValueError, match="min_epoch"):
        RankAlignConfig(embedding="trajectory", min_epoch=0)
    with pytest.raises(ValueError, match=r"min_epoch.*expert_epochs=3"):
        RankAlignConfig(embedding="trajectory", expert_epochs=3, min_epoch=4)
    with pytest.raises(ValueError, match="'trajectory'"):
        RankAlignConfig(embedding="trajectories")
