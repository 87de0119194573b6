import copy

import pytest
import torch
from torch import nn

from hypervldd.distill import prepare_real
from hypervldd.distill.experts import SIDES, ExpertConfig, build_expert_student, train_experts
from hypervldd.distill.lora import (
    LoRA,
    add_lora,
    lora_layers,
    lora_state,
    merge_lora,
    remove_lora,
    unmerge_lora,
)
from hypervldd.distill.matching import matching_gradients
from hypervldd.distill.trajectory import _Objective, make_step_loss
from hypervldd.eval import StudentConfig

from .._synth import clustered_features


def _randomise_b(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, _, p in lora_layers(module):
            p.lora_B.copy_(torch.randn(p.lora_B.shape, generator=g))


def test_adapter_starts_at_the_base_and_merges_exactly():
    g = torch.Generator().manual_seed(0)
    lin = nn.Linear(6, 8)
    w0, b0 = lin.weight.detach().clone(), lin.bias.detach().clone()
    x = torch.randn(5, 6, generator=g)
    before = lin(x).detach()
    assert add_lora(lin, 3, scale=0.5, generator=g) == [""]
    assert torch.equal(lin(x), before)  # B = 0: the adapter changes nothing yet
    assert sorted(lora_state(lin)) == [
        "parametrizations.weight.0.lora_A",
        "parametrizations.weight.0.lora_B",
    ]
    assert sum(p.numel() for p in lora_state(lin).values()) == 3 * (6 + 8)
    _randomise_b(lin)
    (_, _, p) = next(lora_layers(lin))
    want = x @ (w0 + 0.5 * p.lora_B @ p.lora_A).T + b0
    assert torch.allclose(lin(x), want, atol=1e-6)
    adapted = lin(x).detach()
    assert merge_lora(lin) == 1 and p.merged
    assert torch.allclose(lin(x), adapted, atol=1e-6)
    assert merge_lora(lin) == 0  # idempotent
    assert unmerge_lora(lin) == 1 and not p.merged
    assert torch.allclose(lin.parametrizations.weight.original, w0, atol=1e-6)
    assert torch.allclose(lin(x), adapted, atol=1e-6)
    assert remove_lora(lin, merge=True) == 1
    assert not hasattr(lin, "parametrizations")
    assert torch.allclose(lin(x), adapted, atol=1e-6)


def test_open_clip_attention_and_mlp_layers_are_adapted():
    from open_clip.transformer import ResidualAttentionBlock

    torch.manual_seed(0)
    block = ResidualAttentionBlock(8, 2, mlp_ratio=2.0).eval()
    ref, plain = copy.deepcopy(block), copy.deepcopy(block)
    names = add_lora(block, 2, generator=torch.Generator().manual_seed(1))
    # nn.MultiheadAttention reads out_proj.weight directly; a parametrization reaches it.
    assert names == ["attn.out_proj", "mlp.c_fc", "mlp.c_proj"]
    assert all(not p.requires_grad for n, p in block.named_parameters() if "lora_" not in n)
    _randomise_b(block, 3)
    with torch.no_grad():
        for name, _, p in lora_layers(block):
            ref.get_submodule(name).weight.add_(p.delta())
    x = torch.randn(2, 4, 8, generator=torch.Generator().manual_seed(2))
    out = block(x)
    assert torch.allclose(out, ref(x), atol=1e-5)
    assert not torch.allclose(out, plain(x), atol=1e-3)  # the adapters do change it
    out.sum().backward()  # gradients reach the adapters
    for *_, p in lora_layers(block):
        assert p.lora_B.grad is not None and p.lora_B.grad.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(ValueError, match="rank must be in"):
        LoRA(4, 3, 4)
    with pytest.raises(ValueError, match="init"):
        LoRA(4, 3, 2, init="zeros")
    with pytest.raises(ValueError, match="no nn.Linear"):
        add_lora(nn.ReLU(), 2)
    lin = nn.Linear(3, 3)
    add_lora(lin, "full")
    assert next(lora_layers(lin))[2].rank == 3
    with pytest.raises(ValueError, match="already has a parametrization"):
        add_lora(lin, 1)


def test_full_rank_lora_matching_equals_full_matching():
    """At rank = in_features <= out_features, with A orthogonal and frozen and scale 1,
    B -> W0 + B A is an isometry onto all weights and SGD on B is SGD on W; the adapter
    trajectories, the normalised matching loss and its gradients are the full ones."""
    fs, _ = clustered_features(n_img=24, caps=2, d_img=6, d_txt=5, seed=5)
    data = prepare_real(fs)
    student = StudentConfig(width=8, geometry="euclidean")
    full_cfg = ExpertConfig(num_experts=1, epochs=2, batch_size=16)
    lora_cfg = ExpertConfig(
        num_experts=1,
        epochs=2,
        batch_size=16,
        lora_rank=10**6,  # clipped to min(in, out) = in per layer
        lora_init="orthogonal",
        lora_train_a=False,
        lora_train_bias=True,
    )
    full, lora = train_experts(data, student, full_cfg), train_experts(data, student, lora_cfg)
    fx, lx = full.load(0), lora.load(0)
    # Correspondence of the experts' own trajectories: W_t = W0 + B_t A (float32).
    base, adapter = {}, {}
    for side in SIDES:
        pre = f"{side}_head.proj"
        w0 = lx.init_state[f"{pre}.parametrizations.weight.original"].double()
        a = lx.init_state[f"{pre}.parametrizations.weight.0.lora_A"].double()
        assert torch.equal(w0.float(), fx.init_state[f"{pre}.weight"])
        eye = torch.eye(a.shape[1], dtype=torch.float64)
        assert torch.allclose(a.T @ a, eye, atol=1e-6)  # orthogonal in float32
        q, r = torch.linalg.qr(a)  # ... and made exactly so in float64 below
        a = q * torch.sign(torch.diagonal(r))
        assert torch.allclose(a.T @ a, eye, atol=1e-14)
        base[side], adapter[side] = w0, a
        for t in range(3):
            fw = full.layouts[side].unflatten(fx.trajectories[side][t])
            lw = lora.layouts[side].unflatten(lx.trajectories[side][t])
            b = lw[f"{pre}.parametrizations.weight.0.lora_B"].double()
            assert torch.allclose(w0 + b @ a, fw[f"{pre}.weight"].double(), atol=1e-5)
            assert torch.allclose(lw[f"{pre}.bias"], fw[f"{pre}.bias"], atol=1e-5)

    # Matching, float64: map the full trajectory to adapters exactly, B_t = (W_t - W0) A^T.
    def to_lora(side, flat):
        pre = f"{side}_head.proj"
        fw = full.layouts[side].unflatten(flat)
        b = (fw[f"{pre}.weight"] - base[side]) @ adapter[side].T
        named = {
            f"{pre}.bias": fw[f"{pre}.bias"],
            f"{pre}.parametrizations.weight.0.lora_B": b,
        }
        return lora.layouts[side].flatten(named)

    g = torch.Generator().manual_seed(7)
    inputs = [
        torch.randn(6, 6, generator=g, dtype=torch.float64).requires_grad_(True),
        torch.randn(6, 5, generator=g, dtype=torch.float64).requires_grad_(True),
    ]
    log_lrs = torch.tensor([0.3, 0.2], dtype=torch.float64).log()
    results = []
    for buf, cfg, convert in ((full, full_cfg, None), (lora, lora_cfg, to_lora)):
        st = build_expert_student(6, 5, student, cfg, torch.Generator().manual_seed(0))
        st.load_state_dict(buf.load(0).init_state)
        st = st.double().requires_grad_(False)
        if convert is not None:
            with torch.no_grad():
                for side in SIDES:
                    lay = getattr(st, f"{side}_head").proj.parametrizations.weight
                    lay[0].lora_A.copy_(adapter[side])
        obj = _Objective(st)
        step_loss = make_step_loss(obj, buf.layouts, [1, 2, 3], batch=4, feature_dropout=0.2)
        th0 = [fx.trajectories[s][0].double() for s in SIDES]
        tgt = [fx.trajectories[s][2].double() for s in SIDES]
        if convert is not None:
            th0 = [convert(s, t) for s, t in zip(SIDES, th0, strict=True)]
            tgt = [convert(s, t) for s, t in zip(SIDES, tgt, strict=True)]
        results.append(matching_gradients(step_loss, th0, tgt, log_lrs, inputs, 3))
    (l_full, g_full, lr_full), (l_lora, g_lora, lr_lora) = results
    # Parameters stored per step: 6*8 + 8 (full) vs 6*8 + 8 (adapter at full rank) here;
    # the saving comes at low rank (see benchmarks/lora_memory.py).
    tol = 1e4 * torch.finfo(torch.float64).eps
    assert torch.allclose(l_lora, l_full, rtol=tol)
    for a, b in zip([*g_full, lr_full], [*g_lora, lr_lora], strict=True):
        assert a.abs().max() > 0
        assert torch.allclose(b, a, rtol=tol, atol=tol * float(a.abs().max()))
