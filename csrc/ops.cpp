// Operator schemas of the hypervldd library and the Python module stub.
// CPU implementations register in csrc/cpu (the GPU kernels are Triton ops in
// hypervldd/kernels/triton); fake (meta) implementations and autograd are
// registered from Python (hypervldd/kernels), so torch.compile and export see
// every op.
#include <torch/extension.h>
#include <torch/library.h>

#include "include/point_check.h"

#ifdef HYPERVLDD_BREAK_BUILD
#error "HYPERVLDD_BREAK_BUILD is set: failing on purpose to test the install fallback"
#endif

TORCH_LIBRARY(hypervldd, m) {
  m.def("lorentz_dist_rows(Tensor x, Tensor y, float c) -> Tensor");
  // manifold: 0 lorentz (x: (N, D+1) time first), 1 poincare, 2 euclidean.
  // c: a one-element tensor (read on the host), so autograd can reach it.
  // check_points: refuse (ValueError) points that break the package's point rule
  // (hypervldd._checks.check_points), before any work: the public call's validation
  // without a second call from Python.
  m.def("pairwise_dist(Tensor x, Tensor y, Tensor c, int manifold, bool check_points=False)"
        " -> Tensor");
  // Backward helper: distances d, per-pair gradient factors f (N, M) and the
  // mask of pairs whose gradient must come from the difference form.
  m.def("pairwise_dist_factor(Tensor x, Tensor y, Tensor c, int manifold,"
        " bool check_points=False) -> (Tensor, Tensor, Tensor)");
  // Gradients (x, y, c) of sum(grad * pairwise_dist(x, y, c, manifold)), in one op,
  // from the outputs (d, f, mask) of pairwise_dist_factor.
  m.def("pairwise_dist_backward(Tensor grad, Tensor x, Tensor y, Tensor c, Tensor d,"
        " Tensor f, Tensor mask, int manifold) -> (Tensor, Tensor, Tensor)");
  // Streaming reductions (never N x M; `tile` bounds the tile edge). Symmetric
  // InfoNCE over logits -d/tau with positives (N,) (int64): returns the loss and
  // the row (N,) and column (M,) log-sum-exps.
  m.def("contrastive_loss(Tensor x, Tensor y, Tensor c, Tensor tau, Tensor positives,"
        " int manifold, int tile) -> (Tensor, Tensor, Tensor)");
  // Gradients (x, y, c, tau) of gloss * loss, recomputing the tiles.
  m.def("contrastive_loss_backward(Tensor gloss, Tensor x, Tensor y, Tensor c, Tensor tau,"
        " Tensor pos, Tensor row, Tensor col, int man, int tile)"
        " -> (Tensor, Tensor, Tensor, Tensor)");
  // Row statistics of s = -d/tau: (lse (N,), softmax-weighted values (N, K),
  // smooth rank (N,) or (0,), positive logits (N,) or (0,)); values (M, K) with
  // K = 0 for none, rank_temperature <= 0 for no rank.
  m.def("row_stats(Tensor x, Tensor y, Tensor c, Tensor tau, Tensor values, Tensor positives,"
        " float rank_temperature, int manifold, int tile) -> (Tensor, Tensor, Tensor, Tensor)");
  // Gradients (x, y, c, tau, values) given the output gradients and outputs.
  m.def("row_stats_backward(Tensor g_lse, Tensor g_w, Tensor g_r, Tensor x, Tensor y, Tensor c,"
        " Tensor tau, Tensor values, Tensor pos, Tensor lse, Tensor w, Tensor spos,"
        " float rank_t, int man, int tile) -> (Tensor, Tensor, Tensor, Tensor, Tensor)");
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Compiled kernels of hypervldd (ops live in torch.ops.hypervldd)";
  // A plain function, not an op: the validation of every public call, where the
  // dispatcher's Python round trip would cost as much as the check.
  m.def("first_bad_points", &hypervldd::first_bad_points,
        "Index of the first tensor breaking the point rule, or -1 (hypervldd._checks)",
        pybind11::arg("tensors"), pybind11::arg("manifold"), pybind11::arg("c"),
        pybind11::arg("rtol32"), pybind11::arg("rtol64"),
        pybind11::call_guard<pybind11::gil_scoped_release>());
}
