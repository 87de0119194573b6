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
  // Differences on the raw coordinates, c applied to the scalar sums: scaling
  // the coordinates first would round each one (eps * sinh(r) in distance).
  T a2 = 0, b2 = 0, dsig = 0, dd = 0;
  for (int64_t k = 0; k < D; ++k) {
    const T xk = xs[k * sx];
    const T yk = ys[k * sy];
    const T dk = xk - yk;
    a2 += xk * xk;
    b2 += yk * yk;
    dsig += dk * (xk + yk);  // |xs|^2 - |ys|^2 from differences
    dd += dk * dk;
  }
  a2 *= c;
  b2 *= c;
  dsig *= c;
  dd *= c;
  const T a = sqrt(a2), b = sqrt(b2);
  const T x0 = sqrt(T(1) + a2), y0 = sqrt(T(1) + b2);
  if (!(a * b > T(1))) {
    const T d0 = dsig / (x0 + y0);
    const T s2 = (dd - d0 * d0) / T(4);
    return s2 > T(0) ? s2 : T(0);
  }
  const T sinh_dr = dsig / (a * y0 + b * x0);
  const T radial = sinh_dr * sinh_dr / (T(2) * (T(1) + sqrt(T(1) + sinh_dr * sinh_dr)));
  // w = m (x - y) - (a - b) p with m = min(a, b) and p the nearer point; the
  // products are of size a b, so their rounding cannot swamp far pairs.
  const T amb = dsig / (a + b);
  const bool a_le_b = a <= b;
  const T m = a_le_b ? a : b;
  T ww = 0;
  for (int64_t k = 0; k < D; ++k) {
    const T xk = xs[k * sx];
    const T yk = ys[k * sy];
    const T wk = m * (xk - yk) - amb * (a_le_b ? xk : yk);
    ww += wk * wk;
  }
  return radial + c * ww / (T(4) * a * b);
}

// Geodesic distance from s^2 = sinh^2(sqrt(c) d / 2): d = 2 asinh(s) / sqrt(c).
template <typename T>
HVLDD_HOST_DEVICE T dist_from_sinh_half_sq(T s2, T c) {
  return T(2) * asinh(sqrt(s2 > T(0) ? s2 : T(0))) / sqrt(c);
}

}  // namespace hypervldd

