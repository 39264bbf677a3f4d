// The NMF fit loop, one for every least-squares model: X (m x n) ~ W H with
// W (m x k) and H stored as Ht (n x k), both row-major.
//
// A model (the problem description made concrete) owns what one problem
// needs (products with X, Gram matrices, weights) and implements one update
// contract:
//
//   start(W, Ht)                 once, before the first iteration
//   update_W(W, Ht, gram_ok, f)  W half-step against Ht; returns the
//                                objective at (W, Ht) after it when f is set
//                                (gram_ok: the model's H^T H is Ht's Gram)
//   update_H(Ht, W)              H half-step against W
//   guard(W, Ht, with_w, with_h) collapsed components and scale drift (see
//                                solver.hpp), rescaling the listed arrays too
//   objective(W, Ht)             after update_H and guard: the objective, from
//                                products already at hand; correntropy models
//                                re-weight here (half-quadratic step)
//   project_W(W)                 back onto W's feasible set after an
//                                extrapolation (the simplex for sum-to-one)
//   balance(W, Ht)               equal column norms where the objective is
//                                invariant under (w_j c, h_j / c)
//
// The loops (`run_plain`, `run_extrapolated`) know nothing of the model but
// this contract: one stopping rule (solver.hpp's Stopping), one
// extrapolation scheme (Ang & Gillis 2019, restarts on increase), the hook
// (a callback per iteration), and Ctrl-C polled once per iteration.
//
// Models here: GramModel (plain, graph Laplacian on W, simplex rows of W,
// correntropy with one weight per band) on any X operator, and WeightedModel
// (missing values / masks, correntropy with one weight per entry) on dense
// X. The beta-divergence MU loop (beta.hpp) fuses both half-steps into one
// pass over X and reports each objective one pass late; it shares the
// stopping rule, the hook and the polling, not this loop.
#pragma once

#include <Eigen/Eigenvalues>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <utility>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/interrupt.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/nmf/bpp.hpp"
#include "rankfold/nmf/graph.hpp"
#include "rankfold/nmf/masked.hpp"
#include "rankfold/nmf/operator.hpp"
#include "rankfold/nmf/robust.hpp"
#include "rankfold/nmf/solver.hpp"
#include "rankfold/nmf/updates.hpp"

