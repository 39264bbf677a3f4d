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
#include <initializer_list>
#include <limits>
#include <utility>
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
  // Extrapolated iterates with restarts (Ang & Gillis 2019); needs both
  // halves updated. Not for MU: its multiplicative form cannot leave the
  // zeros that projecting an extrapolated point creates.
  bool extrapolate = false;
  int n_threads = 0;
};

// Step-size schedule of the extrapolation: grow beta while the objective
// decreases, shrink it (and cap its growth) when it does not.
struct Extrapolation {
  double beta = 0.5, cap = 1.0;
  static constexpr double shrink = 1.5, grow = 1.05, grow_cap = 1.01;
  void on_decrease() {
    beta = std::min(cap, grow * beta);
    cap = std::min(1.0, grow_cap * cap);
  }
  void on_increase() {
    cap = beta;
    beta /= shrink;
  }
};

// Which columns of Y (rows x k, row-major) have a positive entry.
template <typename T>
std::vector<char> live_columns(const T* Y, index_t rows, index_t k) {
  std::vector<char> live(static_cast<std::size_t>(k), 0);
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < k; ++j) live[j] |= Y[i * k + j] > T(0);
  return live;
}

// Y (rows x k) <- max(0, Y + beta (Y - prev)) and prev <- the old Y. If the
// projection would wipe out a whole column (a component that could never
// come back), Y keeps its plain value instead and the call returns false.
template <typename T>
bool extrapolate_in_place(T* y, T* prev, index_t rows, index_t k, double beta, int n_threads) {
  const index_t size = rows * k;
  const std::vector<char> before = live_columns(y, rows, k);
  const T b = static_cast<T>(beta);
  constexpr index_t block = 8192;
  parallel_for(0, (size + block - 1) / block, n_threads, [&](index_t blk) {
    const index_t end = std::min(size, (blk + 1) * block);
    for (index_t i = blk * block; i < end; ++i) {
      const T cur = y[i];
      y[i] = std::max(T(0), cur + b * (cur - prev[i]));
      prev[i] = cur;
    }
  });
  const std::vector<char> after = live_columns(y, rows, k);
  for (index_t j = 0; j < k; ++j) {
    if (before[j] && !after[j]) {
      std::copy(prev, prev + size, y);
      return false;
    }
  }
  return true;
}

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

// The objective from products already at hand:
//   0.5 ||X - W H||^2 = 0.5 (||X||^2 - 2 <P, Q> + <W^T W, H H^T>) + penalties,
// with (P, Q) = (X^T W, H^T) or (X H^T, W), `size` entries each.
template <typename T>
double objective(double xx, const T* P, const T* Q, std::size_t size, const T* GW, const T* GH, index_t k,
                 const T* W, index_t m, const T* Ht, index_t n, const Options& opt) {
  double cross = 0.0, quad = 0.0;
  for (std::size_t i = 0; i < size; ++i) cross += static_cast<double>(P[i]) * Q[i];
  for (index_t i = 0; i < k * k; ++i) quad += static_cast<double>(GW[i]) * GH[i];
  return 0.5 * std::max(0.0, xx - 2.0 * cross + quad) + penalties(W, m, k, opt.pen_W) + penalties(Ht, n, k, opt.pen_H);
}

// Collapsed components. At k above the data's rank, HALS, MU and the
// extrapolation can shrink a component until its rank-one term w_j h_j^T is
// far below anything T can represent next to X (seen in float64:
// ||w_j||^2 = 3e-196 with ||h_j||^2 = 3e-233). Solving against such a factor
// divides by its squared norm, which overflows, and inf - inf = NaN follows.
// A component whose term has a Frobenius norm at most eps^2 ||X||_F (eps of
// T: far below the rounding of X itself) is therefore set to exactly zero in
// both factors. It then stays zero: a zero column leaves the other factor's
// coordinate without curvature, which every update rule skips. A component
// with one factor exactly zero and the other not is left as it is (it is
// finite, and the plain iterations may revive it).
template <typename T>
bool is_collapsed(double norm2_w, double norm2_h, double xx) {
  const double e2 = static_cast<double>(std::numeric_limits<T>::epsilon()) * std::numeric_limits<T>::epsilon();
  return norm2_w > 0.0 && norm2_h > 0.0 && norm2_w * norm2_h <= e2 * e2 * xx;
}

