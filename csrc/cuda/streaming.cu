// CUDA streaming reductions: contrastive_loss and row_stats, forward and
// backward. Never N x M. Every kernel is an "owner pass": a block of 16 x 16
// threads owns 16 rows of one side (A) and loops over 16-wide tiles of the
// other side (B); the tile's GEMM values go through shared memory and the
// per-pair epilogue of the shared header (pair_epilogue / pair_slow_*, the
// functions the CPU tests cover). Row statistics come from a pass with A = x,
// column statistics and the gradient of y from a pass with A = y (the distance
// is symmetric), so every output element has one writer: no atomics.
// Only the scatter of the O(N) positive-pair gradients of row_stats into y uses
// index_add_.
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>
#include <torch/types.h>

#include "../include/hyperbolic_math.h"
#include "../include/pairwise_host.h"

namespace hypervldd {
namespace {

constexpr int kT = 16;

template <typename T>
struct Side {
  const T* p;  // GEMM operand (Lorentz: the space part)
  int64_t s0, s1, n;
  const T* r0;
  const T* r1;
  const double* a64;
};

template <typename T>
Side<T> make_side(const RowData& r) {
  return {r.mat.data_ptr<T>(), r.mat.stride(0), r.mat.stride(1), r.mat.size(0),
          r.r0.data_ptr<T>(), r.r1.data_ptr<T>(), r.a64.data_ptr<double>()};
}

struct Geo {
  int64_t D;
  double c64;
};

// The distance of (A row i, B row j) for the tile at (a0, b0): every thread of
// the block must call it (it synchronises). Returns d; *fac is the gradient
// factor (0 on slow pairs), *slow whether the pair took the difference form.
template <int64_t MAN, typename T>
__device__ T tile_distance(const Side<T>& A, const Side<T>& B, const Geo& g, T c, T sc, T scale,
                           int64_t a0, int64_t b0, T (*sa)[kT + 1], T (*sb)[kT + 1], T* fac,
                           bool* slow) {
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t i = a0 + ty, j = b0 + tx, jl = b0 + ty;
  T acc = 0;
  for (int64_t k0 = 0; k0 < g.D; k0 += kT) {
    const int64_t k = k0 + tx;
    sa[ty][tx] = (i < A.n && k < g.D) ? A.p[i * A.s0 + k * A.s1] : T(0);
    sb[ty][tx] = (jl < B.n && k < g.D) ? B.p[jl * B.s0 + k * B.s1] : T(0);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kT; ++kk) acc += sa[ty][kk] * sb[tx][kk];
    __syncthreads();
  }
  *fac = T(0);
  *slow = false;
  if (i >= A.n || j >= B.n) return T(0);
  T d, f;
  const bool ok = pair_epilogue<MAN, T>(acc, A.r0[i], A.r1[i], B.r0[j], B.r1[j], c, sc, scale, &d, &f);
  if (ok) {
    *fac = f;
    return d;
  }
  *slow = true;
  return static_cast<T>(pair_slow_dist<T>(MAN, A.p + i * A.s0, A.s1, B.p + j * B.s0, B.s1, g.D,
                                          g.c64, A.a64[i], B.a64[j]));
}

// Row log-sum-exp of s = -d/tau over B for every A row; captures the logit of
// the positive pair (pos[i] == j) when pos is given.
template <int64_t MAN, typename T>
__global__ void lse_pass(Side<T> A, Side<T> B, Geo g, T c, T sc, T scale, T nit, T* lse,
                         const int64_t* pos, T* lpos) {
  __shared__ T sa[kT][kT + 1], sb[kT][kT + 1];
  __shared__ T sm[kT][kT], sl[kT][kT];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t a0 = static_cast<int64_t>(blockIdx.x) * kT;
  const int64_t i = a0 + ty;
  T m = -INFINITY, l = 0;
  for (int64_t b0 = 0; b0 < B.n; b0 += kT) {
    T f;
    bool slow;
    const T d = tile_distance<MAN, T>(A, B, g, c, sc, scale, a0, b0, sa, sb, &f, &slow);
    const int64_t j = b0 + tx;
    if (i < A.n && j < B.n) {
      const T s = d * nit;
      if (pos != nullptr && pos[i] == j) lpos[i] = s;
      const T mn = s > m ? s : m;
      l = l * exp(m - mn) + exp(s - mn);
      m = mn;
    }
  }
  sm[ty][tx] = m;
  sl[ty][tx] = l;
  __syncthreads();
  if (tx == 0 && i < A.n) {
    T M = -INFINITY;
    for (int t = 0; t < kT; ++t) M = sm[ty][t] > M ? sm[ty][t] : M;
    T L = 0;
    for (int t = 0; t < kT; ++t) L += sm[ty][t] == -INFINITY ? T(0) : sl[ty][t] * exp(sm[ty][t] - M);
    lse[i] = M + log(L);
  }
}

// out[a, :] += sum_b w(a, b, d_ab) vals[b, :] and aux[a] = sum_b w.aux(a, b, d_ab)
// (softmax-weighted values, smooth rank, the values' gradient).
template <int64_t MAN, typename T, typename Fn>
__global__ void weighted_pass(Side<T> A, Side<T> B, Geo g, T c, T sc, T scale, Fn fn,
                              const T* vals, int64_t K, T* out, T* aux) {
  __shared__ T sa[kT][kT + 1], sb[kT][kT + 1];
  __shared__ T P[kT][kT + 1];
  __shared__ T sx[kT][kT];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t a0 = static_cast<int64_t>(blockIdx.x) * kT;
  const int64_t i = a0 + ty;
  T xacc = 0;
  for (int64_t b0 = 0; b0 < B.n; b0 += kT) {
    T f;
    bool slow;
    const T d = tile_distance<MAN, T>(A, B, g, c, sc, scale, a0, b0, sa, sb, &f, &slow);
    const int64_t j = b0 + tx;
    const bool valid = i < A.n && j < B.n;
    P[ty][tx] = valid ? fn(i, j, d) : T(0);
    if (valid) xacc += fn.aux(i, j, d);
    __syncthreads();
    if (i < A.n) {
      for (int64_t k = tx; k < K; k += kT) {
        T acc = 0;
        for (int jj = 0; jj < kT && b0 + jj < B.n; ++jj) acc += P[ty][jj] * vals[(b0 + jj) * K + k];
        out[i * K + k] += acc;
      }
    }
    __syncthreads();
  }
  sx[ty][tx] = xacc;
  __syncthreads();
  if (tx == 0 && i < A.n && aux != nullptr) {
    T s = 0;
    for (int t = 0; t < kT; ++t) s += sx[ty][t];
    aux[i] += s;
  }
}

// Gradient pass for the owned A rows: with G = fn(a, b, d) = dL/dd_ab,
// accumulates ub[a] = sum_b u_ab B_b, su[a] = sum_b u_ab, su1[a] = sum_b u_ab
// B.r0_b (u = G f on fast pairs) for the assembly, adds the slow pairs'
// difference-form gradients into ga, sum_b G d per block into sgd[block], and
// sum_b fn.aux into aux[a] when aux is given.
template <int64_t MAN, typename T, typename Fn>
__global__ void grad_pass(Side<T> A, Side<T> B, Geo g, T c, T sc, T scale, Fn fn, T* ub, T* su,
                          T* su1, T* ga, int64_t ld, int64_t off, double* sgd, T* aux) {
  __shared__ T sa[kT][kT + 1], sb[kT][kT + 1];
  __shared__ T U[kT][kT + 1], Gs[kT][kT + 1];
  __shared__ double red[kT * kT];
  __shared__ T sx[kT][kT];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t a0 = static_cast<int64_t>(blockIdx.x) * kT;
  const int64_t i = a0 + ty;
  double gd = 0;
  T xacc = 0;
  for (int64_t b0 = 0; b0 < B.n; b0 += kT) {
    T f;
    bool slow;
    const T d = tile_distance<MAN, T>(A, B, g, c, sc, scale, a0, b0, sa, sb, &f, &slow);
    const int64_t j = b0 + tx;
    const bool valid = i < A.n && j < B.n;
    const T G = valid ? fn(i, j, d) : T(0);
    if (valid) {
      gd += static_cast<double>(G) * static_cast<double>(d);
      xacc += fn.aux(i, j, d);
    }
    U[ty][tx] = slow ? T(0) : G * f;
    Gs[ty][tx] = slow ? G : T(0);
    __syncthreads();
    if (i < A.n) {
      for (int64_t k = tx; k < g.D; k += kT) {
        T acc = 0;
        for (int jj = 0; jj < kT && b0 + jj < B.n; ++jj) {
          acc += U[ty][jj] * B.p[(b0 + jj) * B.s0 + k * B.s1];
        }
        ub[i * g.D + k] += acc;
      }
      if (tx == 0) {
        T s = 0, s1 = 0;
        for (int jj = 0; jj < kT && b0 + jj < B.n; ++jj) {
          s += U[ty][jj];
          s1 += U[ty][jj] * B.r0[b0 + jj];
        }
        su[i] += s;
        su1[i] += s1;
      }
      for (int jj = 0; jj < kT && b0 + jj < B.n; ++jj) {
        const T gs = Gs[ty][jj];
        if (gs == T(0)) continue;
        const int64_t jb = b0 + jj;
        const T* ai = A.p + i * A.s0;
        const T* bj = B.p + jb * B.s0;
        const SlowGrad sg =
            pair_slow_grad<T>(MAN, ai, A.s1, bj, B.s1, g.D, g.c64, A.a64[i], B.a64[jb]);
        for (int64_t k = tx; k < g.D; k += kT) {
          const double ak = static_cast<double>(ai[k * A.s1]);
          const double bk = static_cast<double>(bj[k * B.s1]);
          ga[i * ld + off + k] += static_cast<T>(static_cast<double>(gs) * (sg.A * (ak - bk) + sg.Bx * ak));
        }
      }
    }
    __syncthreads();
  }
  red[ty * kT + tx] = gd;
  sx[ty][tx] = xacc;
  __syncthreads();
  if (tx == 0 && ty == 0) {
    double s = 0;
    for (int t = 0; t < kT * kT; ++t) s += red[t];
    sgd[blockIdx.x] = s;
  }
  if (tx == 0 && i < A.n && aux != nullptr) {
    T s = 0;
    for (int t = 0; t < kT; ++t) s += sx[ty][t];
    aux[i] += s;
  }
}

// ga[a] += coef_a A_a - ub[a], one thread per row (the fast pairs' gradient).
template <int64_t MAN, typename T>
__global__ void assemble(Side<T> A, Geo g, T c, const T* ub, const T* su, const T* su1, T* ga,
                         int64_t ld, int64_t off) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= A.n) return;
  const T* ai = A.p + i * A.s0;
  const T* u = ub + i * g.D;
  T coef;
  if (MAN == kLorentz) {
    coef = su1[i] / A.r0[i];
  } else if (MAN == kPoincare) {
    T dot = 0;
    for (int64_t k = 0; k < g.D; ++k) dot += ai[k * A.s1] * u[k];
    coef = su[i] + c * (A.r0[i] * su[i] + su1[i] - T(2) * dot) / A.r1[i];
  } else {
    coef = su[i];
  }
  for (int64_t k = 0; k < g.D; ++k) ga[i * ld + off + k] += ai[k * A.s1] * coef - u[k];
}

