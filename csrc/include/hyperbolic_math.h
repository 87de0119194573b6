// Scalar hyperbolic math shared by the CPU and CUDA kernels.
//
// Every function here is HOST_DEVICE so that the CPU tests exercise exactly the
// code the GPU runs. The formulas mirror hypervldd/manifolds/lorentz_math.py;
// see docs/geometry.md for their derivation and error analysis.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define HVLDD_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define HVLDD_HOST_DEVICE inline
#endif

namespace hypervldd {

// sinh^2(sqrt(c) d / 2) for two Lorentz points given by their space parts
// xs, ys (length D, strided). Time coordinates are re-derived from space.
// Near the origin (a b <= 1) the difference form; elsewhere the law-of-cosines
// split into a radial and an angular term, both non-negative.
template <typename T>
HVLDD_HOST_DEVICE T lorentz_sinh_half_dist_sq(const T* xs, int64_t sx, const T* ys,
                                              int64_t sy, int64_t D, T c) {
  const T sc = sqrt(c);
  T a2 = 0, b2 = 0, dsig = 0, dd = 0;
  for (int64_t k = 0; k < D; ++k) {
    const T xk = sc * xs[k * sx];
    const T yk = sc * ys[k * sy];
    const T dk = xk - yk;
    a2 += xk * xk;
    b2 += yk * yk;
    dsig += dk * (xk + yk);  // a^2 - b^2 from differences
    dd += dk * dk;
  }
  const T a = sqrt(a2), b = sqrt(b2);
  const T x0 = sqrt(T(1) + a2), y0 = sqrt(T(1) + b2);
  if (!(a * b > T(1))) {
    const T d0 = dsig / (x0 + y0);
    const T s2 = (dd - d0 * d0) / T(4);
    return s2 > T(0) ? s2 : T(0);
  }
  const T sinh_dr = dsig / (a * y0 + b * x0);
  const T radial = sinh_dr * sinh_dr / (T(2) * (T(1) + sqrt(T(1) + sinh_dr * sinh_dr)));
  // w = m (X - Y) - (a - b) P with m = min(a, b) and P the nearer point.
  const T amb = dsig / (a + b);
  const bool a_le_b = a <= b;
  const T m = a_le_b ? a : b;
  T ww = 0;
  for (int64_t k = 0; k < D; ++k) {
    const T xk = sc * xs[k * sx];
    const T yk = sc * ys[k * sy];
    const T wk = m * (xk - yk) - amb * (a_le_b ? xk : yk);
    ww += wk * wk;
  }
  return radial + ww / (T(4) * a * b);
}

// Geodesic distance from s^2 = sinh^2(sqrt(c) d / 2): d = 2 asinh(s) / sqrt(c).
template <typename T>
HVLDD_HOST_DEVICE T dist_from_sinh_half_sq(T s2, T c) {
  return T(2) * asinh(sqrt(s2 > T(0) ? s2 : T(0))) / sqrt(c);
}

}  // namespace hypervldd