namespace rankfold {
namespace nmf {

using Hook = std::function<bool(int, double)>;
using Scaled = std::vector<std::pair<void*, index_t>>;

enum class Robust { None, Band, Entry };

// sigma unset: sigma^2 = kSigmaScale * mean(r^2) of the current residuals
// (r: band residual norms or entries), so a typical band has weight exp(-1).
constexpr double kSigmaScale = 0.5;

// The terms of the problem beyond the plain least-squares fit.
template <typename T>
struct Terms {
  const Graph<T, std::int64_t>* graph = nullptr;  // 0.5 lam tr(W^T L W)
  bool simplex = false;                           // every row of W on the probability simplex
  Robust robust = Robust::None;                   // correntropy loss (half-quadratic weights)
  double sigma2 = 0.0;                            // its kernel width squared; <= 0: from the residuals
  T* robust_weights = nullptr;                    // out (optional): band (n) or entry (m x n) weights
};

// ---------------------------------------------------------------- simplex

// Euclidean projection of y (k entries) onto {y >= 0, sum y = 1}: the sort
// based exact rule (Held, Wolfe & Crowder; Duchi et al. 2008). `u` is k
// entries of scratch.
template <typename T>
void project_simplex_row(T* y, index_t k, T* u) {
  std::copy(y, y + k, u);
  std::sort(u, u + k, [](T a, T b) { return a > b; });
  double css = 0.0, theta = 0.0;
  for (index_t j = 0; j < k; ++j) {
    css += u[j];
    const double t = (css - 1.0) / static_cast<double>(j + 1);
    if (u[j] - t > 0.0) theta = t;
  }
  for (index_t j = 0; j < k; ++j) y[j] = std::max(T(0), static_cast<T>(y[j] - theta));
}

template <typename T>
void project_simplex_rows(T* Y, index_t rows, index_t k, int n_threads) {
  parallel_region(n_threads, [&](int t, int nt) {
    std::vector<T> u(static_cast<std::size_t>(k));
    index_t lo, hi;
    split_range(rows, t, nt, lo, hi);
    for (index_t r = lo; r < hi; ++r) project_simplex_row(Y + r * k, k, u.data());
  });
}

// A start on the simplex: each row divided by its sum (1/k where it is 0).
template <typename T>
void normalize_simplex_rows(T* Y, index_t rows, index_t k) {
  for (index_t r = 0; r < rows; ++r) {
    T* y = Y + r * k;
    T s = T(0);
    for (index_t j = 0; j < k; ++j) s += y[j];
    for (index_t j = 0; j < k; ++j) y[j] = s > T(0) ? y[j] / s : T(1) / static_cast<T>(k);
  }
}

// The W half-step on the simplex: projected gradient steps of length
// 1/Lipschitz on 0.5 w'Gw - a'w + 0.5 l2 |w|^2 (+ the graph term) for every
// row, each iterate exactly feasible, the objective decreasing at every step.
// The Lipschitz constant is the largest eigenvalue of G plus l2 plus
// lam * 2 max degree (|L| <= 2 max degree).
template <typename T>
void update_rows_simplex(T* W, const T* A, const T* G, index_t rows, index_t k, double l2,
                         const Graph<T, std::int64_t>* graph, int steps, int n_threads) {
  Eigen::MatrixXd g(k, k);
  for (index_t i = 0; i < k; ++i)
    for (index_t j = 0; j < k; ++j) g(i, j) = G[i * k + j];
  double lip = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(g, Eigen::EigenvaluesOnly).eigenvalues().maxCoeff() + l2;
  const bool with_graph = graph != nullptr && graph->lam > 0.0;
  if (with_graph) {
    double max_degree = 0.0;
    for (index_t r = 0; r < rows; ++r) max_degree = std::max(max_degree, static_cast<double>(graph->degree[r]));
    lip += graph->lam * 2.0 * max_degree;
  }
  if (!(lip > 0.0)) return;
  const T step = static_cast<T>(1.0 / lip), tl2 = static_cast<T>(l2);
  const T lam = with_graph ? static_cast<T>(graph->lam) : T(0);
  std::vector<T> P(with_graph ? static_cast<std::size_t>(rows * k) : 0);
  for (int s = 0; s < steps; ++s) {
    if (with_graph) spmm(graph->S, W, k, k, P.data(), k, n_threads);
    parallel_region(n_threads, [&](int t, int nt) {
      std::vector<T> next(static_cast<std::size_t>(k)), u(static_cast<std::size_t>(k));
      index_t lo, hi;
      split_range(rows, t, nt, lo, hi);
      for (index_t r = lo; r < hi; ++r) {
        T* w = W + r * k;
        for (index_t j = 0; j < k; ++j) {
          T grad = -A[r * k + j];
          for (index_t l = 0; l < k; ++l) grad += w[l] * G[l * k + j];
          grad += tl2 * w[j];
          if (with_graph) grad += lam * (graph->degree[r] * w[j] - P[r * k + j]);
          next[j] = w[j] - step * grad;
        }
        project_simplex_row(next.data(), k, u.data());
        std::copy(next.begin(), next.end(), w);
      }
    });
  }
}

// ---------------------------------------------------------------- models

inline bool unpenalised(const Options& opt) {
  return opt.pen_W.l1 == 0.0 && opt.pen_W.l2 == 0.0 && opt.pen_H.l1 == 0.0 && opt.pen_H.l2 == 0.0;
}

template <typename T>
std::vector<std::pair<T*, index_t>> typed(const Scaled& list) {
  std::vector<std::pair<T*, index_t>> out;
  for (const auto& p : list) out.emplace_back(static_cast<T*>(p.first), p.second);
  return out;
}

// The least-squares models on any X operator, with the Gram matrices of
// both factors: per iteration X is touched twice (X Ht and X^T W) and the
// objective comes from products at hand,
//   ||X - W H||^2 = ||X||^2 - 2 <X^T W, Ht> + <W^T W, H H^T>.
// Band correntropy weights omega (one per column of X) enter the W half-step
// as X diag(omega) H^T and H diag(omega) H^T, and the H half-step as a scale
// of each row's fit term (not of its penalty).
template <typename T, typename Op>
class GramModel {
 public:
  GramModel(const Op& X, index_t k, const Options& opt, const Terms<T>& terms)
      : X_(X), m_(X.rows()), n_(X.cols()), k_(k), opt_(opt), terms_(terms) {
    require(k >= 1, "n_components must be >= 1");
    require(opt.max_iter >= 0, "max_iter must be >= 0");
    require(terms.robust != Robust::Entry, "entry correntropy weights need the weighted model (dense X)");
    if (terms.graph) {
      require(terms.graph->S.rows == m_ && terms.graph->S.cols == m_, "the graph must be n_samples x n_samples");
      require(opt.solver != Solver::Anls || terms.simplex,
              "the graph term works with solver 'hals' or 'mu' (it couples the rows of W)");
    }
    const int nt = opt.n_threads;
    xx_ = X.squared_norm(nt);
    const double pass = X.pass_cost();
    const bool automatic = opt.inner_sweeps <= 0;
    const double graph_cost = terms.graph ? static_cast<double>(terms.graph->S.nnz()) * static_cast<double>(k) : 0.0;
    sweeps_W_ = automatic ? auto_sweeps(pass, m_, k, graph_cost) : opt.inner_sweeps;
    sweeps_H_ = automatic ? auto_sweeps(pass, n_, k) : opt.inner_sweeps;
    simplex_steps_ = automatic ? std::max(auto_sweeps(pass, m_, k), 10) : opt.inner_sweeps;
    stop_ = automatic ? opt.inner_stop : 0.0;
    const std::size_t kk = static_cast<std::size_t>(k * k);
    A_.resize(static_cast<std::size_t>(m_ * k));
    B_.resize(static_cast<std::size_t>(n_ * k));
    GW_.resize(kk);
    GH_.resize(kk);
    if (terms.robust == Robust::Band) {
      col_sq_.resize(static_cast<std::size_t>(n_));
      X.column_squared_norms(col_sq_.data());
      omega_.assign(static_cast<std::size_t>(n_), 1.0);
      scaled_.resize(static_cast<std::size_t>(n_ * k));
      Gs_.resize(kk);
    }
  }