// Distance (and gradient with G) of the pairs (x_i, y_pos[i]) from differences.
template <int64_t MAN, typename T>
__global__ void paired_pass(Side<T> X, Side<T> Y, Geo g, const int64_t* pos, T nit, T* s_out,
                            const T* G, T* gx, T* gyp, int64_t ld, int64_t off, double* sgd) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= X.n) return;
  const int64_t j = pos[i];
  const T* xi = X.p + i * X.s0;
  const T* yj = Y.p + j * Y.s0;
  if (G == nullptr) {
    s_out[i] = static_cast<T>(
        pair_slow_dist<T>(MAN, xi, X.s1, yj, Y.s1, g.D, g.c64, X.a64[i], Y.a64[j]) *
        static_cast<double>(nit));
    return;
  }
  const SlowGrad sg = pair_slow_grad<T>(MAN, xi, X.s1, yj, Y.s1, g.D, g.c64, X.a64[i], Y.a64[j]);
  const double gi = static_cast<double>(G[i]);
  sgd[i] = gi * sg.d;
  for (int64_t k = 0; k < g.D; ++k) {
    const double xk = static_cast<double>(xi[k * X.s1]);
    const double yk = static_cast<double>(yj[k * Y.s1]);
    gx[i * ld + off + k] += static_cast<T>(gi * (sg.A * (xk - yk) + sg.Bx * xk));
    gyp[i * ld + off + k] = static_cast<T>(gi * (-sg.A * (xk - yk) + sg.By * yk));
  }
}