// Zeroes the collapsed components of (W, Ht) judged from the diagonals of
// their Gram matrices GW, GH, and keeps the Grams and the products in
// `cols_of` (each rows x k, row-major, whose column j is linear in column j
// of W or Ht) consistent. Returns the number of components zeroed.
template <typename T>
int zero_collapsed(T* W, index_t m, T* Ht, index_t n, index_t k, T* GW, T* GH, double xx,
                   std::initializer_list<std::pair<T*, index_t>> cols_of = {}) {
  int dropped = 0;
  for (index_t j = 0; j < k; ++j) {
    if (!is_collapsed<T>(GW[j * k + j], GH[j * k + j], xx)) continue;
    ++dropped;
    for (index_t i = 0; i < m; ++i) W[i * k + j] = T(0);
    for (index_t i = 0; i < n; ++i) Ht[i * k + j] = T(0);
    for (index_t l = 0; l < k; ++l) GW[j * k + l] = GW[l * k + j] = GH[j * k + l] = GH[l * k + j] = T(0);
    for (const auto& c : cols_of)
      for (index_t i = 0; i < c.second; ++i) c.first[i * k + j] = T(0);
  }
  return dropped;
}

// The same for loops without Gram matrices at hand (the weighted fit):
// the squared column norms are computed here.
template <typename T>
int zero_collapsed_by_norms(T* W, index_t m, T* Ht, index_t n, index_t k, double xx) {
  std::vector<T> dw(static_cast<std::size_t>(k * k), T(0)), dh(static_cast<std::size_t>(k * k), T(0));
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < k; ++j) dw[j * k + j] += W[i * k + j] * W[i * k + j];
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < k; ++j) dh[j * k + j] += Ht[i * k + j] * Ht[i * k + j];
  return zero_collapsed(W, m, Ht, n, k, dw.data(), dh.data(), xx);
}

inline const char* solver_name(Solver s) {
  switch (s) {
    case Solver::Hals: return "hals";
    case Solver::Mu: return "mu";
    case Solver::Anls: return "anls";
  }
  return "?";
}

// The boundary guard: no fit hands back a non-finite objective or factor.
// With finite input this means an overflow (data near the top of T's range);
// the fit stops with a clear error instead of returning NaN.
inline void require_finite_loss(double loss, int it, const char* solver) {
  require<NonFiniteError>(std::isfinite(loss), "NMF (solver='", solver, "'): the objective became non-finite at ",
                          "iteration ", it, " (an overflow: rescale X, e.g. divide it by its largest entry)");
}

template <typename T>
void require_finite_factors(const T* W, std::size_t w_size, const T* Ht, std::size_t h_size, const char* solver) {
  bool finite = true;
  for (std::size_t i = 0; i < w_size; ++i) finite &= std::isfinite(W[i]);
  for (std::size_t i = 0; i < h_size; ++i) finite &= std::isfinite(Ht[i]);
  require<NonFiniteError>(finite, "NMF (solver='", solver, "'): the fit produced non-finite factors ",
                          "(an overflow: rescale X, e.g. divide it by its largest entry)");
}

// Automatic inner sweeps from the cost ratio of one pass over X to one sweep
// (Gillis & Glineur's rho with alpha = 0.5), capped.
inline int auto_sweeps(double pass_cost, index_t rows, index_t k) {
  const double rho = 1.0 + pass_cost / (static_cast<double>(rows) * static_cast<double>(k + 1));
  return static_cast<int>(std::clamp(1.0 + 0.5 * rho, 1.0, 100.0));
}

