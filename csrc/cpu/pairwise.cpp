// CPU pairwise distance kernels: GEMM on a block of rows straight into the
// output, then the fused epilogue (distance, log1p and scale in one vectorised
// pass, see cpu/tiles.h) while the block is still in the last-level cache.
// Close pairs (rejected by the per-pair error bound) are recomputed from
// coordinate differences in double.
//
// Forward:  pairwise_dist(x, y, c, manifold) -> (N, M) distances.
// Backward: pairwise_dist_backward(grad, x, y, c, manifold) -> (gx, gy, gc), one op
// (tiles of rows: distances with their factors, then two GEMMs with grad * f);
// its autograd registration is at the end of this file.
// pairwise_dist_factor(x, y, c, manifold) -> (d, f, bad): distances, the per-pair
// factor f such that the gradient is two GEMMs with g * f, and the mask of pairs
// whose gradient must come from the difference form instead (f = 0 there).
#include "tiles.h"

#include "../include/point_check.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/csrc/autograd/custom_function.h>
#include <torch/library.h>

#include <cmath>
#include <limits>

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
  // Up to N = 512, 128-row blocks: with 256 the whole of N = 256 was one block on one
  // thread while the composite's GEMM used both (issue 19's size grid).
  b = std::clamp<int64_t>(b, n <= 512 ? 128 : 256, 4096);
  return b < n ? b : (n > 0 ? n : 1);
}

