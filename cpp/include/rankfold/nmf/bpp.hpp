// Nonnegative least squares with many right-hand sides by block principal
// pivoting (Kim & Park 2011, "Fast nonnegative matrix factorization: an
// active-set-like method and comparisons", SIAM J. Sci. Comput. 33(6)).
//
// Every row of an ANLS half-step is the problem
//   min 0.5 x^T G x - b^T x,   x >= 0
// with one Gram matrix G (k x k) shared by all rows. BPP keeps, per row, a
// guess F of the passive (positive) set, solves G_FF x_F = b_F, computes the
// dual y = G x - b on the complement, and exchanges all infeasible indices
// (x_i < 0 in F, y_i < 0 outside) at once; a budget of full exchanges that do
// not reduce the number of infeasibilities (3, as in the paper) falls back to
// exchanging only the largest infeasible index, which guarantees termination.
// Unlike the one-index-at-a-time active-set method, a few exchanges suffice
// even when the passive set changes a lot. Rows that share a passive set share
// one factorization of G_FF (the paper's grouping of right-hand sides), which
// matters because the rows of a factor have few distinct supports.
//
// Rows start from the support of the current iterate (the warm start of
// alternating NNLS, where supports change little between iterations); rows
// without one first get a few active-set steps (see solve). A row
// that has not converged after a generous number of exchanges (only possible
// through rounding on numerically singular G) is finished by the Lawson-Hanson
// active-set solver.
#pragma once

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <utility>
#include <vector>

#include "rankfold/core/threads.hpp"
#include "rankfold/core/types.hpp"
#include "rankfold/nmf/updates.hpp"

namespace rankfold {
namespace nmf {

class BppSolver {
 public:
  explicit BppSolver(const Eigen::MatrixXd& G) : G_(G), k_(G.rows()), fallback_(G) {
    usable_.resize(static_cast<std::size_t>(k_));
    double scale = 0.0;
    for (index_t j = 0; j < k_; ++j) {
      usable_[static_cast<std::size_t>(j)] = G(j, j) > 0.0;
      scale = std::max(scale, std::abs(G(j, j)));
    }
    gscale_ = scale;
  }

  // X (k x r) = argmin over X >= 0 of the problems with right-hand sides B
  // (k x r); on entry X holds the warm start (its positive entries give F).
  void solve(const Eigen::MatrixXd& B, Eigen::MatrixXd& X) {
    const index_t k = k_, r = B.cols();
    // Cold rows (no warm start) first get a few steps of the active-set
    // method, which ends quickly when the solution has few positive
    // coordinates (where a first BPP guess would be far off); the others
    // start BPP from where it stopped.
    const int cold_steps = static_cast<int>(std::max<index_t>(3, k / 8));
    std::vector<index_t> open;
    open.reserve(static_cast<std::size_t>(r));
    Eigen::VectorXd bc(k), xc(k);
    for (index_t c = 0; c < r; ++c) {
      if ((X.col(c).array() > 0.0).any()) {
        open.push_back(c);
        continue;
      }
      bc = B.col(c);
      const bool done = fallback_.solve(bc, xc, cold_steps);
      X.col(c) = xc;
      if (!done) open.push_back(c);
    }
    passive_.assign(static_cast<std::size_t>(k * r), 0);
    for (index_t c = 0; c < r; ++c)
      for (index_t j = 0; j < k; ++j) passive_[idx(j, c)] = usable_[static_cast<std::size_t>(j)] && X(j, c) > 0.0;
    std::vector<int> budget(static_cast<std::size_t>(r), 3), best(static_cast<std::size_t>(r), static_cast<int>(k + 1));
    Eigen::VectorXd y(k);
    const int max_rounds = static_cast<int>(5 * k + 30);
    for (int round = 0; round < max_rounds && !open.empty(); ++round) {
      solve_groups(B, X, open);
      std::vector<index_t> still;
      still.reserve(open.size());
      for (index_t c : open) {
        y.noalias() = G_ * X.col(c) - B.col(c);
        const double xmax = X.col(c).cwiseAbs().maxCoeff();
        const double tol_x = 1e-12 * xmax;
        const double tol_y = 1e-11 * (B.col(c).cwiseAbs().maxCoeff() + gscale_ * xmax);
        int n_bad = 0;
        index_t last_bad = -1;
        for (index_t j = 0; j < k; ++j) {
          if (!usable_[static_cast<std::size_t>(j)]) continue;
          const bool bad = passive_[idx(j, c)] ? X(j, c) < -tol_x : y[j] < -tol_y;
          if (bad) {
            ++n_bad;
            last_bad = j;
          }
        }
        if (n_bad == 0) continue;
        int& b = budget[static_cast<std::size_t>(c)];
        int& ninf = best[static_cast<std::size_t>(c)];
        bool full = true;
        if (n_bad < ninf) {
          ninf = n_bad;
          b = 3;
        } else if (b > 0) {
          --b;
        } else {
          full = false;  // backup rule: exchange only the largest infeasible index
        }
        if (full) {
          for (index_t j = 0; j < k; ++j) {
            if (!usable_[static_cast<std::size_t>(j)]) continue;
            const bool in_f = passive_[idx(j, c)] != 0;
            if (in_f ? X(j, c) < -tol_x : y[j] < -tol_y) passive_[idx(j, c)] = !in_f;
          }
        } else {
          passive_[idx(last_bad, c)] = !passive_[idx(last_bad, c)];
        }
        still.push_back(c);
      }
      open.swap(still);
    }
    // Rounding can keep a numerically singular problem from settling: finish
    // those rows with the active-set method.
    Eigen::VectorXd b(k), x(k);
    for (index_t c : open) {
      b = B.col(c);
      fallback_.solve(b, x);
      X.col(c) = x;
    }
    for (index_t c = 0; c < r; ++c)
      for (index_t j = 0; j < k; ++j) X(j, c) = std::max(0.0, X(j, c));
  }

