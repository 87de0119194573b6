"""The build path end to end: backend report, the minimal compiled op, its fallback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

import hypervldd
from hypervldd.kernels import lorentz_dist_rows
from hypervldd.kernels.reference import lorentz_dist_rows_ref
from hypervldd.manifolds import Lorentz
from hypervldd.manifolds.accuracy import lorentz_pairs

from .conftest import require_extension


def test_backend_info_names_a_backend_and_a_reason() -> None:
    info = hypervldd.backend_info()
    assert info.backend in {"cpp", "reference"}
    assert info.reason
    assert info.extension_loaded == (info.backend == "cpp")


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("c", [0.3, 1.0, 2.5])
def test_compiled_op_matches_reference_on_the_envelope_grid(dtype: torch.dtype, c: float) -> None:
    require_extension()
    for r, d in [(0.1, 1e-3), (3.0, 1e-2), (5.0, 1e-2), (10.0, 1e-3), (10.0, 10.0)]:
        x, y = lorentz_pairs(r, d / c**0.5, "random", c=c, dim=33)
        x, y = x.to(dtype), y.to(dtype)
        got = lorentz_dist_rows(x, y, c)
        ref64 = lorentz_dist_rows_ref(x.double(), y.double(), c)
        tol = 1e-3 if dtype == torch.float32 else 1e-9
        assert torch.allclose(got.double(), ref64, rtol=tol, atol=0), (r, d)
        assert got.dtype == dtype


def test_compiled_op_handles_strides_empty_and_half_inputs() -> None:
    require_extension()
    m = Lorentz()
    x = m.random(64, 9, radius=2.0, dtype=torch.float64)
    y = m.random(64, 9, radius=2.0, dtype=torch.float64)
    ref = lorentz_dist_rows_ref(x, y, 1.0)
    xt = x.t().contiguous().t()  # column-major storage
    assert torch.allclose(lorentz_dist_rows(xt, y), ref, rtol=1e-12)
    assert torch.allclose(lorentz_dist_rows(x[::2], y[::2]), ref[::2], rtol=1e-12)
    assert lorentz_dist_rows(x[:0], y[:0]).shape == (0,)
    out = lorentz_dist_rows(x.to(torch.bfloat16), y.to(torch.bfloat16))
    assert out.dtype == torch.float32


def test_compiled_op_gradients_opcheck_and_compile() -> None:
    require_extension()
    m = Lorentz()
    x = m.random(5, 4, radius=1.0, dtype=torch.float64).requires_grad_(True)
    y = m.random(5, 4, radius=2.0, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda a, b: lorentz_dist_rows(a, b, 0.7), (x, y))
    torch.library.opcheck(torch.ops.hypervldd.lorentz_dist_rows.default, (x, y, 0.7))
    torch.library.opcheck(
        torch.ops.hypervldd.lorentz_dist_rows.default, (x.detach(), y.detach(), 2.0)
    )
    # zero distance: zero subgradient, not NaN
    (g,) = torch.autograd.grad(lorentz_dist_rows(x, x.detach()).sum(), x)
    assert torch.all(g == 0)


def test_op_errors_name_the_argument() -> None:
    m = Lorentz()
    x = m.random(3, 4)
    with pytest.raises(ValueError, match="equal shapes"):
        lorentz_dist_rows(x, m.random(2, 4))
    with pytest.raises(ValueError, match="c must be a finite positive"):
        lorentz_dist_rows(x, x, -1.0)
    bad = x.clone()
    bad[0, 1] = float("nan")
    with pytest.raises(ValueError, match="^y must be finite"):
        lorentz_dist_rows(x, bad)


def test_reference_fallback_is_used_and_warns_once() -> None:
    code = (
        "import warnings, torch, hypervldd\n"
        "from hypervldd.kernels import lorentz_dist_rows\n"
        "from hypervldd.manifolds import Lorentz\n"
        "x = Lorentz().random(4, 3)\n"
        "with warnings.catch_warnings(record=True) as w:\n"
        "    warnings.simplefilter('always')\n"
        "    lorentz_dist_rows(x, x.flip(0)); lorentz_dist_rows(x, x)\n"
        "msgs = [str(i.message) for i in w if 'PyTorch reference' in str(i.message)]\n"
        "info = hypervldd.backend_info()\n"
        "print(info.backend, len(msgs))\n"
    )
    env = dict(os.environ, HYPERVLDD_BACKEND="reference")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["reference", "1"]
