// Operator schemas of the hypervldd library and the Python module stub.
// CPU implementations register in csrc/cpu, CUDA ones in csrc/cuda; fake
// (meta) implementations and autograd are registered from Python
// (hypervldd/kernels), so torch.compile and export see every op.
#include <torch/extension.h>
#include <torch/library.h>

#ifdef HYPERVLDD_BREAK_BUILD
#error "HYPERVLDD_BREAK_BUILD is set: failing on purpose to test the install fallback"
#endif

TORCH_LIBRARY(hypervldd, m) {
  m.def("lorentz_dist_rows(Tensor x, Tensor y, float c) -> Tensor");
  // manifold: 0 lorentz (x: (N, D+1) time first), 1 poincare, 2 euclidean.
  // c: a one-element tensor (read on the host), so autograd can reach it.
  m.def("pairwise_dist(Tensor x, Tensor y, Tensor c, int manifold) -> Tensor");
  // Backward helper: distances d, per-pair gradient factors f (N, M) and the
  // mask of pairs whose gradient must come from the difference form.
  m.def("pairwise_dist_factor(Tensor x, Tensor y, Tensor c, int manifold)"
        " -> (Tensor, Tensor, Tensor)");
}

static bool cuda_compiled() {
#ifdef HYPERVLDD_WITH_CUDA
  return true;
#else
  return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Compiled kernels of hypervldd (ops live in torch.ops.hypervldd)";
  m.def("cuda_compiled", &cuda_compiled, "Whether the CUDA kernels were compiled in");
}