// The c for which ||c w_j|| = ||h_j / c||, from the squared norms, computed
// without forming their ratio (which under- or overflows when the two differ
// by more than the range of a double); 1 where c is not representable in T.
template <typename T>
T balancing_scale(double norm2_w, double norm2_h) {
  const T c = static_cast<T>(std::sqrt(std::sqrt(norm2_h)) / std::sqrt(std::sqrt(norm2_w)));
  return std::isfinite(c) && c > T(0) && std::isfinite(T(1) / c) ? c : T(1);
}

// Scale drift. W H is unchanged by (w_j c, h_j / c), and the extrapolated
// steps can push a component's scale from one factor to the other without
// bound (seen in float64 at k above the data's rank: ||w_j||^2 = 1e229 with
// ||h_j||^2 = 1e-230, a component of ordinary size); a few more steps and a
// Gram entry overflows. A component whose two squared norms differ by more
// than 1/eps^2 (eps of T) is rebalanced to equal norms, and with it every
// array that scales with it: `with_w` (each rows x k, column j linear in
// w_j) and `with_h` (linear in h_j), and the Grams GW, GH, so that the
// objective computed from them is unchanged. The update rules are
// scale-covariant, so apart from rounding the iterates' products W H do not
// change; ordinary fits never drift this far and never take this branch.
template <typename T>
int rebalance_drifted(T* W, index_t m, T* Ht, index_t n, index_t k, T* GW, T* GH,
                      std::initializer_list<std::pair<T*, index_t>> with_w = {},
                      std::initializer_list<std::pair<T*, index_t>> with_h = {}) {
  const double e = std::numeric_limits<T>::epsilon(), limit = 1.0 / (e * e);
  int moved = 0;
  for (index_t j = 0; j < k; ++j) {
    const double nw = GW[j * k + j], nh = GH[j * k + j];
    if (!(nw > 0.0 && nh > 0.0) || (nw <= limit * nh && nh <= limit * nw)) continue;
    const T c = balancing_scale<T>(nw, nh);
    if (c == T(1)) continue;
    ++moved;
    const T ic = T(1) / c;
    for (index_t i = 0; i < m; ++i) W[i * k + j] *= c;
    for (index_t i = 0; i < n; ++i) Ht[i * k + j] *= ic;
    for (const auto& a : with_w)
      for (index_t i = 0; i < a.second; ++i) a.first[i * k + j] *= c;
    for (const auto& a : with_h)
      for (index_t i = 0; i < a.second; ++i) a.first[i * k + j] *= ic;
    for (index_t l = 0; l < k; ++l) {
      GW[j * k + l] *= c;
      GW[l * k + j] *= c;  // (j, j): c^2
      GH[j * k + l] *= ic;
      GH[l * k + j] *= ic;
    }
  }
  return moved;
}

// Rescales column j of W (rows_w x k) and of Ht (rows_h x k) by c and 1/c
// so that both have the same Euclidean norm (columns with a zero stay);
// GW and GH are their Gram matrices (the squared norms on the diagonal).
template <typename T>
void balance_columns(T* W, index_t rows_w, T* Ht, index_t rows_h, index_t k, const T* GW, const T* GH) {
  std::vector<T> scale(static_cast<std::size_t>(k), T(1));
  for (index_t j = 0; j < k; ++j) {
    const double nw = GW[j * k + j], nh = GH[j * k + j];
    if (nw > 0.0 && nh > 0.0) scale[j] = balancing_scale<T>(nw, nh);
  }
  for (index_t i = 0; i < rows_w; ++i)
    for (index_t j = 0; j < k; ++j) W[i * k + j] *= scale[j];
  for (index_t i = 0; i < rows_h; ++i)
    for (index_t j = 0; j < k; ++j) Ht[i * k + j] /= scale[j];
}