// ------------------------------------------------------------------ functors

template <typename T>
struct ContrastiveW {
  const T* La;  // log-sum-exp of the owned side's lines
  const T* wa;  // multiplicity of the owned side (nullptr: 1)
  const T* Lb;
  const T* wb;
  const int64_t* pos_a;  // positive iff pos_a[a] == b
  const int64_t* pos_b;  // positive iff pos_b[b] == a
  T a, pcoef, nit;
  __device__ T operator()(int64_t ia, int64_t jb, T d) const {
    const T s = d * nit;
    const T wai = wa != nullptr ? wa[ia] : T(1);
    const T wbj = wb != nullptr ? wb[jb] : T(1);
    T g = a * (wai * exp(s - La[ia]) + wbj * exp(s - Lb[jb]));
    if ((pos_a != nullptr && pos_a[ia] == jb) || (pos_b != nullptr && pos_b[jb] == ia)) g += pcoef;
    return g;
  }
  __device__ T aux(int64_t, int64_t, T) const { return T(0); }
};

// Row-statistics weights. swap: the owned side is y (a indexes y, b indexes x).
template <typename T>
struct RowStatsW {
  const T *lse, *glse, *gwdw, *gw, *V, *spos, *gr;
  const int64_t* pos;
  int64_t K;
  T nit, inv_t;
  bool swap, want_rank;
  __device__ T dr(int64_t i, int64_t j, T s) const {
    if (!want_rank || pos[i] == j) return T(0);
    const T sg = T(1) / (T(1) + exp((spos[i] - s) * inv_t));
    return sg * (T(1) - sg) * inv_t * gr[i];
  }
  __device__ T operator()(int64_t a, int64_t b, T d) const {
    const int64_t i = swap ? b : a, j = swap ? a : b;
    const T s = d * nit;
    const T P = exp(s - lse[i]);
    T e = 0;
    for (int64_t k = 0; k < K; ++k) e += gw[i * K + k] * V[j * K + k];
    return (P * (glse[i] - gwdw[i] + e) + dr(i, j, s)) * nit;
  }
  __device__ T aux(int64_t a, int64_t b, T d) const {
    return swap ? T(0) : -dr(a, b, d * nit);  // gspos_i = -sum_j dr_ij
  }
};

