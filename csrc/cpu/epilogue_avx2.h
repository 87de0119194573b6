// The float32 fast pass of the epilogue (Lorentz, Poincaré) written with AVX2 + FMA
// intrinsics: the same formulas as pair_epilogue in csrc/include/hyperbolic_math.h,
// 1.7 to 1.9x cheaper per pair in the forward pass and 1.1 to 1.4x in the factor pass
// than GCC's vectorisation of the scalar loop (benchmarks/README.md, bench_epilogue.py).
// Where that comes from:
// * lockstep blocks: every step runs on kLanes independent 8-pair vectors before
//   the next, so that the out-of-order window (one 8-pair block is ~100 operations
//   in one long dependency chain: the log polynomial alone is 9 FMAs in a row)
//   always holds independent work;
// * one reciprocal square root per pair for the Lorentz root and its inverse:
//   root = sqrt(z (z + 2)) while z <= 4096 and z + 1 past it (the relative error of
//   z + 1 is 1 / (2 (z + 1)^2) < 3e-8, under half an ulp; z (z + 2) cannot overflow
//   below the switch), and 1 / root from the same estimate;
// * the hardware estimate (12 bits) plus one Newton step with an FMA residual
//   (about 1 ulp) instead of an integer estimate and three steps;
// * reciprocals by estimate plus one Newton step where the quotient is not the
//   result itself: the log1p correction, Poincaré's 1 / ((1 - c|x|^2)(1 - c|y|^2))
//   (shared by q and the factor) and 1 / (1 + h).
// The one true division left is X0 - Y0 = (A2 - B2) / (X0 + Y0) of the second
// form of z, whose rounding enters the error bound of the acceptance test.
//
// Poincaré lanes whose q is not a normal float are rejected (slow path): the
// square-root estimate is inf there. (Accepted Lorentz pairs have z >= tiny /
// accept_rtol, so z (z + 2) is normal.)
//
// No torch headers: a benchmark can time this file alone.
#pragma once

#if defined(__x86_64__) && defined(__GNUC__)
#define HVLDD_HAVE_AVX2_EPILOGUE 1

#include <immintrin.h>

#include <cstdint>

#include "../include/hyperbolic_math.h"