constexpr const char* kPointRuleError = "hypervldd point rule: ";

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_impl(const at::Tensor& x,
                                                             const at::Tensor& y,
                                                             const at::Tensor& c_t, int64_t man,
                                                             bool with_factor, bool check) {
  // The kernel is a leaf for autograd (PairwiseDistFn below is its autograd);
  // the ATen calls inside must not record a graph.
  at::NoGradGuard no_grad;
  check_pairwise_args(x, y, c_t, man);
  const double c = c_t.item<double>();
  TORCH_CHECK(c > 0, "c must be positive, got ", c);
  if (check) {
    static const double rtol32 = std::pow(double{std::numeric_limits<float>::epsilon()}, 0.4);
    static const double rtol64 = std::pow(std::numeric_limits<double>::epsilon(), 0.4);
    const int64_t bad = first_bad_points({x, y}, man, c, rtol32, rtol64);
    // hypervldd.kernels.api reads this prefix and re-raises the full message.
    TORCH_CHECK_VALUE(bad < 0, kPointRuleError, bad == 0 ? "x" : "y",
                      " breaks the point rule of its manifold");
  }
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
                             int64_t man, bool check) {
  return std::get<0>(pairwise_impl(x, y, c, man, false, check));
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_dist_factor_cpu(const at::Tensor& x,
                                                                        const at::Tensor& y,
                                                                        const at::Tensor& c,
                                                                        int64_t man, bool check) {
  return pairwise_impl(x, y, c, man, true, check);
}

// Rows per tile of the backward: at least 128 (each tile's gy GEMM sums over its
// rows, and each chunk adds an (M, D) partial of gy: 64-row tiles left the
// backward at N = 512, D = 512 1.2x slower than the composite's), at most 256,
// and about kChunksPerThread tiles per thread when N allows.
int64_t backward_rows(int64_t n) {
  const int64_t t = std::max<int64_t>(1, at::get_num_threads());
  const int64_t parts = t == 1 ? 1 : cpu::kChunksPerThread * t;
  return std::clamp<int64_t>((n + parts - 1) / parts, 128, 256);
}

// sum_ik a_ik b_ik in double (a: any strides, b: contiguous with a's shape).
template <typename T>
double dot_all(const at::Tensor& a, const at::Tensor& b) {
  const T* ap = a.data_ptr<T>();
  const T* bp = b.data_ptr<T>();
  const int64_t r = a.size(0), k = a.size(1), s0 = a.stride(0), s1 = a.stride(1);
  double acc = 0;
  for (int64_t i = 0; i < r; ++i) {
    for (int64_t j = 0; j < k; ++j) {
      acc += static_cast<double>(ap[i * s0 + j * s1]) * static_cast<double>(bp[i * k + j]);
    }
  }
  return acc;
}

// Gradients (x, y, c) of sum(grad * pairwise_dist(x, y, c)) in one op, from what
// the forward saved (pairwise_dist_factor: distances d, factors f, slow-pair mask):
// no second GEMM for the distances, so forward + backward is three GEMMs like the
// composite's. Each chunk of row tiles takes u = grad * f and adds the tile
// gradient (fast pairs: two GEMMs with u; slow pairs: the difference form in
// double) to gx (rows it owns) and to its own partial of gy.
std::tuple<at::Tensor, at::Tensor, at::Tensor> pairwise_dist_backward_cpu(
    const at::Tensor& grad, const at::Tensor& x, const at::Tensor& y, const at::Tensor& c_t,
    const at::Tensor& d_t, const at::Tensor& f_t, const at::Tensor& bad_t, int64_t man) {
  at::NoGradGuard no_grad;
  check_pairwise_args(x, y, c_t, man);
  const int64_t n = x.size(0), m = y.size(0);
  for (const auto* t : {&grad, &d_t, &f_t, &bad_t}) {
    TORCH_CHECK(t->dim() == 2 && t->size(0) == n && t->size(1) == m,
                "grad, d, f and the mask must have the output's shape (", n, ", ", m, "), got ",
                t->sizes());
  }
  TORCH_CHECK(d_t.scalar_type() == x.scalar_type() && f_t.scalar_type() == x.scalar_type() &&
                  bad_t.scalar_type() == at::kBool,
              "d and f must have the points' dtype and the mask must be bool (the outputs of "
              "pairwise_dist_factor)");
  const double c = c_t.item<double>();
  TORCH_CHECK(c > 0, "c must be positive, got ", c);
  auto gx = at::zeros({n, x.size(1)}, x.options());
  auto gy = at::zeros({m, y.size(1)}, y.options());
  if (n == 0 || m == 0) return {gx, gy, at::zeros_like(c_t)};
  // Any strides (the gradient of a sum is an expanded scalar): tiles copy from it.
  const auto g = grad.scalar_type() == x.scalar_type() ? grad : grad.to(x.scalar_type());
  const auto d = d_t.contiguous(), f = f_t.contiguous(), bad = bad_t.contiguous();
  const int64_t off = man == kLorentz ? 1 : 0;
  const int64_t Dp = x.size(1);
  double gc = 0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "pairwise_dist_backward_cpu", [&] {
    using T = scalar_t;
    const cpu::Problem<T> p(x, y, c, man);
    const auto o = x.options();
    const int64_t bm = std::min(backward_rows(n), n);
    const int64_t nblk = (n + bm - 1) / bm;
    // Each chunk but the first holds an (M, D) partial of gy: more chunks than
    // threads only while those partials stay small.
    const int64_t t = std::max<int64_t>(1, at::get_num_threads());
    const int64_t part_bytes = std::max<int64_t>(1, m * Dp * static_cast<int64_t>(sizeof(T)));
    const int64_t nch = std::max<int64_t>(
        std::min(nblk, t), std::min(cpu::n_chunks(nblk), (int64_t{64} << 20) / part_bytes));
    std::vector<at::Tensor> parts(nch);
    std::vector<double> sgd(nch, 0.0);
    T* gxp = gx.data_ptr<T>();
    const T* dp = d.data_ptr<T>();
    const uint8_t* bp = reinterpret_cast<const uint8_t*>(bad.data_ptr<bool>());
    cpu::dispatch_manifold(man, [&](auto mc) {
      constexpr int64_t MAN = decltype(mc)::value;
      cpu::parallel_chunks(nch, [&](int64_t cb, int64_t ce) {
        // Grad mode is thread-local: the workers need their own guard for mm_out.
        at::NoGradGuard no_grad_worker;
        for (int64_t ch = cb; ch < ce; ++ch) {
          cpu::TileBufs<T> buf(bm, m, p.D, true, o);
          // Chunk 0 adds straight into gy (the only chunk with one thread).
          parts[ch] = ch == 0 ? gy : at::zeros({m, Dp}, o);
          T* gyp = parts[ch].template data_ptr<T>();
          const auto [b0, b1] = cpu::chunk_range(ch, nch, nblk);
          for (int64_t blk = b0; blk < b1; ++blk) {
            const int64_t i0 = blk * bm, ib = std::min(bm, n - i0), len = ib * m;
            // G into the tile buffer (tile_grad turns it into G * f); sum G d for dL/dc.
            buf.aux.narrow(0, 0, len).view({ib, m}).copy_(g.narrow(0, i0, ib));
            const T* Gp = buf.aux.template data_ptr<T>();
            const T* dr = dp + i0 * m;
            double s = 0;
            for (int64_t ii = 0; ii < ib; ++ii) {
              T acc = 0;
              for (int64_t jj = 0; jj < m; ++jj) acc += Gp[ii * m + jj] * dr[ii * m + jj];
              s += static_cast<double>(acc);
            }
            sgd[ch] += s;
            // The tile's factors in place (rows i0.. of f are contiguous); the mask
            // only when the tile has slow pairs (tile_grad reads it only then).
            buf.f = f.narrow(0, i0, ib);
            const uint8_t* br = bp + i0 * m;
            uint8_t any = 0;
            for (int64_t k = 0; k < len; ++k) any |= br[k];
            if (any) std::copy(br, br + len, buf.bad.begin());
            cpu::tile_grad<MAN, T>(p, buf, i0, ib, 0, m, any, gxp, Dp, gyp, Dp, off);
          }
        }
      });
    });
    double total = 0;
    for (int64_t ch = 0; ch < nch; ++ch) total += sgd[ch];
    // The partials of gy added in chunk order, split over gy's rows: deterministic for a
    // thread count, and no serial tail (adding 7 partials one after another on one
    // thread was a fifth of the backward at N = 512, D = 512 on 2 threads).
    if (nch > 1) {
      T* gyp = gy.data_ptr<T>();
      std::vector<const T*> pp(nch);
      for (int64_t ch = 1; ch < nch; ++ch) pp[ch] = parts[ch].template data_ptr<T>();
      at::parallel_for(0, m, 64, [&](int64_t r0, int64_t r1) {
        for (int64_t ch = 1; ch < nch; ++ch) {
          const T* src = pp[ch] + r0 * Dp;
          T* dst = gyp + r0 * Dp;
          const int64_t len = (r1 - r0) * Dp;
          for (int64_t k = 0; k < len; ++k) dst[k] += src[k];
        }
      });
    }
    // d(x, y; c) = D(sqrt(c) x, sqrt(c) y) / sqrt(c) gives
    // dL/dc = (-sum G d + sum x.gx + sum y.gy) / (2c).
    if (man != kEuclidean) {
      gc = (-total + dot_all<T>(x, gx) + dot_all<T>(y, gy)) / (2.0 * c);
    }
  });
  return {gx, gy, at::full_like(c_t, gc)};
}