// Forward weights: softmax weight and smooth-rank term (owned side x).
template <typename T>
struct SoftmaxW {
  const T* lse;
  const T* spos;
  const int64_t* pos;
  T nit, inv_t;
  bool want_rank;
  __device__ T operator()(int64_t i, int64_t j, T d) const { return exp(d * nit - lse[i]); }
  __device__ T aux(int64_t i, int64_t j, T d) const {
    if (!want_rank || pos[i] == j) return T(0);
    return T(1) / (T(1) + exp((spos[i] - d * nit) * inv_t));
  }
};

// Values' gradient: owned side y, weight P_ij over x rows i.
template <typename T>
struct GvW {
  const T* lse;
  T nit;
  __device__ T operator()(int64_t j, int64_t i, T d) const { return exp(d * nit - lse[i]); }
  __device__ T aux(int64_t, int64_t, T) const { return T(0); }
};

// ------------------------------------------------------------------ host side

struct Prep {
  RowData rx, ry;
  double c;
  int64_t D;
};

template <typename T>
struct Consts {
  T c, sc, scale;
};

template <typename T>
Consts<T> consts(int64_t man, double c) {
  return {static_cast<T>(c), static_cast<T>(std::sqrt(c)), static_cast<T>(dist_scale(man, c))};
}

