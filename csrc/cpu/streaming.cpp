// CPU streaming reductions over the distance matrix: the symmetric hyperbolic
// InfoNCE (contrastive_loss) and the row statistics (row_stats), forward and
// backward. Never N x M: chunks of row blocks handed out dynamically to the
// threads (cpu::parallel_chunks), one distance tile (GEMM into a thread-local buffer + the fused epilogue of
// cpu/tiles.h) at a time per thread, online log-sum-exp per row.
//
// Rows are owned by the chunk that holds them (their statistics and gradients
// are written by one thread). Columns are shared: every chunk keeps partial
// column statistics (running max and sum of exponentials) and a partial
// column gradient, merged after the parallel loop in chunk order. The only
// atomic is the chunk counter; the result is deterministic for a given thread
// count (a chunk's rows do not depend on which thread runs it).
#include "tiles.h"

#include <torch/library.h>

#include <cmath>
#include <limits>

namespace hypervldd {
namespace {

using cpu::Problem;
using cpu::TileBufs;

// Rows per block and columns per tile from the op's `tile` argument: tiles of
// at most 64 x tile keep d, the factors and the gradient weights of one tile
// (3 x 64 x 512 x 4 bytes at the default) inside a core's L2.
std::pair<int64_t, int64_t> tile_shape(int64_t tile) {
  TORCH_CHECK(tile >= 1, "tile must be >= 1, got ", tile);
  return {std::min<int64_t>(tile, 64), tile};
}

// The contrastive loss's blocks: 64 rows as above, unless the columns fit in
// fewer than `tile` (small M) and a thread has more rows to do than 64: then
// up to 64 x tile / M rows (a tile of the same size), no more than a thread's
// share of the chunks. Fewer, larger GEMMs: with one thread at N = M = 128, one
// block instead of two (y packed once, the backward's gradient GEMMs twice as tall).
std::pair<int64_t, int64_t> contrastive_tile_shape(int64_t tile, int64_t n, int64_t m) {
  const auto [bm, bn] = tile_shape(tile);
  const int64_t t = std::max<int64_t>(1, at::get_num_threads());
  const int64_t chunks = t == 1 ? 1 : cpu::kChunksPerThread * t;
  const int64_t share = (n + chunks - 1) / chunks;
  const int64_t cap = bm * bn / std::max<int64_t>(1, std::min(bn, m));
  return {std::max(bm, std::min(cap, share)), bn};
}

constexpr int64_t kBackwardRows = 128;

template <typename T>
T neg_inf() {
  return -std::numeric_limits<T>::infinity();
}

// Online log-sum-exp of one row of logits: (max, sum of exp(s - max)) updated
// with row[0:len]; writes exp(s - new max) into prob when given.
template <typename T>
void lse_update(const T* row, int64_t len, T& mx, T& sum, T* prob, T* rescale) {
  T mt = mx;
  for (int64_t j = 0; j < len; ++j) mt = row[j] > mt ? row[j] : mt;
  const T alpha = exp_fast(mx - mt);  // 0 when mx = -inf
  T s = 0;
  if (prob != nullptr) {
    for (int64_t j = 0; j < len; ++j) {
      const T e = exp_fast(row[j] - mt);
      prob[j] = e;
      s += e;
    }
  } else {
    for (int64_t j = 0; j < len; ++j) s += exp_fast(row[j] - mt);
  }
  sum = sum * alpha + s;
  mx = mt;
  if (rescale != nullptr) *rescale = alpha;
}

// ------------------------------------------------------------------ contrastive

// Partial sums and maxima of a row in cpu::kLanes independent accumulators.
using cpu::kLanes;


// One forward tile of the InfoNCE: distances d (ib x jb, row-major) -> logits
// -d/tau in place; the running row statistics (rmax, rsum, ib entries) and
// this chunk's running column statistics (cm, cs, jb entries) updated by the
// online log-sum-exp. Two passes over the tile (maxima, then exponentials of
// both directions), two exps per pair; elementwise loops (vectorised) and
// lane reductions. tmax, e: jb scratch values each. Inlined into a baseline
// and an AVX2 + FMA clone (below).
template <typename T>
HVLDD_ALWAYS_INLINE void lse_tile_body(T* __restrict s, int64_t ib, int64_t jb, T neg_inv_tau,
                                       T* __restrict rmax, T* __restrict rsum, T* __restrict cm,
                                       T* __restrict cs, T* __restrict tmax, T* __restrict e) {
  for (int64_t jj = 0; jj < jb; ++jj) tmax[jj] = cm[jj];
  for (int64_t ii = 0; ii < ib; ++ii) {
    T* __restrict r = s + ii * jb;
    for (int64_t jj = 0; jj < jb; ++jj) {
      const T v = r[jj] * neg_inv_tau;
      r[jj] = v;
      tmax[jj] = v > tmax[jj] ? v : tmax[jj];
    }
    const T mt = cpu::lane_max<T>(r, jb, rmax[ii]);
    // A row of NaN logits keeps mt = -inf: exp(-inf - -inf) is NaN, so is its sum.
    rsum[ii] *= exp_fast(rmax[ii] - mt);
    rmax[ii] = mt;
  }
  for (int64_t jj = 0; jj < jb; ++jj) {
    cs[jj] *= exp_fast(cm[jj] - tmax[jj]);
    cm[jj] = tmax[jj];
  }
  for (int64_t ii = 0; ii < ib; ++ii) {
    const T* __restrict r = s + ii * jb;
    const T mt = rmax[ii];
    for (int64_t jj = 0; jj < jb; ++jj) {
      e[jj] = exp_fast(r[jj] - mt);
      cs[jj] += exp_fast(r[jj] - cm[jj]);
    }
    rsum[ii] += cpu::lane_dot<T>(e, nullptr, jb);
  }
}

#define HVLDD_LSE_TILE_ARGS                                                                \
  T *s, int64_t ib, int64_t jb, T neg_inv_tau, T *rmax, T *rsum, T *cm, T *cs, T *tmax, T *e
template <typename T>
void lse_tile_base(HVLDD_LSE_TILE_ARGS) {
  lse_tile_body<T>(s, ib, jb, neg_inv_tau, rmax, rsum, cm, cs, tmax, e);
}
#ifdef HVLDD_AVX2_CLONE
template <typename T>
__attribute__((target("avx2,fma"))) void lse_tile_avx2(HVLDD_LSE_TILE_ARGS) {
  lse_tile_body<T>(s, ib, jb, neg_inv_tau, rmax, rsum, cm, cs, tmax, e);
}
#endif
template <typename T>
void lse_tile(HVLDD_LSE_TILE_ARGS) {
#ifdef HVLDD_AVX2_CLONE
  if (cpu::cpu_has_avx2()) {
    return lse_tile_avx2<T>(s, ib, jb, neg_inv_tau, rmax, rsum, cm, cs, tmax, e);
  }
#endif
  lse_tile_base<T>(s, ib, jb, neg_inv_tau, rmax, rsum, cm, cs, tmax, e);
}

template <int64_t MAN, typename T>
void contrastive_forward(const Problem<T>& p, double tau, const int64_t* pos, int64_t tile,
                         T* row_lse, T* col_lse, T* lpos, const at::TensorOptions& o) {
  const auto [bm, bn] = contrastive_tile_shape(tile, p.n, p.m);
  const int64_t n = p.n, m = p.m;
  const int64_t nblk = (n + bm - 1) / bm;
  const int64_t nch = cpu::n_chunks(nblk);
  std::vector<T> cmax(nch * m, neg_inf<T>()), csum(nch * m, T(0));
  const T neg_inv_tau = static_cast<T>(-1.0 / tau);
  cpu::parallel_chunks(nch, [&](int64_t cb, int64_t ce) {
    // Grad mode is thread-local: the workers need their own guard for mm_out.
    at::NoGradGuard no_grad_worker;
    TileBufs<T> buf(bm, std::min(bn, m), p.D, false, o);
    std::vector<T> rmax(bm), rsum(bm), tmax(bn), ebuf(bn);
    for (int64_t ch = cb; ch < ce; ++ch) {
      T* cm = cmax.data() + ch * m;
      T* cs = csum.data() + ch * m;
      const auto [b0, b1] = cpu::chunk_range(ch, nch, nblk);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * bm, ib = std::min(bm, n - i0);
        std::fill(rmax.begin(), rmax.end(), neg_inf<T>());
        std::fill(rsum.begin(), rsum.end(), T(0));
        for (int64_t j0 = 0; j0 < m; j0 += bn) {
          const int64_t jb = std::min(bn, m - j0);
          cpu::distance_tile<MAN, T>(p, buf, i0, ib, j0, jb, false);
          T* s = buf.d.template data_ptr<T>();
          lse_tile<T>(s, ib, jb, neg_inv_tau, rmax.data(), rsum.data(), cm + j0, cs + j0,
                      tmax.data(), ebuf.data());
          for (int64_t ii = 0; ii < ib; ++ii) {
            const int64_t pj = pos[i0 + ii] - j0;
            if (pj >= 0 && pj < jb) lpos[i0 + ii] = s[ii * jb + pj];
          }
        }
        for (int64_t ii = 0; ii < ib; ++ii) row_lse[i0 + ii] = rmax[ii] + std::log(rsum[ii]);
      }
    }
  });
  for (int64_t j = 0; j < m; ++j) {
    T mx = neg_inf<T>();
    for (int64_t ch = 0; ch < nch; ++ch) mx = std::max(mx, cmax[ch * m + j]);
    T s = 0;
    if (mx != neg_inf<T>()) {
      for (int64_t ch = 0; ch < nch; ++ch) s += csum[ch * m + j] * std::exp(cmax[ch * m + j] - mx);
    }
    col_lse[j] = mx + std::log(s);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> contrastive_loss_cpu(
    const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t, const at::Tensor& tau_t,
    const at::Tensor& positives, int64_t man, int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  const double c = c_t.item<double>(), tau = tau_t.item<double>();
  TORCH_CHECK(c > 0 && tau > 0, "c and tau must be positive, got ", c, " and ", tau);
  const int64_t n = x.size(0), m = y.size(0);
  auto row = at::full({n}, -INFINITY, x.options());
  auto col = at::full({m}, -INFINITY, x.options());
  if (n == 0) return {at::zeros({}, x.options()), row, col};
  TORCH_CHECK(m > 0, "contrastive_loss needs M >= 1 columns");
  auto pos = positives.contiguous();
  const int64_t* pp = pos.data_ptr<int64_t>();
  for (int64_t i = 0; i < n; ++i) {
    TORCH_CHECK(pp[i] >= 0 && pp[i] < m, "positives must index the M = ", m,
                " columns, got ", pp[i], " at row ", i);
  }
  auto loss = at::empty({}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "contrastive_loss_cpu", [&] {
    using T = scalar_t;
    const Problem<T> p(x, y, c, man);
    std::vector<T> lpos(n);
    T* rp = row.data_ptr<T>();
    T* cp = col.data_ptr<T>();
    cpu::dispatch_manifold(man, [&](auto mc) {
      contrastive_forward<decltype(mc)::value, T>(p, tau, pp, tile, rp, cp, lpos.data(),
                                                  x.options());
    });
    // (1/2N) sum_i [(row_i - l_i) + (col_p(i) - l_i)], summed in double (a plain
    // loop: the tensor form cost about 11 small ops per call, issue 19).
    double sr = 0, sc = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double l = static_cast<double>(lpos[i]);
      sr += static_cast<double>(rp[i]) - l;
      sc += static_cast<double>(cp[pp[i]]) - l;
    }
    loss.fill_(static_cast<T>((sr + sc) / static_cast<double>(2 * n)));
  });
  return {loss, row, col};
}

// Gradient weights of one tile: G_ij = dL/dd_ij (in bufs.aux) from the logits
// s (bufs.d holds distances), returns sum_ij G_ij d_ij of the tile.
// dL/ds = gscale [exp(s - row_i) + cnt_j exp(s - col_j)] - 2 gscale [j == p(i)];
// dL/dd = -dL/ds / tau (a = -gscale / tau). The positives are added by the caller.
template <typename T>
HVLDD_ALWAYS_INLINE void weights_tile_body(const T* __restrict d, T* __restrict G, int64_t ib,
                                           int64_t jb, T neg_inv_tau, T a,
                                           const T* __restrict ri, const T* __restrict cj,
                                           const T* __restrict nj, T* __restrict sgd_row) {
  for (int64_t ii = 0; ii < ib; ++ii) {
    const T* __restrict dr = d + ii * jb;
    T* __restrict g = G + ii * jb;
    const T r = ri[ii];
    for (int64_t jj = 0; jj < jb; ++jj) {
      const T s = dr[jj] * neg_inv_tau;
      g[jj] = a * (exp_fast(s - r) + nj[jj] * exp_fast(s - cj[jj]));
    }
    sgd_row[ii] = cpu::lane_dot<T>(g, dr, jb);
  }
}

#define HVLDD_WEIGHTS_TILE_ARGS                                                              \
  const T *d, T *G, int64_t ib, int64_t jb, T neg_inv_tau, T a, const T *ri, const T *cj,   \
      const T *nj, T *sgd_row
template <typename T>
void weights_tile_base(HVLDD_WEIGHTS_TILE_ARGS) {
  weights_tile_body<T>(d, G, ib, jb, neg_inv_tau, a, ri, cj, nj, sgd_row);
}
#ifdef HVLDD_AVX2_CLONE
template <typename T>
__attribute__((target("avx2,fma"))) void weights_tile_avx2(HVLDD_WEIGHTS_TILE_ARGS) {
  weights_tile_body<T>(d, G, ib, jb, neg_inv_tau, a, ri, cj, nj, sgd_row);
}
#endif

template <typename T>
double contrastive_tile_weights(TileBufs<T>& b, int64_t i0, int64_t ib, int64_t j0, int64_t jb,
                                double tau, double gscale, const T* row, const T* col,
                                const T* cnt, const int64_t* pos) {
  const T* d = b.d.template data_ptr<T>();
  T* G = b.aux.template data_ptr<T>();
  const T neg_inv_tau = static_cast<T>(-1.0 / tau);
  const T a = static_cast<T>(-gscale / tau);
  thread_local std::vector<T> sgd_buf;
  sgd_buf.resize(static_cast<size_t>(ib));
  T* sgd_row = sgd_buf.data();
#ifdef HVLDD_AVX2_CLONE
  if (cpu::cpu_has_avx2()) {
    weights_tile_avx2<T>(d, G, ib, jb, neg_inv_tau, a, row + i0, col + j0, cnt + j0, sgd_row);
  } else
#endif
  {
    weights_tile_base<T>(d, G, ib, jb, neg_inv_tau, a, row + i0, col + j0, cnt + j0, sgd_row);
  }
  double sgd = 0;
  for (int64_t ii = 0; ii < ib; ++ii) {
    T acc = sgd_row[ii];
    const int64_t pj = pos[i0 + ii] - j0;
    if (pj >= 0 && pj < jb) {
      const T v = static_cast<T>(2.0 * gscale / tau);
      G[ii * jb + pj] += v;
      acc += v * d[ii * jb + pj];
    }
    sgd += static_cast<double>(acc);
  }
  return sgd;
}

// Shared driver of the backward passes: row blocks in chunks, each tile's
// weights from `weights(buf, i0, ib, j0, jb, chunk) -> sum G d`, then the tile
// gradient into gx (owned rows) and the chunk's partial gy. Returns sum G d.
template <int64_t MAN, typename T, typename W>
double backward_pass(const Problem<T>& p, std::pair<int64_t, int64_t> shape, T* gx,
                     at::Tensor& gy, int64_t off, const at::TensorOptions& o, int64_t nch_hint,
                     W&& weights, std::vector<at::Tensor>* gy_parts_out = nullptr) {
  const auto [bm, bn] = shape;
  const int64_t n = p.n, m = p.m, Dp = gy.size(1);
  const int64_t nblk = (n + bm - 1) / bm;
  // Each chunk holds an (M, D) partial of gy: more chunks than threads only while
  // those partials stay small.
  const int64_t t = std::max<int64_t>(1, at::get_num_threads());
  const int64_t part_bytes = std::max<int64_t>(1, m * Dp * static_cast<int64_t>(sizeof(T)));
  const int64_t nch = nch_hint > 0 ? nch_hint
                                   : std::max<int64_t>(std::min(nblk, t),
                                                       std::min(cpu::n_chunks(nblk),
                                                                (int64_t{64} << 20) / part_bytes));
  std::vector<at::Tensor> parts(nch);
  std::vector<double> sgd(nch, 0.0);
  cpu::parallel_chunks(nch, [&](int64_t cb, int64_t ce) {
    // Grad mode is thread-local: the workers need their own guard for mm_out.
    at::NoGradGuard no_grad_worker;
    for (int64_t ch = cb; ch < ce; ++ch) {
      TileBufs<T> buf(bm, std::min(bn, m), p.D, true, o);
      // One chunk writes gy (zeros on entry) itself: no partial to allocate and add.
      parts[ch] = nch == 1 ? gy : at::zeros({m, Dp}, o);
      T* gyp = parts[ch].template data_ptr<T>();
      const auto [b0, b1] = cpu::chunk_range(ch, nch, nblk);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * bm, ib = std::min(bm, n - i0);
        for (int64_t j0 = 0; j0 < m; j0 += bn) {
          const int64_t jb = std::min(bn, m - j0);
          const int64_t n_bad = cpu::distance_tile<MAN, T>(p, buf, i0, ib, j0, jb, true);
          sgd[ch] += weights(buf, i0, ib, j0, jb, ch);
          cpu::tile_grad<MAN, T>(p, buf, i0, ib, j0, jb, n_bad, gx, Dp, gyp, Dp, off);
        }
      }
    }
  });
  double total = 0;
  for (int64_t ch = 0; ch < nch; ++ch) {
    total += sgd[ch];
    if (parts[ch].defined() && nch > 1) gy.add_(parts[ch]);
  }
  if (gy_parts_out != nullptr) *gy_parts_out = parts;
  return total;
}

// Gradient of c from the scaling identity d(x, y; c) = D(sqrt(c) x, sqrt(c) y) / sqrt(c):
// dL/dc = (-sum G d + sum x.gx + sum y.gy) / (2c).
// sum_ik a_ik b_ik in double; b contiguous, a any 2-d layout of the same shape.
template <typename T>
double dot2d(const at::Tensor& a, const at::Tensor& b) {
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  const int64_t r = a.size(0), k = a.size(1), s0 = a.stride(0), s1 = a.stride(1);
  // kLanes independent sums: one running double sum is bound by the add latency.
  double acc[kLanes] = {};
  const int64_t k8 = k - k % kLanes;
  for (int64_t i = 0; i < r; ++i) {
    const T* ai = ap + i * s0;
    const T* bi = bp + i * k;
    for (int64_t j = 0; j < k8; j += kLanes) {
      for (int64_t l = 0; l < kLanes; ++l) {
        acc[l] += static_cast<double>(ai[(j + l) * s1]) * static_cast<double>(bi[j + l]);
      }
    }
    for (int64_t j = k8; j < k; ++j) {
      acc[0] += static_cast<double>(ai[j * s1]) * static_cast<double>(bi[j]);
    }
  }
  double t = 0;
  for (int64_t l = 0; l < kLanes; ++l) t += acc[l];
  return t;
}

double grad_c(int64_t man, double c, double sgd, const at::Tensor& x, const at::Tensor& gx,
              const at::Tensor& y, const at::Tensor& gy) {
  if (man == kEuclidean) return 0.0;
  // Plain loops (gx, gy are the contiguous outputs): the tensor form cost about
  // ten small ops per call (issue 19).
  double xg = 0, yg = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "grad_c", [&] {
    xg = dot2d<scalar_t>(x, gx.contiguous());
    yg = dot2d<scalar_t>(y, gy.contiguous());
  });
  return (-sgd + xg + yg) / (2.0 * c);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> contrastive_loss_backward_cpu(
    const at::Tensor& gloss, const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t,
    const at::Tensor& tau_t, const at::Tensor& positives, const at::Tensor& row_t,
    const at::Tensor& col_t, int64_t man, int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  const double c = c_t.item<double>(), tau = tau_t.item<double>();
  const int64_t n = x.size(0), m = y.size(0);
  auto gx = at::zeros({n, x.size(1)}, x.options());
  auto gy = at::zeros({m, y.size(1)}, y.options());
  if (n == 0 || m == 0) return {gx, gy, at::zeros_like(c_t), at::zeros_like(tau_t)};
  const double gscale = gloss.item<double>() / static_cast<double>(2 * n);
  auto pos = positives.contiguous();
  auto row = row_t.contiguous(), col = col_t.contiguous();
  const int64_t off = man == kLorentz ? 1 : 0;
  double sgd = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "contrastive_loss_backward_cpu", [&] {
    using T = scalar_t;
    const Problem<T> p(x, y, c, man);
    const T* rp = row.data_ptr<T>();
    const T* cp = col.data_ptr<T>();
    const int64_t* pp = pos.data_ptr<int64_t>();
    // How many rows take each column as their positive.
    std::vector<T> cnt(m, T(0));
    for (int64_t i = 0; i < n; ++i) {
      TORCH_CHECK(pp[i] >= 0 && pp[i] < m, "positives must index the M = ", m,
                  " columns, got ", pp[i], " at row ", i);
      cnt[pp[i]] += T(1);
    }
    const T* np = cnt.data();
    // The backward's blocks hold at least 128 rows (when N has them): each block's
    // gy GEMM sums over its rows, and each chunk adds an (M, D) partial of gy, so
    // 64-row blocks made the gradient GEMMs half as deep and the partials twice as
    // many (issue 19: N = 512, D = 512 forward + backward was 1.36x the
    // materialised loss).
    auto shape = contrastive_tile_shape(tile, n, m);
    shape.first = std::max<int64_t>(shape.first, std::min<int64_t>(kBackwardRows, n));
    cpu::dispatch_manifold(man, [&](auto mc) {
      sgd = backward_pass<decltype(mc)::value, T>(
          p, shape, gx.data_ptr<T>(), gy, off, x.options(), 0,
          [&](TileBufs<T>& b, int64_t i0, int64_t ib, int64_t j0, int64_t jb, int64_t) {
            return contrastive_tile_weights<T>(b, i0, ib, j0, jb, tau, gscale, rp, cp, np, pp);
          });
    });
  });
  const double gt = -sgd / tau;
  const double gc = grad_c(man, c, sgd, x, gx, y, gy);
  return {gx, gy, at::full_like(c_t, gc), at::full_like(tau_t, gt)};
}