 private:
  std::size_t idx(index_t j, index_t c) const { return static_cast<std::size_t>(c * k_ + j); }

  // x_F = G_FF^{-1} b_F, x elsewhere 0, for the open columns, one
  // factorization per distinct passive set. Columns are grouped by a hash of
  // their passive set (a collision only splits a group), and the small
  // systems live in buffers reused across calls.
  void solve_groups(const Eigen::MatrixXd& B, Eigen::MatrixXd& X, std::vector<index_t>& open) {
    const index_t k = k_;
    keys_.resize(open.size());
    for (std::size_t s = 0; s < open.size(); ++s) {
      std::uint64_t h = 1469598103934665603ull;
      const char* f = passive_.data() + open[s] * k;
      for (index_t j = 0; j < k; ++j) h = (h ^ static_cast<std::uint64_t>(f[j] + 1 + 2 * (j & 1))) * 1099511628211ull;
      keys_[s] = {h, open[s]};
    }
    std::sort(keys_.begin(), keys_.end());
    for (std::size_t s = 0; s < open.size(); ++s) open[s] = keys_[s].second;
    auto same = [&](index_t a, index_t b) {
      return std::equal(passive_.begin() + static_cast<std::ptrdiff_t>(a * k),
                        passive_.begin() + static_cast<std::ptrdiff_t>((a + 1) * k),
                        passive_.begin() + static_cast<std::ptrdiff_t>(b * k));
    };
    if (static_cast<index_t>(sub_.size()) < k * k) sub_.resize(static_cast<std::size_t>(k * k));
    for (std::size_t s = 0; s < open.size();) {
      std::size_t e = s + 1;
      while (e < open.size() && keys_[e].first == keys_[s].first && same(open[s], open[e])) ++e;
      const index_t c0 = open[s], r = static_cast<index_t>(e - s);
      F_.clear();
      for (index_t j = 0; j < k; ++j)
        if (passive_[idx(j, c0)]) F_.push_back(j);
      const index_t p = static_cast<index_t>(F_.size());
      for (std::size_t g = s; g < e; ++g) X.col(open[g]).setZero();
      if (p > 0) {
        if (static_cast<index_t>(rhs_.size()) < p * r) rhs_.resize(static_cast<std::size_t>(p * r));
        Eigen::Map<Eigen::MatrixXd> sub(sub_.data(), p, p), rhs(rhs_.data(), p, r);
        for (index_t b = 0; b < p; ++b)
          for (index_t a = 0; a < p; ++a) sub(a, b) = G_(F_[a], F_[b]);
        for (index_t g = 0; g < r; ++g)
          for (index_t a = 0; a < p; ++a) rhs(a, g) = B(F_[a], open[s + static_cast<std::size_t>(g)]);
        Eigen::LLT<Eigen::Ref<Eigen::MatrixXd>> llt(sub);  // in place: no allocation
        if (llt.info() == Eigen::Success) {
          llt.solveInPlace(rhs);
        } else {
          for (index_t b = 0; b < p; ++b)
            for (index_t a = 0; a < p; ++a) sub(a, b) = G_(F_[a], F_[b]);
          rhs = sub.ldlt().solve(rhs).eval();
        }
        for (index_t g = 0; g < r; ++g)
          for (index_t a = 0; a < p; ++a) {
            const double v = rhs(a, g);
            X(F_[a], open[s + static_cast<std::size_t>(g)]) = std::isfinite(v) ? v : 0.0;
          }
      }
      s = e;
    }
  }

  Eigen::MatrixXd G_;
  index_t k_;
  NnlsSolver fallback_;
  std::vector<char> usable_;
  std::vector<char> passive_;
  std::vector<std::pair<std::uint64_t, index_t>> keys_;
  std::vector<index_t> F_;
  std::vector<double> sub_, rhs_;
  double gscale_ = 0.0;
};

// Every row of Y solved exactly by BPP: y = argmin over y >= 0 of
// 0.5 y^T (G + l2 I) y - (a - l1)^T y, warm-started from the current Y.
template <typename T>
void update_rows_bpp(T* Y, const T* A, const T* G, index_t rows, index_t k, Penalty pen, int n_threads) {
  Eigen::MatrixXd g(k, k);
  for (index_t i = 0; i < k; ++i)
    for (index_t j = 0; j < k; ++j) g(i, j) = static_cast<double>(G[i * k + j]) + (i == j ? pen.l2 : 0.0);
  constexpr index_t kBatch = 256;
  const index_t n_batches = (rows + kBatch - 1) / kBatch;
  const int threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(resolve_threads(n_threads), n_batches)));
  parallel_region(threads, [&](int t, int nt) {
    BppSolver solver(g);
    Eigen::MatrixXd B, X;
    index_t lo, hi;
    split_range(n_batches, t, nt, lo, hi);
    for (index_t batch = lo; batch < hi; ++batch) {
      const index_t r0 = batch * kBatch, r = std::min(kBatch, rows - r0);
      B.resize(k, r);
      X.resize(k, r);
      for (index_t c = 0; c < r; ++c)
        for (index_t j = 0; j < k; ++j) {
          B(j, c) = static_cast<double>(A[(r0 + c) * k + j]) - pen.l1;
          X(j, c) = static_cast<double>(Y[(r0 + c) * k + j]);
        }
      solver.solve(B, X);
      for (index_t c = 0; c < r; ++c)
        for (index_t j = 0; j < k; ++j) Y[(r0 + c) * k + j] = static_cast<T>(X(j, c));
    }
  });
}

}  // namespace nmf
}  // namespace rankfold
