// Microbenchmark of the exact NNLS row solvers of solver="anls": block
// principal pivoting (nmf/bpp.hpp, what ANLS and transform run) against the
// Lawson-Hanson active-set method (updates.hpp, kept for weighted rows and as
// BPP's fallback), on the rows of one half-step, one thread.
//
//   cmake -S . -B build-bench -DRANKFOLD_BUILD_BENCH=ON && cmake --build build-bench
//   ./build-bench/cpp/bench/bench_nnls [rows] [n]
//
// Two kinds of problems: "nmf" rows (X = W H + noise with W 60% dense: most
// coordinates positive at the solution, as in NMF) and "sparse" rows (random
// right-hand sides: a few coordinates positive). BPP is timed cold (from 0)
// and warm (from the previous solution, as in ANLS after the first
// iterations), best of 3 runs each. The summed objectives of both methods are printed to show
// they agree.
#include <chrono>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <vector>

#include "rankfold/core/rng.hpp"
#include "rankfold/nmf/bpp.hpp"

using namespace rankfold;
using namespace rankfold::nmf;
using Clock = std::chrono::steady_clock;

template <typename F>
double ms(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
}

int main(int argc, char** argv) {
  const index_t rows = argc > 1 ? std::atoll(argv[1]) : 5000;
  const index_t n = argc > 2 ? std::atoll(argv[2]) : 400;
  std::printf("%-7s %4s %10s %10s %10s %9s %20s\n", "rows", "k", "LH ms", "BPP ms", "BPP warm", "LH/BPP",
              "objective LH - BPP");
  for (const char* kind : {"nmf", "sparse"}) {
    const bool nmf_rows = kind[0] == 'n';
    for (index_t k : {3, 10, 20, 32, 64}) {
      Rng rng(7);
      Eigen::MatrixXd H(n, k), X(rows, n), Wt(rows, k);
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < k; ++j) H(i, j) = rng.uniform();
      if (nmf_rows) {
        for (index_t i = 0; i < rows; ++i)
          for (index_t j = 0; j < k; ++j) Wt(i, j) = rng.uniform() < 0.6 ? rng.uniform() : 0.0;
        X = Wt * H.transpose();
        for (index_t i = 0; i < rows; ++i)
          for (index_t j = 0; j < n; ++j) X(i, j) += 0.05 * rng.normal();
      } else {
        for (index_t i = 0; i < rows; ++i)
          for (index_t j = 0; j < n; ++j) X(i, j) = rng.normal();
      }
      const Eigen::MatrixXd Gm = H.transpose() * H;
      const Eigen::MatrixXd Am = X * H;
      std::vector<double> G(static_cast<std::size_t>(k * k)), A(static_cast<std::size_t>(rows * k));
      for (index_t i = 0; i < k; ++i)
        for (index_t j = 0; j < k; ++j) G[i * k + j] = Gm(i, j);
      for (index_t i = 0; i < rows; ++i)
        for (index_t j = 0; j < k; ++j) A[i * k + j] = Am(i, j);
      std::vector<double> Y_lh(A.size(), 0.0), Y_bpp(A.size(), 0.0);
      double t_lh = 1e30, t_bpp = 1e30, t_warm = 1e30;  // best of 3: the machine may be shared
      for (int rep = 0; rep < 3; ++rep) {
        std::fill(Y_lh.begin(), Y_lh.end(), 0.0);
        std::fill(Y_bpp.begin(), Y_bpp.end(), 0.0);
        t_lh = std::min(t_lh, ms([&] { update_rows_nnls(Y_lh.data(), A.data(), G.data(), rows, k, Penalty{}, 1); }));
        t_bpp = std::min(t_bpp, ms([&] { update_rows_bpp(Y_bpp.data(), A.data(), G.data(), rows, k, Penalty{}, 1); }));
        t_warm = std::min(t_warm, ms([&] { update_rows_bpp(Y_bpp.data(), A.data(), G.data(), rows, k, Penalty{}, 1); }));
      }
      double f_lh = 0.0, f_bpp = 0.0;
      for (index_t i = 0; i < rows; ++i) {
        Eigen::Map<const Eigen::VectorXd> a(&A[i * k], k), y1(&Y_lh[i * k], k), y2(&Y_bpp[i * k], k);
        f_lh += 0.5 * y1.dot(Gm * y1) - a.dot(y1);
        f_bpp += 0.5 * y2.dot(Gm * y2) - a.dot(y2);
      }
      std::printf("%-7s %4lld %10.2f %10.2f %10.2f %8.1fx %20.3e\n", kind, static_cast<long long>(k), t_lh, t_bpp,
                  t_warm, t_lh / t_bpp, f_lh - f_bpp);
    }
  }
  return 0;
}
