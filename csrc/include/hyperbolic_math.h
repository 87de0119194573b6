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

// max(s, 0) that keeps a NaN: `s > 0 ? s : 0` would turn a NaN input into a
// zero distance, hiding bad input when validation is off (docs/geometry.md).
template <typename T>
HVLDD_HOST_DEVICE T clamp0_keep_nan(T s) {
  return s < T(0) ? T(0) : s;
}

// sinh^2(sqrt(c) d / 2) for two Lorentz points given by their space parts
// xs, ys (length D, strided). Time coordinates are re-derived from space.
// Near the origin (a b <= 1) the difference form; elsewhere the law-of-cosines
// split into a radial and an angular term, both non-negative.
template <typename T>
HVLDD_HOST_DEVICE T lorentz_sinh_half_dist_sq(const T* xs, int64_t sx, const T* ys,
                                              int64_t sy, int64_t D, T c) {
  // Differences on the raw coordinates, c applied to the scalar sums: scaling
  // the coordinates first would round each one (eps * sinh(r) in distance).
  T a2 = 0, b2 = 0, dsig = 0, dd = 0, xy = 0;
  for (int64_t k = 0; k < D; ++k) {
    const T xk = xs[k * sx];
    const T yk = ys[k * sy];
    const T dk = xk - yk;
    a2 += xk * xk;
    b2 += yk * yk;
    dsig += dk * (xk + yk);  // |xs|^2 - |ys|^2 from differences
    dd += dk * dk;
    xy += xk * yk;
  }
  a2 *= c;
  b2 *= c;
  dsig *= c;
  dd *= c;
  const T a = sqrt(a2), b = sqrt(b2);
  const T x0 = sqrt(T(1) + a2), y0 = sqrt(T(1) + b2);
  if (!(a * b > T(1)) && (a > T(2) || b > T(2))) {
    // One point near the origin, the other far: the difference form cancels by
    // ~max(x0, y0); a b sin^2(theta/2) = (a b - c xs.ys) / 2 errs by ~eps only.
    const T sinh_dr = dsig / (a * y0 + b * x0);
    const T radial = sinh_dr * (sinh_dr / (T(2) * (T(1) + hypot(T(1), sinh_dr))));
    return radial + clamp0_keep_nan(a * b - c * xy) / T(2);
  }
  if (!(a * b > T(1))) {
    const T d0 = dsig / (x0 + y0);
    const T s2 = (dd - d0 * d0) / T(4);
    return clamp0_keep_nan(s2);
  }
  const T sinh_dr = dsig / (a * y0 + b * x0);
  // Squares after the divisions: sinh_dr^2 and |w|^2 ~ (a b)^2 overflow float
  // for distances beyond ~44, inside the radius cap (distances up to ~80).
  const T radial = sinh_dr * (sinh_dr / (T(2) * (T(1) + hypot(T(1), sinh_dr))));
  // w = m (x - y) - (a - b) p with m = min(a, b) and p the nearer point; the
  // products are of size a b, so their rounding cannot swamp far pairs.
  const T amb = dsig / (a + b);
  const bool a_le_b = a <= b;
  const T rab = sqrt(a * b);
  const T m = (a_le_b ? a : b) / rab;
  const T ambr = amb / rab;
  T ww = 0;
  for (int64_t k = 0; k < D; ++k) {
    const T xk = xs[k * sx];
    const T yk = ys[k * sy];
    const T wk = m * (xk - yk) - ambr * (a_le_b ? xk : yk);
    ww += wk * wk;
  }
  return radial + c * ww / T(4);
}

