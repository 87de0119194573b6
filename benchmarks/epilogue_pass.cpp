// The epilogue's fast pass alone, two loops in one process: GCC's vectorisation of
// pair_epilogue (fast_pass_avx2, the float32 path before the intrinsics) and the
// intrinsics of csrc/cpu/epilogue_avx2.h. Built and run by benchmarks/bench_epilogue.py:
//   epilogue_pass DATA REPS
// DATA: int64 man, n, m; float32 c, sc, scale; float32 G (n m), r0 (n), r1 (n),
// q0 (m), q1 (m) (the GEMM values and the per-row data of csrc/include/pairwise_host.h).
// Prints: fwd_old_ns fwd_new_ns factor_old_ns factor_new_ns (median per pair over REPS
// interleaved runs of all n rows, in blocks of 256 rows as the kernel) and the largest relative difference of the two loops'
// distances and factors, and their rejected counts.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "epilogue.h"

using namespace hypervldd;

namespace {

struct Data {
  int64_t man = 0, n = 0, m = 0;
  float c = 1, sc = 1, scale = 1;
  std::vector<float> G, r0, r1, q0, q1;
};

bool read_all(FILE* f, void* p, size_t bytes) { return std::fread(p, 1, bytes, f) == bytes; }

Data load(const char* path) {
  Data d;
  FILE* f = std::fopen(path, "rb");
  if (f == nullptr) {
    std::fprintf(stderr, "cannot open %s\n", path);
    std::exit(2);
  }
  bool ok = read_all(f, &d.man, 8) && read_all(f, &d.n, 8) && read_all(f, &d.m, 8) &&
            read_all(f, &d.c, 4) && read_all(f, &d.sc, 4) && read_all(f, &d.scale, 4);
  d.G.resize(static_cast<size_t>(d.n * d.m));
  d.r0.resize(d.n);
  d.r1.resize(d.n);
  d.q0.resize(d.m);
  d.q1.resize(d.m);
  ok = ok && read_all(f, d.G.data(), 4 * d.G.size()) && read_all(f, d.r0.data(), 4 * d.n) &&
       read_all(f, d.r1.data(), 4 * d.n) && read_all(f, d.q0.data(), 4 * d.m) &&
       read_all(f, d.q1.data(), 4 * d.m);
  std::fclose(f);
  if (!ok) {
    std::fprintf(stderr, "%s: truncated data\n", path);
    std::exit(2);
  }
  return d;
}

// Rows per block, as the pairwise kernel: the GEMM writes a block of rows and the
// epilogue reads it back while it is still in the cache.
constexpr int64_t kBlockRows = 256;

// All n rows through one loop, block by block: each block is copied from G (not
// timed) and then passed (timed). Returns the seconds and the rejected count.
template <int64_t MAN>
double run(const Data& d, bool intrinsics, float* out, float* fac, uint8_t* bad, int64_t* n_bad) {
  double secs = 0;
  *n_bad = 0;
  for (int64_t i0 = 0; i0 < d.n; i0 += kBlockRows) {
    const int64_t i1 = std::min(d.n, i0 + kBlockRows);
    std::copy(d.G.begin() + i0 * d.m, d.G.begin() + i1 * d.m, out + i0 * d.m);
    const auto t0 = std::chrono::steady_clock::now();
    for (int64_t i = i0; i < i1; ++i) {
      float* row = out + i * d.m;
      float* frow = fac ? fac + i * d.m : nullptr;
      uint8_t* brow = bad ? bad + i * d.m : nullptr;
      if (intrinsics) {
        *n_bad += cpu::avx2::fast_pass<MAN>(row, frow, brow, d.q0.data(), d.q1.data(), d.m,
                                            d.r0[i], d.r1[i], d.c, d.sc, d.scale);
      } else {
        *n_bad += cpu::fast_pass_avx2<MAN, float>(row, frow, brow, d.q0.data(), d.q1.data(), d.m,
                                                  d.r0[i], d.r1[i], d.c, d.sc, d.scale);
      }
    }
    secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return secs;
}

template <int64_t MAN>
void bench(const Data& d, int reps) {
  const size_t nm = d.G.size();
  std::vector<float> out[2], fac[2];
  std::vector<uint8_t> bad[2];
  std::vector<double> t[2][2];  // [factor][intrinsics]
  int64_t nb[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    out[k].resize(nm);
    fac[k].resize(nm);
    bad[k].resize(nm);
  }
  for (int r = 0; r <= reps; ++r) {  // round 0 warms up and is not counted
    for (int withf = 0; withf < 2; ++withf) {
      for (int k = 0; k < 2; ++k) {
        const double s = run<MAN>(d, k == 1, out[k].data(), withf ? fac[k].data() : nullptr,
                                  withf ? bad[k].data() : nullptr, &nb[k]);
        if (r > 0) t[withf][k].push_back(s);
      }
    }
  }
  double dmax = 0, fmax = 0;
  for (size_t k = 0; k < nm; ++k) {
    if (bad[0][k] || bad[1][k]) continue;
    dmax = std::max(dmax, static_cast<double>(std::fabs(out[0][k] - out[1][k]) / out[0][k]));
    fmax = std::max(fmax, static_cast<double>(std::fabs(fac[0][k] - fac[1][k]) / fac[0][k]));
  }
  auto median_ns = [&](std::vector<double>& v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2] / static_cast<double>(nm) * 1e9;
  };
  std::printf("%.4f %.4f %.4f %.4f %.3g %.3g %lld %lld\n", median_ns(t[0][0]), median_ns(t[0][1]),
              median_ns(t[1][0]), median_ns(t[1][1]), dmax, fmax, static_cast<long long>(nb[0]),
              static_cast<long long>(nb[1]));
}

}  // namespace

int main(int argc, char** argv) {
#ifndef HVLDD_HAVE_AVX2_EPILOGUE
  std::fprintf(stderr, "no AVX2 epilogue on this platform\n");
  return 3;
#else
  if (argc != 3) {
    std::fprintf(stderr, "usage: %s DATA REPS\n", argv[0]);
    return 2;
  }
  if (!cpu::cpu_has_avx2()) {
    std::fprintf(stderr, "this CPU has no AVX2 + FMA\n");
    return 3;
  }
  const Data d = load(argv[1]);
  const int reps = std::max(1, std::atoi(argv[2]));
  if (d.man == kLorentz) {
    bench<kLorentz>(d, reps);
  } else {
    bench<kPoincare>(d, reps);
  }
  return 0;
#endif
}
