// Microbenchmark of sparse NMF: where one HALS iteration on a large sparse
// (TF-IDF-like) matrix spends its time, and how close the two sparse products
// X H^T and X^T W come to the memory bandwidth of this machine.
//
//   cmake -S . -B build-bench -DRANKFOLD_BUILD_BENCH=ON && cmake --build build-bench
//   ./build-bench/cpp/bench/bench_sparse_nmf [m] [n] [nnz] [k] [threads] [float|double]
//
// The bandwidth is measured here, at run time (STREAM-like: a read-only sum
// and a copy over arrays much larger than the last-level cache, best of 5),
// on 1 and on `threads` threads. The matrix is a deterministic power-law one:
// row lengths vary (log-normal), column indices follow a Zipf law (exponent
// 1.07, like word frequencies), rows are scaled to unit norm as TF-IDF rows.
//
// A product's "traffic" counts the bytes it must move at least: X's values,
// indices and row pointers once, the dense operand once and the output once.
// traffic / time against the measured read bandwidth is the fraction quoted.
// The products also read one k-row of a factor per stored entry (nnz k
// values), mostly from L2/L3: that rate is printed below them.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "rankfold/core/rng.hpp"
#include "rankfold/core/sparse.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/nmf/operator.hpp"
#include "rankfold/nmf/fit.hpp"
#include "rankfold/nmf/solver.hpp"
#include "rankfold/nmf/updates.hpp"

using namespace rankfold;
using Clock = std::chrono::steady_clock;

