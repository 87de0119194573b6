"""Public entry points of the fused kernels: validation, upcasting, backend dispatch.

Each function validates its arguments (clear errors naming the argument), upcasts
half-precision inputs to float32 (float64 stays float64), and runs the compiled
op when the extension is loaded, else the PyTorch reference of
:mod:`.reference`, which has the same semantics.
"""

from __future__ import annotations

import torch

from .._backend import warn_if_reference
from .._checks import (
    check_curvature,
    check_finite,
    check_tensor,
    op_reads_values,
    validation,
    validation_enabled,
)
from . import dispatch
from . import reference as ref
from .dispatch import backend_for
from .reference import MANIFOLDS, RowStats

__all__ = ["pairwise_dist", "contrastive_loss", "row_stats", "RowStats", "MANIFOLDS"]


def _check_manifold(manifold: str) -> str:
    if isinstance(manifold, str) and manifold.lower() == "klein":
        raise ValueError(
            "manifold='klein' is supported by pairwise_dist only; map the points with"
            " hypervldd.manifolds.klein_to_lorentz and pass manifold='lorentz'"
        )
    if not isinstance(manifold, str) or manifold.lower() not in MANIFOLDS:
        raise ValueError(f"manifold must be one of {MANIFOLDS}, got {manifold!r}")
    return manifold.lower()


def _check_points(x: object, name: str, manifold: str) -> torch.Tensor:
    x = check_tensor(x, name, min_dim=2)
    if x.dim() != 2:
        raise ValueError(f"{name} must be 2-D (N, D), got shape {tuple(x.shape)}")
    need = 2 if manifold == "lorentz" else 1
    if x.shape[1] < need:
        what = "time + at least one space coordinate" if manifold == "lorentz" else "D >= 1"
        raise ValueError(f"{name} must have at least {need} column(s) ({what}), got {x.shape[1]}")
    return x


def _check_scalar(v: float | torch.Tensor, name: str, device: torch.device) -> None:
    if isinstance(v, torch.Tensor):
        if v.numel() != 1:
            raise ValueError(f"{name} must be a float or a 0-d tensor, got shape {tuple(v.shape)}")
        if v.device != device and v.device.type != "cpu":
            raise ValueError(f"{name} is on {v.device} but the points are on {device}")


def _check_positive(v: float | torch.Tensor, name: str) -> None:
    if isinstance(v, torch.Tensor):
        if not v.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {v.dtype}")
        if validation_enabled() and not bool(torch.isfinite(v).all() and (v > 0).all()):
            raise ValueError(f"{name} must be finite and > 0, got {v.detach().flatten().tolist()}")
        return
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(f"{name} must be a float or a tensor, got {type(v).__name__}")
    if not (float(v) > 0) or float(v) == float("inf"):
        raise ValueError(f"{name} must be finite and > 0, got {v}")


def _prepare(x, y, manifold, c, points: bool = True):
    """Checked ``(x, y, manifold, c, dtype)``; ``points=False`` leaves the point rule to
    the caller (the compiled pairwise op applies it itself)."""
    manifold = _check_manifold(manifold)
    x = _check_points(x, "x", manifold)
    y = _check_points(y, "y", manifold)
    if x.shape[1] != y.shape[1]:
        raise ValueError(
            f"x and y must have the same number of columns, got x {tuple(x.shape)} and"
            f" y {tuple(y.shape)}"
        )
    if x.device != y.device:
        raise ValueError(f"x and y must be on one device, got x on {x.device} and y on {y.device}")
    c = check_curvature(c, "c")
    _check_scalar(c, "c", x.device)
    if points:
        # The package's one point rule (finite, on the manifold), fused over x and y:
        # one reduction each and a single host sync.
        from .._checks import check_points

        check_points(((x, "x"), (y, "y")), manifold, c)
    dt = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    # .to() of a tensor already in dt is still a dispatcher round trip.
    return (x if x.dtype == dt else x.to(dt)), (y if y.dtype == dt else y.to(dt)), manifold, c, dt