dim3 grid_for(int64_t n) { return dim3(static_cast<unsigned>((n + kT - 1) / kT)); }

template <typename F>
void dispatch_man(int64_t man, F&& f) {
  if (man == kLorentz) {
    f(std::integral_constant<int64_t, kLorentz>{});
  } else if (man == kPoincare) {
    f(std::integral_constant<int64_t, kPoincare>{});
  } else {
    f(std::integral_constant<int64_t, kEuclidean>{});
  }
}

// Runs grad_pass + assemble for the owned side A into ga; returns sum G d.
template <int64_t MAN, typename T, typename Fn>
double owner_grad(const Side<T>& A, const Side<T>& B, const Geo& g, const Consts<T>& k, Fn fn,
                  at::Tensor& ga, int64_t off, T* aux, const at::TensorOptions& o,
                  cudaStream_t stream) {
  auto ub = at::zeros({A.n, g.D}, o);
  auto su = at::zeros({A.n}, o);
  auto su1 = at::zeros({A.n}, o);
  const dim3 grid = grid_for(A.n);
  auto sgd = at::zeros({static_cast<int64_t>(grid.x)}, o.dtype(at::kDouble));
  grad_pass<MAN, T, Fn><<<grid, dim3(kT, kT), 0, stream>>>(
      A, B, g, k.c, k.sc, k.scale, fn, ub.template data_ptr<T>(), su.template data_ptr<T>(), su1.template data_ptr<T>(),
      ga.template data_ptr<T>(), ga.size(1), off, sgd.template data_ptr<double>(), aux);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  assemble<MAN, T><<<static_cast<unsigned>((A.n + 127) / 128), 128, 0, stream>>>(
      A, g, k.c, ub.template data_ptr<T>(), su.template data_ptr<T>(), su1.template data_ptr<T>(), ga.template data_ptr<T>(),
      ga.size(1), off);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return sgd.sum().template item<double>();
}

