// What every NMF fit shares (the loop itself is nmf::fit in fit.hpp): the
// options, the one stopping rule (Stopping), the extrapolation schedule, the
// result, the objective from products already at hand,
//   ||X - W H||^2 = ||X||^2 - 2 <X^T W, Ht> + <W^T W, H H^T>,
// and the guards against collapsed components and scale drift. W is stored
// row-major and H as Ht (n x k, row-major), so both halves of an iteration
// run the same row kernels (updates.hpp).
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
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

// The stopping rule of every NMF fit loop, in one place: the fit has
// converged when the objective changed by at most `tol` relative to its
// previous value, |f_prev - f| <= tol f_prev (an increase larger than that is
// not convergence). tol = 0 never stops. Loops that report the best
// objective so far (the extrapolated loop) apply it only on iterations that
// improved on the best: an iteration that found nothing better is a restart.
struct Stopping {
  double tol = 1e-4;
  bool converged(double prev, double cur) const {
    return tol > 0.0 && std::isfinite(prev) && std::isfinite(cur) && std::abs(prev - cur) <= tol * prev;
  }
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
  double sigma2 = 0.0;         // correntropy models: the final kernel width squared
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
                   const std::vector<std::pair<T*, index_t>>& cols_of = {}) {
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
// `extra`: a further cost of one sweep (the graph term's sparse product S W).
inline int auto_sweeps(double pass_cost, index_t rows, index_t k, double extra = 0.0) {
  const double rho = 1.0 + pass_cost / (static_cast<double>(rows) * static_cast<double>(k + 1) + extra);
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
                      const std::vector<std::pair<T*, index_t>>& with_w = {},
                      const std::vector<std::pair<T*, index_t>>& with_h = {}) {
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