def _check_positives(positives, n: int, m: int, device: torch.device) -> torch.Tensor | None:
    if positives is None:
        if n > m:
            raise ValueError(
                f"positives=None pairs row i with column i, which needs N <= M; got N={n},"
                f" M={m}: pass positives explicitly"
            )
        return None
    if not isinstance(positives, torch.Tensor) or positives.dtype not in (
        torch.int64,
        torch.int32,
    ):
        raise TypeError("positives must be an integer (Long) tensor of shape (N,)")
    if positives.shape != (n,):
        raise ValueError(f"positives must have shape ({n},), got {tuple(positives.shape)}")
    if positives.device != device:
        raise ValueError(f"positives is on {positives.device} but x is on {device}")
    if validation_enabled() and n and bool(((positives < 0) | (positives >= m)).any()):
        raise ValueError(f"positives must lie in [0, {m}), got values outside it")
    return positives.long()


def _use_ext(backend: str) -> bool:
    # CUDA tensors never reach the C++ ops: they run on Triton (or the reference).
    if backend == "cpp":
        return True
    warn_if_reference()
    return False


_functorch_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_OP_FLOATS = (torch.float32, torch.float64)
_MIN_COLUMNS = {"lorentz": 2, "poincare": 1, "euclidean": 1}
_INF = float("inf")


def _pairwise_common_call(x, y, manifold, c) -> torch.Tensor | None:  # noqa: ANN001
    """The common call straight to the compiled op, or ``None`` for the checked path.

    Common: plain 2-D CPU tensors of one dtype (float32 or float64) and matching widths, a
    manifold name the op knows, spelled in lower case, a finite ``float`` ``c > 0`` and the
    compiled backend, outside compilation and ``torch.func``. The op applies the point
    rule itself; anything else, and a refused point, goes to the checked path, which words
    the error. At N = 8 that path's Python cost twice the op (issue 19); this one costs a
    few type checks and the two environment reads of :func:`.dispatch.cpu_backend`.
    """
    if type(c) is not float or type(manifold) is not str or not 0.0 < c < _INF:
        return None
    need = _MIN_COLUMNS.get(manifold)
    if need is None or torch.compiler.is_compiling():
        return None
    # Plain tensors need only the torch.func test; subclasses (parameters, fake tensors)
    # the full one.
    if type(x) is torch.Tensor and type(y) is torch.Tensor:
        if _functorch_wrapped(x) or _functorch_wrapped(y):
            return None
    elif not (isinstance(x, torch.Tensor) and isinstance(y, torch.Tensor)):
        return None
    elif not op_reads_values(x, y):
        return None
    dt = x.dtype
    if dt is not y.dtype or dt not in _OP_FLOATS or x.dim() != 2 or y.dim() != 2:
        return None
    w = x.shape[1]
    if w != y.shape[1] or w < need or not (x.is_cpu and y.is_cpu):
        return None
    if dispatch.cpu_backend() != "cpp":
        return None
    fused = _fused()
    try:
        return fused.pairwise_dist_op(x, y, manifold, c, check_points=validation_enabled())
    except ValueError as e:
        if not str(e).startswith(fused.POINT_RULE_ERROR):
            raise
    return None


_FUSED = []


def _fused():  # noqa: ANN202
    """The module of the compiled ops, imported on first use (it loads the extension): a
    ``from .fused import`` on every call was a measurable part of the common call."""
    if not _FUSED:
        from . import fused

        _FUSED.append(fused)
    return _FUSED[0]


