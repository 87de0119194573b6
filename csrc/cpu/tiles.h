// CPU tile machinery shared by the pairwise and streaming kernels: the prepared
// inputs of one (x, y) problem, the fused epilogue over one row of GEMM values,
// the distance tile (GEMM into a thread-local buffer + epilogue) and the
// gradient assembly of a tile.
#pragma once

// No trapping math: GCC may then if-convert the selects of the epilogue loops
// and vectorise them (torch itself is built with -fno-trapping-math).
#pragma GCC optimize("no-math-errno", "no-trapping-math")

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <cstdint>
#include <vector>

#include "../include/hyperbolic_math.h"
#include "../include/pairwise_host.h"
#include "epilogue.h"

namespace hypervldd {
namespace cpu {

// One (x, y) problem, prepared: the GEMM operands and the per-row data of both
// sides, as raw pointers for the loops.
template <typename T>
struct Problem {
  int64_t man = 0, n = 0, m = 0, D = 0;
  double c64 = 1.0;
  T c = 1, sc = 1, scale = 1;
  RowData rx, ry;
  at::Tensor xmat, ymat;  // (n, D), (m, D): space parts for Lorentz (strided views)
  const T *xp = nullptr, *yp = nullptr;
  int64_t sx0 = 0, sx1 = 0, sy0 = 0, sy1 = 0;
  const T *r0 = nullptr, *r1 = nullptr, *q0 = nullptr, *q1 = nullptr;
  const double *ax = nullptr, *ay = nullptr;

