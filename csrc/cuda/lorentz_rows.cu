// CUDA kernel: Lorentz distance of paired rows, one thread per row.
// The math is the shared header's, so the CPU tests cover it.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>
#include <torch/types.h>

#include "../include/hyperbolic_math.h"

namespace hypervldd {

template <typename T>
__global__ void lorentz_dist_rows_kernel(const T* __restrict__ x, const T* __restrict__ y,
                                         T* __restrict__ out, int64_t n, int64_t d,
                                         int64_t sx0, int64_t sx1, int64_t sy0, int64_t sy1,
                                         T c) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  const T s2 = lorentz_sinh_half_dist_sq<T>(x + i * sx0 + sx1, sx1, y + i * sy0 + sy1, sy1, d, c);
  out[i] = dist_from_sinh_half_sq<T>(s2, c);
}

at::Tensor lorentz_dist_rows_cuda(const at::Tensor& x, const at::Tensor& y, double c) {
  TORCH_CHECK(x.dim() == 2 && y.dim() == 2, "x and y must be 2-D (N, D+1)");
  TORCH_CHECK(x.sizes() == y.sizes(), "x and y must have the same shape");
  TORCH_CHECK(x.scalar_type() == y.scalar_type(), "x and y must share a dtype");
  TORCH_CHECK(c > 0, "c must be positive");
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t n = x.size(0);
  auto out = at::empty({n}, x.options());
  if (n == 0) return out;
  const int threads = 128;
  const int blocks = static_cast<int>((n + threads - 1) / threads);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "lorentz_dist_rows_cuda", [&] {
    lorentz_dist_rows_kernel<scalar_t><<<blocks, threads, 0, stream>>>(
        x.data_ptr<scalar_t>(), y.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(), n,
        x.size(1) - 1, x.stride(0), x.stride(1), y.stride(0), y.stride(1),
        static_cast<scalar_t>(c));
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

TORCH_LIBRARY_IMPL(hypervldd, CUDA, m) { m.impl("lorentz_dist_rows", &lorentz_dist_rows_cuda); }

}  // namespace hypervldd
