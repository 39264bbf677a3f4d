// HALS with extrapolation (Ang & Gillis 2019, "Accelerating nonnegative matrix
// factorization algorithms using extrapolation", Neural Computation 31(2)):
// each half-step starts from an extrapolated point of the other factor,
//   W_n  = HALS(W_y; H_y),   W_y' = max(0, W_n + beta (W_n - W)),
//   H_n  = HALS(H_y; W_y'),  H_y' = max(0, H_n + beta (H_n - H)),
// and beta adapts: it grows (up to a bound that itself grows) while the
// objective decreases, and when a step increases it the step is rejected,
// the extrapolation restarts from the last plain iterates and beta shrinks.
// On ill-conditioned problems (few components, correlated columns) plain
// HALS zig-zags; the extrapolated sequence needs several times fewer passes
// over X, at the same cost per pass. It may settle in another local minimum
// than plain HALS from the same start, which is why it is opt-in
// (NMF(extrapolate=True)).
//
// The objective of the pair (W_y', H_n) comes for free from the H step's
// products (X^T W_y' and the two Grams), so that pair is what the fit
// reports; loss_history_ holds the objective of the best pair so far
// (non-increasing), and tol applies to the accepted steps. The fit returns
// the best pair with W refreshed by one last half-step against its H.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "rankfold/nmf/solver.hpp"

namespace rankfold {
namespace nmf {

template <typename T, typename Op>
Result fit_hals_extrapolated(const Op& X, T* W_out, T* Ht_out, index_t k, const Options& opt,
                             const std::function<bool(int, double)>& hook, double pass_cost) {
  const index_t m = X.rows(), n = X.cols();
  const int nt = opt.n_threads;
  const std::size_t mk = static_cast<std::size_t>(m * k), nk = static_cast<std::size_t>(n * k);
  std::vector<T> A(mk), B(nk), GW(static_cast<std::size_t>(k * k)), GH(static_cast<std::size_t>(k * k));
  // W, H: the last accepted plain iterates; Wy, Hy: the extrapolated points
  // the next half-steps start from; Wn, Hn: the half-steps' results.
  std::vector<T> W(W_out, W_out + mk), Wy(W), Wn(mk), Wy_new(mk);
  std::vector<T> H(Ht_out, Ht_out + nk), Hy(H), Hn(nk);
  const double xx = X.squared_norm(nt);
  const int sweeps_W = opt.inner_sweeps > 0 ? opt.inner_sweeps : auto_sweeps(pass_cost, m, k);
  const int sweeps_H = opt.inner_sweeps > 0 ? opt.inner_sweeps : auto_sweeps(pass_cost, n, k);
  const double stop = opt.inner_sweeps > 0 ? 0.0 : opt.inner_stop;
  double beta = 0.5, beta_max = 1.0;
  constexpr double kShrink = 1.5, kGrow = 1.05, kGrowMax = 1.01;
  auto extrapolate = [](const std::vector<T>& now, const std::vector<T>& before, double b, std::vector<T>& out) {
    const T bt = static_cast<T>(b);
    for (std::size_t i = 0; i < now.size(); ++i) out[i] = std::max(T(0), now[i] + bt * (now[i] - before[i]));
  };
  Result res;
  double best = std::numeric_limits<double>::infinity(), prev_accepted = best;
  for (int it = 1; it <= opt.max_iter; ++it) {
    X.times(Hy.data(), k, A.data(), nt);
    gram(Hy.data(), n, k, GH.data(), nt);
    Wn = Wy;
    update_rows_hals(Wn.data(), A.data(), GH.data(), m, k, opt.pen_W, sweeps_W, stop, nt);
    extrapolate(Wn, W, beta, Wy_new);
    X.transpose_times(Wy_new.data(), k, B.data(), nt);
    gram(Wy_new.data(), m, k, GW.data(), nt);
    Hn = Hy;
    update_rows_hals(Hn.data(), B.data(), GW.data(), n, k, opt.pen_H, sweeps_H, stop, nt);
    gram(Hn.data(), n, k, GH.data(), nt);
    double cross = 0.0, quad = 0.0;
    for (std::size_t i = 0; i < nk; ++i) cross += static_cast<double>(B[i]) * Hn[i];
    for (index_t i = 0; i < k * k; ++i) quad += static_cast<double>(GW[i]) * GH[i];
    const double loss = 0.5 * std::max(0.0, xx - 2.0 * cross + quad) + penalties(Wy_new.data(), m, k, opt.pen_W) +
                        penalties(Hn.data(), n, k, opt.pen_H);
    bool accepted = std::isfinite(loss) && loss < best;
    if (accepted) {
      best = loss;
      std::copy(Wy_new.begin(), Wy_new.end(), W_out);  // the reported pair (W_y', H_n)
      std::copy(Hn.begin(), Hn.end(), Ht_out);
      extrapolate(Hn, H, beta, Hy);
      W.swap(Wn);
      H = Hn;
      Wy = Wy_new;
      beta = std::min(beta_max, kGrow * beta);
      beta_max = std::min(1.0, kGrowMax * beta_max);
    } else {
      beta /= kShrink;
      beta_max = beta;
      Wy = W;
      Hy = H;
    }
    res.losses.push_back(best);
    res.n_iter = it;
    if (hook && !hook(it, best)) break;
    if (accepted && opt.tol > 0.0 && std::isfinite(prev_accepted) && (prev_accepted - best) <= opt.tol * prev_accepted) {
      res.converged = true;
      break;
    }
    if (accepted) prev_accepted = best;
  }
  // The returned W is an extrapolated point; one more W half-step against the
  // returned H (it can only lower the objective) makes W the best response to
  // H, as in the plain loop, so that transform(X) reproduces it.
  if (res.n_iter > 0 && std::isfinite(best)) {
    X.times(Ht_out, k, A.data(), nt);
    gram(Ht_out, n, k, GH.data(), nt);
    update_rows_hals(W_out, A.data(), GH.data(), m, k, opt.pen_W, sweeps_W, stop, nt);
    gram(W_out, m, k, GW.data(), nt);
    double cross = 0.0, quad = 0.0;
    for (std::size_t i = 0; i < mk; ++i) cross += static_cast<double>(A[i]) * W_out[i];
    for (index_t i = 0; i < k * k; ++i) quad += static_cast<double>(GW[i]) * GH[i];
    const double loss = 0.5 * std::max(0.0, xx - 2.0 * cross + quad) + penalties(W_out, m, k, opt.pen_W) +
                        penalties(Ht_out, n, k, opt.pen_H);
    res.losses.back() = std::min(res.losses.back(), loss);
  }
  return res;
}

}  // namespace nmf
}  // namespace rankfold
