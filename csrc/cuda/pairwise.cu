// CUDA pairwise distance kernels: a shared-memory tiled GEMM of 16 x 16 output
// tiles with the fused epilogue of the shared header (the same pair_fast /
// pair_slow the CPU runs, so the CPU tests cover the math). Close pairs take
// the difference form in double, read from global memory.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>
#include <torch/types.h>

#include "../include/hyperbolic_math.h"
#include "../include/pairwise_host.h"

namespace hypervldd {
namespace {

constexpr int kTile = 16;

template <int64_t MAN, typename T, bool FACTOR>
__global__ void pairwise_kernel(const T* __restrict__ x, int64_t sx0, int64_t sx1,
                                const T* __restrict__ y, int64_t sy0, int64_t sy1, int64_t n,
                                int64_t m, int64_t D, const T* __restrict__ r0,
                                const T* __restrict__ r1, const T* __restrict__ q0,
                                const T* __restrict__ q1, const double* __restrict__ ax,
                                const double* __restrict__ ay, T c, T scale,
                                T* __restrict__ out, T* __restrict__ fac,
                                bool* __restrict__ bad) {
  __shared__ T sx[kTile][kTile + 1];  // +1 avoids bank conflicts on the transposed read
  __shared__ T sy[kTile][kTile + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i = static_cast<int64_t>(blockIdx.y) * kTile + ty;  // row of x
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kTile + tx;  // row of y
  const int64_t ld_y = static_cast<int64_t>(blockIdx.x) * kTile + ty;
  T acc = 0;
  for (int64_t k0 = 0; k0 < D; k0 += kTile) {
    const int64_t k = k0 + tx;
    sx[ty][tx] = (i < n && k < D) ? x[i * sx0 + k * sx1] : T(0);
    sy[ty][tx] = (ld_y < m && k < D) ? y[ld_y * sy0 + k * sy1] : T(0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kTile; ++kk) acc += sx[ty][kk] * sy[tx][kk];
    __syncthreads();
  }
  if (i >= n || j >= m) return;
  // The per-pair epilogue of the shared header (the CPU runs the same code).
  T d, f;
  const bool ok = pair_epilogue<MAN, T>(acc, r0[i], r1[i], q0[j], q1[j], c, sqrt(c), scale, &d, &f);
  if (!ok) {
    d = static_cast<T>(pair_slow_dist<T>(MAN, x + i * sx0, sx1, y + j * sy0, sy1, D,
                                         static_cast<double>(c), ax[i], ay[j]));
  }
  const int64_t o = i * m + j;
  out[o] = d;
  if (FACTOR) {
    fac[o] = ok ? f : T(0);
    bad[o] = !ok;
  }
}

template <int64_t MAN, typename T>
void launch(const RowData& rx, const RowData& ry, int64_t n, int64_t m, T c, T scale,
            at::Tensor& out, at::Tensor* fac, at::Tensor* bad) {
  const dim3 block(kTile, kTile);
  const dim3 grid(static_cast<unsigned>((m + kTile - 1) / kTile),
                  static_cast<unsigned>((n + kTile - 1) / kTile));
  auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t D = rx.mat.size(1);
  if (fac != nullptr) {
    pairwise_kernel<MAN, T, true><<<grid, block, 0, stream>>>(
        rx.mat.data_ptr<T>(), rx.mat.stride(0), rx.mat.stride(1), ry.mat.data_ptr<T>(),
        ry.mat.stride(0), ry.mat.stride(1), n, m, D, rx.r0.data_ptr<T>(), rx.r1.data_ptr<T>(),
        ry.r0.data_ptr<T>(), ry.r1.data_ptr<T>(), rx.a64.data_ptr<double>(),
        ry.a64.data_ptr<double>(), c, scale, out.data_ptr<T>(), fac->data_ptr<T>(),
        bad->data_ptr<bool>());
  } else {
    pairwise_kernel<MAN, T, false><<<grid, block, 0, stream>>>(
        rx.mat.data_ptr<T>(), rx.mat.stride(0), rx.mat.stride(1), ry.mat.data_ptr<T>(),
        ry.mat.stride(0), ry.mat.stride(1), n, m, D, rx.r0.data_ptr<T>(), rx.r1.data_ptr<T>(),
        ry.r0.data_ptr<T>(), ry.r1.data_ptr<T>(), rx.a64.data_ptr<double>(),
        ry.a64.data_ptr<double>(), c, scale, out.data_ptr<T>(), nullptr, nullptr);
  }
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_impl_cuda(const at::Tensor& x,
                                                                  const at::Tensor& y,
                                                                  const at::Tensor& c_t,
                                                                  int64_t man, bool with_factor) {
  at::NoGradGuard no_grad;
  check_pairwise_args(x, y, c_t, man);
  const double c = c_t.item<double>();
  TORCH_CHECK(c > 0, "c must be positive, got ", c);
  const c10::cuda::CUDAGuard guard(x.device());
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
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pairwise_dist_cuda", [&] {
    const scalar_t cc = static_cast<scalar_t>(c);
    const scalar_t scale = static_cast<scalar_t>(dist_scale(man, c));
    at::Tensor* fp = with_factor ? &fac : nullptr;
    at::Tensor* bp = with_factor ? &bad : nullptr;
    if (man == kLorentz) {
      launch<kLorentz, scalar_t>(rx, ry, n, m, cc, scale, out, fp, bp);
    } else if (man == kPoincare) {
      launch<kPoincare, scalar_t>(rx, ry, n, m, cc, scale, out, fp, bp);
    } else {
      launch<kEuclidean, scalar_t>(rx, ry, n, m, cc, scale, out, fp, bp);
    }
  });
  return {out, fac, bad};
}

at::Tensor pairwise_dist_cuda(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c,
                              int64_t man) {
  return std::get<0>(pairwise_impl_cuda(x, y, c, man, false));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_dist_factor_cuda(const at::Tensor& x,
                                                                         const at::Tensor& y,
                                                                         const at::Tensor& c,
                                                                         int64_t man) {
  return pairwise_impl_cuda(x, y, c, man, true);
}

}  // namespace

TORCH_LIBRARY_IMPL(hypervldd, CUDA, m) {
  m.impl("pairwise_dist", &pairwise_dist_cuda);
  m.impl("pairwise_dist_factor", &pairwise_dist_factor_cuda);
}

}  // namespace hypervldd