def pairwise_dist(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str = "lorentz",
    c: float | torch.Tensor = 1.0,
) -> torch.Tensor:
    """All-pairs geodesic distances, ``(N, D'), (M, D') -> (N, M)``.

    ``manifold`` is ``"lorentz"`` (``D' = D + 1`` full coordinates, time first;
    the time is re-derived from the space part), ``"poincare"``, ``"klein"`` (mapped to
    the hyperboloid in float64 and run on the Lorentz kernel, see :mod:`.klein`) or
    ``"euclidean"`` (``D' = D``). ``c > 0`` (curvature ``-c``) is a float or a
    0-d tensor; gradients flow to ``x``, ``y`` and a tensor ``c``. Never holds
    ``N x M x D``; float32 relative error at most 1e-3 against float64 on the
    accuracy grid (close pairs are recomputed from coordinate differences).

    >>> import torch
    >>> from hypervldd.kernels import pairwise_dist
    >>> from hypervldd.manifolds import Lorentz
    >>> m = Lorentz()
    >>> x = m.lift(torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    >>> [[round(v, 4) for v in row] for row in pairwise_dist(x, x, "lorentz", 1.0).tolist()]
    [[0.0, 1.0], [1.0, 0.0]]
    """
    out = _pairwise_common_call(x, y, manifold, c)
    if out is not None:
        return out
    if isinstance(manifold, str) and manifold.lower() == "klein":
        from .klein import klein_as_lorentz

        lx, ly, c64, out = klein_as_lorentz(x, y, c)
        with validation(False):  # on the hyperboloid by construction
            return pairwise_dist(lx, ly, "lorentz", c64).to(out)
    x_in, y_in = x, y
    x, y, manifold, c, dt = _prepare(x, y, manifold, c, points=False)
    backend = backend_for(x.device)
    check = validation_enabled()
    # The op applies the point rule itself (at N = 8 a separate check from Python cost as
    # much as the op, issue 19), to inputs used as given: the rule's tolerance is that of
    # the caller's dtype.
    if backend == "cpp" and (not check or (x is x_in and y is y_in and op_reads_values(x, y))):
        fused = _fused()
        try:
            return fused.pairwise_dist_op(x, y, manifold, c, check_points=check)
        except ValueError as e:
            if not str(e).startswith(fused.POINT_RULE_ERROR):
                raise
        from .._checks import check_points

        check_points(((x, "x"), (y, "y")), manifold, c)  # raises with the full message
        raise AssertionError("unreachable: the op refused points that the rule accepts")
    from .._checks import check_points

    check_points(((x_in, "x"), (y_in, "y")), manifold, c)
    if backend == "triton":
        return dispatch.triton_pairwise(x, y, manifold, c)
    if _use_ext(backend):
        return _fused().pairwise_dist_op(x, y, manifold, c)
    return ref.pairwise_dist_ref(x, y, manifold, c)


def contrastive_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str = "lorentz",
    c: float | torch.Tensor = 1.0,
    tau: float | torch.Tensor = 0.07,
    positives: torch.Tensor | None = None,
) -> torch.Tensor:
    """Symmetric hyperbolic InfoNCE, streaming (never holds ``N x M``). 0-d tensor.

    Logits ``l_ij = -d(x_i, y_j) / tau`` for ``x`` ``(N, D')``, ``y`` ``(M, D')``.
    ``loss = (1/2N) sum_i [CE_row(i) + CE_col(i)]`` where ``CE_row(i)`` is the
    cross-entropy of row ``i`` over the ``M`` columns with target ``p(i)`` and
    ``CE_col(i)`` that of column ``p(i)`` over the ``N`` rows with target row
    ``i``. ``positives`` ``(N,)`` gives ``p`` (default ``arange(N)``, needs
    ``N <= M``); when several rows share a positive column, that column's
    cross-entropy is counted once per such row, each time with that row as the
    target (a multi-positive column is not merged into one softmax target).
    Gradients flow to ``x``, ``y``, a tensor ``c`` and a tensor ``tau``.

    >>> import torch
    >>> from hypervldd.kernels import contrastive_loss, contrastive_loss_ref
    >>> from hypervldd.manifolds import Lorentz
    >>> g = torch.Generator().manual_seed(0)
    >>> x = Lorentz().lift(torch.randn(6, 4, generator=g))
    >>> y = Lorentz().lift(torch.randn(6, 4, generator=g))
    >>> loss = contrastive_loss(x, y, "lorentz", 1.0, 0.1)
    >>> ref = contrastive_loss_ref(x, y, "lorentz", 1.0, 0.1)
    >>> loss.dim(), bool(torch.isclose(loss, ref, rtol=1e-4))
    (0, True)
    """
    x, y, manifold, c, dt = _prepare(x, y, manifold, c)
    _check_positive(tau, "tau")
    _check_scalar(tau, "tau", x.device)
    positives = _check_positives(positives, x.shape[0], y.shape[0], x.device)
    backend = backend_for(x.device)
    if backend == "triton":
        return dispatch.triton_contrastive(x, y, manifold, c, tau, positives)
    if _use_ext(backend):
        return _fused().contrastive_loss_op(x, y, manifold, c, tau, positives)
    return ref.contrastive_loss_ref(x, y, manifold, c, tau, positives)