  index_t rows() const { return m_; }
  index_t cols() const { return n_; }
  index_t rank() const { return k_; }
  double sigma2() const { return sigma2_; }

  void start(T* W, const T* Ht) {
    const int nt = opt_.n_threads;
    if (terms_.simplex) normalize_simplex_rows(W, m_, k_);
    gram(Ht, n_, k_, GH_.data(), nt);
    if (terms_.robust == Robust::Band) {
      X_.transpose_times(W, k_, B_.data(), nt);
      gram(W, m_, k_, GW_.data(), nt);
      reweight_bands(Ht);
    }
  }

  double update_W(T* W, const T* Ht, bool gram_ok, bool want_objective) {
    const int nt = opt_.n_threads;
    const T* G = GH_.data();
    if (terms_.robust == Robust::Band) {
      // A = X diag(omega) H^T, G = H diag(omega) H^T
      for (index_t c = 0; c < n_; ++c) {
        const T om = static_cast<T>(omega_[c]);
        for (index_t j = 0; j < k_; ++j) scaled_[c * k_ + j] = Ht[c * k_ + j] * om;
      }
      X_.times(scaled_.data(), k_, A_.data(), nt);
      for (index_t c = 0; c < n_; ++c) {
        const T root = std::sqrt(static_cast<T>(omega_[c]));
        for (index_t j = 0; j < k_; ++j) scaled_[c * k_ + j] = Ht[c * k_ + j] * root;
      }
      gram(scaled_.data(), n_, k_, Gs_.data(), nt);
      G = Gs_.data();
      if (want_objective || !gram_ok) gram(Ht, n_, k_, GH_.data(), nt);
    } else {
      X_.times(Ht, k_, A_.data(), nt);
      if (!gram_ok) gram(Ht, n_, k_, GH_.data(), nt);
    }
    if (terms_.simplex)
      update_rows_simplex(W, A_.data(), G, m_, k_, opt_.pen_W.l2, terms_.graph, simplex_steps_, nt);
    else if (terms_.graph && opt_.solver == Solver::Hals)
      graph_update_rows_hals(W, A_.data(), G, m_, k_, opt_.pen_W, *terms_.graph, sweeps_W_, nt);
    else if (terms_.graph)
      graph_update_rows_mu(W, A_.data(), G, m_, k_, opt_.pen_W, *terms_.graph, nt);
    else
      half_step(W, A_.data(), G, m_, opt_.pen_W, sweeps_W_);
    if (!want_objective) return std::numeric_limits<double>::quiet_NaN();
    gram(W, m_, k_, GW_.data(), nt);
    if (terms_.robust == Robust::Band) {  // the band residuals need X^T W: one more pass
      X_.transpose_times(W, k_, B_.data(), nt);
      return objective(W, Ht);
    }
    return objective_from(A_.data(), W, static_cast<std::size_t>(m_ * k_), W, Ht);
  }

