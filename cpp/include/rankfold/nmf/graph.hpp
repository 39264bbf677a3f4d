// Graph-regularized W half-step (GNMF, Cai et al. 2011; the graph part of
// structured sparse NMF, Zhu et al. 2014): with H fixed, minimise over W >= 0
//   0.5 ||X - W H||^2 + l1 sum(W) + 0.5 l2 ||W||^2 + 0.5 lam tr(W^T L W)
// where L = D - S is the Laplacian of a symmetric, nonnegative sample
// affinity S with zero diagonal and D = diag(S 1). Given A = X H^T and
// G = H H^T the gradient is  W G - A + l1 + l2 W + lam (D W - S W).
//
// The Laplacian couples the rows of W, so the row-independent kernels of
// updates.hpp do not apply; both rules below compute P = S W once (a sparse
// product, nnz(S) k flops) and then work row by row again:
//
// * HALS: textbook column-wise HALS updates column j of W with every other
//   column at its current value and each pixel's neighbours at their values
//   before the column update (a projected Jacobi step across rows, which
//   decreases the objective because 2 diag(M) - Hess = (G_jj + l2) I +
//   lam (D + S) is positive semidefinite). (S W)_:j only changes when column j
//   does, so a P computed at the start of the sweep holds the very values
//   column j needs: row-wise Gauss-Seidel with that P gives exactly the
//   column-wise iterates.
// * MU: W <- W * (A + lam S W) / (W G + l1 + l2 W + lam D W), the GNMF rule
//   with scikit-learn's elastic-net terms in the denominator.
#pragma once

#include <algorithm>
#include <limits>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/sparse.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/nmf/operator.hpp"
#include "rankfold/nmf/updates.hpp"

namespace rankfold {
namespace nmf {

// The graph term's pieces: S (rows x rows, symmetric, zero diagonal), the
// degrees D_ii = sum_j S_ij, and the weight lam (already scaled).
template <typename T, typename I>
struct Graph {
  CompressedView<T, I> S;
  const T* degree = nullptr;
  double lam = 0.0;
};

template <typename T, typename I>
void graph_update_rows_hals(T* W, const T* A, const T* G, index_t rows, index_t k, Penalty pen,
                            const Graph<T, I>& g, int sweeps, int n_threads) {
  require(g.S.rows == rows && g.S.cols == rows, "the graph must be n_samples x n_samples");
  std::vector<T> P(static_cast<std::size_t>(rows * k));
  const T l1 = static_cast<T>(pen.l1), l2 = static_cast<T>(pen.l2), lam = static_cast<T>(g.lam);
  for (int s = 0; s < sweeps; ++s) {
    spmm(g.S, W, k, k, P.data(), k, n_threads);
    parallel_for(
        0, rows, n_threads,
        [&](index_t r) {
          T* w = W + r * k;
          const T* a = A + r * k;
          const T* p = P.data() + r * k;
          const T dr = lam * g.degree[r];
          for (index_t j = 0; j < k; ++j) {
            const T hess = G[j * k + j] + l2 + dr;
            if (!(hess > T(0))) continue;
            const T* gj = G + j * k;
            T grad = T(0);
            for (index_t l = 0; l < k; ++l) grad += gj[l] * w[l];
            grad += l1 + (l2 + dr) * w[j] - a[j] - lam * p[j];
            const T updated = w[j] - grad / hess;
            w[j] = updated > std::numeric_limits<T>::min() ? updated : T(0);
          }
        },
        256);
  }
}

template <typename T, typename I>
void graph_update_rows_mu(T* W, const T* A, const T* G, index_t rows, index_t k, Penalty pen,
                          const Graph<T, I>& g, int n_threads) {
  require(g.S.rows == rows && g.S.cols == rows, "the graph must be n_samples x n_samples");
  std::vector<T> P(static_cast<std::size_t>(rows * k));
  spmm(g.S, W, k, k, P.data(), k, n_threads);
  const T l1 = static_cast<T>(pen.l1), l2 = static_cast<T>(pen.l2), lam = static_cast<T>(g.lam);
  const T eps = std::numeric_limits<float>::epsilon();
  parallel_for(
      0, rows, n_threads,
      [&](index_t r) {
        T* w = W + r * k;
        const T* a = A + r * k;
        const T* p = P.data() + r * k;
        const T dr = lam * g.degree[r];
        std::vector<T> factor(static_cast<std::size_t>(k));
        for (index_t j = 0; j < k; ++j) {
          const T* gj = G + j * k;
          T den = T(0);
          for (index_t l = 0; l < k; ++l) den += gj[l] * w[l];
          if (l1 > T(0)) den += l1;
          den += (l2 + dr) * w[j];
          factor[j] = (a[j] + lam * p[j]) / (den == T(0) ? eps : den);
        }
        for (index_t j = 0; j < k; ++j) w[j] *= factor[j];
      },
      256);
}

// tr(W^T L W) = sum_i D_ii |w_i|^2 - sum_ij S_ij w_i . w_j, in double.
template <typename T, typename I>
double graph_trace(const T* W, index_t rows, index_t k, const CompressedView<T, I>& S, const T* degree,
                   int n_threads) {
  require(S.rows == rows && S.cols == rows, "the graph must be n_samples x n_samples");
  const index_t block = 1024;
  return blocked_sum(rows, block, n_threads, [&](index_t lo, index_t hi) {
    double s = 0.0;
    for (index_t r = lo; r < hi; ++r) {
      const T* w = W + r * k;
      double self = 0.0;
      for (index_t j = 0; j < k; ++j) self += static_cast<double>(w[j]) * w[j];
      s += static_cast<double>(degree[r]) * self;
      for (I q = S.indptr[r]; q < S.indptr[r + 1]; ++q) {
        const T* v = W + static_cast<index_t>(S.indices[q]) * k;
        double dot = 0.0;
        for (index_t j = 0; j < k; ++j) dot += static_cast<double>(w[j]) * v[j];
        s -= static_cast<double>(S.data[q]) * dot;
      }
    }
    return s;
  });
}

}  // namespace nmf
}  // namespace rankfold
