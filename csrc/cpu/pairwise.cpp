// CPU pairwise distance kernels: GEMM on a block of rows, then the fused
// epilogue while the block is in cache. Close pairs (rejected by the per-pair
// error bound) are recomputed from coordinate differences in double.
//
// Forward:  pairwise_dist(x, y, c, manifold) -> (N, M) distances.
// Backward: pairwise_dist_factor(x, y, c, manifold) -> (d, f, bad): distances,
// the per-pair factor f such that the gradient is two GEMMs with g * f
// (assembled in hypervldd/kernels/fused.py), and the mask of pairs whose
// gradient must come from the difference form instead (f = 0 there).

// errno-free sqrt lets the epilogue loops vectorise; values are unchanged.
#pragma GCC optimize("no-math-errno")

#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include <vector>

#include "../include/hyperbolic_math.h"
#include "../include/pairwise_host.h"

namespace hypervldd {
namespace {

// One block of rows: `out` holds the GEMM values x_i.y_j on entry and the
// log1p argument (Lorentz, Poincaré) or the distance (Euclidean) on exit.
// With `fac` (backward), also the derivative factor of each fast pair and the
// mask of slow pairs (factor 0 there).
template <int64_t MAN, typename T>
void forward_block(T* out, T* fac, bool* bad, int64_t i0, int64_t bm, int64_t m, const T* r0,
                   const T* r1, const T* q0, const T* q1, const double* ax, const double* ay,
                   T c, const T* xp, int64_t sx0, int64_t sx1, const T* yp, int64_t sy0,
                   int64_t sy1, int64_t D) {
  const T sc = std::sqrt(c);
  at::parallel_for(0, bm, 1, [&](int64_t b, int64_t e) {
    for (int64_t ii = b; ii < e; ++ii) {
      const int64_t i = i0 + ii;
      T* row = out + ii * m;
      const T ri0 = r0[i], ri1 = r1[i];
      // An int count (not a bool |=) keeps the loops vectorisable.
      int64_t n_bad = 0;
      if (fac == nullptr) {
        // Vectorisable pass: fast value everywhere, sentinel -1 where rejected.
        for (int64_t j = 0; j < m; ++j) {
          T w, dwq;
          const bool ok = pair_fast<MAN, T>(row[j], ri0, ri1, q0[j], q1[j], c, &w, &dwq);
          row[j] = ok ? w : T(-1);
          n_bad += ok ? 0 : 1;
        }
      } else {
        T* frow = fac + ii * m;
        bool* brow = bad + ii * m;
        for (int64_t j = 0; j < m; ++j) {
          T w, dwq;
          const bool ok = pair_fast<MAN, T>(row[j], ri0, ri1, q0[j], q1[j], c, &w, &dwq);
          T f;
          if constexpr (MAN == kLorentz) {
            f = sc * dwq;
          } else if constexpr (MAN == kPoincare) {
            f = T(2) * sc * dwq / (ri1 * q1[j]);
          } else {
            f = dwq;
          }
          row[j] = ok ? w : T(-1);
          frow[j] = ok ? f : T(0);
          brow[j] = !ok;
          n_bad += ok ? 0 : 1;
        }
      }
      if (n_bad == 0) continue;
      for (int64_t j = 0; j < m; ++j) {
        if (row[j] < T(0)) {
          row[j] = static_cast<T>(pair_slow<T>(MAN, xp + i * sx0, sx1, yp + j * sy0, sy1, D,
                                                static_cast<double>(c), ax[i], ay[j]));
        }
      }
    }
  });
}

template <typename T, typename F>
void dispatch_manifold(int64_t man, F&& f) {
  if (man == kLorentz) {
    f(std::integral_constant<int64_t, kLorentz>{});
  } else if (man == kPoincare) {
    f(std::integral_constant<int64_t, kPoincare>{});
  } else {
    f(std::integral_constant<int64_t, kEuclidean>{});
  }
}

}  // namespace

// Shared driver: distances, and with `with_factor` the backward factors.
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
  const RowData rx = row_data(x, c, man);
  const RowData ry = row_data(y, c, man);
  const auto ymt = ry.mat.t();
  const int64_t bmax = block_rows(n, m);
  const int64_t D = rx.mat.size(1);
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pairwise_dist_cpu", [&] {
    const scalar_t cc = static_cast<scalar_t>(c);
    const scalar_t scale = man == kLorentz    ? scalar_t(1.0 / std::sqrt(c))
                           : man == kPoincare ? scalar_t(2.0 / std::sqrt(c))
                                              : scalar_t(1);
    for (int64_t i0 = 0; i0 < n; i0 += bmax) {
      const int64_t bm = std::min(bmax, n - i0);
      auto ob = out.narrow(0, i0, bm);
      at::mm_out(ob, rx.mat.narrow(0, i0, bm), ymt);
      scalar_t* fp = with_factor ? fac.data_ptr<scalar_t>() + i0 * m : nullptr;
      bool* bp = with_factor ? bad.data_ptr<bool>() + i0 * m : nullptr;
      dispatch_manifold<scalar_t>(man, [&](auto mc) {
        forward_block<decltype(mc)::value, scalar_t>(
            ob.data_ptr<scalar_t>(), fp, bp, i0, bm, m, rx.r0.data_ptr<scalar_t>(),
            rx.r1.data_ptr<scalar_t>(), ry.r0.data_ptr<scalar_t>(), ry.r1.data_ptr<scalar_t>(),
            rx.a64.data_ptr<double>(), ry.a64.data_ptr<double>(), cc,
            rx.mat.data_ptr<scalar_t>(), rx.mat.stride(0), rx.mat.stride(1),
            ry.mat.data_ptr<scalar_t>(), ry.mat.stride(0), ry.mat.stride(1), D);
      });
      // The log runs once per block through ATen's vectorised kernel while the
      // block is still in cache.
      if (man != kEuclidean) {
        ob.log1p_();
        if (scale != scalar_t(1)) ob.mul_(scale);
      }
    }
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

TORCH_LIBRARY_IMPL(hypervldd, CPU, m) {
  m.impl("pairwise_dist", &pairwise_dist_cpu);
  m.impl("pairwise_dist_factor", &pairwise_dist_factor_cpu);
}

}  // namespace hypervldd