  void update_H(T* Ht, const T* W, bool update = true) {
    const int nt = opt_.n_threads;
    X_.transpose_times(W, k_, B_.data(), nt);
    gram(W, m_, k_, GW_.data(), nt);
    if (!update) return;
    const bool penalised_H = opt_.pen_H.l1 != 0.0 || opt_.pen_H.l2 != 0.0;
    if (terms_.robust == Robust::Band && penalised_H) {
      std::vector<T> scale(omega_.begin(), omega_.end());
      update_rows_scaled(Ht, B_.data(), GW_.data(), scale.data(), n_, k_, opt_.pen_H, opt_.solver, sweeps_H_, nt);
    } else {
      half_step(Ht, B_.data(), GW_.data(), n_, opt_.pen_H, sweeps_H_);
    }
    gram(Ht, n_, k_, GH_.data(), nt);
  }

  void guard(T* W, T* Ht, const Scaled& with_w, const Scaled& with_h) {
    // W on the simplex is not rescaled: zeroing or rescaling a column of W
    // would leave the simplex.
    if (terms_.simplex) return;
    zero_collapsed(W, m_, Ht, n_, k_, GW_.data(), GH_.data(), xx_, {{B_.data(), n_}});
    // (the graph term is not invariant under rescaling; it holds W's scale itself)
    if (terms_.graph) return;
    std::vector<std::pair<T*, index_t>> w_side{{B_.data(), n_}};
    for (const auto& p : typed<T>(with_w)) w_side.push_back(p);
    rebalance_drifted(W, m_, Ht, n_, k_, GW_.data(), GH_.data(), w_side, typed<T>(with_h));
  }

  // After update_H (and guard): B = X^T W, GW = W^T W, GH = H H^T are current.
  double objective(const T* W, const T* Ht) {
    if (terms_.robust == Robust::Band) {
      const double fit = reweight_bands(Ht);
      return fit + penalties(W, m_, k_, opt_.pen_W) + penalties(Ht, n_, k_, opt_.pen_H) + graph_term(W);
    }
    return objective_from(B_.data(), Ht, static_cast<std::size_t>(n_ * k_), W, Ht);
  }

  void project_W(T* W) {
    if (terms_.simplex) project_simplex_rows(W, m_, k_, opt_.n_threads);
  }

  void balance(T* W, T* Ht) {
    if (terms_.simplex || terms_.graph || !unpenalised(opt_)) return;
    gram(W, m_, k_, GW_.data(), opt_.n_threads);
    gram(Ht, n_, k_, GH_.data(), opt_.n_threads);
    balance_columns(W, m_, Ht, n_, k_, GW_.data(), GH_.data());
  }

  // Band weights of the final iterate (n), in the caller's buffer.
  void write_weights() const {
    if (terms_.robust == Robust::Band && terms_.robust_weights)
      for (index_t c = 0; c < n_; ++c) terms_.robust_weights[c] = static_cast<T>(omega_[c]);
  }

 private:
  void half_step(T* Y, const T* Ab, const T* G, index_t rows, Penalty pen, int sweeps) {
    switch (opt_.solver) {
      case Solver::Hals:
        update_rows_hals(Y, Ab, G, rows, k_, pen, sweeps, stop_, opt_.n_threads);
        break;
      case Solver::Mu:
        update_rows_mu(Y, Ab, G, rows, k_, pen, opt_.n_threads);
        break;
      case Solver::Anls:
        update_rows_bpp(Y, Ab, G, rows, k_, pen, opt_.n_threads);
        break;
    }
  }

  double graph_term(const T* W) const {
    if (!terms_.graph || terms_.graph->lam == 0.0) return 0.0;
    return 0.5 * terms_.graph->lam * graph_trace(W, m_, k_, terms_.graph->S, terms_.graph->degree, opt_.n_threads);
  }