  Problem(const at::Tensor& x, const at::Tensor& y, double c_, int64_t man_)
      : man(man_), n(x.size(0)), m(y.size(0)), c64(c_) {
    rx = row_data(x, c_, man_);
    ry = row_data(y, c_, man_);
    xmat = rx.mat;
    ymat = ry.mat;
    D = xmat.size(1);
    c = static_cast<T>(c_);
    sc = static_cast<T>(std::sqrt(c_));
    scale = static_cast<T>(dist_scale(man_, c_));
    xp = xmat.data_ptr<T>();
    yp = ymat.data_ptr<T>();
    sx0 = xmat.stride(0);
    sx1 = xmat.stride(1);
    sy0 = ymat.stride(0);
    sy1 = ymat.stride(1);
    r0 = rx.r0.template data_ptr<T>();
    r1 = rx.r1.template data_ptr<T>();
    q0 = ry.r0.template data_ptr<T>();
    q1 = ry.r1.template data_ptr<T>();
    ax = rx.a64.template data_ptr<double>();
    ay = ry.a64.template data_ptr<double>();
  }
};


// One row of GEMM values x_i.y_j (j in [j0, j0 + len)) -> distances in place.
// With frow (backward): also the factor of each accepted pair (0 for slow
// pairs) and the slow-pair mask. Returns the number of slow pairs. Slow pairs
// (marked -1 by the fast pass) are recomputed from coordinate differences in
// double in a second pass.
template <int64_t MAN, typename T>
int64_t epilogue_row(const Problem<T>& p, int64_t i, int64_t j0, int64_t len, T* row, T* frow,
                     uint8_t* brow) {
  const int64_t n_bad = fast_pass_row<MAN, T>(row, frow, brow, p.q0 + j0, p.q1 + j0, len, p.r0[i],
                                             p.r1[i], p.c, p.sc, p.scale);
  if (n_bad == 0) return 0;
  const T* xi = p.xp + i * p.sx0;
  for (int64_t j = 0; j < len; ++j) {
    if (row[j] < T(0)) {
      row[j] = static_cast<T>(pair_slow_dist<T>(MAN, xi, p.sx1, p.yp + (j0 + j) * p.sy0, p.sy1,
                                                p.D, p.c64, p.ax[i], p.ay[j0 + j]));
    }
  }
  return n_bad;
}

template <typename F>
void dispatch_manifold(int64_t man, F&& f) {
  if (man == kLorentz) {
    f(std::integral_constant<int64_t, kLorentz>{});
  } else if (man == kPoincare) {
    f(std::integral_constant<int64_t, kPoincare>{});
  } else {
    f(std::integral_constant<int64_t, kEuclidean>{});
  }
}

// Thread-local buffers of one worker.
template <typename T>
struct TileBufs {
  at::Tensor d, f, aux, ga, gb;  // (bm*bn), (bm*bn), (bm*bn), (bm*D), (bn*D)
  std::vector<uint8_t> bad;
  std::vector<T> sums;  // tile_grad's row and column sums: 2 (bm + bn)
  TileBufs(int64_t bm, int64_t bn, int64_t D, bool grad, const at::TensorOptions& o) {
    d = at::empty({bm * bn}, o);
    aux = at::empty({bm * bn}, o);
    if (grad) {
      f = at::empty({bm * bn}, o);
      ga = at::empty({bm * D}, o);
      gb = at::empty({bn * D}, o);
      bad.resize(static_cast<size_t>(bm * bn));
    }
  }
};

// Distances of the tile rows [i0, i0+ib) x columns [j0, j0+jb) into bufs.d
// (row-major, leading dimension jb), with factors and mask when grad.
template <int64_t MAN, typename T>
int64_t distance_tile(const Problem<T>& p, TileBufs<T>& b, int64_t i0, int64_t ib, int64_t j0,
                      int64_t jb, bool grad) {
  auto dv = b.d.narrow(0, 0, ib * jb).view({ib, jb});
  at::mm_out(dv, p.xmat.narrow(0, i0, ib), p.ymat.narrow(0, j0, jb).t());
  T* d = b.d.template data_ptr<T>();
  T* f = grad ? b.f.template data_ptr<T>() : nullptr;
  uint8_t* bad = grad ? b.bad.data() : nullptr;
  int64_t n_bad = 0;
  for (int64_t ii = 0; ii < ib; ++ii) {
    n_bad += epilogue_row<MAN, T>(p, i0 + ii, j0, jb, d + ii * jb, f ? f + ii * jb : nullptr,
                                  bad ? bad + ii * jb : nullptr);
  }
  return n_bad;
}

// Forces a body into its caller so that an ISA clone (target attribute)
// compiles it for its own instruction set.
#define HVLDD_ALWAYS_INLINE inline __attribute__((always_inline))

// Row reductions in kLanes independent lanes (GCC vector extensions): the
// compiler may not reassociate one float sum (no -ffast-math), so a plain loop
// stays scalar. Deterministic: the order depends on the length only.
constexpr int64_t kLanes = 8;

template <typename T>
HVLDD_ALWAYS_INLINE T lane_max(const T* a, int64_t n, T init) {
  typedef T V __attribute__((vector_size(kLanes * sizeof(T))));
  V m;
  for (int64_t l = 0; l < kLanes; ++l) m[l] = init;
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    V v;
    std::memcpy(&v, a + j, sizeof(V));
    m = v > m ? v : m;  // a NaN element is skipped, as in a scalar `v > m ? v : m`
  }
  T r = init;
  for (int64_t l = 0; l < kLanes; ++l) r = m[l] > r ? m[l] : r;
  for (; j < n; ++j) r = a[j] > r ? a[j] : r;
  return r;
}

// sum_j a_j (b_j when given).
template <typename T>
HVLDD_ALWAYS_INLINE T lane_dot(const T* a, const T* b, int64_t n) {
  typedef T V __attribute__((vector_size(kLanes * sizeof(T))));
  V s = {};
  int64_t j = 0;
  for (; j + kLanes <= n; j += kLanes) {
    V v;
    std::memcpy(&v, a + j, sizeof(V));
    if (b != nullptr) {
      V w;
      std::memcpy(&w, b + j, sizeof(V));
      v *= w;
    }
    s += v;
  }
  T r = 0;
  for (int64_t l = 0; l < kLanes; ++l) r += s[l];
  for (; j < n; ++j) r += b != nullptr ? a[j] * b[j] : a[j];
  return r;
}

// u = G * f in place over an (ib x jb) tile and its sums: rs_i = sum_j u_ij,
// ru_i = sum_j u_ij q0_j, cs_j = sum_i u_ij, cu_j = sum_i u_ij r0_i (cs, cu
// zeroed by the caller). Inlined into a baseline and an AVX2 + FMA clone.
template <typename T>
HVLDD_ALWAYS_INLINE void grad_sums_body(T* __restrict G, const T* __restrict f,
                                        const T* __restrict qj, const T* __restrict pr,
                                        int64_t ib, int64_t jb, T* __restrict rs,
                                        T* __restrict ru, T* __restrict cs, T* __restrict cu) {
  for (int64_t ii = 0; ii < ib; ++ii) {
    T* __restrict u = G + ii * jb;
    const T* __restrict fr = f + ii * jb;
    const T pi = pr[ii];
    for (int64_t jj = 0; jj < jb; ++jj) {
      const T v = u[jj] * fr[jj];
      u[jj] = v;
      cs[jj] += v;
      cu[jj] += v * pi;
    }
    rs[ii] = lane_dot<T>(u, nullptr, jb);
    ru[ii] = lane_dot<T>(u, qj, jb);
  }
}

#define HVLDD_GRAD_SUMS_ARGS                                                                 \
  T *G, const T *f, const T *qj, const T *pr, int64_t ib, int64_t jb, T *rs, T *ru, T *cs,  \
      T *cu
template <typename T>
void grad_sums_base(HVLDD_GRAD_SUMS_ARGS) {
  grad_sums_body<T>(G, f, qj, pr, ib, jb, rs, ru, cs, cu);
}
#ifdef HVLDD_AVX2_CLONE
template <typename T>
__attribute__((target("avx2,fma"))) void grad_sums_avx2(HVLDD_GRAD_SUMS_ARGS) {
  grad_sums_body<T>(G, f, qj, pr, ib, jb, rs, ru, cs, cu);
}
#endif

// Gradient of sum_ij G_ij d_ij over one tile, given u = G * f in bufs.aux
// (G: bufs.aux on entry, overwritten) and the mask of slow pairs. Adds to the
// rows gx (ld ldx, point columns: the space part for Lorentz starts at column
// off) and gy. Fast pairs: two GEMMs plus row/column sums (the formulas of
// csrc/include/hyperbolic_math.h, pair_fast); slow pairs: pair_slow_grad in
// double. G must be zero where it should not contribute.
template <int64_t MAN, typename T>
void tile_grad(const Problem<T>& p, TileBufs<T>& b, int64_t i0, int64_t ib, int64_t j0,
               int64_t jb, int64_t n_bad, T* gx, int64_t ldx, T* gy, int64_t ldy, int64_t off) {
  T* G = b.aux.template data_ptr<T>();
  const T* f = b.f.template data_ptr<T>();
  const uint8_t* bad = b.bad.data();
  const int64_t D = p.D;
  // Slow pairs first (they read G before it becomes u).
  if (n_bad > 0) {
    for (int64_t ii = 0; ii < ib; ++ii) {
      const int64_t i = i0 + ii;
      for (int64_t jj = 0; jj < jb; ++jj) {
        if (!bad[ii * jb + jj]) continue;
        const T gij = G[ii * jb + jj];
        if (gij == T(0)) continue;
        const int64_t j = j0 + jj;
        const T* xi = p.xp + i * p.sx0;
        const T* yj = p.yp + j * p.sy0;
        const SlowGrad s =
            pair_slow_grad<T>(MAN, xi, p.sx1, yj, p.sy1, D, p.c64, p.ax[i], p.ay[j]);
        const double g = static_cast<double>(gij);
        T* gxi = gx + i * ldx + off;
        T* gyj = gy + j * ldy + off;
        for (int64_t k = 0; k < D; ++k) {
          const double xk = static_cast<double>(xi[k * p.sx1]);
          const double yk = static_cast<double>(yj[k * p.sy1]);
          gxi[k] += static_cast<T>(g * (s.A * (xk - yk) + s.Bx * xk));
          gyj[k] += static_cast<T>(g * (-s.A * (xk - yk) + s.By * yk));
        }
      }
    }
  }
  // u = G * f (f is 0 on slow pairs); row and column sums.
  b.sums.assign(static_cast<size_t>(2 * (ib + jb)), T(0));
  T* rs = b.sums.data();
  T* ru = rs + ib;
  T* cs = ru + ib;
  T* cu = cs + jb;
#ifdef HVLDD_AVX2_CLONE
  if (cpu_has_avx2()) {
    grad_sums_avx2<T>(G, f, p.q0 + j0, p.r0 + i0, ib, jb, rs, ru, cs, cu);
  } else
#endif
  {
    grad_sums_base<T>(G, f, p.q0 + j0, p.r0 + i0, ib, jb, rs, ru, cs, cu);
  }
  auto U = b.aux.narrow(0, 0, ib * jb).view({ib, jb});
  auto A = b.ga.narrow(0, 0, ib * D).view({ib, D});
  auto B = b.gb.narrow(0, 0, jb * D).view({jb, D});
  at::mm_out(A, U, p.ymat.narrow(0, j0, jb));      // sum_j u_ij y_j
  at::mm_out(B, U.t(), p.xmat.narrow(0, i0, ib));  // sum_i u_ij x_i
  const T* Ap = A.template data_ptr<T>();
  const T* Bp = B.template data_ptr<T>();
  auto assemble = [&](int64_t cnt, int64_t base, const T* P, int64_t s0, int64_t s1,
                      const T* pr0, const T* pr1, const T* sum, const T* sum1, const T* acc,
                      T* g, int64_t ld) {
    for (int64_t a = 0; a < cnt; ++a) {
      const int64_t idx = base + a;
      const T* pt = P + idx * s0;
      const T* ac = acc + a * D;
      T* ga = g + idx * ld + off;
      T coef;
      if constexpr (MAN == kLorentz) {
        coef = sum1[a] / pr0[idx];  // (sum_j u y0_j) / x0
      } else if constexpr (MAN == kPoincare) {
        T dot = 0;
        for (int64_t k = 0; k < D; ++k) dot += pt[k * s1] * ac[k];
        // x2 * rs + sum_j u y2_j - 2 x.(u y), over 1 - c|x|^2
        coef = sum[a] + p.c * (pr0[idx] * sum[a] + sum1[a] - T(2) * dot) / pr1[idx];
      } else {
        coef = sum[a];
      }
      for (int64_t k = 0; k < D; ++k) ga[k] += pt[k * s1] * coef - ac[k];
    }
  };
  assemble(ib, i0, p.xp, p.sx0, p.sx1, p.r0, p.r1, rs, ru, Ap, gx, ldx);
  assemble(jb, j0, p.yp, p.sy0, p.sy1, p.q0, p.q1, cs, cu, Bp, gy, ldy);
}

// Partition of nblocks row blocks into chunks: one chunk with one thread, else
// up to kChunksPerThread per thread, handed out dynamically (parallel_chunks),
// so that a core taken by another process delays one small chunk, not half of
// the op (issue 19: with static halves the ops ran 1.5 to 2.1x slower under a
// busy core, torch.mm 1.1 to 1.3x). A chunk's rows and its merge position are
// fixed whichever thread runs it: results stay deterministic for a thread count.
constexpr int64_t kChunksPerThread = 4;

inline int64_t n_chunks(int64_t nblocks) {
  const int64_t t = std::max<int64_t>(1, at::get_num_threads());
  const int64_t want = t == 1 ? 1 : kChunksPerThread * t;
  return std::max<int64_t>(1, std::min(nblocks, want));
}

// f(ch, ch + 1) for every chunk ch in [0, nch), the chunks taken from a shared
// counter by at most one worker per thread (the signature of at::parallel_for's
// body, so a static loop converts by its first line).
template <typename F>
void parallel_chunks(int64_t nch, const F& f) {
  const int64_t t = std::min<int64_t>(nch, std::max<int64_t>(1, at::get_num_threads()));
  if (t <= 1 || at::in_parallel_region()) {
    f(0, nch);
    return;
  }
  std::atomic<int64_t> next{0};
  at::parallel_for(0, t, 1, [&](int64_t, int64_t) {
    for (int64_t ch = next.fetch_add(1); ch < nch; ch = next.fetch_add(1)) f(ch, ch + 1);
  });
}

inline std::pair<int64_t, int64_t> chunk_range(int64_t chunk, int64_t nchunks, int64_t nblocks) {
  return {chunk * nblocks / nchunks, (chunk + 1) * nblocks / nchunks};
}

}  // namespace cpu
}  // namespace hypervldd
