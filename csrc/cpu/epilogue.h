// The fast pass of the epilogue over one row of GEMM values: the per-pair maths of
// pair_epilogue (csrc/include/hyperbolic_math.h) in vectorised loops, and the choice
// of loop at run time. No torch headers: benchmarks/bench_epilogue.py compiles this
// file alone to time the loops against each other.
#pragma once

// No trapping math: GCC may then if-convert the selects of the epilogue loops
// and vectorise them (torch itself is built with -fno-trapping-math).
#pragma GCC optimize("no-math-errno", "no-trapping-math")

#include <cstdint>
#include <type_traits>

#include "../include/hyperbolic_math.h"
#include "epilogue_avx2.h"

namespace hypervldd {
namespace cpu {

// The branch-free pass of the epilogue over one row: distances (or -1 where
// the GEMM value is rejected), with frow also the factors (0 where rejected)
// and the mask. Returns the number of rejected pairs. Compiled twice on x86-64:
// for the baseline ISA and for AVX2 + FMA (chosen at run time; 2.5 to 3x
// faster, measured), since the extension is built without -mavx2.
#define HVLDD_EPILOGUE_LOOP                                                                   \
  int64_t n_bad = 0; /* an integer count (not a bool |=) keeps the loop vectorisable */        \
  if (frow == nullptr) {                                                                      \
    for (int64_t j = 0; j < len; ++j) {                                                       \
      T d, f;                                                                                 \
      const bool ok =                                                                         \
          pair_epilogue<MAN, T>(row[j], ri0, ri1, q0[j], q1[j], c, sc, scale, &d, &f);        \
      row[j] = ok ? d : T(-1);                                                                \
      n_bad += ok ? 0 : 1;                                                                    \
    }                                                                                         \
  } else {                                                                                    \
    for (int64_t j = 0; j < len; ++j) {                                                       \
      T d, f;                                                                                 \
      const bool ok =                                                                         \
          pair_epilogue<MAN, T>(row[j], ri0, ri1, q0[j], q1[j], c, sc, scale, &d, &f);        \
      row[j] = ok ? d : T(-1);                                                                \
      frow[j] = ok ? f : T(0);                                                                \
      brow[j] = ok ? 0 : 1;                                                                   \
      n_bad += ok ? 0 : 1;                                                                    \
    }                                                                                         \
  }                                                                                           \
  return n_bad;

#define HVLDD_EPILOGUE_ARGS                                                                   \
  T *__restrict row, T *__restrict frow, uint8_t *__restrict brow, const T *__restrict q0,    \
      const T *__restrict q1, int64_t len, T ri0, T ri1, T c, T sc, T scale

template <int64_t MAN, typename T>
int64_t fast_pass_base(HVLDD_EPILOGUE_ARGS) {
  HVLDD_EPILOGUE_LOOP
}

#if defined(__x86_64__) && defined(__GNUC__)
#define HVLDD_AVX2_CLONE 1
template <int64_t MAN, typename T>
__attribute__((target("avx2,fma"))) int64_t fast_pass_avx2(HVLDD_EPILOGUE_ARGS) {
  HVLDD_EPILOGUE_LOOP
}

inline bool cpu_has_avx2() {
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
}
#endif

// The fast pass of one row (the contract of fast_pass_base): float32 Lorentz and
// Poincaré on AVX2 run the intrinsics of epilogue_avx2.h, everything else the loops
// above.
template <int64_t MAN, typename T>
int64_t fast_pass_row(HVLDD_EPILOGUE_ARGS) {
#ifdef HVLDD_AVX2_CLONE
  if (cpu_has_avx2()) {
#ifdef HVLDD_HAVE_AVX2_EPILOGUE
    if constexpr (std::is_same_v<T, float> && MAN != kEuclidean) {
      return avx2::fast_pass<MAN>(row, frow, brow, q0, q1, len, ri0, ri1, c, sc, scale);
    }
#endif
    return fast_pass_avx2<MAN, T>(row, frow, brow, q0, q1, len, ri0, ri1, c, sc, scale);
  }
#endif
  return fast_pass_base<MAN, T>(row, frow, brow, q0, q1, len, ri0, ri1, c, sc, scale);
}

}  // namespace cpu
}  // namespace hypervldd