  // 0.5 ||X - WH||^2 + penalties (+ graph) with (P, Q) = (X^T W, Ht) or (X Ht, W).
  double objective_from(const T* P, const T* Q, std::size_t size, const T* W, const T* Ht) const {
    return nmf::objective(xx_, P, Q, size, GW_.data(), GH_.data(), k_, W, m_, Ht, n_, opt_) + graph_term(W);
  }

  // Band residuals e_c = ||x_c - W h_c||^2 from B and GW, the weights
  // omega_c = exp(-e_c / (2 sigma^2)); returns the correntropy loss
  // sum_c sigma^2 (1 - omega_c).
  double reweight_bands(const T* Ht) {
    std::vector<double> e(static_cast<std::size_t>(n_));
    double mean = 0.0;
    for (index_t c = 0; c < n_; ++c) {
      const T* h = Ht + c * k_;
      const T* b = B_.data() + c * k_;
      double cross = 0.0, quad = 0.0;
      for (index_t j = 0; j < k_; ++j) {
        cross += static_cast<double>(b[j]) * h[j];
        double gh = 0.0;
        for (index_t l = 0; l < k_; ++l) gh += static_cast<double>(GW_[j * k_ + l]) * h[l];
        quad += static_cast<double>(h[j]) * gh;
      }
      e[c] = std::max(0.0, col_sq_[c] - 2.0 * cross + quad);
      mean += e[c];
    }
    mean /= static_cast<double>(std::max<index_t>(n_, 1));
    sigma2_ = terms_.sigma2 > 0.0 ? terms_.sigma2 : kSigmaScale * mean;
    if (!(sigma2_ > 0.0)) {  // an exact fit: every band fits, all weights 1
      sigma2_ = 1.0;
      std::fill(omega_.begin(), omega_.end(), 1.0);
      return 0.0;
    }
    double loss = 0.0;
    for (index_t c = 0; c < n_; ++c) {
      omega_[c] = std::exp(-e[c] / (2.0 * sigma2_));
      loss += sigma2_ * (1.0 - omega_[c]);
    }
    return loss;
  }

  const Op& X_;
  index_t m_, n_, k_;
  Options opt_;
  Terms<T> terms_;
  double xx_ = 0.0, stop_ = 0.0, sigma2_ = 0.0;
  int sweeps_W_ = 1, sweeps_H_ = 1, simplex_steps_ = 10;
  std::vector<T> A_, B_, GW_, GH_, scaled_, Gs_;
  std::vector<double> col_sq_, omega_;
};

// Dense X with entry weights M (0 = missing), row-major, with their
// transposes: every row has its own Gram matrix, so the row kernels of
// masked.hpp keep each row's residual in cache. Entry correntropy makes M
// the half-quadratic weights exp(-r_ij^2 / (2 sigma^2)), recomputed after
// every iteration.
template <typename T>
struct WeightedData {
  const T* X = nullptr;   // m x n
  const T* M = nullptr;   // m x n weights (null with entry correntropy: the model makes them)
  const T* Xt = nullptr;  // n x m (null: the model makes the transpose)
  const T* Mt = nullptr;  // n x m (null: the model makes the transpose)
  index_t m = 0, n = 0;
};

template <typename T>
class WeightedModel {
 public:
  WeightedModel(const WeightedData<T>& d, index_t k, const Options& opt, const Terms<T>& terms)
      : d_(d), m_(d.m), n_(d.n), k_(k), opt_(opt), terms_(terms) {
    require(k >= 1, "n_components must be >= 1");
    require(opt.max_iter >= 0, "max_iter must be >= 0");
    require(terms.graph == nullptr && !terms.simplex && terms.robust != Robust::Band,
            "the weighted model takes no graph, simplex or band weights");
    require(opt.update_W && opt.update_H, "the weighted model updates both factors");
    require(d.X != nullptr, "the weighted model needs X");
    sweeps_ = opt.inner_sweeps > 0 ? opt.inner_sweeps : 2;
    // The H half-step runs the row kernels on X^T and M^T.
    if (d_.Xt == nullptr) {
      own_Xt_.resize(static_cast<std::size_t>(m_ * n_));
      transpose_into(d.X, m_, n_, own_Xt_.data());
      d_.Xt = own_Xt_.data();
    }
    if (d_.M != nullptr && d_.Mt == nullptr) {
      own_Mt_.resize(static_cast<std::size_t>(m_ * n_));
      transpose_into(d.M, m_, n_, own_Mt_.data());
      d_.Mt = own_Mt_.data();
    }
    H_.resize(static_cast<std::size_t>(k * n_));
    Wt_.resize(static_cast<std::size_t>(k * m_));
    if (terms.robust == Robust::Entry) {
      own_M_.resize(static_cast<std::size_t>(m_ * n_));
      own_Mt_.resize(static_cast<std::size_t>(m_ * n_));
      M_ = own_M_.data();
      Mt_ = own_Mt_.data();
    } else {
      require(d_.M != nullptr, "the weighted model needs the weights");
      M_ = d_.M;
      Mt_ = d_.Mt;
      observed_xx_ = observed_norm();
    }
  }

