// The NMF outer loop, Frobenius loss: X (m x n) ~ W (m x k) H (k x n), with
// W stored row-major and H stored as Ht (n x k, row-major) so both halves of
// an iteration run the same row kernels (see updates.hpp).
//
// Per iteration X is touched exactly twice (X Ht and X^T W); the objective
// comes for free from products already at hand:
//   ||X - W H||^2 = ||X||^2 - 2 <X^T W, Ht> + <W^T W, H H^T>.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/nmf/bpp.hpp"
#include "rankfold/nmf/operator.hpp"
#include "rankfold/nmf/updates.hpp"

namespace rankfold {
namespace nmf {

enum class Solver { Hals, Mu, Anls };

struct Options {
  Solver solver = Solver::Hals;
  int max_iter = 200;
  double tol = 1e-4;
  Penalty pen_W, pen_H;
  int inner_sweeps = 0;      // HALS sweeps per half-step; <= 0: automatic
  double inner_stop = 0.1;   // per-row early stop of the automatic sweeps
  bool update_W = true;
  bool update_H = true;
  bool extrapolate = false;  // HALS with Ang & Gillis extrapolation (extrapolation.hpp)
  int n_threads = 0;
};

struct Result {
  int n_iter = 0;
  bool converged = false;
  std::vector<double> losses;  // objective after each iteration
};

// The objective 0.5 ||X - WH||^2 + penalties.
template <typename T>
double penalties(const T* Y, index_t rows, index_t k, Penalty pen) {
  if (pen.l1 == 0.0 && pen.l2 == 0.0) return 0.0;
  double s1 = 0.0, s2 = 0.0;
  for (index_t i = 0; i < rows * k; ++i) {
    s1 += Y[i];
    s2 += static_cast<double>(Y[i]) * Y[i];
  }
  return pen.l1 * s1 + 0.5 * pen.l2 * s2;
}

// Automatic inner sweeps from the cost ratio of one pass over X to one sweep
// (Gillis & Glineur's rho with alpha = 0.5), capped.
inline int auto_sweeps(double pass_cost, index_t rows, index_t k) {
  const double rho = 1.0 + pass_cost / (static_cast<double>(rows) * static_cast<double>(k + 1));
  return static_cast<int>(std::clamp(1.0 + 0.5 * rho, 1.0, 100.0));
}

template <typename T, typename Op>
Result fit_hals_extrapolated(const Op& X, T* W, T* Ht, index_t k, const Options& opt,
                             const std::function<bool(int, double)>& hook, double pass_cost);

// Fits W and Ht in place. `hook(iteration, loss)` is called after every
// iteration (if set) and stops the fit by returning false. HALS with
// opt.extrapolate runs the extrapolated loop of extrapolation.hpp.
template <typename T, typename Op>
Result fit(const Op& X, T* W, T* Ht, index_t k, const Options& opt,
           const std::function<bool(int, double)>& hook, double pass_cost) {
  const index_t m = X.rows(), n = X.cols();
  require(k >= 1, "n_components must be >= 1");
  require(opt.max_iter >= 0, "max_iter must be >= 0");
  if (opt.solver == Solver::Hals && opt.extrapolate && opt.update_W && opt.update_H)
    return fit_hals_extrapolated(X, W, Ht, k, opt, hook, pass_cost);
  const int nt = opt.n_threads;
  std::vector<T> A(static_cast<std::size_t>(m * k)), B(static_cast<std::size_t>(n * k));
  std::vector<T> GW(static_cast<std::size_t>(k * k)), GH(static_cast<std::size_t>(k * k));
  const double xx = X.squared_norm(nt);
  const int sweeps_W = opt.inner_sweeps > 0 ? opt.inner_sweeps : auto_sweeps(pass_cost, m, k);
  const int sweeps_H = opt.inner_sweeps > 0 ? opt.inner_sweeps : auto_sweeps(pass_cost, n, k);
  const double stop = opt.inner_sweeps > 0 ? 0.0 : opt.inner_stop;

  auto half_step = [&](T* Y, const T* Ab, const T* G, index_t rows, Penalty pen, int sweeps) {
    switch (opt.solver) {
      case Solver::Hals:
        update_rows_hals(Y, Ab, G, rows, k, pen, sweeps, stop, nt);
        break;
      case Solver::Mu:
        update_rows_mu(Y, Ab, G, rows, k, pen, nt);
        break;
      case Solver::Anls:
        update_rows_bpp(Y, Ab, G, rows, k, pen, nt);
        break;
    }
  };

  Result res;
  double prev = std::numeric_limits<double>::infinity();
  gram(Ht, n, k, GH.data(), nt);  // kept current: recomputed after every H update
  for (int it = 1; it <= opt.max_iter; ++it) {
    if (opt.update_W) {
      X.times(Ht, k, A.data(), nt);
      half_step(W, A.data(), GH.data(), m, opt.pen_W, sweeps_W);
    }
    X.transpose_times(W, k, B.data(), nt);
    gram(W, m, k, GW.data(), nt);
    if (opt.update_H) {
      half_step(Ht, B.data(), GW.data(), n, opt.pen_H, sweeps_H);
      gram(Ht, n, k, GH.data(), nt);
    }
    double cross = 0.0;
    for (index_t i = 0; i < n * k; ++i) cross += static_cast<double>(B[i]) * Ht[i];
    double quad = 0.0;
    for (index_t i = 0; i < k * k; ++i) quad += static_cast<double>(GW[i]) * GH[i];
    const double loss = 0.5 * std::max(0.0, xx - 2.0 * cross + quad) + penalties(W, m, k, opt.pen_W) +
                        penalties(Ht, n, k, opt.pen_H);
    res.losses.push_back(loss);
    res.n_iter = it;
    if (hook && !hook(it, loss)) break;
    if (opt.tol > 0.0 && std::isfinite(prev) && (prev - loss) <= opt.tol * prev) {
      res.converged = true;
      break;
    }
    prev = loss;
  }
  return res;
}

// W = argmin_{W >= 0} of the W half-problem with Ht fixed, exactly (rows by
// block principal pivoting, from W's support on entry): the transform of new data.
template <typename T, typename Op>
void solve_rows(const Op& X, T* W, const T* Ht, index_t k, Penalty pen, int n_threads) {
  const index_t m = X.rows(), n = X.cols();
  std::vector<T> A(static_cast<std::size_t>(m * k)), G(static_cast<std::size_t>(k * k));
  X.times(Ht, k, A.data(), n_threads);
  gram(Ht, n, k, G.data(), n_threads);
  update_rows_bpp(W, A.data(), G.data(), m, k, pen, n_threads);
}

}  // namespace nmf
}  // namespace rankfold

#include "rankfold/nmf/extrapolation.hpp"  // NOLINT: the definition of fit_hals_extrapolated