double grad_c(int64_t man, double c, double sgd, const at::Tensor& x, const at::Tensor& gx,
              const at::Tensor& y, const at::Tensor& gy) {
  if (man == kEuclidean) return 0.0;
  const double xg = (x.to(at::kDouble) * gx.to(at::kDouble)).sum().item<double>();
  const double yg = (y.to(at::kDouble) * gy.to(at::kDouble)).sum().item<double>();
  return (-sgd + xg + yg) / (2.0 * c);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> contrastive_loss_cuda(
    const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t, const at::Tensor& tau_t,
    const at::Tensor& positives, int64_t man, int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  const c10::cuda::CUDAGuard guard(x.device());
  const double c = c_t.item<double>(), tau = tau_t.item<double>();
  TORCH_CHECK(c > 0 && tau > 0, "c and tau must be positive");
  const int64_t n = x.size(0), m = y.size(0);
  auto row = at::full({n}, -INFINITY, x.options());
  auto col = at::full({m}, -INFINITY, x.options());
  if (n == 0) return {at::zeros({}, x.options()), row, col};
  auto pos = positives.contiguous();
  auto lpos = at::zeros({n}, x.options());
  const RowData rx = row_data(x, c, man), ry = row_data(y, c, man);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "contrastive_loss_cuda", [&] {
    using T = scalar_t;
    const auto k = consts<T>(man, c);
    const Geo g{rx.mat.size(1), c};
    const Side<T> X = make_side<T>(rx), Y = make_side<T>(ry);
    const T nit = static_cast<T>(-1.0 / tau);
    dispatch_man(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      lse_pass<MAN, T><<<grid_for(n), dim3(kT, kT), 0, stream>>>(
          X, Y, g, k.c, k.sc, k.scale, nit, row.data_ptr<T>(), pos.data_ptr<int64_t>(),
          lpos.data_ptr<T>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      lse_pass<MAN, T><<<grid_for(m), dim3(kT, kT), 0, stream>>>(
          Y, X, g, k.c, k.sc, k.scale, nit, col.data_ptr<T>(), nullptr, nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    });
  });
  auto lp = lpos.to(at::kDouble);
  auto total = (row.to(at::kDouble) - lp).sum() +
               (col.to(at::kDouble).index_select(0, pos) - lp).sum();
  return {(total / static_cast<double>(2 * n)).to(x.scalar_type()), row, col};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> contrastive_loss_backward_cuda(
    const at::Tensor& gloss, const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t,
    const at::Tensor& tau_t, const at::Tensor& positives, const at::Tensor& row_t,
    const at::Tensor& col_t, int64_t man, int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  const c10::cuda::CUDAGuard guard(x.device());
  const double c = c_t.item<double>(), tau = tau_t.item<double>();
  const int64_t n = x.size(0), m = y.size(0);
  auto gx = at::zeros({n, x.size(1)}, x.options());
  auto gy = at::zeros({m, y.size(1)}, y.options());
  if (n == 0 || m == 0) return {gx, gy, at::zeros_like(c_t), at::zeros_like(tau_t)};
  const double gscale = gloss.item<double>() / static_cast<double>(2 * n);
  auto pos = positives.contiguous();
  auto cnt = at::bincount(pos, {}, m).to(x.scalar_type()).contiguous();
  auto row = row_t.contiguous(), col = col_t.contiguous();
  const RowData rx = row_data(x, c, man), ry = row_data(y, c, man);
  const int64_t off = man == kLorentz ? 1 : 0;
  auto stream = c10::cuda::getCurrentCUDAStream();
  double sgd = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "contrastive_loss_backward_cuda", [&] {
    using T = scalar_t;
    const auto k = consts<T>(man, c);
    const Geo g{rx.mat.size(1), c};
    const Side<T> X = make_side<T>(rx), Y = make_side<T>(ry);
    const T nit = static_cast<T>(-1.0 / tau);
    const T a = static_cast<T>(-gscale / tau), pc = static_cast<T>(2.0 * gscale / tau);
    const ContrastiveW<T> wx{row.data_ptr<T>(), nullptr, col.data_ptr<T>(), cnt.data_ptr<T>(),
                             pos.data_ptr<int64_t>(), nullptr, a, pc, nit};
    const ContrastiveW<T> wy{col.data_ptr<T>(), cnt.data_ptr<T>(), row.data_ptr<T>(), nullptr,
                             nullptr, pos.data_ptr<int64_t>(), a, pc, nit};
    dispatch_man(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      sgd = owner_grad<MAN, T>(X, Y, g, k, wx, gx, off, nullptr, x.options(), stream);
      owner_grad<MAN, T>(Y, X, g, k, wy, gy, off, nullptr, x.options(), stream);
    });
  });
  const double gt = -sgd / tau;
  const double gc = grad_c(man, c, sgd, x, gx, y, gy);
  return {gx, gy, at::full_like(c_t, gc), at::full_like(tau_t, gt)};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> row_stats_cuda(
    const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t, const at::Tensor& tau_t,
    const at::Tensor& values, const at::Tensor& positives, double rank_t, int64_t man,
    int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  check_row_values(values, y);
  const c10::cuda::CUDAGuard guard(x.device());
  const double c = c_t.item<double>(), tau = tau_t.item<double>();
  const int64_t n = x.size(0), m = y.size(0), K = values.size(1);
  const bool want_rank = rank_t > 0;
  auto lse = at::full({n}, -INFINITY, x.options());
  auto W = at::zeros({n, K}, x.options());
  auto rank = at::ones({want_rank ? n : 0}, x.options());
  auto spos = at::zeros({want_rank ? n : 0}, x.options());
  if (n == 0 || m == 0) return {lse, W, rank, spos};
  auto pos = positives.contiguous();
  auto V = values.to(x.scalar_type()).contiguous();
  const RowData rx = row_data(x, c, man), ry = row_data(y, c, man);
  auto stream = c10::cuda::getCurrentCUDAStream();
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_stats_cuda", [&] {
    using T = scalar_t;
    const auto k = consts<T>(man, c);
    const Geo g{rx.mat.size(1), c};
    const Side<T> X = make_side<T>(rx), Y = make_side<T>(ry);
    const T nit = static_cast<T>(-1.0 / tau);
    const T inv_t = static_cast<T>(want_rank ? 1.0 / rank_t : 0.0);
    dispatch_man(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      if (want_rank) {
        paired_pass<MAN, T><<<static_cast<unsigned>((n + 127) / 128), 128, 0, stream>>>(
            X, Y, g, pos.data_ptr<int64_t>(), nit, spos.data_ptr<T>(), nullptr, nullptr, nullptr,
            0, 0, nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      lse_pass<MAN, T><<<grid_for(n), dim3(kT, kT), 0, stream>>>(
          X, Y, g, k.c, k.sc, k.scale, nit, lse.data_ptr<T>(), nullptr, nullptr);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      const SoftmaxW<T> w{lse.data_ptr<T>(), want_rank ? spos.data_ptr<T>() : nullptr,
                          pos.data_ptr<int64_t>(), nit, inv_t, want_rank};
      auto racc = at::zeros({n}, x.options());
      weighted_pass<MAN, T><<<grid_for(n), dim3(kT, kT), 0, stream>>>(
          X, Y, g, k.c, k.sc, k.scale, w, V.data_ptr<T>(), K, W.data_ptr<T>(),
          racc.data_ptr<T>());
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      if (want_rank) rank.add_(racc);
    });
  });
  return {lse, W, rank, spos};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> row_stats_backward_cuda(
    const at::Tensor& g_lse_t, const at::Tensor& g_w_t, const at::Tensor& g_r_t,
    const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t, const at::Tensor& tau_t,
    const at::Tensor& values, const at::Tensor& positives, const at::Tensor& lse_t,
    const at::Tensor& w_t, const at::Tensor& spos_t, double rank_t, int64_t man, int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  const c10::cuda::CUDAGuard guard(x.device());
  const double c = c_t.item<double>(), tau = tau_t.item<double>();
  const int64_t n = x.size(0), m = y.size(0), K = values.size(1);
  const bool want_rank = rank_t > 0;
  auto gx = at::zeros({n, x.size(1)}, x.options());
  auto gy = at::zeros({m, y.size(1)}, y.options());
  if (n == 0 || m == 0) {
    return {gx, gy, at::zeros_like(c_t), at::zeros_like(tau_t), at::zeros_like(values)};
  }
  const auto st = x.scalar_type();
  auto pos = positives.contiguous();
  auto V = values.to(st).contiguous();
  auto g_lse = g_lse_t.to(st).contiguous();
  auto g_w = g_w_t.to(st).contiguous();
  auto g_r = want_rank ? g_r_t.to(st).contiguous() : at::zeros({n}, x.options());
  auto lse = lse_t.contiguous();
  auto gwdw = K > 0 ? (g_w * w_t.to(st)).sum(1).contiguous() : at::zeros({n}, x.options());
  auto spos = want_rank ? spos_t.contiguous() : at::zeros({n}, x.options());
  auto gspos = at::zeros({n}, x.options());
  auto gv = at::zeros({m, K}, x.options());
  const RowData rx = row_data(x, c, man), ry = row_data(y, c, man);
  const int64_t off = man == kLorentz ? 1 : 0;
  auto stream = c10::cuda::getCurrentCUDAStream();
  double sgd = 0;
  AT_DISPATCH_FLOATING_TYPES(st, "row_stats_backward_cuda", [&] {
    using T = scalar_t;
    const auto k = consts<T>(man, c);
    const Geo g{rx.mat.size(1), c};
    const Side<T> X = make_side<T>(rx), Y = make_side<T>(ry);
    const T nit = static_cast<T>(-1.0 / tau);
    const T inv_t = static_cast<T>(want_rank ? 1.0 / rank_t : 0.0);
    RowStatsW<T> w{lse.data_ptr<T>(), g_lse.data_ptr<T>(), gwdw.data_ptr<T>(),
                   K > 0 ? g_w.data_ptr<T>() : nullptr, K > 0 ? V.data_ptr<T>() : nullptr,
                   spos.data_ptr<T>(), g_r.data_ptr<T>(), pos.data_ptr<int64_t>(), K, nit,
                   inv_t, false, want_rank};
    dispatch_man(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      sgd = owner_grad<MAN, T>(X, Y, g, k, w, gx, off, gspos.data_ptr<T>(), x.options(), stream);
      w.swap = true;
      owner_grad<MAN, T>(Y, X, g, k, w, gy, off, nullptr, x.options(), stream);
      if (K > 0) {
        const GvW<T> gvw{lse.data_ptr<T>(), nit};
        weighted_pass<MAN, T><<<grid_for(m), dim3(kT, kT), 0, stream>>>(
            Y, X, g, k.c, k.sc, k.scale, gvw, g_w.data_ptr<T>(), K, gv.data_ptr<T>(), nullptr);
        C10_CUDA_KERNEL_LAUNCH_CHECK();
      }
      if (want_rank) {
        // Positive logits spos_i = -d(x_i, y_p(i)) / tau: G = dL/dd = -gspos / tau.
        auto G = (gspos * (-1.0 / tau)).contiguous();
        auto gyp = at::zeros({n, y.size(1)}, y.options());
        auto sg = at::zeros({n}, x.options().dtype(at::kDouble));
        paired_pass<MAN, T><<<static_cast<unsigned>((n + 127) / 128), 128, 0, stream>>>(
            X, Y, g, pos.data_ptr<int64_t>(), nit, nullptr, G.data_ptr<T>(), gx.data_ptr<T>(),
            gyp.data_ptr<T>(), gx.size(1), off, sg.data_ptr<double>());
        C10_CUDA_KERNEL_LAUNCH_CHECK();
        gy.index_add_(0, pos, gyp);
        sgd += sg.sum().item<double>();
      }
    });
  });
  const double gt = -sgd / tau;
  const double gc = grad_c(man, c, sgd, x, gx, y, gy);
  return {gx, gy, at::full_like(c_t, gc), at::full_like(tau_t, gt), gv.to(values.scalar_type())};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypervldd, CUDA, m) {
  m.impl("contrastive_loss", &contrastive_loss_cuda);
  m.impl("contrastive_loss_backward", &contrastive_loss_backward_cuda);
  m.impl("row_stats", &row_stats_cuda);
  m.impl("row_stats_backward", &row_stats_backward_cuda);
}

}  // namespace hypervldd
