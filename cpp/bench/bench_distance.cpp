// Microbenchmarks of the distance kernels, next to the machine's peak.
//
//   cmake -S . -B build-bench -DRANKFOLD_BUILD_BENCH=ON && cmake --build build-bench
//   ./build-bench/cpp/bench/bench_distance [n] [dim] [nq]
//
// Reports: per-pair l2/dot kernels (GFLOP/s, ns per pair), the blocked GEMM
// alone, and the full exact search (GEMM + top-k) for several block shapes,
// all on one thread, so figures compare with one core's peak FLOP/s.
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

int main(int argc, char** argv) {
  const index_t n = argc > 1 ? std::atoll(argv[1]) : 100000;
  const index_t d = argc > 2 ? std::atoll(argv[2]) : 128;
  const index_t nq = argc > 3 ? std::atoll(argv[3]) : 1000;
  const int k = 10;
  Rng rng(42);
  std::vector<float> X(n * d), Q(nq * d), norms(n);
  for (auto& v : X) v = static_cast<float>(rng.normal());
  for (auto& v : Q) v = static_cast<float>(rng.normal());
  row_sqnorms(X.data(), n, d, norms.data(), 1);
  std::printf("rankfold distance kernels, n=%lld dim=%lld nq=%lld, one thread, ISA: %s\n",
              (long long)n, (long long)d, (long long)nq, simd::isa());

  // Per-pair kernels (as used by graph search): each query against 10000 base vectors.
  const index_t pairs_n = std::min<index_t>(n, 10000);
  volatile float sink = 0;
  double t = best_seconds([&] {
    float s = 0;
    for (index_t i = 0; i < pairs_n; ++i) s += l2_sq(Q.data(), X.data() + i * d, d);
    sink = s;
  });
  std::printf("  l2_sq pair kernel  : %7.2f ns/pair  %6.1f GFLOP/s\n", t / pairs_n * 1e9, 3.0 * d * pairs_n / t / 1e9);
  t = best_seconds([&] {
    float s = 0;
    for (index_t i = 0; i < pairs_n; ++i) s += dot(Q.data(), X.data() + i * d, d);
    sink = s;
  });
  std::printf("  dot pair kernel    : %7.2f ns/pair  %6.1f GFLOP/s\n", t / pairs_n * 1e9, 2.0 * d * pairs_n / t / 1e9);

  // GEMM alone, one block shape at a time.
  for (index_t bq : {256, 512}) {
    for (index_t bn : {256, 1024}) {
      RowMatrix<float> S(bq, bn);
      const index_t nqq = std::min(nq, bq * 4);
      double tg = best_seconds([&] {
        for (index_t q0 = 0; q0 < nqq; q0 += bq) {
          const auto Qb = row_view(Q.data() + q0 * d, std::min(bq, nqq - q0), d);
          for (index_t b0 = 0; b0 + bn <= n; b0 += bn) {
            S.topRows(Qb.rows()).noalias() = Qb * row_view(X.data() + b0 * d, bn, d).transpose();
          }
        }
      }, 3);
      const double flops = 2.0 * nqq * (n / bn * bn) * d;
      ExactSearchOptions opt{bq, bn};
      std::vector<index_t> ids(nq * k);
      std::vector<float> dist(nq * k);
      double ts = best_seconds([&] {
        exact_search<float>(X.data(), n, d, norms.data(), nullptr, Q.data(), nqq, k, Metric::L2, ids.data(),
                            dist.data(), 1, opt);
      }, 3);
      std::printf("  block %4lld x %4lld : GEMM %6.1f GFLOP/s   search %6.1f GFLOP/s (%6.0f q/s)\n",
                  (long long)bq, (long long)bn, flops / tg / 1e9, 2.0 * nqq * n * d / ts / 1e9, nqq / ts);
    }
  }
  // The fused kernel over packed vectors (what ExactIndex runs).
  PackedVectors packed(d, true);
  packed.append(X.data(), n, 1);
  std::vector<index_t> ids(nq * k);
  std::vector<float> dist(nq * k);
  const double tf = best_seconds([&] {
    exact_search_packed(packed, nullptr, Q.data(), nq, k, Metric::L2, ids.data(), dist.data(), 1);
  }, 3);
  std::printf("  fused packed kernel: search %6.1f GFLOP/s (%6.0f q/s)  [peak ~109 GFLOP/s per core fp32]\n",
              2.0 * nq * n * d / tf / 1e9, nq / tf);
  (void)sink;
  return 0;
}