  index_t rows() const { return m_; }
  index_t cols() const { return n_; }
  index_t rank() const { return k_; }
  double sigma2() const { return sigma2_; }

  void start(T* W, const T* Ht) {
    if (terms_.robust == Robust::Entry) reweight_entries(W, Ht);
  }

  double update_W(T* W, const T* Ht, bool, bool want_objective) {
    transpose_into(Ht, n_, k_, H_.data());
    const double fit =
        masked_update_rows(d_.X, M_, m_, n_, W, H_.data(), k_, opt_.pen_W, opt_.solver, sweeps_, opt_.n_threads,
                           want_objective);
    if (!want_objective) return std::numeric_limits<double>::quiet_NaN();
    return finish_objective(fit, W, Ht);
  }

  void update_H(T* Ht, const T* W, bool = true) {
    transpose_into(W, m_, k_, Wt_.data());
    fit_ = masked_update_rows(d_.Xt, Mt_, n_, m_, Ht, Wt_.data(), k_, opt_.pen_H, opt_.solver, sweeps_,
                              opt_.n_threads);
  }

  void guard(T* W, T* Ht, const Scaled& with_w, const Scaled& with_h) {
    std::vector<T> dw(static_cast<std::size_t>(k_ * k_), T(0)), dh(static_cast<std::size_t>(k_ * k_), T(0));
    diagonal_gram(W, m_, dw.data());
    diagonal_gram(Ht, n_, dh.data());
    zero_collapsed(W, m_, Ht, n_, k_, dw.data(), dh.data(), observed_xx_);
    rebalance_drifted(W, m_, Ht, n_, k_, dw.data(), dh.data(), typed<T>(with_w), typed<T>(with_h));
  }

  double objective(T* W, const T* Ht) { return finish_objective(fit_, W, Ht); }

  void project_W(T*) {}

  void balance(T* W, T* Ht) {
    if (!unpenalised(opt_)) return;
    std::vector<T> GW(static_cast<std::size_t>(k_ * k_)), GH(static_cast<std::size_t>(k_ * k_));
    gram(W, m_, k_, GW.data(), opt_.n_threads);
    gram(Ht, n_, k_, GH.data(), opt_.n_threads);
    balance_columns(W, m_, Ht, n_, k_, GW.data(), GH.data());
  }

  void write_weights() const {
    if (terms_.robust == Robust::Entry && terms_.robust_weights)
      std::copy(own_M_.begin(), own_M_.end(), terms_.robust_weights);
  }

 private:
  // fit: sum_ij M_ij r_ij^2 at the current iterate (plain weights).
  double finish_objective(double fit, const T* W, const T* Ht) {
    const double pen = penalties(W, m_, k_, opt_.pen_W) + penalties(Ht, n_, k_, opt_.pen_H);
    if (terms_.robust == Robust::Entry) return reweight_entries(W, Ht) + pen;
    return 0.5 * fit + pen;
  }

  double observed_norm() const {
    double s = 0.0;  // sum_ij M_ij X_ij^2: the scale that collapsed components are judged against
    for (index_t i = 0; i < m_ * n_; ++i) s += static_cast<double>(M_[i]) * d_.X[i] * d_.X[i];
    return s;
  }

  void diagonal_gram(const T* Y, index_t rows, T* G) const {
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < k_; ++j) G[j * k_ + j] += Y[i * k_ + j] * Y[i * k_ + j];
  }

