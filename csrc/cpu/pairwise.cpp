// CPU pairwise distance kernels: GEMM on a block of rows straight into the
// output, then the fused epilogue (distance, log1p and scale in one vectorised
// pass, see cpu/tiles.h) while the block is still in the last-level cache.
// Close pairs (rejected by the per-pair error bound) are recomputed from
// coordinate differences in double.
//
// Forward:  pairwise_dist(x, y, c, manifold) -> (N, M) distances.
// Backward: pairwise_dist_factor(x, y, c, manifold) -> (d, f, bad): distances,
// the per-pair factor f such that the gradient is two GEMMs with g * f
// (assembled in hypervldd/kernels/fused.py), and the mask of pairs whose
// gradient must come from the difference form instead (f = 0 there).
#include "tiles.h"

#include <torch/library.h>

namespace hypervldd {
namespace {

// Rows per block: each thread runs its own single-threaded GEMM on a block of
// rows straight into the output and the epilogue right after it, inside ONE
// parallel region for the whole op. (A GEMM per block across all threads plus a
// parallel epilogue per block meant two fork/join barriers per block; on this
// shared 2-core machine those barriers cost more than the epilogue itself,
// measured: 2 threads ran 4-8x slower than 1.) 256 rows amortise the packing of
// y that every GEMM call repeats (64-row blocks made the GEMMs 4x slower).
// With several threads, up to cpu::kChunksPerThread blocks per thread, handed out
// dynamically (a busy core delays one block, not half of the op).
int64_t pairwise_block_rows(int64_t n, int64_t m) {
  const int64_t t = std::max<int64_t>(1, at::get_num_threads());
  const int64_t parts = t == 1 ? 1 : cpu::kChunksPerThread * t;
  int64_t b = (n + parts - 1) / parts;
  b = std::clamp<int64_t>(b, 256, 4096);
  return b < n ? b : (n > 0 ? n : 1);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_impl(const at::Tensor& x,
                                                             const at::Tensor& y,
                                                             const at::Tensor& c_t, int64_t man,
                                                             bool with_factor) {
  // The kernel is a leaf for autograd (its backward is registered from Python);
  // the ATen calls inside must not record a graph.
  at::NoGradGuard no_grad;
  check_pairwise_args(x, y, c_t, man);
  const double c = c_t.item<double>();
  TORCH_CHECK(c > 0, "c must be positive, got ", c);
  const int64_t n = x.size(0), m = y.size(0);
  auto out = at::empty({n, m}, x.options());
  at::Tensor fac, bad;
  if (with_factor) {
    fac = at::empty({n, m}, x.options());
    bad = at::empty({n, m}, x.options().dtype(at::kBool));
  }
  if (n == 0 || m == 0) return {out, fac, bad};
  const int64_t bmax = pairwise_block_rows(n, m);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pairwise_dist_cpu", [&] {
    using T = scalar_t;
    const cpu::Problem<T> p(x, y, c, man);
    const auto ymt = p.ymat.t();
    const int64_t nblk = (n + bmax - 1) / bmax;
    cpu::dispatch_manifold(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      cpu::parallel_chunks(nblk, [&](int64_t b, int64_t e) {
        // Grad mode is thread-local: the workers need their own guard for mm_out.
        at::NoGradGuard no_grad_worker;
        for (int64_t blk = b; blk < e; ++blk) {
          const int64_t i0 = blk * bmax, bm = std::min(bmax, n - i0);
          auto ob = out.narrow(0, i0, bm);
          at::mm_out(ob, p.xmat.narrow(0, i0, bm), ymt);
          T* op = ob.data_ptr<T>();
          T* fp = with_factor ? fac.data_ptr<T>() + i0 * m : nullptr;
          // bool and uint8_t share size and representation (0 / 1).
          uint8_t* bp =
              with_factor ? reinterpret_cast<uint8_t*>(bad.data_ptr<bool>()) + i0 * m : nullptr;
          for (int64_t ii = 0; ii < bm; ++ii) {
            cpu::epilogue_row<MAN, T>(p, i0 + ii, 0, m, op + ii * m, fp ? fp + ii * m : nullptr,
                                      bp ? bp + ii * m : nullptr);
          }
        }
      });
    });
  });
  return {out, fac, bad};
}

at::Tensor pairwise_dist_cpu(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c,
                             int64_t man) {
  return std::get<0>(pairwise_impl(x, y, c, man, false));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_dist_factor_cpu(const at::Tensor& x,
                                                                        const at::Tensor& y,
                                                                        const at::Tensor& c,
                                                                        int64_t man) {
  return pairwise_impl(x, y, c, man, true);
}

}  // namespace

TORCH_LIBRARY_IMPL(hypervldd, CPU, m) {
  m.impl("pairwise_dist", &pairwise_dist_cpu);
  m.impl("pairwise_dist_factor", &pairwise_dist_factor_cpu);
}

}  // namespace hypervldd
