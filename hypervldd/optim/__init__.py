"""Riemannian optimisers: SGD (momentum, Nesterov), Adam and AdamW.

They update :class:`geoopt.ManifoldParameter` s on hypervldd's manifolds or on
geoopt's, and ordinary parameters exactly as ``torch.optim`` does. What differs
from geoopt's ``RiemannianSGD``/``RiemannianAdam``:

* ``p.grad`` is never modified (geoopt's Lorentz ``egrad2rgrad`` flips a sign in place);
* weight decay is geometric: coupled decay is the gradient of ``d(x, o)^2 / 2``,
  decoupled decay (AdamW) a geodesic shrink towards the origin; geoopt adds
  ``wd * x`` to the Euclidean gradient, which is not a tangent direction;
* Euclidean parameters run through torch's own kernels (bit-identical trajectories);
* a multi-tensor path updates all parameters sharing a manifold in one go;
* ``stabilize`` re-projects every N steps; state is plain tensors, so
  ``state_dict``/``load_state_dict`` and ``copy.deepcopy`` round-trip;
* zero gradients are a fixed point (no NaN from normalising a zero vector).

See ``docs/optim.md``.
"""

from ._common import manifold_of
from .radam import RiemannianAdam, RiemannianAdamW
from .rsgd import RiemannianSGD

__all__ = ["RiemannianSGD", "RiemannianAdam", "RiemannianAdamW", "manifold_of"]