// Geodesic distance from s^2 = sinh^2(sqrt(c) d / 2): d = 2 asinh(s) / sqrt(c).
template <typename T>
HVLDD_HOST_DEVICE T dist_from_sinh_half_sq(T s2, T c) {
  return T(2) * asinh(sqrt(clamp0_keep_nan(s2))) / sqrt(c);
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
HVLDD_HOST_DEVICE T tiny_normal();
template <>
HVLDD_HOST_DEVICE float tiny_normal<float>() { return 1.17549435082228751e-38f; }
template <>
HVLDD_HOST_DEVICE double tiny_normal<double>() { return 2.2250738585072014e-308; }

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
  Acc a2 = 0, b2 = 0, dsig = 0, dd = 0, xy = 0;
  for (int64_t k = 0; k < D; ++k) {
    const Acc xk = sc * static_cast<Acc>(xs[k * sx]);
    const Acc yk = sc * static_cast<Acc>(ys[k * sy]);
    const Acc dk = xk - yk;
    a2 += xk * xk;
    b2 += yk * yk;
    dsig += dk * (xk + yk);
    dd += dk * dk;
    xy += xk * yk;
  }
  const Acc x0 = sqrt(Acc(1) + a2), y0 = sqrt(Acc(1) + b2);
  if (!(a2 * b2 > Acc(1)) && (a2 > Acc(4) || b2 > Acc(4))) {
    // One point near the origin, the other far (see lorentz_sinh_half_dist_sq).
    const Acc a = sqrt(a2), b = sqrt(b2);
    const Acc sinh_dr = dsig / (a * y0 + b * x0);
    const Acc radial = sinh_dr * (sinh_dr / (Acc(2) * (Acc(1) + hypot(Acc(1), sinh_dr))));
    return radial + clamp0_keep_nan(a * b - xy) / Acc(2);
  }
  if (!(a2 * b2 > Acc(1))) {
    const Acc d0 = dsig / (x0 + y0);
    const Acc s2 = (dd - d0 * d0) / Acc(4);
    return clamp0_keep_nan(s2);
  }
  const Acc a = sqrt(a2), b = sqrt(b2);
  const Acc sinh_dr = dsig / (a * y0 + b * x0);
  // Squares after the divisions (see lorentz_sinh_half_dist_sq).
  const Acc radial = sinh_dr * (sinh_dr / (Acc(2) * (Acc(1) + hypot(Acc(1), sinh_dr))));
  const Acc amb = dsig / (a + b);
  const bool a_le_b = a <= b;
  const Acc rab = sqrt(a * b);
  const Acc m = (a_le_b ? a : b) / rab;
  const Acc ambr = amb / rab;
  Acc ww = 0;
  for (int64_t k = 0; k < D; ++k) {
    const Acc xk = sc * static_cast<Acc>(xs[k * sx]);
    const Acc yk = sc * static_cast<Acc>(ys[k * sy]);
    const Acc wk = m * (xk - yk) - ambr * (a_le_b ? xk : yk);
    ww += wk * wk;
  }
  return radial + ww / Acc(4);
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
// the log runs vectorised; 2 asinh(s) = log1p(w) with w = z + sqrt(z) sqrt(z + 2),
// z = 2 s^2 (Lorentz), and asinh(t) = log1p(w) (Poincaré). The root is split
// because z (z + 2) overflows float for distances beyond ~44 (z ~ 1e19).
template <typename T>
HVLDD_HOST_DEVICE T asinh_expm1(T t) {
  return t + t * t / (T(1) + sqrt(T(1) + t * t));
}

template <typename T>
HVLDD_HOST_DEVICE T acosh1p_expm1(T z) {
  return z + sqrt(z) * sqrt(z + T(2));
}

// ---------------------------------------------------------------- vector math
// Branch-free float32 log1p and exp for the CPU epilogue loops: written with
// integer bit operations and selects only, so that GCC vectorises the loops
// (std::log1p / std::exp are library calls that it cannot vectorise). Cephes'
// minimax polynomials (relative error a few ulp, far inside the 1e-4
// acceptance of a GEMM value). On the device and in double, the libm functions.
namespace vec_detail {
HVLDD_HOST_DEVICE int32_t as_int(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_int(f);
#else
  int32_t i;
  __builtin_memcpy(&i, &f, sizeof(i));
  return i;
#endif
}
HVLDD_HOST_DEVICE float as_float(int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#else
  float f;
  __builtin_memcpy(&f, &i, sizeof(f));
  return f;
#endif
}

// log(u) for finite u >= 1 (the only arguments log1p_fast passes).
HVLDD_HOST_DEVICE float log_ge1(float u) {
  const int32_t bits = as_int(u);
  float e = static_cast<float>((bits >> 23) - 126);
  float m = as_float((bits & 0x007fffff) | 0x3f000000);  // mantissa in [0.5, 1)
  // Shift the mantissa to [sqrt(1/2), sqrt(2)) so that the polynomial sees a
  // small argument on both sides of 1.
  const bool lo = m < 0.70710678118654752f;
  e = lo ? e - 1.0f : e;
  m = lo ? (m + m) - 1.0f : m - 1.0f;
  const float z = m * m;
  float p = 7.0376836292e-2f;
  p = p * m - 1.1514610310e-1f;
  p = p * m + 1.1676998740e-1f;
  p = p * m - 1.2420140846e-1f;
  p = p * m + 1.4249322787e-1f;
  p = p * m - 1.6668057665e-1f;
  p = p * m + 2.0000714765e-1f;
  p = p * m - 2.4999993993e-1f;
  p = p * m + 3.3333331174e-1f;
  float y = p * m * z;
  y += -2.12194440e-4f * e;
  y += -0.5f * z;
  return (m + y) + 0.693359375f * e;
}
}  // namespace vec_detail

// sqrt(x) for finite x >= 0 without the errno branch of std::sqrt (which GCC
// keeps even under `#pragma GCC optimize("no-math-errno")`, so loops calling it
// do not vectorise): the reciprocal square root from an integer estimate and
// three Newton steps (relative error about 2 ulp), times x. Exact 0 at 0.
HVLDD_HOST_DEVICE float sqrt_fast(float x) {
#if defined(__CUDA_ARCH__)
  return sqrtf(x);
#else
  float y = vec_detail::as_float(0x5f375a86 - (vec_detail::as_int(x) >> 1));
  const float hx = 0.5f * x;
  y = y * (1.5f - hx * y * y);
  y = y * (1.5f - hx * y * y);
  y = y * (1.5f - hx * y * y);
  return x * y;
#endif
}
HVLDD_HOST_DEVICE double sqrt_fast(double x) { return sqrt(x); }

// log1p(w) for w >= 0 (and +inf): log(1 + w) plus the first-order correction of
// the rounding of 1 + w, which keeps the relative accuracy for tiny w.
HVLDD_HOST_DEVICE float log1p_fast(float w) {
#if defined(__CUDA_ARCH__)
  return log1pf(w);
#else
  const float u = 1.0f + w;
  const float r = vec_detail::log_ge1(u) + (w - (u - 1.0f)) / u;
  return w <= 3.0e38f ? r : w;  // +inf stays +inf
#endif
}
HVLDD_HOST_DEVICE double log1p_fast(double w) { return log1p(w); }

// exp(x) for x <= 88 (logits are shifted by their maximum first); 0 below -87;
// NaN for NaN. Round to n = floor(x / ln 2 + 1/2), Cody-Waite reduction, a
// degree-5 polynomial, 2^n from the exponent bits; written with floorf and plain
// selects, which GCC 12 if-converts (an integer floor correction and a nested NaN
// select became branches and kept the loss's tile loops scalar). Always inlined:
// the vectorised loops of the AVX2 clones call it.
#if defined(__CUDA_ARCH__)
HVLDD_HOST_DEVICE float exp_fast(float x) { return expf(x); }
#else
inline __attribute__((always_inline)) float exp_fast(float x) {
  const bool under = !(x > -87.0f);  // also catches -inf and NaN
  const float xc = under ? 0.0f : (x < 88.0f ? x : 88.0f);
  const float fn = __builtin_floorf(xc * 1.44269504088896341f + 0.5f);
  const int32_t n = static_cast<int32_t>(fn);
  float r = xc - fn * 0.693359375f;
  r = r - fn * -2.12194440e-4f;
  const float z = r * r;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  const float y = (p * z + r) + 1.0f;
  const float v = under ? 0.0f : y * vec_detail::as_float((n + 127) << 23);
  // A NaN logit stays NaN (a loss must not turn NaN input into a finite value).
  return x != x ? x : v;
}
#endif
HVLDD_HOST_DEVICE double exp_fast(double x) { return exp(x); }

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
    // Two exact forms of z; each pair takes the one with the smaller rounding
    // bound (selects, no branch, so the CPU loop still vectorises). Form 1,
    // X0 Y0 - 1 - G, cancels against the 1 when both points are near the
    // origin, so its bound sent every close pair there to the float64 slow
    // path. Form 2, 0.5 (|X - Y|^2 - (X0 - Y0)^2) with X0 - Y0 written as
    // (A2 - B2) / (X0 + Y0), has a bound proportional to A2 + B2 instead.
    const T p = r0 * q0;
    const T G = c * g;
    const T A2 = r1 * r1, B2 = q1 * q1;
    const T e1 = e4 * (p + r1 * q1);
    const T e2 = e4 * (A2 + B2);
    const T dt = (A2 - B2) / (r0 + q0);
    const T z1 = (p - T(1)) - G;
    const T z2 = T(0.5) * (((A2 + B2) - T(2) * G) - dt * dt);
    const bool use2 = e2 < e1;
    const T e = use2 ? e2 : e1;
    const T z = use2 ? z2 : z1;
    const T root = sqrt_fast(z) * sqrt_fast(z + T(2));  // z (z + 2) overflows past d ~ 44
    *w = z + root;
    *dwq = T(1) / root;  // dD/dz for D = acosh(1 + z)
    // + tiny: a pair of origins (bound 0 <= 0) has no finite factor (1 / root is
    // inf, and the gradient NaN); the slow path gives it the zero subgradient.
    return e + tiny_normal<T>() <= tol * z;
  } else if constexpr (MAN == kPoincare) {
    const T sq = (r0 + q0) - T(2) * g;
    const T q = c * sq / (r1 * q1);
    const T t = sqrt_fast(q);
    const T h = sqrt_fast(T(1) + q);
    *w = t + q / (T(1) + h);
    *dwq = T(1) / (t * h);  // dD/dq for D = 2 asinh(sqrt(q))
    // + tiny: a pair of origins (bound 0 <= 0) has no finite factor; the slow
    // path gives it distance 0 and the zero subgradient. (One comparison, not
    // two: GCC 12 does not vectorise a loop that ands two comparisons.)
    return e4 * (r0 + q0) + tiny_normal<T>() <= tol * sq;
  } else {
    const T sq = (r0 + q0) - T(2) * g;
    const T d = sqrt_fast(sq);
    *w = d;
    *dwq = T(1) / d;
    return e4 * (r0 + q0) + tiny_normal<T>() <= tol * sq;
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

// The whole per-pair epilogue shared by the CPU and CUDA kernels: the distance
// d from the GEMM value g (see pair_fast for r0, r1, q0, q1) and the factor f
// with d(d)/dx_i = f * (dz/dx_i) in the form the gradient assembly uses
// (Lorentz: d(d)/dz_unscaled * sqrt(c); Poincaré: d(d)/d|x-y|^2 * 2; Euclidean:
// 1/d). scale is 1/sqrt(c) (Lorentz), 2/sqrt(c) (Poincaré) or 1. Returns
// whether the GEMM value was accepted; if not, d and f are junk and the caller
// takes the slow path.
template <int64_t MAN, typename T>
HVLDD_HOST_DEVICE bool pair_epilogue(T g, T r0, T r1, T q0, T q1, T c, T sc, T scale, T* d,
                                     T* f) {
  T w, dwq;
  const bool ok = pair_fast<MAN, T>(g, r0, r1, q0, q1, c, &w, &dwq);
  if constexpr (MAN == kEuclidean) {
    *d = w;
    *f = dwq;
  } else if constexpr (MAN == kLorentz) {
    *d = scale * log1p_fast(w);
    *f = sc * dwq;
  } else {
    *d = scale * log1p_fast(w);
    *f = T(2) * sc * dwq / (r1 * q1);
  }
  return ok;
}

// Distance scale per manifold: d = scale * log1p(w).
HVLDD_HOST_DEVICE double dist_scale(int64_t man, double c) {
  return man == kLorentz ? 1.0 / sqrt(c) : (man == kPoincare ? 2.0 / sqrt(c) : 1.0);
}

// Slow-path distance of one pair from coordinate differences, in double.
template <typename In>
HVLDD_HOST_DEVICE double pair_slow_dist(int64_t man, const In* x, int64_t sx, const In* y,
                                        int64_t sy, int64_t D, double c, double ax, double ay) {
  const double w = pair_slow<In>(man, x, sx, y, sy, D, c, ax, ay);
  return man == kEuclidean ? w : dist_scale(man, c) * log1p(w);
}

// Distance and gradient of one pair from coordinate differences, in double:
//   d(d)/dx = A (x - y) + Bx x,   d(d)/dy = -A (x - y) + By y
// (x, y: the space parts for Lorentz). Cancellation-free: the Lorentz
// x y0/x0 - y is rewritten as (x - y) - x c (|x|^2 - |y|^2) / (x0 (x0 + y0)) with
// |x|^2 - |y|^2 from differences. At zero distance A = Bx = By = 0 (the zero
// subgradient).
struct SlowGrad {
  double d, A, Bx, By;
};

template <typename In>
HVLDD_HOST_DEVICE SlowGrad pair_slow_grad(int64_t man, const In* x, int64_t sx, const In* y,
                                          int64_t sy, int64_t D, double c, double ax,
                                          double ay) {
  SlowGrad g{0.0, 0.0, 0.0, 0.0};
  const double sc = sqrt(c);
  if (man == kLorentz) {
    const double s2 = lorentz_sinh_half_dist_sq_acc<double, In>(x, sx, y, sy, D, c);
    g.d = 2.0 * asinh(sqrt(clamp0_keep_nan(s2))) / sc;
    if (!(s2 > 0.0)) return g;
    double a2 = 0, b2 = 0, dsig = 0;
    for (int64_t k = 0; k < D; ++k) {
      const double xk = static_cast<double>(x[k * sx]);
      const double yk = static_cast<double>(y[k * sy]);
      a2 += xk * xk;
      b2 += yk * yk;
      dsig += (xk - yk) * (xk + yk);
    }
    const double x0 = sqrt(1.0 + c * a2), y0 = sqrt(1.0 + c * b2);
    g.A = sc / (2.0 * sqrt(s2 * (1.0 + s2)));  // sqrt(c) / sinh(sqrt(c) d)
    g.Bx = -g.A * c * dsig / (x0 * (x0 + y0));
    g.By = g.A * c * dsig / (y0 * (x0 + y0));
    return g;
  }
  const double sq = sq_diff_acc<double, In>(x, sx, y, sy, D);
  if (man == kEuclidean) {
    g.d = sqrt(sq);
    if (sq > 0.0) g.A = 1.0 / g.d;
    return g;
  }
  const double q = c * sq / (ax * ay);
  const double t = sqrt(q), h = sqrt(1.0 + q);
  g.d = 2.0 * asinh(t) / sc;
  if (!(q > 0.0)) return g;
  g.A = 2.0 * sc / (t * h * ax * ay);
  g.Bx = g.A * c * sq / ax;
  g.By = g.A * c * sq / ay;
  return g;
}

}  // namespace hypervldd
