"""The device argument: `--device` on the command line, `device=` in the pipeline.

No GPU here: the CUDA branches run with torch.cuda.is_available/device_count
monkeypatched (the default choice and the error paths); the CPU branch runs for real.
"""

from __future__ import annotations

import pytest
import torch

from hypervldd import cli, pipeline
from hypervldd._device import resolve_device


def _gpus(monkeypatch: pytest.MonkeyPatch, n: int) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: n > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: n)


def test_default_is_cuda_when_available_else_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)
    assert resolve_device(None) == torch.device("cpu")
    _gpus(monkeypatch, 2)
    assert resolve_device(None) == torch.device("cuda", 0)
    assert resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize(
    "gpus, spec, message",
    [
        (0, "cuda", "device='cuda' asks for CUDA, but no CUDA device is available"),
        (0, "cuda:0", "device='cuda:0' asks for CUDA"),
        (2, "cuda:2", r"device='cuda:2' is out of range: 2 CUDA device\(s\) visible"),
        (1, "gpu", "device must be 'cpu', 'cuda' or 'cuda:N', got 'gpu'"),
        (1, "meta", "device must be 'cpu', 'cuda' or 'cuda:N', got 'meta'"),
    ],
)
def test_bad_devices_are_named(monkeypatch: pytest.MonkeyPatch, gpus, spec, message) -> None:  # noqa: ANN001
    _gpus(monkeypatch, gpus)
    with pytest.raises(ValueError, match=message):
        resolve_device(spec)


def test_pipeline_refuses_a_missing_gpu_before_any_work(monkeypatch: pytest.MonkeyPatch) -> None:
    _gpus(monkeypatch, 0)

    def no_work(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("work started before the device was checked")

    monkeypatch.setattr(pipeline, "_load_dataset", no_work)
    monkeypatch.setattr(pipeline.features, "_load_dataset", no_work)  # where prepare calls it
    monkeypatch.setattr("hypervldd.distill.get_distiller", no_work)
    with pytest.raises(ValueError, match="device='cuda' asks for CUDA"):
        pipeline.prepare("emoji", device="cuda")
    with pytest.raises(ValueError, match="device='cuda:3' asks for CUDA"):
        pipeline.distill(None, "random", 4, device="cuda:3")


def test_pipeline_distills_on_the_cpu_when_asked() -> None:
    from tests._synth import clustered_features

    train, _ = clustered_features(n_img=20, caps=2, seed=0)
    cfg = {"engine": {"iterations": 2, "real_batch_size": 8}}
    a = pipeline.distill(train, "moment_matching", 4, config=cfg, device="cpu")
    b = pipeline.distill(train, "moment_matching", 4, config=cfg, device=None)
    assert a.image.device.type == "cpu"
    assert torch.equal(a.image, b.image) and torch.equal(a.text, b.text)
    assert a.data_fingerprint == train.fingerprint()


def test_moving_features_keeps_their_identity() -> None:
    from tests._synth import clustered_features

    train, _ = clustered_features(n_img=12, caps=2, seed=0)
    moved = pipeline._on_device(train, torch.device("cpu"))
    assert moved.fingerprint == train.fingerprint()
    for name in ("image", "text", "txt2img"):
        assert torch.equal(getattr(moved, name), getattr(train, name))


@pytest.mark.parametrize("command", ["prepare", "distill", "evaluate", "compare"])
def test_cli_device_errors_name_the_option(
    command: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _gpus(monkeypatch, 1)

    def no_work(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        raise AssertionError("work started before the device was checked")

    monkeypatch.setattr(pipeline, "_load_dataset", no_work)
    monkeypatch.setattr(pipeline.features, "_load_dataset", no_work)  # where prepare calls it
    extra = {
        "prepare": [],
        "distill": ["--method", "random", "--budget", "2", "--out", "x.safetensors"],
        "evaluate": ["--full-data"],
        "compare": [],
    }[command]
    assert cli.main([command, *extra, "--device", "cuda:5"]) == 1
    err = capsys.readouterr().err
    assert "--device='cuda:5' is out of range: 1 CUDA device(s) visible" in err


def test_evaluate_on_the_cpu_when_asked_is_the_default_evaluation() -> None:
    from hypervldd.eval import EvalProtocol, evaluate
    from tests._synth import clustered_features

    train, _ = clustered_features(n_img=16, caps=2, seed=0)
    test, _ = clustered_features(n_img=8, caps=2, seed=1)
    proto = EvalProtocol(epochs=2, seeds=(0, 1), batch_size=8)
    a = pipeline.evaluate_set(train, test, proto, device="cpu")
    b = evaluate(train, test, proto)
    assert a.metrics_per_seed == b.metrics_per_seed and a.mean == b.mean
    with pytest.raises(ValueError, match="device='cuda:5' asks for CUDA"):
        pipeline.evaluate_set(train, test, proto, device="cuda:5")


def test_methods_without_a_checked_device_path_run_on_the_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hypervldd.distill import available_methods, get_distiller
    from tests._synth import clustered_features

    ready = {m for m in available_methods() if get_distiller(m, {}).device_ready}
    assert ready == {"moment_matching", "covmatch", "rank_align"}
    train, _ = clustered_features(n_img=20, caps=2, seed=0)
    monkeypatch.setattr(pipeline.distillation, "resolve_device", lambda d: torch.device("cuda", 0))
    with pytest.warns(UserWarning, match="random runs on the CPU: its device path"):
        syn = pipeline.distill(train, "random", 4, device="cuda")
    assert syn.image.device.type == "cpu"
    assert torch.equal(syn.image, pipeline.distill(train, "random", 4, device="cpu").image)
