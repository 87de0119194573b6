// Host-side preparation shared by the CPU and CUDA pairwise kernels: argument
// checks and the per-row data the epilogue reads (ATen ops, device-agnostic).
#pragma once

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <torch/types.h>

#include <algorithm>
#include <cmath>

#include "hyperbolic_math.h"

namespace hypervldd {

struct RowData {
  at::Tensor mat;  // the GEMM operand (Lorentz: the space part, a strided view)
  at::Tensor r0;   // Lorentz: sqrt(1 + c|xs|^2); Poincaré, Euclidean: |x|^2
  at::Tensor r1;   // Lorentz: sqrt(c)|xs|; Poincaré: 1 - c|x|^2; Euclidean: zeros
  at::Tensor a64;  // Poincaré: 1 - c|x|^2 in double (slow path); else ones
};

inline void check_pairwise_args(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c,
                                int64_t man) {
  TORCH_CHECK(man >= 0 && man <= 2, "manifold code must be 0 (lorentz), 1 (poincare) or 2 "
                                    "(euclidean), got ", man);
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2, "x and y must be 2-D, got ", x.sizes(), " and ",
              y.sizes());
  TORCH_CHECK(x.size(1) == y.size(1), "x and y must have the same number of columns, got ",
              x.size(1), " and ", y.size(1));
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "x and y must share a dtype");
  TORCH_CHECK(x.scalar_type() == at::kFloat || x.scalar_type() == at::kDouble,
              "x and y must be float32 or float64, got ", x.scalar_type());
  TORCH_CHECK(x.device() == y.device(), "x and y must be on one device");
  TORCH_CHECK(c.numel() == 1, "c must hold one value");
  TORCH_CHECK(man != kLorentz || x.size(1) >= 2, "Lorentz points need time + space columns");
}

// The streaming ops (contrastive loss, row statistics) take, on top of the pairwise
// arguments, a temperature and the positive column of every row.
inline void check_streaming_args(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c,
                                 const at::Tensor& tau, const at::Tensor& pos, int64_t man) {
  check_pairwise_args(x, y, c, man);
  TORCH_CHECK(tau.numel() == 1, "tau must hold one value");
  TORCH_CHECK(pos.dim() == 1 && pos.size(0) == x.size(0) && pos.scalar_type() == at::kLong,
              "positives must be an int64 tensor of shape (N,)");
}

// The values row_stats averages: one row per column of the distance matrix.
inline void check_row_values(const at::Tensor& values, const at::Tensor& y) {
  TORCH_CHECK(values.dim() == 2 && values.size(0) == y.size(0), "values must have shape (M, K)");
}

namespace detail {

// Sum over one row of v * v (kSquares) or of v - v (0 for a finite v, NaN
// otherwise), in double. Independent partial sums when contiguous: with one
// accumulator every addition waits for the previous one, and the compiler may not
// reorder a floating-point sum itself; the lanes let it vectorise. (One
// accumulator made the point check of two 128 x 513 float32 tensors cost about as
// much as the distance op.)
template <bool kSquares, typename T>
double row_sum(const T* r, int64_t d, int64_t s1) {
  constexpr int kLanes = 8;
  double acc[kLanes] = {};
  int64_t k = 0;
  if (s1 == 1) {
    for (; k + kLanes <= d; k += kLanes) {
      for (int l = 0; l < kLanes; ++l) {
        const double v = static_cast<double>(r[k + l]);
        acc[l] += kSquares ? v * v : v - v;
      }
    }
  }
  double total = 0.0;
  for (; k < d; ++k) {
    const double v = static_cast<double>(r[k * s1]);
    total += kSquares ? v * v : v - v;
  }
  for (int l = 0; l < kLanes; ++l) total += acc[l];
  return total;
}

template <typename T>
void fill_row_data(const at::Tensor& mat, double c, int64_t man, RowData& r) {
  const T* p = mat.data_ptr<T>();
  const int64_t n = mat.size(0), d = mat.size(1), s0 = mat.stride(0), s1 = mat.stride(1);
  T* r0 = r.r0.data_ptr<T>();
  T* r1 = r.r1.data_ptr<T>();
  double* a64 = r.a64.data_ptr<double>();
  // Rows in parallel only where a row block is worth a fork (large N x D).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 15) / std::max<int64_t>(1, d));
  at::parallel_for(0, n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const double sq = row_sum<true, T>(p + i * s0, d, s1);
      if (man == kLorentz) {
        const double n2 = c * sq;
        r0[i] = static_cast<T>(std::sqrt(1.0 + n2));
        r1[i] = static_cast<T>(std::sqrt(n2));
        a64[i] = 1.0;
      } else if (man == kPoincare) {
        const double a = 1.0 - c * sq;
        r0[i] = static_cast<T>(sq);
        r1[i] = static_cast<T>(a);
        a64[i] = a;
      } else {
        r0[i] = static_cast<T>(sq);
        r1[i] = T(0);
        a64[i] = 1.0;
      }
    }
  });
}

}  // namespace detail

// The per-row data of the epilogue. Except float64 Poincaré: one pass over the rows,
// squared norms in double, three allocations and no ATen kernel (a dozen small ATen
// ops here made most of the fixed cost of a call at N = 128, issue 19).
inline RowData row_data(const at::Tensor& x, double c, int64_t man) {
  RowData r;
  const int64_t n = x.size(0);
  if (man == kPoincare && x.scalar_type() == at::kDouble) {
    // float64 points: 1 - c|x|^2 in ATen's summation order, as the float64 reference
    // computes it. Near the boundary (1 - c|x|^2 ~ 1e-10 at radius 25) one ulp of
    // |x|^2 is a relative 2e-6 of it, and so of the slow path's distance; float32
    // points (envelope 1e-3) take the one-pass loop below.
    r.mat = x;
    r.r0 = x.mul(x).sum(1).contiguous();
    r.a64 = (1.0 - r.r0 * c).contiguous();
    r.r1 = r.a64;
    return r;
  }
  r.mat = man == kLorentz ? x.narrow(1, 1, x.size(1) - 1) : x;
  r.r0 = at::empty({n}, x.options());
  r.r1 = at::empty({n}, x.options());
  r.a64 = at::empty({n}, x.options().dtype(at::kDouble));
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_data",
                             [&] { detail::fill_row_data<scalar_t>(r.mat, c, man, r); });
  return r;
}

}  // namespace hypervldd