  // The entry weights at (W, Ht); returns the correntropy loss sum sigma^2 (1 - M).
  double reweight_entries(const T* W, const T* Ht) {
    sigma2_ = terms_.sigma2;
    if (!(sigma2_ > 0.0)) {
      sigma2_ = kSigmaScale * dense_residual(d_.X, m_, n_, W, Ht, k_, opt_.n_threads) /
                (static_cast<double>(m_) * static_cast<double>(n_));
      if (!(sigma2_ > 0.0)) sigma2_ = 1.0;
    }
    const double loss = correntropy_entry_weights(d_.X, m_, n_, W, Ht, k_, sigma2_, own_M_.data(), opt_.n_threads);
    transpose_into(own_M_.data(), m_, n_, own_Mt_.data());
    observed_xx_ = observed_norm();
    return loss;
  }

  WeightedData<T> d_;
  index_t m_, n_, k_;
  Options opt_;
  Terms<T> terms_;
  int sweeps_ = 2;
  const T* M_ = nullptr;
  const T* Mt_ = nullptr;
  double fit_ = 0.0, observed_xx_ = 0.0, sigma2_ = 0.0;
  std::vector<T> H_, Wt_, own_M_, own_Mt_, own_Xt_;
};

// ---------------------------------------------------------------- the loops

// Records iterate `it`'s objective; true when the fit stops there.
struct Progress {
  Result res;
  Stopping stopping;
  const Hook& hook;
  Cancellation& cancel;
  const char* solver;

