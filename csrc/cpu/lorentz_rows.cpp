// CPU kernel: Lorentz distance of paired rows, d(x_i, y_i).
#include <ATen/Parallel.h>
#include <torch/library.h>
#include <torch/types.h>

#include "../include/hyperbolic_math.h"

namespace hypervldd {

at::Tensor lorentz_dist_rows_cpu(const at::Tensor& x, const at::Tensor& y, double c) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2, "x and y must be 2-D (N, D+1)");
  TORCH_CHECK(x.sizes() == y.sizes(), "x and y must have the same shape");
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "x and y must share a dtype");
  TORCH_CHECK(c > 0, "c must be positive");
  const int64_t n = x.size(0);
  const int64_t d = x.size(1) - 1;
  auto out = at::empty({n}, x.options());
  if (n == 0) return out;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lorentz_dist_rows_cpu", [&] {
    const scalar_t* xp = x.data_ptr<scalar_t>();
    const scalar_t* yp = y.data_ptr<scalar_t>();
    scalar_t* op = out.data_ptr<scalar_t>();
    const int64_t sx0 = x.stride(0), sx1 = x.stride(1);
    const int64_t sy0 = y.stride(0), sy1 = y.stride(1);
    const scalar_t cc = static_cast<scalar_t>(c);
    at::parallel_for(0, n, 256, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        const scalar_t s2 = lorentz_sinh_half_dist_sq<scalar_t>(
            xp + i * sx0 + sx1, sx1, yp + i * sy0 + sy1, sy1, d, cc);
        op[i] = dist_from_sinh_half_sq<scalar_t>(s2, cc);
      }
    });
  });
  return out;
}

TORCH_LIBRARY_IMPL(hypervldd, CPU, m) { m.impl("lorentz_dist_rows", &lorentz_dist_rows_cpu); }

}  // namespace hypervldd
