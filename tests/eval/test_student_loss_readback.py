"""The students' training loop reads its loss once per epoch, and still stops on NaN."""

from __future__ import annotations

import pytest
import torch

from hypervldd.eval import EvalProtocol, Student, StudentConfig, train_student

CFG = StudentConfig(width=8)


def _pairs(n: int = 12) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(n, 6, generator=g), torch.randn(n, 5, generator=g)


def test_epoch_losses_are_the_pair_weighted_means_of_the_steps() -> None:
    img, txt = _pairs()
    st = Student(6, 5, CFG, torch.Generator().manual_seed(0))
    seen: list[tuple[float, int]] = []

    def loss_fn(student, i, t, targets):  # noqa: ANN001, ANN202
        loss = student.logits(student.encode_image(i), student.encode_text(t)).logsumexp(1).mean()
        seen.append((float(loss.detach()), i.shape[0]))
        return loss

    protocol = EvalProtocol(student=CFG, epochs=2, batch_size=5, seeds=(0,))
    losses = train_student(
        st, img, txt, protocol, torch.Generator().manual_seed(0), loss_fn=loss_fn
    )
    # batches of 5, 5 and 2 pairs per epoch
    per_epoch = [seen[:3], seen[3:]]
    for got, steps in zip(losses, per_epoch, strict=True):
        want = sum(v * n for v, n in steps) / sum(n for _, n in steps)
        assert got == pytest.approx(want, rel=1e-12)


def test_a_nan_loss_stops_training_with_the_epoch() -> None:
    img, txt = _pairs()
    st = Student(6, 5, CFG, torch.Generator().manual_seed(0))
    calls = []

    def loss_fn(student, i, t, targets):  # noqa: ANN001, ANN202
        calls.append(1)
        out = student.logits(student.encode_image(i), student.encode_text(t)).mean()
        return out * float("nan") if len(calls) == 5 else out  # the second epoch's 2nd step

    protocol = EvalProtocol(student=CFG, epochs=3, batch_size=5, seeds=(0,))
    with pytest.raises(FloatingPointError, match="student loss became nan at epoch 2"):
        train_student(st, img, txt, protocol, torch.Generator().manual_seed(0), loss_fn=loss_fn)
    assert len(calls) == 6  # the epoch is finished, the next one never starts


def test_a_student_built_for_a_device_has_the_cpu_weights() -> None:
    a = Student(6, 5, StudentConfig(width=8, head="mlp"), torch.Generator().manual_seed(4))
    b = Student(
        6, 5, StudentConfig(width=8, head="mlp"), torch.Generator().manual_seed(4), device="cpu"
    )
    for (na, pa), (nb, pb) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert na == nb and torch.equal(pa, pb)