// The fit loop with extrapolation (Ang & Gillis, "Accelerating nonnegative
// matrix factorization algorithms using extrapolation", Neural Computation
// 2019). Each half-step solves against the other factor's extrapolated point
// max(0, Y + beta (Y - Y_prev)) instead of its last iterate; beta adapts,
// and after an iteration that raised the objective H is not extrapolated
// (a restart). The pair (W, H) of every iteration is a genuine iterate (H is
// the best response to W), so the returned pair is the best one seen, and
// losses[i] is the objective of the best pair after iteration i+1 (it never
// increases). X is still touched twice per iteration, plus one pass for a
// last W half-step against the returned H. Without penalties the returned
// pairs are balanced (||w_j|| = ||h_j||).
template <typename T, typename Op, typename HalfStep>
Result fit_extrapolated(const Op& X, T* W, T* Ht, index_t k, const Options& opt,
                        const std::function<bool(int, double)>& hook, HalfStep&& half_step, int sweeps_W,
                        int sweeps_H, double xx) {
  const index_t m = X.rows(), n = X.cols();
  const int nt = opt.n_threads;
  const std::size_t mk = static_cast<std::size_t>(m * k), nk = static_cast<std::size_t>(n * k);
  std::vector<T> A(mk), B(nk), GW(static_cast<std::size_t>(k * k)), GH(static_cast<std::size_t>(k * k));
  // W: the working (extrapolated) W; W_prev: the last plain W iterate.
  // H_hat: extrapolated H fed to the W step; H_prev: the last plain H.
  std::vector<T> W_prev(W, W + mk), H_hat(Ht, Ht + nk), H_prev(Ht, Ht + nk);
  std::vector<T> W_best(W, W + mk), H_best(Ht, Ht + nk);
  Extrapolation ex;
  Result res;
  double prev = std::numeric_limits<double>::infinity(), best = prev;
  for (int it = 1; it <= opt.max_iter; ++it) {
    X.times(H_hat.data(), k, A.data(), nt);
    gram(H_hat.data(), n, k, GH.data(), nt);
    half_step(W, A.data(), GH.data(), m, opt.pen_W, sweeps_W);
    // The start is not an iterate of the method: extrapolate from the second iteration on.
    bool kept = true;
    if (it == 1)
      std::copy(W, W + mk, W_prev.begin());
    else
      kept = extrapolate_in_place(W, W_prev.data(), m, k, ex.beta, nt);
    X.transpose_times(W, k, B.data(), nt);
    gram(W, m, k, GW.data(), nt);
    half_step(H_hat.data(), B.data(), GW.data(), n, opt.pen_H, sweeps_H);  // now the plain H iterate
    gram(H_hat.data(), n, k, GH.data(), nt);
    zero_collapsed(W, m, H_hat.data(), n, k, GW.data(), GH.data(), xx, {{B.data(), n}});
    // (B = X^T W scales with W; W_prev and H_prev with the factors they extrapolate)
    rebalance_drifted(W, m, H_hat.data(), n, k, GW.data(), GH.data(), {{B.data(), n}, {W_prev.data(), m}},
                      {{H_prev.data(), n}});
    const double loss =
        objective(xx, B.data(), H_hat.data(), nk, GW.data(), GH.data(), k, W, m, H_hat.data(), n, opt);
    require_finite_loss(loss, it, solver_name(opt.solver));
    const double best_before = best;
    if (loss < best) {
      best = loss;
      std::copy(W, W + mk, W_best.begin());
      std::copy(H_hat.begin(), H_hat.end(), H_best.begin());
    }
    if (it == 1 || loss > prev || !kept) {
      if (it > 1) ex.on_increase();
      std::copy(H_hat.begin(), H_hat.end(), H_prev.begin());
    } else {
      ex.on_decrease();
      if (!extrapolate_in_place(H_hat.data(), H_prev.data(), n, k, ex.beta, nt)) ex.on_increase();
    }
    prev = loss;
    res.losses.push_back(best);
    res.n_iter = it;
    if (hook && !hook(it, best)) break;
    if (opt.tol > 0.0 && std::isfinite(best_before) && best < best_before &&
        (best_before - best) <= opt.tol * best_before) {
      res.converged = true;
      break;
    }
  }
  if (res.n_iter > 0) {
    std::copy(W_best.begin(), W_best.end(), W);
    std::copy(H_best.begin(), H_best.end(), Ht);
    // W is an extrapolated point: one more W half-step against the returned
    // H (one more pass over X; it can only lower the objective) makes W the
    // response to H, as in the plain loop, so that transform(X) reproduces it.
    X.times(Ht, k, A.data(), nt);
    gram(Ht, n, k, GH.data(), nt);
    half_step(W, A.data(), GH.data(), m, opt.pen_W, sweeps_W);
    gram(W, m, k, GW.data(), nt);
    res.losses.back() = std::min(res.losses.back(),
                                 objective(xx, A.data(), W, mk, GW.data(), GH.data(), k, W, m, Ht, n, opt));
    // Extrapolating W and H can move scale from one factor to the other
    // (W H is unchanged by w_j c, h_j / c); without penalties, hand back
    // balanced pairs, ||w_j|| = ||h_j||, instead of an accident of the path.
    const bool unpenalised = opt.pen_W.l1 == 0.0 && opt.pen_W.l2 == 0.0 && opt.pen_H.l1 == 0.0 && opt.pen_H.l2 == 0.0;
    if (unpenalised) balance_columns(W, m, Ht, n, k, GW.data(), GH.data());
    require_finite_factors(W, mk, Ht, nk, solver_name(opt.solver));
  }
  return res;
}