namespace hypervldd {
namespace cpu {
namespace avx2 {

#define HVLDD_AVX2 __attribute__((target("avx2,fma"), always_inline)) inline

// 8-pair vectors processed in lockstep (see the top of the file). Timed on Zen 3
// with 1 to 4: 3 and 4 fastest, 1 slowest by ~25% (4 spills a few registers,
// harmlessly).
constexpr int kLanes = 4;

// kLanes vectors; every operation below applies lane by lane.
struct V {
  __m256 v[kLanes];
};
struct VI {
  __m256i v[kLanes];
};

#define HVLDD_LANES for (int l = 0; l < kLanes; ++l)

HVLDD_AVX2 V splat(float a) {
  V r;
  HVLDD_LANES r.v[l] = _mm256_set1_ps(a);
  return r;
}
HVLDD_AVX2 V splat(__m256 a) {
  V r;
  HVLDD_LANES r.v[l] = a;
  return r;
}
HVLDD_AVX2 V load(const float* p) {
  V r;
  HVLDD_LANES r.v[l] = _mm256_loadu_ps(p + 8 * l);
  return r;
}
HVLDD_AVX2 void store(float* p, V a) { HVLDD_LANES _mm256_storeu_ps(p + 8 * l, a.v[l]); }

#define HVLDD_BINARY(name, intrinsic)  \
  HVLDD_AVX2 V name(V a, V b) {        \
    V r;                               \
    HVLDD_LANES r.v[l] = intrinsic(a.v[l], b.v[l]); \
    return r;                          \
  }
HVLDD_BINARY(add, _mm256_add_ps)
HVLDD_BINARY(sub, _mm256_sub_ps)
HVLDD_BINARY(mul, _mm256_mul_ps)
HVLDD_BINARY(div, _mm256_div_ps)
HVLDD_BINARY(min, _mm256_min_ps)
HVLDD_BINARY(band, _mm256_and_ps)
#undef HVLDD_BINARY

template <int CMP>
HVLDD_AVX2 V cmp(V a, V b) {
  V r;
  HVLDD_LANES r.v[l] = _mm256_cmp_ps(a.v[l], b.v[l], CMP);
  return r;
}
HVLDD_AVX2 V fmadd(V a, V b, V c) {  // a b + c
  V r;
  HVLDD_LANES r.v[l] = _mm256_fmadd_ps(a.v[l], b.v[l], c.v[l]);
  return r;
}
HVLDD_AVX2 V fnmadd(V a, V b, V c) {  // c - a b
  V r;
  HVLDD_LANES r.v[l] = _mm256_fnmadd_ps(a.v[l], b.v[l], c.v[l]);
  return r;
}
HVLDD_AVX2 V select(V mask, V yes, V no) {
  V r;
  HVLDD_LANES r.v[l] = _mm256_blendv_ps(no.v[l], yes.v[l], mask.v[l]);
  return r;
}

// 1 / sqrt(a) and sqrt(a) for positive normal a: estimate, then one Newton step
// on both (residual 1 - a y^2 by FMA).
HVLDD_AVX2 void rsqrt_sqrt(V a, V* inv, V* root) {
  V y, s;
  HVLDD_LANES y.v[l] = _mm256_rsqrt_ps(a.v[l]);
  s = mul(a, y);
  const V hr = mul(splat(0.5f), fnmadd(s, y, splat(1.0f)));
  *inv = fmadd(y, hr, y);
  *root = fmadd(s, hr, s);
}

// 1 / a: estimate and one Newton step (relative error about 2^-22).
HVLDD_AVX2 V recip(V a) {
  V y;
  HVLDD_LANES y.v[l] = _mm256_rcp_ps(a.v[l]);
  return fmadd(y, fnmadd(a, y, splat(1.0f)), y);
}

// log(u) for finite u >= 1: vec_detail::log_ge1 lane by lane (same polynomial).
HVLDD_AVX2 V log_ge1(V u) {
  V e, m;
  HVLDD_LANES {
    const __m256i bits = _mm256_castps_si256(u.v[l]);
    e.v[l] = _mm256_cvtepi32_ps(
        _mm256_sub_epi32(_mm256_srai_epi32(bits, 23), _mm256_set1_epi32(126)));
    m.v[l] = _mm256_castsi256_ps(_mm256_or_si256(
        _mm256_and_si256(bits, _mm256_set1_epi32(0x007fffff)), _mm256_set1_epi32(0x3f000000)));
  }
  const V one = splat(1.0f);
  const V lo = cmp<_CMP_LT_OQ>(m, splat(0.70710678118654752f));
  e = sub(e, band(lo, one));
  m = sub(add(m, band(lo, m)), one);
  const V z = mul(m, m);
  V p = splat(7.0376836292e-2f);
  p = fmadd(p, m, splat(-1.1514610310e-1f));
  p = fmadd(p, m, splat(1.1676998740e-1f));
  p = fmadd(p, m, splat(-1.2420140846e-1f));
  p = fmadd(p, m, splat(1.4249322787e-1f));
  p = fmadd(p, m, splat(-1.6668057665e-1f));
  p = fmadd(p, m, splat(2.0000714765e-1f));
  p = fmadd(p, m, splat(-2.4999993993e-1f));
  p = fmadd(p, m, splat(3.3333331174e-1f));
  V y = mul(mul(p, m), z);
  y = fmadd(splat(-2.12194440e-4f), e, y);
  y = fmadd(splat(-0.5f), z, y);
  return fmadd(splat(0.693359375f), e, add(m, y));
}

// log1p(w) for w >= 0, +inf and NaN kept (log1p_fast lane by lane).
HVLDD_AVX2 V log1p(V w) {
  const V one = splat(1.0f);
  const V u = add(one, w);
  // The rounding of 1 + w, divided by u: a correction of at most half an ulp of u.
  const V corr = mul(sub(w, sub(u, one)), recip(u));
  const V r = add(log_ge1(u), corr);
  return select(cmp<_CMP_LE_OQ>(w, splat(3.0e38f)), r, w);
}

struct Row {
  __m256 r0, r1, c, sc, scale, e4, tol, a2, two_sc;
  float ri0, ri1;
};

// Distances d, factors f and the acceptance mask of 8 kLanes pairs (see pair_fast).
template <int64_t MAN>
HVLDD_AVX2 V pairs(const Row& k, V g, V q0, V q1, V* d, V* f) {
  const V one = splat(1.0f);
  const V min_normal = splat(tiny_normal<float>());
  const V r0 = splat(k.r0), r1 = splat(k.r1), a2 = splat(k.a2);
  if constexpr (MAN == kLorentz) {
    const V G = mul(splat(k.c), g);
    const V b2 = mul(q1, q1);
    const V p = mul(r0, q0);
    // Bounds of the two forms of z (pair_fast): e4 (p + a b) and e4 (A2 + B2).
    const V s1 = fmadd(r1, q1, p);
    const V s2 = add(a2, b2);
    const V use2 = cmp<_CMP_LT_OQ>(s2, s1);
    const V dt = div(sub(a2, b2), add(r0, q0));
    const V z1 = sub(sub(p, one), G);
    const V z2 = mul(splat(0.5f), fnmadd(dt, dt, sub(s2, add(G, G))));
    const V z = select(use2, z2, z1);
    const V big = cmp<_CMP_GT_OQ>(z, splat(4096.0f));
    const V zp1 = add(z, one);
    // z (z + 2) below the switch; past it z + 1, clamped so that +inf gives 0, not NaN.
    const V arg = select(big, min(zp1, splat(3.0e38f)), mul(z, add(z, splat(2.0f))));
    V inv, rt;
    rsqrt_sqrt(arg, &inv, &rt);
    const V root = select(big, zp1, rt);
    const V dwq = select(big, mul(inv, inv), inv);  // 1 / root
    *d = mul(splat(k.scale), log1p(add(z, root)));
    *f = mul(splat(k.sc), dwq);
    const V e = fmadd(splat(k.e4), select(use2, s2, s1), min_normal);
    return cmp<_CMP_LE_OQ>(e, mul(splat(k.tol), z));
  } else {
    const V sq = sub(add(r0, q0), add(g, g));
    const V inv_den = recip(mul(r1, q1));  // 1 / ((1 - c|x|^2)(1 - c|y|^2))
    const V q = mul(mul(splat(k.c), sq), inv_den);
    V inv_t, t, inv_h, h;
    rsqrt_sqrt(q, &inv_t, &t);
    rsqrt_sqrt(add(one, q), &inv_h, &h);
    const V w = fmadd(q, recip(add(one, h)), t);
    *d = mul(splat(k.scale), log1p(w));
    *f = mul(mul(splat(k.two_sc), mul(inv_t, inv_h)), inv_den);
    const V e = fmadd(splat(k.e4), add(r0, q0), min_normal);
    return band(cmp<_CMP_LE_OQ>(e, mul(splat(k.tol), sq)), cmp<_CMP_GE_OQ>(q, min_normal));
  }
}

// 8 kLanes pairs in place: distances (-1 where rejected), with WITHF the factors (0
// where rejected) and the mask bytes (1 where rejected). Returns the rejected count.
template <bool WITHF, int64_t MAN>
HVLDD_AVX2 int64_t block(const Row& k, float* row, float* frow, uint8_t* brow, const float* q0,
                         const float* q1) {
  V d, f;
  const V ok = pairs<MAN>(k, load(row), load(q0), load(q1), &d, &f);
  store(row, select(ok, d, splat(-1.0f)));
  int64_t n_ok = 0;
  HVLDD_LANES n_ok += __builtin_popcount(static_cast<unsigned>(_mm256_movemask_ps(ok.v[l])));
  if constexpr (WITHF) {
    store(frow, band(f, ok));
    HVLDD_LANES {
      // The 32-bit lanes of the mask packed to 8 bytes.
      const __m256i bad = _mm256_andnot_si256(_mm256_castps_si256(ok.v[l]), _mm256_set1_epi32(1));
      const __m128i w16 =
          _mm_packs_epi32(_mm256_castsi256_si128(bad), _mm256_extracti128_si256(bad, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(brow + 8 * l), _mm_packs_epi16(w16, w16));
    }
  }
  return 8 * kLanes - n_ok;
}

template <bool WITHF, int64_t MAN>
__attribute__((target("avx2,fma"))) int64_t row_pass(const Row& k, float* row, float* frow,
                                                     uint8_t* brow, const float* q0,
                                                     const float* q1, int64_t len) {
  constexpr int64_t W = 8 * kLanes;
  int64_t n_bad = 0, j = 0;
  for (; j + W <= len; j += W) {
    n_bad += block<WITHF, MAN>(k, row + j, frow + j, brow + j, q0 + j, q1 + j);
  }
  const int64_t rest = len - j;
  if (rest > 0) {
    // The last len % W pairs through the same code on a padded copy. Padding lanes:
    // g = 0 and the row's own data (never read back, never counted).
    alignas(32) float tr[W] = {0}, tf[W], tq0[W], tq1[W];
    alignas(8) uint8_t tb[W];
    for (int64_t t = 0; t < W; ++t) {
      tq0[t] = t < rest ? q0[j + t] : k.ri0;
      tq1[t] = t < rest ? q1[j + t] : k.ri1;
      if (t < rest) tr[t] = row[j + t];
    }
    block<WITHF, MAN>(k, tr, tf, tb, tq0, tq1);
    for (int64_t t = 0; t < rest; ++t) {
      row[j + t] = tr[t];
      n_bad += tr[t] < 0.0f ? 1 : 0;
      if constexpr (WITHF) {
        frow[j + t] = tf[t];
        brow[j + t] = tb[t];
      }
    }
  }
  return n_bad;
}

// The fast pass over one row, the contract of fast_pass_base in tiles.h: distances
// (-1 where rejected), with frow the factors (0 where rejected) and the mask.
// Returns the number of rejected pairs.
template <int64_t MAN>
__attribute__((target("avx2,fma"))) int64_t fast_pass(float* row, float* frow, uint8_t* brow,
                                                      const float* q0, const float* q1, int64_t len,
                                                      float ri0, float ri1, float c, float sc,
                                                      float scale) {
  const Row k{_mm256_set1_ps(ri0),   _mm256_set1_ps(ri1),
              _mm256_set1_ps(c),     _mm256_set1_ps(sc),
              _mm256_set1_ps(scale), _mm256_set1_ps(4.0f * machine_eps<float>()),
              _mm256_set1_ps(accept_rtol<float>()), _mm256_set1_ps(ri1 * ri1),
              _mm256_set1_ps(2.0f * sc), ri0, ri1};
  return frow == nullptr ? row_pass<false, MAN>(k, row, frow, brow, q0, q1, len)
                         : row_pass<true, MAN>(k, row, frow, brow, q0, q1, len);
}

#undef HVLDD_LANES
#undef HVLDD_AVX2

}  // namespace avx2
}  // namespace cpu
}  // namespace hypervldd

#endif
