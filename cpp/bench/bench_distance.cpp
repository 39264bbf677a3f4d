// Microbenchmarks of the distance kernels and the fused exact-search tiles,
// next to the peak FLOP/s measured on this CPU at run time.
//
//   cmake -S . -B build-bench -DRANKFOLD_BUILD_BENCH=ON && cmake --build build-bench
//   ./build-bench/cpp/bench/bench_distance [n] [dim] [nq] [rounds]
//
// Reports, on one thread: the peak of each SIMD level the CPU supports (a loop
// of independent FMAs), each fused tile alone on cache-resident data, the
// fused search of each level over n vectors (tile + packing + top-k), the
// GEMM-based search, and the per-pair kernels used by graph search.
// RANKFOLD_SIMD lowers the levels measured, as it does for the library.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "rankfold/ann/exact.hpp"
#include "rankfold/core/rng.hpp"

using namespace rankfold;
using Clock = std::chrono::steady_clock;

template <typename F>
double best_seconds(F&& f, int repeat = 5) {
  double best = 1e30;
  for (int r = 0; r < repeat; ++r) {
    const auto t0 = Clock::now();
    f();
    best = std::min(best, std::chrono::duration<double>(Clock::now() - t0).count());
  }
  return best;
}

// Peak: `chains` independent FMA chains per vector register width, enough
// to cover the FMA latency on every pipe; returns GFLOP/s.
#if defined(RANKFOLD_X86)
__attribute__((target("avx512f"))) double peak_avx512(long iters) {
  __m512 acc[16];
  for (int i = 0; i < 16; ++i) acc[i] = _mm512_set1_ps(0.001f * i);
  const __m512 a = _mm512_set1_ps(0.9999f), b = _mm512_set1_ps(1e-4f);
  const auto t0 = Clock::now();
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 16
    for (int i = 0; i < 16; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  const double t = std::chrono::duration<double>(Clock::now() - t0).count();
  __m512 s = acc[0];
  for (int i = 1; i < 16; ++i) s = _mm512_add_ps(s, acc[i]);
  volatile float sink = _mm512_reduce_add_ps(s);
  (void)sink;
  return 2.0 * 16 * 16 * iters / t / 1e9;
}

__attribute__((target("avx2,fma"))) double peak_avx2(long iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(0.001f * i);
  const __m256 a = _mm256_set1_ps(0.9999f), b = _mm256_set1_ps(1e-4f);
  const auto t0 = Clock::now();
  for (long it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  const double t = std::chrono::duration<double>(Clock::now() - t0).count();
  __m256 s = acc[0];
  for (int i = 1; i < 12; ++i) s = _mm256_add_ps(s, acc[i]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  volatile float sink = out[0] + out[7];
  (void)sink;
  return 2.0 * 8 * 12 * iters / t / 1e9;
}
#endif

// The generic level's peak: what the compiler makes of a plain multiply-add
// loop over 64 independent floats for the build's baseline.
double peak_generic(long iters) {
  float acc[64];
  for (int i = 0; i < 64; ++i) acc[i] = 0.001f * i;
  const auto t0 = Clock::now();
  for (long it = 0; it < iters; ++it) {
#pragma omp simd
    for (int i = 0; i < 64; ++i) acc[i] = acc[i] * 0.9999f + 1e-4f;
  }
  const double t = std::chrono::duration<double>(Clock::now() - t0).count();
  float s = 0;
  for (float v : acc) s += v;
  volatile float sink = s;
  (void)sink;
  return 2.0 * 64 * iters / t / 1e9;
}

// One short peak measurement (~30 ms) of a level.
double peak_of(simd::Level level) {
  const long iters = 5000000;
#if defined(RANKFOLD_X86)
  if (level == simd::Level::AVX512) return peak_avx512(iters);
  if (level == simd::Level::AVX2) return peak_avx2(iters);
#endif
  (void)level;
  return peak_generic(iters / 4);
}

struct Bench {
  index_t n, d, nq;
  int k = 10;
  std::vector<float> X, Q, norms;
  PackedVectors packed;
  Bench(index_t n_, index_t d_, index_t nq_) : n(n_), d(d_), nq(nq_), packed(d_, true) {
    Rng rng(42);
    X.resize(n * d);
    Q.resize(nq * d);
    norms.resize(n);
    for (auto& v : X) v = static_cast<float>(rng.normal());
    for (auto& v : Q) v = static_cast<float>(rng.normal());
    row_sqnorms(X.data(), n, d, norms.data(), 1);
    packed.append(X.data(), n, 1);
  }

  // One tile kind alone: its query tile against the first 256 packed vectors
  // (L1/L2-resident), many times; the top-k lists fill at once, so nearly no
  // candidate is pushed and the figure is the tile's arithmetic speed.
  template <typename Tile>
  double tile_gflops() {
    constexpr int R = Tile::kRows;
    const index_t cols = std::min<index_t>(256, n / 32 * 32);
    std::vector<float> qpack(static_cast<std::size_t>(R * d));
    detail::pack_query_tile<R>(Q.data(), d, R, qpack.data());
    std::vector<TopK<float>> tops(R, TopK<float>(k));
    std::vector<float> thr(R, std::numeric_limits<float>::infinity());
    const int reps = static_cast<int>(std::max<index_t>(1, 2000000000 / (2 * R * cols * d)));
    const double t = best_seconds([&] {
      for (int rep = 0; rep < reps; ++rep)
        for (index_t b = 0; b < cols; b += Tile::kCols)
          Tile::run(qpack.data(), packed.groups() + b * d, d, packed.bias() + b, 2.f, R, Tile::kCols, b, nullptr,
                    tops.data(), thr.data());
    }, 1);
    return 2.0 * R * cols * d * reps / t / 1e9;
  }

  // The whole fused search with one tile kind, one thread.
  template <typename Tile>
  double search_seconds() {
    std::vector<index_t> ids(nq * k);
    std::vector<float> dist(nq * k), qn(nq);
    row_sqnorms(Q.data(), nq, d, qn.data(), 1);
    return best_seconds([&] {
      detail::search_packed_with<Tile>(packed, nullptr, Q.data(), nq, k, true, qn.data(), ids.data(), dist.data(), 1);
    }, 1);
  }
};

int main(int argc, char** argv) {
  const index_t n = argc > 1 ? std::atoll(argv[1]) : 100000;
  const index_t d = argc > 2 ? std::atoll(argv[2]) : 128;
  const index_t nq = argc > 3 ? std::atoll(argv[3]) : 1000;
  const int rounds = argc > 4 ? std::atoi(argv[4]) : 5;
  const simd::Dispatch& dispatch = simd::dispatch();
  std::printf("rankfold kernels, n=%lld dim=%lld nq=%lld, one thread; CPU best %s, active %s, compiled for %s\n",
              (long long)n, (long long)d, (long long)nq, simd::level_name(dispatch.cpu),
              simd::level_name(dispatch.level), simd::level_name(simd::compiled_level()));
  Bench bench(n, d, nq);
  const double flops = 2.0 * nq * n * d;

  std::printf("\nfused exact-search tiles (GFLOP/s; %% of the level's measured peak)\n");
  std::printf("  %-8s %-8s %10s %12s %12s %10s\n", "level", "tile", "peak", "tile alone", "search", "queries/s");
  for (int lv = static_cast<int>(dispatch.level); lv >= 0; --lv) {
    const auto level = static_cast<simd::Level>(lv);
    // Rounds of (peak, tile, search): on a shared machine each figure is the
    // best of its rounds, and the peak is measured next to the kernel.
    double peak = 0, tile = 0, secs = 1e30;
    const char* shape = "";
    for (int round = 0; round < rounds; ++round) {
      peak = std::max(peak, peak_of(level));
#if defined(RANKFOLD_X86)
      if (level == simd::Level::AVX512) {
        tile = std::max(tile, bench.tile_gflops<detail::TileAvx512>());
        secs = std::min(secs, bench.search_seconds<detail::TileAvx512>());
        shape = "12x32";
      } else if (level == simd::Level::AVX2) {
        tile = std::max(tile, bench.tile_gflops<detail::TileAvx2>());
        secs = std::min(secs, bench.search_seconds<detail::TileAvx2>());
        shape = "6x16";
      }
#endif
      if (level == simd::Level::Generic) {
        tile = std::max(tile, bench.tile_gflops<detail::TileGeneric>());
        secs = std::min(secs, bench.search_seconds<detail::TileGeneric>());
        shape = "4x16";
      }
      peak = std::max(peak, peak_of(level));
    }
    std::printf("  %-8s %-8s %10.1f %7.1f (%3.0f%%) %6.1f (%3.0f%%) %10.0f\n", simd::level_name(level), shape, peak,
                tile, 100 * tile / peak, flops / secs / 1e9, 100 * flops / secs / 1e9 / peak, nq / secs);
  }

  // GEMM-based search (Eigen's product + SIMD top-k scan), what float64 and
  // filtered HNSW searches run.
  {
    std::vector<index_t> ids(nq * 10);
    std::vector<float> dist(nq * 10);
    const index_t nqq = std::min<index_t>(nq, 1024);
    const double ts = best_seconds([&] {
      exact_search<float>(bench.X.data(), n, d, bench.norms.data(), nullptr, bench.Q.data(), nqq, 10, Metric::L2,
                          ids.data(), dist.data(), 1);
    }, 3);
    std::printf("\nGEMM-based search (Eigen + top-k scan, %s): %6.1f GFLOP/s (%6.0f queries/s)\n",
                simd::level_name(dispatch.level), 2.0 * nqq * n * d / ts / 1e9, nqq / ts);
  }

  // Per-pair kernels (as used by graph search): one query against 10000 base vectors.
  const index_t pairs_n = std::min<index_t>(n, 10000);
  volatile float sink = 0;
  double t = best_seconds([&] {
    float s = 0;
    for (index_t i = 0; i < pairs_n; ++i) s += l2_sq(bench.Q.data(), bench.X.data() + i * d, d);
    sink = s;
  });
  std::printf("pair kernels (%s): l2_sq %6.2f ns/pair %6.1f GFLOP/s;", simd::level_name(dispatch.level),
              t / pairs_n * 1e9, 3.0 * d * pairs_n / t / 1e9);
  t = best_seconds([&] {
    float s = 0;
    for (index_t i = 0; i < pairs_n; ++i) s += dot(bench.Q.data(), bench.X.data() + i * d, d);
    sink = s;
  });
  std::printf(" dot %6.2f ns/pair %6.1f GFLOP/s\n", t / pairs_n * 1e9, 2.0 * d * pairs_n / t / 1e9);
  (void)sink;
  return 0;
}
