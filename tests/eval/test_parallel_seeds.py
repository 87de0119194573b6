"""Students of several seeds trained together: same results as one after another, no
oversubscription, errors and interrupts reach the caller, progress on request only."""

import threading
import time

import pytest
import torch

from hypervldd.eval import EvalProtocol, StudentConfig, evaluate
from hypervldd.eval.evaluate import train_students
from hypervldd.eval.parallel import Cancelled, SeedPlan, map_seeds, plan_seeds

from .._synth import clustered_features

FAST = dict(epochs=4, batch_size=32, lr_decay_epochs=(2,), seeds=(3, 0, 7))


@pytest.fixture(scope="module")
def data():
    train, _ = clustered_features(n_img=90, caps=2, seed=1)
    test, _ = clustered_features(n_img=40, caps=2, seed=2)
    val, _ = clustered_features(n_img=30, caps=2, seed=3)
    return train, test, val


@pytest.fixture
def two_threads():
    # The eval tests run with one intra-op thread (conftest); these need a budget of two.
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("geometry", ["lorentz", "poincare"])
@pytest.mark.parametrize("selection", ["final", "validation"])
def test_parallel_results_are_bit_identical_to_sequential(data, two_threads, geometry, selection):
    train, test, val = data
    student = StudentConfig(geometry=geometry, width=16)
    p = EvalProtocol(student=student, selection=selection, eval_every=2, **FAST)
    v = val if selection == "validation" else None
    seq = evaluate(train, test, p, val_features=v, workers=1, num_threads=1)
    par = evaluate(train, test, p, val_features=v, workers=2)
    assert par.metrics_per_seed == seq.metrics_per_seed  # exact, per seed, in seed order
    assert par.train_losses == seq.train_losses
    assert par.selected_epochs == seq.selected_epochs
    assert par.mean == seq.mean and par.std == seq.std
    # the seeds really differ, so an order mix-up would show
    assert len(set(seq.train_losses)) == 3
    assert torch.get_num_threads() == 2  # the caller's setting survives the workers


def test_train_students_in_parallel_match_sequential(data, two_threads):
    train, _, _ = data
    p = EvalProtocol(student=StudentConfig(width=16), **FAST)
    torch.set_num_threads(1)  # one worker trains under the caller's setting
    seq = train_students(train, p, workers=1)
    torch.set_num_threads(2)
    par = train_students(train, p, workers=2)
    assert len(par) == 3
    for a, b in zip(seq, par, strict=True):
        sa, sb = a.state_dict(), b.state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa)
        assert not b.training


def test_plan_never_oversubscribes():
    previous = torch.get_num_threads()
    try:
        for budget in (1, 2, 3, 4):
            torch.set_num_threads(budget)
            for n_seeds in range(1, 7):
                for small in (True, False):
                    for nt in ("auto", 1, 2):
                        plan = plan_seeds(n_seeds, num_threads=nt, small=small)
                        assert plan.workers >= 1
                        if plan.workers > 1:
                            assert plan.workers * plan.threads <= budget, (budget, nt, plan)
                            assert plan.workers <= n_seeds
        torch.set_num_threads(2)
        assert plan_seeds(5).workers == 2 and plan_seeds(5).threads == 1
        assert plan_seeds(5, device=torch.device("meta")).workers == 1  # not the CPU
        assert plan_seeds(5, num_threads=None).workers == 1  # "leave torch alone"
        assert plan_seeds(1, small=False).threads is None  # one big student keeps torch's
        with pytest.raises(ValueError, match="workers x num_threads"):
            plan_seeds(5, workers=2, num_threads=2)
        with pytest.raises(ValueError, match="workers"):
            plan_seeds(5, workers=0)
        with pytest.raises(ValueError, match="num_threads"):
            plan_seeds(5, num_threads="many")
    finally:
        torch.set_num_threads(previous)


def test_workers_run_one_intra_op_thread_each_and_keep_seed_order(two_threads):
    seen = {}
    lock = threading.Lock()

    def fn(seed, stop):
        # later seeds finish first: the order of the results must not follow completion
        time.sleep(0.05 * (3 - seed))
        with lock:
            seen[seed] = (torch.get_num_threads(), torch.is_grad_enabled())
        return seed * 10

    with torch.no_grad():  # grad mode is per thread: the workers inherit the caller's
        out = map_seeds(fn, [0, 1, 2], SeedPlan(2, 1))
    assert out == [0, 10, 20]
    assert seen == {0: (1, False), 1: (1, False), 2: (1, False)}
    assert torch.get_num_threads() == 2


def test_an_error_in_one_seed_stops_the_others_and_reaches_the_caller(two_threads):
    epochs_run = {}

    def fn(seed, stop):
        for epoch in range(200):
            if seed == 1 and epoch == 2:
                raise FloatingPointError("student loss became nan at epoch 3")
            if stop.is_set():
                epochs_run[seed] = epoch
                raise Cancelled("stopped")
            time.sleep(0.005)
        epochs_run[seed] = 200
        return seed

    with pytest.raises(FloatingPointError, match="epoch 3"):
        map_seeds(fn, [0, 1, 2, 3], SeedPlan(2, 1))
    # seed 0 ran beside the failing seed and stopped early; later seeds never ran long
    assert epochs_run[0] < 200
    assert all(epochs_run.get(s, 0) < 200 for s in (2, 3))


def test_evaluation_progress_bar_only_when_asked(data, capsys):
    train, test, _ = data
    p = EvalProtocol(student=StudentConfig(width=16), **FAST)
    evaluate(train, test, p, progress=True)
    err = capsys.readouterr().err
    assert "evaluate (3 students)" in err and "epoch" in err
    assert "12/12" in err  # 3 students x 4 epochs
    evaluate(train, test, p)
    assert capsys.readouterr().err == ""