// Fits W and Ht in place. `hook(iteration, loss)` is called after every
// iteration (if set) and stops the fit by returning false.
template <typename T, typename Op>
Result fit(const Op& X, T* W, T* Ht, index_t k, const Options& opt,
           const std::function<bool(int, double)>& hook, double pass_cost) {
  const index_t m = X.rows(), n = X.cols();
  require(k >= 1, "n_components must be >= 1");
  require(opt.max_iter >= 0, "max_iter must be >= 0");
  const int nt = opt.n_threads;
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

  if (opt.extrapolate && opt.update_W && opt.update_H && opt.solver != Solver::Mu)
    return fit_extrapolated(X, W, Ht, k, opt, hook, half_step, sweeps_W, sweeps_H, xx);
  std::vector<T> A(static_cast<std::size_t>(m * k)), B(static_cast<std::size_t>(n * k));
  std::vector<T> GW(static_cast<std::size_t>(k * k)), GH(static_cast<std::size_t>(k * k));
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
    // (with a factor held fixed, its zero columns stay the caller's business)
    if (opt.update_W && opt.update_H) {
      zero_collapsed(W, m, Ht, n, k, GW.data(), GH.data(), xx, {{B.data(), n}});
      rebalance_drifted(W, m, Ht, n, k, GW.data(), GH.data(), {{B.data(), n}});
    }
    const double loss = objective(xx, B.data(), Ht, static_cast<std::size_t>(n * k), GW.data(), GH.data(), k, W, m,
                                  Ht, n, opt);
    require_finite_loss(loss, it, solver_name(opt.solver));
    res.losses.push_back(loss);
    res.n_iter = it;
    if (hook && !hook(it, loss)) break;
    if (opt.tol > 0.0 && std::isfinite(prev) && (prev - loss) <= opt.tol * prev) {
      res.converged = true;
      break;
    }
    prev = loss;
  }
  require_finite_factors(W, static_cast<std::size_t>(m * k), Ht, static_cast<std::size_t>(n * k),
                         solver_name(opt.solver));
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
