// Robust NMF with a correntropy metric (Wang, Pan, Xiang & Zhu, "Robust
// hyperspectral unmixing with correntropy based metric"): maximise
//   sum_b exp(-|r_b|^2 / (2 sigma^2))   (per band b, r_b = x_b - W h_b)
// or the same sum over single entries. Half-quadratic optimisation turns it
// into an iteratively re-weighted NMF: weights w = exp(-r^2 / (2 sigma^2))
// from the current residuals, then one weighted NMF iteration. The loop is
// the engine's (fit.hpp: the correntropy terms of its models); the kernels
// here are the pieces that cost a pass over X or have no unweighted twin.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/nmf/solver.hpp"

namespace rankfold {
namespace nmf {

// Entry weights M_ij = exp(-(X_ij - w_i . h_j)^2 / (2 sigma2)) for dense,
// row-major X (m x n), W (m x k), Ht (n x k). Returns the correntropy-induced
// loss sum_ij sigma2 (1 - M_ij) in double (-> 0.5 sum r^2 as sigma grows).
template <typename T>
double correntropy_entry_weights(const T* X, index_t m, index_t n, const T* W, const T* Ht, index_t k,
                                 double sigma2, T* M, int n_threads) {
  require(sigma2 > 0.0, "sigma must be > 0");
  const double inv = 1.0 / (2.0 * sigma2);
  return blocked_sum(m, 64, n_threads, [&](index_t lo, index_t hi) {
    double loss = 0.0;
    for (index_t i = lo; i < hi; ++i) {
      const T* x = X + i * n;
      const T* w = W + i * k;
      T* out = M + i * n;
      for (index_t c = 0; c < n; ++c) {
        const T* h = Ht + c * k;
        double fit = 0.0;
        for (index_t j = 0; j < k; ++j) fit += static_cast<double>(w[j]) * h[j];
        const double r = static_cast<double>(x[c]) - fit;
        const double weight = std::exp(-r * r * inv);
        out[c] = static_cast<T>(weight);
        loss += sigma2 * (1.0 - weight);
      }
    }
    return loss;
  });
}

// sum_ij (X_ij - w_i . h_j)^2 for dense, row-major X, in double.
template <typename T>
double dense_residual(const T* X, index_t m, index_t n, const T* W, const T* Ht, index_t k, int n_threads) {
  return blocked_sum(m, 64, n_threads, [&](index_t lo, index_t hi) {
    double s = 0.0;
    for (index_t i = lo; i < hi; ++i)
      for (index_t c = 0; c < n; ++c) {
        double fit = 0.0;
        for (index_t j = 0; j < k; ++j) fit += static_cast<double>(W[i * k + j]) * Ht[c * k + j];
        const double r = static_cast<double>(X[i * n + c]) - fit;
        s += r * r;
      }
    return s;
  });
}

// Rows with their own scale: row r of Y minimises
//   s_r (0.5 y^T G y - a_r^T y) + l1 sum(y) + 0.5 l2 |y|^2,  y >= 0.
// This is the H half-step of band-weighted NMF (s = the band weights): the
// weights rescale each band's fit term but not the penalty on H. With l1 =
// l2 = 0 the scale cancels and updates.hpp's kernels give the same answer.
template <typename T>
void update_rows_scaled(T* Y, const T* A, const T* G, const T* scale, index_t rows, index_t k, Penalty pen,
                        Solver solver, int sweeps, int n_threads) {
  const T l1 = static_cast<T>(pen.l1), l2 = static_cast<T>(pen.l2);
  const T eps = std::numeric_limits<float>::epsilon();
  if (solver == Solver::Anls) {
    parallel_region(n_threads, [&](int t, int nt) {
      Eigen::MatrixXd g(k, k);
      Eigen::VectorXd b(k), y(k);
      index_t lo, hi;
      split_range(rows, t, nt, lo, hi);
      for (index_t r = lo; r < hi; ++r) {
        const double s = scale[r];
        for (index_t i = 0; i < k; ++i) {
          for (index_t j = 0; j < k; ++j) g(i, j) = s * static_cast<double>(G[i * k + j]);
          g(i, i) += pen.l2;
          b[i] = s * static_cast<double>(A[r * k + i]) - pen.l1;
        }
        NnlsSolver nnls(g);
        nnls.solve(b, y);
        for (index_t j = 0; j < k; ++j) Y[r * k + j] = static_cast<T>(y[j]);
      }
    });
    return;
  }
  parallel_for(
      0, rows, n_threads,
      [&](index_t r) {
        T* y = Y + r * k;
        const T* a = A + r * k;
        const T s = scale[r];
        if (solver == Solver::Hals) {
          for (int sw = 0; sw < sweeps; ++sw)
            for (index_t j = 0; j < k; ++j) {
              const T hess = s * G[j * k + j] + l2;
              if (!(hess > T(0))) continue;
              const T* gj = G + j * k;
              T gy = T(0);
              for (index_t l = 0; l < k; ++l) gy += gj[l] * y[l];
              const T grad = s * (gy - a[j]) + l1 + l2 * y[j];
              const T updated = y[j] - grad / hess;
              y[j] = updated > std::numeric_limits<T>::min() ? updated : T(0);
            }
          return;
        }
        std::vector<T> factor(static_cast<std::size_t>(k));
        for (index_t j = 0; j < k; ++j) {
          const T* gj = G + j * k;
          T den = T(0);
          for (index_t l = 0; l < k; ++l) den += gj[l] * y[l];
          den = s * den + l1 + l2 * y[j];
          factor[j] = s * a[j] / (den == T(0) ? eps : den);
        }
        for (index_t j = 0; j < k; ++j) y[j] *= factor[j];
      },
      256);
}

}  // namespace nmf
}  // namespace rankfold