  bool record(int it, double reported, double prev_for_rule, bool may_converge) {
    require_finite_loss(reported, it, solver);
    res.losses.push_back(reported);
    res.n_iter = it;
    if (hook && !hook(it, reported)) return true;
    if (may_converge && stopping.converged(prev_for_rule, reported)) {
      res.converged = true;
      return true;
    }
    cancel.check();  // Ctrl-C: once per iteration (the token rate-limits its own polls)
    return false;
  }
};

template <typename T, typename Model>
Result run_plain(Model& model, T* W, T* Ht, const Options& opt, const Hook& hook, Cancellation& cancel) {
  const index_t m = model.rows(), n = model.cols(), k = model.rank();
  Progress p{Result{}, Stopping{opt.tol}, hook, cancel, solver_name(opt.solver)};
  model.start(W, Ht);
  double prev = std::numeric_limits<double>::infinity();
  for (int it = 1; it <= opt.max_iter; ++it) {
    if (opt.update_W) model.update_W(W, Ht, /*gram_ok=*/true, false);
    model.update_H(Ht, W, opt.update_H);
    // (with a factor held fixed, its zero columns stay the caller's business)
    if (opt.update_W && opt.update_H) model.guard(W, Ht, {}, {});
    const double loss = model.objective(W, Ht);
    if (p.record(it, loss, prev, true)) break;
    prev = loss;
  }
  require_finite_factors(W, static_cast<std::size_t>(m * k), Ht, static_cast<std::size_t>(n * k), p.solver);
  p.res.sigma2 = model.sigma2();
  model.write_weights();
  return p.res;
}

// The fit loop with extrapolation (Ang & Gillis, "Accelerating nonnegative
// matrix factorization algorithms using extrapolation", Neural Computation
// 2019). Each half-step solves against the other factor's extrapolated point
// max(0, Y + beta (Y - Y_prev)) (projected back onto W's feasible set)
// instead of its last iterate; beta adapts, and after an iteration that
// raised the objective H is not extrapolated (a restart). The pair (W, H) of
// every iteration is a genuine iterate (H is the best response to W), so the
// returned pair is the best one seen, and losses[i] is the objective of the
// best pair after iteration i+1 (it never increases). X is still touched
// twice per iteration, plus one pass for a last W half-step against the
// returned H. Where the objective allows it, the returned pairs are balanced
// (||w_j|| = ||h_j||).
template <typename T, typename Model>
Result run_extrapolated(Model& model, T* W, T* Ht, const Options& opt, const Hook& hook, Cancellation& cancel) {
  const index_t m = model.rows(), n = model.cols(), k = model.rank();
  const int nt = opt.n_threads;
  const std::size_t mk = static_cast<std::size_t>(m * k), nk = static_cast<std::size_t>(n * k);
  Progress p{Result{}, Stopping{opt.tol}, hook, cancel, solver_name(opt.solver)};
  model.start(W, Ht);
  // W: the working (extrapolated) W; W_prev: the last plain W iterate.
  // H_hat: extrapolated H fed to the W step; H_prev: the last plain H.
  std::vector<T> W_prev(W, W + mk), H_hat(Ht, Ht + nk), H_prev(Ht, Ht + nk);
  std::vector<T> W_best(W, W + mk), H_best(Ht, Ht + nk);
  Extrapolation ex;
  double prev = std::numeric_limits<double>::infinity(), best = prev;
  for (int it = 1; it <= opt.max_iter; ++it) {
    model.update_W(W, H_hat.data(), /*gram_ok=*/false, false);
    // The start is not an iterate of the method: extrapolate from the second iteration on.
    bool kept = true;
    if (it == 1) {
      std::copy(W, W + mk, W_prev.begin());
    } else {
      kept = extrapolate_in_place(W, W_prev.data(), m, k, ex.beta, nt);
      if (kept) model.project_W(W);
    }
    model.update_H(H_hat.data(), W);  // now the plain H iterate
    // (W_prev and H_prev scale with the factors they extrapolate)
    model.guard(W, H_hat.data(), {{W_prev.data(), m}}, {{H_prev.data(), n}});
    const double loss = model.objective(W, H_hat.data());
    require_finite_loss(loss, it, p.solver);
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
    if (p.record(it, best, best_before, best < best_before)) break;
  }
  if (p.res.n_iter > 0) {
    std::copy(W_best.begin(), W_best.end(), W);
    std::copy(H_best.begin(), H_best.end(), Ht);
    // W is an extrapolated point: one more W half-step against the returned
    // H (one more pass over X; it can only lower the objective) makes W the
    // response to H, as in the plain loop, so that transform(X) reproduces it.
    const double last = model.update_W(W, Ht, false, true);
    p.res.losses.back() = std::min(p.res.losses.back(), last);
    // Extrapolating W and H can move scale from one factor to the other
    // (W H is unchanged by w_j c, h_j / c): hand back balanced pairs,
    // ||w_j|| = ||h_j||, instead of an accident of the path.
    model.balance(W, Ht);
    require_finite_factors(W, mk, Ht, nk, p.solver);
  }
  p.res.sigma2 = model.sigma2();
  model.write_weights();
  return p.res;
}

// The fit: the extrapolated loop when asked for and sound (both factors
// updated; not MU, whose multiplicative form cannot leave the zeros that
// projecting an extrapolated point creates), else the plain loop.
template <typename T, typename Model>
Result fit_model(Model& model, T* W, T* Ht, const Options& opt, const Hook& hook,
                 Cancellation& cancel = no_cancellation()) {
  require(!(opt.extrapolate && opt.solver == Solver::Mu),
          "extrapolation does not work with solver 'mu' (use 'hals' or 'anls')");
  if (opt.extrapolate && opt.update_W && opt.update_H) return run_extrapolated(model, W, Ht, opt, hook, cancel);
  return run_plain(model, W, Ht, opt, hook, cancel);
}

// Fits W (m x k) and Ht (n x k) in place on the X operator, with the terms
// (graph, simplex, band correntropy) of `terms`. `hook(iteration, loss)` is
// called after every iteration (if set) and stops the fit by returning false.
template <typename T, typename Op>
Result fit(const Op& X, T* W, T* Ht, index_t k, const Options& opt, const Hook& hook,
           Cancellation& cancel = no_cancellation(), const Terms<T>& terms = Terms<T>{}) {
  GramModel<T, Op> model(X, k, opt, terms);
  return fit_model(model, W, Ht, opt, hook, cancel);
}

// The weighted fit (missing values, masks, entry correntropy) on dense X.
template <typename T>
Result fit_weighted(const WeightedData<T>& data, T* W, T* Ht, index_t k, const Options& opt, const Hook& hook,
                    Cancellation& cancel = no_cancellation(), const Terms<T>& terms = Terms<T>{}) {
  WeightedModel<T> model(data, k, opt, terms);
  return fit_model(model, W, Ht, opt, hook, cancel);
}

}  // namespace nmf
}  // namespace rankfold
