// The point rule of hypervldd/_checks.py over CPU tensors, bound in ops.cpp as
// hypervldd._C.first_bad_points (a plain function: no dispatcher on the hot path).
#pragma once

#include <torch/types.h>

#include <vector>

namespace hypervldd {

// Index of the first tensor holding a point that breaks the rule of manifold
// `man` (0 Lorentz, 1 Poincare, 2 Euclidean) at curvature magnitude c, or -1.
// rtol32 / rtol64: the Lorentz residual tolerance for float32 / float64 tensors.
int64_t first_bad_points(const std::vector<at::Tensor>& tensors, int64_t man, double c,
                         double rtol32, double rtol64);

}  // namespace hypervldd
