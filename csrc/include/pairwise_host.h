// Host-side preparation shared by the CPU and CUDA pairwise kernels: argument
// checks and the per-row data the epilogue reads (ATen ops, device-agnostic).
#pragma once

#include <torch/types.h>

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

inline RowData row_data(const at::Tensor& x, double c, int64_t man) {
  RowData r;
  if (man == kLorentz) {
    r.mat = x.narrow(1, 1, x.size(1) - 1);
    auto n2 = r.mat.mul(r.mat).sum(1).mul_(c);
    r.r0 = n2.add(1.0).sqrt_();
    r.r1 = n2.sqrt();
    r.a64 = at::ones({x.size(0)}, x.options().dtype(at::kDouble));
  } else {
    r.mat = x;
    r.r0 = x.mul(x).sum(1);
    auto xd = x.to(at::kDouble);
    if (man == kPoincare) {
      r.a64 = 1.0 - xd.mul(xd).sum(1).mul_(c);
      r.r1 = r.a64.to(x.scalar_type());
    } else {
      r.a64 = at::ones({x.size(0)}, xd.options());
      r.r1 = at::zeros_like(r.r0);
    }
  }
  r.r0 = r.r0.contiguous();
  r.r1 = r.r1.contiguous();
  r.a64 = r.a64.contiguous();
  return r;
}

}  // namespace hypervldd