// -------------------------------------------------------------------- row_stats

// Positive logits s_i,p(i) = -d(x_i, y_p(i)) / tau from the difference form.
template <int64_t MAN, typename T>
void positive_logits(const Problem<T>& p, const int64_t* pos, double tau, T* out) {
  at::parallel_for(0, p.n, 256, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int64_t j = pos[i];
      out[i] = static_cast<T>(-pair_slow_dist<T>(MAN, p.xp + i * p.sx0, p.sx1, p.yp + j * p.sy0,
                                                 p.sy1, p.D, p.c64, p.ax[i], p.ay[j]) /
                              tau);
    }
  });
}

template <int64_t MAN, typename T>
void row_stats_forward(const Problem<T>& p, double tau, const T* V, int64_t K, const int64_t* pos,
                       const T* spos, double rank_t, int64_t tile, T* lse, T* W, T* rank,
                       const at::TensorOptions& o) {
  const auto [bm, bn] = tile_shape(tile);
  const int64_t n = p.n, m = p.m;
  const int64_t nblk = (n + bm - 1) / bm;
  const int64_t nch = cpu::n_chunks(nblk);
  const T neg_inv_tau = static_cast<T>(-1.0 / tau);
  const T inv_t = static_cast<T>(rank_t > 0 ? 1.0 / rank_t : 0.0);
  const bool want_rank = rank_t > 0;
  at::Tensor Vt;
  if (K > 0) Vt = at::from_blob(const_cast<T*>(V), {m, K}, o);
  cpu::parallel_chunks(nch, [&](int64_t cb, int64_t ce) {
    // Grad mode is thread-local: the workers need their own guard for mm_out.
    at::NoGradGuard no_grad_worker;
    for (int64_t ch = cb; ch < ce; ++ch) {
      TileBufs<T> buf(bm, bn, p.D, false, o);
      std::vector<T> rmax(bm), rsum(bm), racc(bm), alpha(bm);
      const auto [b0, b1] = cpu::chunk_range(ch, nch, nblk);
      for (int64_t blk = b0; blk < b1; ++blk) {
        const int64_t i0 = blk * bm, ib = std::min(bm, n - i0);
        std::fill(rmax.begin(), rmax.end(), neg_inf<T>());
        std::fill(rsum.begin(), rsum.end(), T(0));
        std::fill(racc.begin(), racc.end(), T(0));
        at::Tensor Wb;
        if (K > 0) {
          Wb = at::from_blob(W + i0 * K, {ib, K}, o);
          Wb.zero_();
        }
        for (int64_t j0 = 0; j0 < m; j0 += bn) {
          const int64_t jb = std::min(bn, m - j0);
          cpu::distance_tile<MAN, T>(p, buf, i0, ib, j0, jb, false);
          T* s = buf.d.template data_ptr<T>();
          T* P = buf.aux.template data_ptr<T>();
          for (int64_t k = 0; k < ib * jb; ++k) s[k] *= neg_inv_tau;
          for (int64_t ii = 0; ii < ib; ++ii) {
            lse_update<T>(s + ii * jb, jb, rmax[ii], rsum[ii], P + ii * jb, &alpha[ii]);
            if (want_rank) {
              const T* r = s + ii * jb;
              const T sp = spos[i0 + ii];
              T acc = 0;
              for (int64_t jj = 0; jj < jb; ++jj) {
                acc += T(1) / (T(1) + exp_fast((sp - r[jj]) * inv_t));
              }
              const int64_t pj = pos[i0 + ii] - j0;
              if (pj >= 0 && pj < jb) acc -= T(1) / (T(1) + exp_fast((sp - r[pj]) * inv_t));
              racc[ii] += acc;
            }
          }
          if (K > 0) {
            // Online softmax: rescale the running sums to the new maxima, add P V.
            auto av = at::from_blob(alpha.data(), {ib, 1}, o);
            Wb.mul_(av);
            Wb.addmm_(buf.aux.narrow(0, 0, ib * jb).view({ib, jb}), Vt.narrow(0, j0, jb));
          }
        }
        for (int64_t ii = 0; ii < ib; ++ii) {
          const int64_t i = i0 + ii;
          lse[i] = rmax[ii] + std::log(rsum[ii]);
          if (K > 0) {
            const T inv = rsum[ii] > T(0) ? T(1) / rsum[ii] : T(0);
            for (int64_t k = 0; k < K; ++k) W[i * K + k] *= inv;
          }
          if (want_rank) rank[i] = T(1) + racc[ii];
        }
      }
    }
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> row_stats_cpu(
    const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t, const at::Tensor& tau_t,
    const at::Tensor& values, const at::Tensor& positives, double rank_t, int64_t man,
    int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  check_row_values(values, y);
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
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "row_stats_cpu", [&] {
    using T = scalar_t;
    const Problem<T> p(x, y, c, man);
    cpu::dispatch_manifold(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      if (want_rank) positive_logits<MAN, T>(p, pos.data_ptr<int64_t>(), tau, spos.data_ptr<T>());
      row_stats_forward<MAN, T>(p, tau, V.data_ptr<T>(), K, pos.data_ptr<int64_t>(),
                                want_rank ? spos.data_ptr<T>() : nullptr, rank_t, tile,
                                lse.data_ptr<T>(), W.data_ptr<T>(),
                                want_rank ? rank.data_ptr<T>() : nullptr, x.options());
    });
  });
  return {lse, W, rank, spos};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> row_stats_backward_cpu(
    const at::Tensor& g_lse_t, const at::Tensor& g_w_t, const at::Tensor& g_r_t,
    const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t, const at::Tensor& tau_t,
    const at::Tensor& values, const at::Tensor& positives, const at::Tensor& lse_t,
    const at::Tensor& w_t, const at::Tensor& spos_t, double rank_t, int64_t man, int64_t tile) {
  at::NoGradGuard no_grad;
  check_streaming_args(x, y, c_t, tau_t, positives, man);
  const double c = c_t.item<double>(), tau = tau_t.item<double>();
  const int64_t n = x.size(0), m = y.size(0), K = values.size(1);
  const bool want_rank = rank_t > 0;
  auto gx = at::zeros({n, x.size(1)}, x.options());
  auto gy = at::zeros({m, y.size(1)}, y.options());
  auto gv = at::zeros({m, K}, values.options());
  if (n == 0 || m == 0) {
    return {gx, gy, at::zeros_like(c_t), at::zeros_like(tau_t), gv};
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
  auto gspos = at::zeros({n}, x.options().dtype(at::kDouble));
  const int64_t off = man == kLorentz ? 1 : 0;
  const auto [bm, bn] = tile_shape(tile);
  double sgd = 0;
  AT_DISPATCH_FLOATING_TYPES(st, "row_stats_backward_cpu", [&] {
    using T = scalar_t;
    const Problem<T> p(x, y, c, man);
    const int64_t nblk = (n + bm - 1) / bm;
    const int64_t nch = cpu::n_chunks(nblk);
    std::vector<at::Tensor> gv_parts(nch);
    std::vector<at::Tensor> e_bufs(nch);
    for (int64_t ch = 0; ch < nch; ++ch) {
      if (K > 0) gv_parts[ch] = at::zeros({m, K}, x.options());
      e_bufs[ch] = at::empty({bm * bn}, x.options());
    }
    const T* lp = lse.data_ptr<T>();
    const T* glp = g_lse.data_ptr<T>();
    const T* dwp = gwdw.data_ptr<T>();
    const T* grp = g_r.data_ptr<T>();
    const T* spp = spos.data_ptr<T>();
    double* gsp = gspos.data_ptr<double>();
    const int64_t* pp = pos.data_ptr<int64_t>();
    const T neg_inv_tau = static_cast<T>(-1.0 / tau);
    const T inv_t = static_cast<T>(want_rank ? 1.0 / rank_t : 0.0);
    auto weights = [&](TileBufs<T>& b, int64_t i0, int64_t ib, int64_t j0, int64_t jb,
                       int64_t ch) {
      const T* d = b.d.template data_ptr<T>();
      T* G = b.aux.template data_ptr<T>();
      // P = softmax weights exp(s - lse_i) (in G first).
      for (int64_t ii = 0; ii < ib; ++ii) {
        const T li = lp[i0 + ii];
        for (int64_t jj = 0; jj < jb; ++jj) {
          G[ii * jb + jj] = exp_fast(d[ii * jb + jj] * neg_inv_tau - li);
        }
      }
      auto Pv = b.aux.narrow(0, 0, ib * jb).view({ib, jb});
      T* E = nullptr;
      if (K > 0) {
        auto gwb = g_w.narrow(0, i0, ib);
        // gv_j += sum_i P_ij g_w_i (column partial of this chunk); E = g_w V^T.
        gv_parts[ch].narrow(0, j0, jb).addmm_(Pv.t(), gwb);
        auto Ev = e_bufs[ch].narrow(0, 0, ib * jb).view({ib, jb});
        at::mm_out(Ev, gwb, V.narrow(0, j0, jb).t());
        E = Ev.template data_ptr<T>();
      }
      double acc_all = 0;
      for (int64_t ii = 0; ii < ib; ++ii) {
        const int64_t i = i0 + ii;
        const T base = glp[i] - dwp[i];
        const T sp = spp[i], gr = grp[i];
        const int64_t pj = pp[i] - j0;
        T* g = G + ii * jb;
        const T* dr = d + ii * jb;
        T drsum = 0, acc = 0;
        for (int64_t jj = 0; jj < jb; ++jj) {
          T gs = g[jj] * (base + (E != nullptr ? E[ii * jb + jj] : T(0)));
          if (want_rank) {
            const T sg = T(1) / (T(1) + exp_fast((sp - dr[jj] * neg_inv_tau) * inv_t));
            const T dr_ij = (jj == pj) ? T(0) : sg * (T(1) - sg) * inv_t * gr;
            gs += dr_ij;
            drsum += dr_ij;
          }
          const T gd = gs * neg_inv_tau;  // dL/dd = -dL/ds / tau
          g[jj] = gd;
          acc += gd * dr[jj];
        }
        if (want_rank) gsp[i] -= static_cast<double>(drsum);
        acc_all += static_cast<double>(acc);
      }
      return acc_all;
    };
    cpu::dispatch_manifold(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      sgd = backward_pass<MAN, T>(p, {bm, bn}, gx.data_ptr<T>(), gy, off, x.options(), nch,
                                  weights);
      if (want_rank) {
        // The positive logits: spos_i = -d(x_i, y_p(i)) / tau, difference form.
        T* gxp = gx.data_ptr<T>();
        T* gyp = gy.data_ptr<T>();
        const int64_t Dp = x.size(1);
        for (int64_t i = 0; i < n; ++i) {
          const double gpos = -gsp[i] / tau;  // dL/d(dpos_i)
          if (gpos == 0.0) continue;
          const int64_t j = pp[i];
          const T* xi = p.xp + i * p.sx0;
          const T* yj = p.yp + j * p.sy0;
          const SlowGrad s =
              pair_slow_grad<T>(MAN, xi, p.sx1, yj, p.sy1, p.D, p.c64, p.ax[i], p.ay[j]);
          sgd += gpos * s.d;
          for (int64_t k = 0; k < p.D; ++k) {
            const double xk = static_cast<double>(xi[k * p.sx1]);
            const double yk = static_cast<double>(yj[k * p.sy1]);
            gxp[i * Dp + off + k] += static_cast<T>(gpos * (s.A * (xk - yk) + s.Bx * xk));
            gyp[j * Dp + off + k] += static_cast<T>(gpos * (-s.A * (xk - yk) + s.By * yk));
          }
        }
      }
    });
    for (int64_t ch = 0; ch < nch; ++ch) {
      if (K > 0) gv.add_(gv_parts[ch].to(gv.scalar_type()));
    }
  });
  const double gt = -sgd / tau;
  const double gc = grad_c(man, c, sgd, x, gx, y, gy);
  return {gx, gy, at::full_like(c_t, gc), at::full_like(tau_t, gt), gv};
}

}  // namespace

TORCH_LIBRARY_IMPL(hypervldd, CPU, m) {
  m.impl("contrastive_loss", &contrastive_loss_cpu);
  m.impl("contrastive_loss_backward", &contrastive_loss_backward_cpu);
  m.impl("row_stats", &row_stats_cpu);
  m.impl("row_stats_backward", &row_stats_backward_cpu);
}

}  // namespace hypervldd