def row_stats(
    x: torch.Tensor,
    y: torch.Tensor,
    manifold: str = "lorentz",
    c: float | torch.Tensor = 1.0,
    tau: float | torch.Tensor = 0.07,
    values: torch.Tensor | None = None,
    rank_temperature: float | None = None,
    positives: torch.Tensor | None = None,
) -> RowStats:
    """Streaming statistics of each row of ``s_ij = -d(x_i, y_j) / tau``.

    Returns :class:`RowStats`: ``lse`` ``(N,)``, the row log-sum-exp;
    ``weighted`` ``(N, K)`` = ``sum_j softmax_j(s_i) values_j`` if ``values``
    ``(M, K)`` is given, else ``None``; ``smooth_rank`` ``(N,)`` =
    ``1 + sum_{j != p(i)} sigmoid((s_ij - s_i,p(i)) / t)`` if
    ``rank_temperature`` ``t > 0`` is given, else ``None`` (``p = positives``,
    default ``arange(N)``). Column statistics: call with ``x`` and ``y``
    swapped. Differentiable in ``x``, ``y``, ``values``, a tensor ``c`` and a
    tensor ``tau``; memory is O((N + M) K) plus one tile.

    >>> import torch
    >>> from hypervldd.kernels import pairwise_dist, row_stats
    >>> from hypervldd.manifolds import Lorentz
    >>> g = torch.Generator().manual_seed(0)
    >>> x = Lorentz().lift(torch.randn(3, 4, generator=g))
    >>> y = Lorentz().lift(torch.randn(5, 4, generator=g))
    >>> lse = row_stats(x, y, "lorentz", 1.0, 0.5).lse  # logsumexp_j(-d_ij / tau), streamed
    >>> bool(torch.allclose(lse, torch.logsumexp(-pairwise_dist(x, y) / 0.5, dim=1), atol=1e-4))
    True
    """
    x, y, manifold, c, dt = _prepare(x, y, manifold, c)
    _check_positive(tau, "tau")
    _check_scalar(tau, "tau", x.device)
    if values is not None:
        values = check_tensor(values, "values", min_dim=2)
        if values.dim() != 2 or values.shape[0] != y.shape[0]:
            raise ValueError(
                f"values must have shape (M, K) = ({y.shape[0]}, K), got {tuple(values.shape)}"
            )
        if values.device != x.device:
            raise ValueError(f"values is on {values.device} but x is on {x.device}")
        check_finite(values, "values")
        values = values.to(dt)
    if rank_temperature is not None:
        _check_positive(rank_temperature, "rank_temperature")
        rank_temperature = float(rank_temperature)
        positives = _check_positives(positives, x.shape[0], y.shape[0], x.device)
    elif positives is not None:
        positives = _check_positives(positives, x.shape[0], y.shape[0], x.device)
    backend = backend_for(x.device)
    if backend == "triton":
        return dispatch.triton_row_stats(
            x, y, manifold, c, tau, values, rank_temperature, positives
        )
    if _use_ext(backend):
        return _fused().row_stats_op(x, y, manifold, c, tau, values, rank_temperature, positives)
    return ref.row_stats_ref(x, y, manifold, c, tau, values, rank_temperature, positives)
