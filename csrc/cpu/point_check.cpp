// The package's point rule (hypervldd/_checks.py, check_points) as one pass over
// the rows, in double, with no temporaries. At the sizes of a training step the
// Python form's dozen small ATen ops cost more than the distance op itself
// (issue 19: 23 to 50 us of validation around a 44 us op at N = 8).
//
// Rule per row r: Euclidean, every value finite; Poincare, c |r|^2 < 1;
// Lorentz, r_0 > 0 and |c <r, r>_L + 1| < rtol (c |r|^2 + 1). NaN or inf fail
// every rule (NaN compares false; inf - inf is NaN).
#include "../include/point_check.h"

#include "../include/pairwise_host.h"

#include <ATen/Parallel.h>
#include <torch/types.h>

#include <atomic>
#include <cmath>

namespace hypervldd {
namespace {

using detail::row_sum;

template <typename T>
bool row_ok(const T* r, int64_t d, int64_t s1, int64_t man, double c, double rtol) {
  if (man == 2) return row_sum<false>(r, d, s1) == 0.0;
  const double sq = row_sum<true>(r, d, s1);
  if (man == 1) return sq * c < 1.0;
  const double x0 = static_cast<double>(r[0]);
  const double res = std::abs((sq - 2.0 * x0 * x0) * c + 1.0);
  return res < (sq * c + 1.0) * rtol && x0 > 0.0;
}

template <typename T>
bool tensor_ok(const at::Tensor& x, int64_t man, double c, double rtol) {
  const int64_t n = x.size(0), d = x.size(1);
  if (n == 0 || d == 0) return true;
  const T* p = x.data_ptr<T>();
  const int64_t s0 = x.stride(0), s1 = x.stride(1);
  std::atomic<bool> ok{true};
  // Serial below about 64k values (no thread start-up for a training step's batch).
  const int64_t grain = std::max<int64_t>(1, (int64_t{1} << 16) / d);
  at::parallel_for(0, n, grain, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      if (!row_ok<T>(p + i * s0, d, s1, man, c, rtol)) {
        ok.store(false, std::memory_order_relaxed);
        return;
      }
      if ((i & 255) == 0 && !ok.load(std::memory_order_relaxed)) return;
    }
  });
  return ok.load();
}

}  // namespace

int64_t first_bad_points(const std::vector<at::Tensor>& tensors, int64_t man, double c,
                         double rtol32, double rtol64) {
  TORCH_CHECK(man >= 0 && man <= 2, "manifold code must be 0, 1 or 2, got ", man);
  for (const auto& t : tensors) {
    TORCH_CHECK(t.device().is_cpu() && t.dim() == 2 &&
                    (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble),
                "first_bad_points takes 2-D float32/float64 CPU tensors, got ", t.sizes(), " ",
                t.scalar_type(), " on ", t.device());
    TORCH_CHECK(man != 0 || t.size(0) == 0 || t.size(1) >= 1,
                "Lorentz points need a time column");
  }
  for (size_t k = 0; k < tensors.size(); ++k) {
    const auto& t = tensors[k];
    const bool ok = t.scalar_type() == at::kFloat ? tensor_ok<float>(t, man, c, rtol32)
                                                  : tensor_ok<double>(t, man, c, rtol64);
    if (!ok) return static_cast<int64_t>(k);
  }
  return -1;
}

}  // namespace hypervldd