namespace {

template <typename F>
double seconds(F&& f) {
  const auto t0 = Clock::now();
  f();
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Median of `repeat` timed calls after one untimed call.
template <typename F>
double median_seconds(int repeat, F&& f) {
  f();
  std::vector<double> t;
  for (int r = 0; r < repeat; ++r) t.push_back(seconds(f));
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

struct Bandwidth {
  double read_gbs = 0.0, copy_gbs = 0.0;
};

// STREAM-like: each worker reads (or copies) its own static slice; best of 5.
Bandwidth measure_bandwidth(int threads) {
  const index_t n = index_t(1) << 25;  // 32M doubles = 256 MB per array
  std::vector<double> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
  parallel_region(threads, [&](int t, int nt) {  // first touch by the worker that uses the slice
    index_t lo, hi;
    split_range(n, t, nt, lo, hi);
    for (index_t i = lo; i < hi; ++i) {
      a[i] = 1.0 + static_cast<double>(i & 7);
      b[i] = 0.0;
    }
  });
  std::vector<double> sums(static_cast<std::size_t>(threads), 0.0);
  double best_read = 1e30, best_copy = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    best_read = std::min(best_read, seconds([&] {
      parallel_region(threads, [&](int t, int nt) {
        index_t lo, hi;
        split_range(n, t, nt, lo, hi);
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        index_t i = lo;
        for (; i + 4 <= hi; i += 4) {
          s0 += a[i];
          s1 += a[i + 1];
          s2 += a[i + 2];
          s3 += a[i + 3];
        }
        for (; i < hi; ++i) s0 += a[i];
        sums[t] += s0 + s1 + s2 + s3;
      });
    }));
    best_copy = std::min(best_copy, seconds([&] {
      parallel_region(threads, [&](int t, int nt) {
        index_t lo, hi;
        split_range(n, t, nt, lo, hi);
        std::memcpy(b.data() + lo, a.data() + lo, static_cast<std::size_t>(hi - lo) * sizeof(double));
      });
    }));
  }
  double total = 0;
  for (double s : sums) total += s;
  if (total == 42.0) std::printf(" ");  // keep the sums alive
  Bandwidth bw;
  bw.read_gbs = n * sizeof(double) / best_read * 1e-9;
  bw.copy_gbs = 2.0 * n * sizeof(double) / best_copy * 1e-9;  // read + write, as STREAM counts it
  return bw;
}

template <typename T>
struct Csr {
  index_t rows = 0, cols = 0;
  std::vector<std::int32_t> indptr, indices;
  std::vector<T> data;
  CompressedView<T, std::int32_t> view() const {
    CompressedView<T, std::int32_t> v;
    v.rows = rows;
    v.cols = cols;
    v.indptr = indptr.data();
    v.indices = indices.data();
    v.data = data.data();
    return v;
  }
};

template <typename T>
Csr<T> power_law_matrix(index_t m, index_t n, index_t nnz, std::uint64_t seed) {
  Rng rng(seed);
  std::vector<double> cdf(static_cast<std::size_t>(n));
  double acc = 0.0;
  for (index_t j = 0; j < n; ++j) cdf[j] = acc += std::pow(static_cast<double>(j + 1), -1.07);
  for (auto& c : cdf) c /= acc;
  // A random relabelling of the columns, so that popular columns are not all adjacent.
  std::vector<std::int32_t> label(static_cast<std::size_t>(n));
  std::iota(label.begin(), label.end(), 0);
  for (index_t j = n - 1; j > 0; --j) std::swap(label[j], label[rng.below(static_cast<std::uint64_t>(j + 1))]);
  Csr<T> X;
  X.rows = m;
  X.cols = n;
  X.indptr.push_back(0);
  const double mean = static_cast<double>(nnz) / static_cast<double>(m);
  std::vector<std::int32_t> row;
  for (index_t i = 0; i < m; ++i) {
    const double len = mean * std::exp(0.6 * rng.normal() - 0.18);
    const index_t want = std::clamp<index_t>(static_cast<index_t>(len), 1, n);
    row.clear();
    while (static_cast<index_t>(row.size()) < want) {
      const double u = rng.uniform();
      const index_t j = std::lower_bound(cdf.begin(), cdf.end(), u) - cdf.begin();
      row.push_back(label[std::min(j, n - 1)]);
      if (static_cast<index_t>(row.size()) == want) {
        std::sort(row.begin(), row.end());
        row.erase(std::unique(row.begin(), row.end()), row.end());
      }
    }
    double norm = 0.0;
    const std::size_t start = X.data.size();
    for (std::int32_t j : row) {
      const double v = 0.2 + rng.uniform();
      X.indices.push_back(j);
      X.data.push_back(static_cast<T>(v));
      norm += v * v;
    }
    for (std::size_t p = start; p < X.data.size(); ++p) X.data[p] = static_cast<T>(X.data[p] / std::sqrt(norm));
    X.indptr.push_back(static_cast<std::int32_t>(X.data.size()));
  }
  return X;
}

template <typename T>
int run(index_t m, index_t n, index_t nnz, index_t k, int threads) {
  const char* tname = sizeof(T) == 4 ? "float32" : "float64";
  std::printf("measuring bandwidth ...\n");
  const Bandwidth bw1 = measure_bandwidth(1), bwt = measure_bandwidth(threads);
  std::printf("bandwidth: 1 thread read %.1f GB/s copy %.1f GB/s; %d threads read %.1f GB/s copy %.1f GB/s\n",
              bw1.read_gbs, bw1.copy_gbs, threads, bwt.read_gbs, bwt.copy_gbs);

  const Csr<T> X = power_law_matrix<T>(m, n, nnz, 1);
  const auto v = X.view();
  const index_t z = v.nnz();
  std::printf("X: %lld x %lld, nnz %lld (%.1f MB), k = %lld, %s\n", static_cast<long long>(m),
              static_cast<long long>(n), static_cast<long long>(z),
              (z * (sizeof(T) + 4) + (m + 1) * 4) * 1e-6, static_cast<long long>(k), tname);
  Rng rng(2);
  std::vector<T> W(static_cast<std::size_t>(m * k)), Ht(static_cast<std::size_t>(n * k));
  for (auto& w : W) w = static_cast<T>(rng.uniform());
  for (auto& h : Ht) h = static_cast<T>(0.01 * rng.uniform());
  std::vector<T> A(W.size()), B(Ht.size()), GW(static_cast<std::size_t>(k * k)), GH(GW.size());
  nmf::SparseOperator<T, std::int32_t> op(v, false);

  const double x_bytes = static_cast<double>(z) * (sizeof(T) + 4) + static_cast<double>(m + 1) * 4;
  const double factors_bytes = static_cast<double>(m + n) * k * sizeof(T);
  const double flops = 2.0 * z * k;
  std::printf("\n%-34s %8s %9s %10s %9s\n", "kernel", "threads", "ms", "GFLOP/s", "GB/s min");
  std::printf("%-34s %8s %9s %10s %9s\n", "", "", "", "", "(frac)");
  for (int nt : {1, threads}) {
    const Bandwidth& b = nt == 1 ? bw1 : bwt;
    const double t_times = median_seconds(7, [&] { op.times(Ht.data(), k, A.data(), nt); });
    const double t_ttimes = median_seconds(7, [&] { op.transpose_times(W.data(), k, B.data(), nt); });
    const double t_gw = median_seconds(7, [&] { nmf::gram(W.data(), m, k, GW.data(), nt); });
    const double t_gh = median_seconds(7, [&] { nmf::gram(Ht.data(), n, k, GH.data(), nt); });
    const int sw = nmf::auto_sweeps(static_cast<double>(z), m, k), sh = nmf::auto_sweeps(static_cast<double>(z), n, k);
    std::vector<T> Wc = W, Hc = Ht;
    const double t_hw = median_seconds(7, [&] {
      std::copy(W.begin(), W.end(), Wc.begin());
      nmf::update_rows_hals(Wc.data(), A.data(), GH.data(), m, k, nmf::Penalty{}, sw, 0.1, nt);
    });
    const double t_hh = median_seconds(7, [&] {
      std::copy(Ht.begin(), Ht.end(), Hc.begin());
      nmf::update_rows_hals(Hc.data(), B.data(), GW.data(), n, k, nmf::Penalty{}, sh, 0.1, nt);
    });
    auto line = [&](const char* name, double t, double fl, double bytes) {
      std::printf("%-34s %8d %9.3f %10.2f %6.1f (%.0f%%)\n", name, nt, 1e3 * t, fl / t * 1e-9, bytes / t * 1e-9,
                  100.0 * bytes / t * 1e-9 / b.read_gbs);
    };
    line("X H^T   (spmm, m x k out)", t_times, flops, x_bytes + factors_bytes);
    line("X^T W   (spmm transposed)", t_ttimes, flops, x_bytes + factors_bytes);
    // Each stored entry reads (or updates) one k-row of a factor, mostly from
    // the caches: the rate of those row accesses is the products' real limit.
    const double rows_bytes = static_cast<double>(z) * k * sizeof(T);
    std::printf("%-34s %8d %9s %10s factor rows: %.1f GB/s (X H^T), %.1f GB/s (X^T W)\n", "", nt, "", "",
                rows_bytes / t_times * 1e-9, rows_bytes / t_ttimes * 1e-9);
    line("gram W (m x k)", t_gw, 1.0 * m * k * k, m * k * sizeof(T));
    line("gram H (n x k)", t_gh, 1.0 * n * k * k, n * k * sizeof(T));
    char name[64];
    std::snprintf(name, sizeof name, "HALS W rows (<= %d sweeps)", sw);
    line(name, t_hw, 2.0 * m * k * k * sw, 2.0 * m * k * sizeof(T));
    std::snprintf(name, sizeof name, "HALS H rows (<= %d sweeps)", sh);
    line(name, t_hh, 2.0 * n * k * k * sh, 2.0 * n * k * sizeof(T));

    for (bool ex : {false, true}) {
      nmf::Options opt;
      opt.max_iter = 20;
      opt.tol = 0.0;
      opt.n_threads = nt;
      opt.extrapolate = ex;
      const double t_fit = median_seconds(3, [&] {
        std::vector<T> w = W, h = Ht;
        nmf::fit<T>(op, w.data(), h.data(), k, opt, {});
      });
      const double parts = t_times + t_ttimes + t_gw + 2 * t_gh + t_hw + t_hh;
      std::printf("%-34s %8d %9.3f   (sum of the kernels above: %.3f ms)\n",
                  ex ? "fit, per iteration (extrapolated)" : "fit, per iteration (plain)", nt, 1e3 * t_fit / 20,
                  1e3 * parts);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const index_t m = argc > 1 ? std::atoll(argv[1]) : 10000;
  const index_t n = argc > 2 ? std::atoll(argv[2]) : 20000;
  const index_t nnz = argc > 3 ? std::atoll(argv[3]) : 1000000;
  const index_t k = argc > 4 ? std::atoll(argv[4]) : 20;
  const int threads = argc > 5 ? std::atoi(argv[5]) : 2;
  const std::string type = argc > 6 ? argv[6] : "double";
  return type == "float" ? run<float>(m, n, nnz, k, threads) : run<double>(m, n, nnz, k, threads);
}