using Triple = std::tuple<at::Tensor, at::Tensor, at::Tensor>;

using ForwardSig = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t,
                              bool);

const c10::TypedOperatorHandle<ForwardSig>& forward_op() {
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("hypervldd::pairwise_dist", "")
                             .typed<ForwardSig>();
  return op;
}

// Autograd of pairwise_dist, in C++: the Python form (torch.library.register_autograd)
// cost about 20 us per forward and 300 us per backward in interpreter time at N = 128,
// more than the backward's arithmetic (issue 19). When a gradient is needed the
// forward runs pairwise_dist_factor and saves (d, f, mask): the backward then needs
// no second GEMM. Both directions go through the dispatcher, so tracing (compile,
// export) sees the ops and their fake impls.
class PairwiseDistFn : public torch::autograd::Function<PairwiseDistFn> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            const at::Tensor& y, const at::Tensor& c, int64_t man,
                            bool check) {
    static const auto op = c10::Dispatcher::singleton()
                               .findSchemaOrThrow("hypervldd::pairwise_dist_factor", "")
                               .typed<Triple(const at::Tensor&, const at::Tensor&,
                                             const at::Tensor&, int64_t, bool)>();
    at::AutoDispatchBelowADInplaceOrView below;
    auto [d, f, bad] = op.call(x, y, c, man, check);
    ctx->save_for_backward({x, y, c, d, f, bad});
    ctx->saved_data["man"] = man;
    return d;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    static const auto op =
        c10::Dispatcher::singleton()
            .findSchemaOrThrow("hypervldd::pairwise_dist_backward", "")
            .typed<Triple(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                          const at::Tensor&, const at::Tensor&, const at::Tensor&,
                          const at::Tensor&, int64_t)>();
    const auto s = ctx->get_saved_variables();
    auto [gx, gy, gc] =
        op.call(grads[0], s[0], s[1], s[2], s[3], s[4], s[5], ctx->saved_data["man"].toInt());
    return {ctx->needs_input_grad(0) ? gx : at::Tensor(),
            ctx->needs_input_grad(1) ? gy : at::Tensor(),
            ctx->needs_input_grad(2) ? gc : at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor pairwise_dist_autograd(const at::Tensor& x, const at::Tensor& y, const at::Tensor& c,
                                  int64_t man, bool check) {
  if (!at::GradMode::is_enabled() ||
      !(x.requires_grad() || y.requires_grad() || c.requires_grad())) {
    // No graph to record: the plain kernel, without the factors.
    at::AutoDispatchBelowADInplaceOrView below;
    return forward_op().call(x, y, c, man, check);
  }
  return PairwiseDistFn::apply(x, y, c, man, check);
}

}  // namespace

TORCH_LIBRARY_IMPL(hypervldd, Autograd, m) {
  m.impl("pairwise_dist", &pairwise_dist_autograd);
}

TORCH_LIBRARY_IMPL(hypervldd, CPU, m) {
  m.impl("pairwise_dist", &pairwise_dist_cpu);
  m.impl("pairwise_dist_factor", &pairwise_dist_factor_cpu);
  m.impl("pairwise_dist_backward", &pairwise_dist_backward_cpu);
}

}  // namespace hypervldd