namespace hypervldd {

// Manifold codes shared by ops.cpp, the kernels and hypervldd/kernels/fused.py.
enum ManifoldCode : int64_t { kLorentz = 0, kPoincare = 1, kEuclidean = 2 };

// Acceptance of a GEMM value: its rounding-error bound must be below this
// fraction of the value. The target relative error of the distance is 1e-3 in
// float32 and 1e-9 in float64; the acceptance keeps a factor 10 in reserve.
template <typename T>
HVLDD_HOST_DEVICE T accept_rtol();
template <>
HVLDD_HOST_DEVICE float accept_rtol<float>() { return 1e-4f; }
template <>
HVLDD_HOST_DEVICE double accept_rtol<double>() { return 1e-10; }

template <typename T>
HVLDD_HOST_DEVICE T machine_eps();
template <>
HVLDD_HOST_DEVICE float machine_eps<float>() { return 1.1920928955078125e-07f; }
template <>
HVLDD_HOST_DEVICE double machine_eps<double>() { return 2.220446049250313e-16; }

// Same as lorentz_sinh_half_dist_sq, loading coordinates of type In and
// computing in Acc (float inputs recomputed in double on the slow path).
template <typename Acc, typename In>
HVLDD_HOST_DEVICE Acc lorentz_sinh_half_dist_sq_acc(const In* xs, int64_t sx, const In* ys,
                                                    int64_t sy, int64_t D, Acc c) {
  const Acc sc = sqrt(c);
  Acc a2 = 0, b2 = 0, dsig = 0, dd = 0;
  for (int64_t k = 0; k < D; ++k) {
    const Acc xk = sc * static_cast<Acc>(xs[k * sx]);
    const Acc yk = sc * static_cast<Acc>(ys[k * sy]);
    const Acc dk = xk - yk;
    a2 += xk * xk;
    b2 += yk * yk;
    dsig += dk * (xk + yk);
    dd += dk * dk;
  }
  const Acc x0 = sqrt(Acc(1) + a2), y0 = sqrt(Acc(1) + b2);
  if (!(a2 * b2 > Acc(1))) {
    const Acc d0 = dsig / (x0 + y0);
    const Acc s2 = (dd - d0 * d0) / Acc(4);
    return s2 > Acc(0) ? s2 : Acc(0);
  }
  const Acc a = sqrt(a2), b = sqrt(b2);
  const Acc sinh_dr = dsig / (a * y0 + b * x0);
  const Acc radial = sinh_dr * sinh_dr / (Acc(2) * (Acc(1) + sqrt(Acc(1) + sinh_dr * sinh_dr)));
  const Acc amb = dsig / (a + b);
  const bool a_le_b = a <= b;
  const Acc m = a_le_b ? a : b;
  Acc ww = 0;
  for (int64_t k = 0; k < D; ++k) {
    const Acc xk = sc * static_cast<Acc>(xs[k * sx]);
    const Acc yk = sc * static_cast<Acc>(ys[k * sy]);
    const Acc wk = m * (xk - yk) - amb * (a_le_b ? xk : yk);
    ww += wk * wk;
  }
  return radial + ww / (Acc(4) * a * b);
}

// |x - y|^2 from direct differences, in Acc.
template <typename Acc, typename In>
HVLDD_HOST_DEVICE Acc sq_diff_acc(const In* x, int64_t sx, const In* y, int64_t sy, int64_t D) {
  Acc s = 0;
  for (int64_t k = 0; k < D; ++k) {
    const Acc d = static_cast<Acc>(x[k * sx]) - static_cast<Acc>(y[k * sy]);
    s += d * d;
  }
  return s;
}

// expm1 of asinh(t) for t >= 0: t + t^2 / (1 + sqrt(1 + t^2)). The distance
// kernels store this "log1p argument" and apply log1p once per tile, so that
// the log runs vectorised; 2 asinh(s) = log1p(w) with w = z + sqrt(z (z + 2)),
// z = 2 s^2 (Lorentz), and asinh(t) = log1p(w) (Poincaré).
template <typename T>
HVLDD_HOST_DEVICE T asinh_expm1(T t) {
  return t + t * t / (T(1) + sqrt(T(1) + t * t));
}

template <typename T>
HVLDD_HOST_DEVICE T acosh1p_expm1(T z) {
  return z + sqrt(z * (z + T(2)));
}

// Per-pair fast path of the pairwise distance from the GEMM value g = x.y
// (unscaled; for Lorentz the space parts). Row data r0, r1 and column data
// q0, q1 are, for Lorentz: scaled time X0 = sqrt(1 + c|xs|^2) and scaled norm
// sqrt(c)|xs|; for Poincaré: |x|^2 and 1 - c|x|^2; for Euclidean: |x|^2, unused.
// Branch-free so that the CPU loop vectorises: always writes *w, the log1p
// argument (Lorentz, Poincaré) or the distance (Euclidean), and *dwq, the
// derivative of the unscaled distance D with respect to z (Lorentz), q
// (Poincaré), or 1/d (Euclidean, the factor of x - y). Returns whether the
// error bound accepts the GEMM value; when it does not, the outputs are junk
// (possibly NaN) and the caller takes the slow path.
template <int64_t MAN, typename T>
HVLDD_HOST_DEVICE bool pair_fast(T g, T r0, T r1, T q0, T q1, T c, T* w, T* dwq) {
  const T e4 = T(4) * machine_eps<T>();
  const T tol = accept_rtol<T>();
  if constexpr (MAN == kLorentz) {
    const T p = r0 * q0;
    const T z = (p - T(1)) - c * g;
    const T root = sqrt(z * (z + T(2)));
    *w = z + root;
    *dwq = T(1) / root;  // dD/dz for D = acosh(1 + z)
    return e4 * (p + r1 * q1) <= tol * z;
  } else if constexpr (MAN == kPoincare) {
    const T sq = (r0 + q0) - T(2) * g;
    const T q = c * sq / (r1 * q1);
    const T t = sqrt(q);
    const T h = sqrt(T(1) + q);
    *w = t + q / (T(1) + h);
    *dwq = T(1) / (t * h);  // dD/dq for D = 2 asinh(sqrt(q))
    return e4 * (r0 + q0) <= tol * sq;
  } else {
    const T sq = (r0 + q0) - T(2) * g;
    const T d = sqrt(sq);
    *w = d;
    *dwq = T(1) / d;
    return e4 * (r0 + q0) <= tol * sq;
  }
}

// Slow path: the log1p argument (or Euclidean distance) of one pair from
// coordinate differences, in double. x, y point at the first coordinate read
// (space part for Lorentz).
template <typename In>
HVLDD_HOST_DEVICE double pair_slow(int64_t man, const In* x, int64_t sx, const In* y, int64_t sy,
                                   int64_t D, double c, double ax, double ay) {
  if (man == kLorentz) {
    const double s2 = lorentz_sinh_half_dist_sq_acc<double, In>(x, sx, y, sy, D, c);
    return acosh1p_expm1<double>(2.0 * s2);
  }
  const double sq = sq_diff_acc<double, In>(x, sx, y, sy, D);
  if (man == kPoincare) return asinh_expm1<double>(sqrt(c * sq / (ax * ay)));
  return sqrt(sq);
}

}  // namespace hypervldd
