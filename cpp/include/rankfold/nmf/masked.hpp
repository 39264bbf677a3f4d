// Weighted NMF for missing values: minimise
//   0.5 sum_ij M_ij (X_ij - (W H)_ij)^2 + penalties
// with nonnegative weights M (0 = missing). Dense X and M only.
//
// With weights, the Gram trick of the unweighted solvers is gone (every row
// has its own Gram matrix H diag(M_i) H^T), so each row keeps its residual
// r = x - F y in cache and updates it after every coordinate move:
// HALS moves cost 2 n flops per coordinate, MU needs F y once per row, ANLS
// builds the row's own k x k Gram matrix and solves it exactly.
// Both halves use the same kernels: the H half-step runs them on X^T, M^T.
#pragma once

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/nmf/solver.hpp"
#include "rankfold/nmf/updates.hpp"

namespace rankfold {
namespace nmf {

// One half-step over `rows` rows of (X, M) (row-major, `cols` wide) updating
// Y (rows x k) with F^T given as Ft (k x cols, row-major). Returns the
// weighted squared residual sum_ij M_ij r_ij^2 after the update, or 0 when
// `want_loss` is false (MU and ANLS then skip recomputing the residual).
template <typename T>
double masked_update_rows(const T* X, const T* M, index_t rows, index_t cols, T* Y, const T* Ft, index_t k,
                          Penalty pen, Solver solver, int sweeps, int n_threads, bool want_loss = true) {
  std::vector<double> row_loss(static_cast<std::size_t>(rows), 0.0);
  const T l1 = static_cast<T>(pen.l1), l2 = static_cast<T>(pen.l2);
  const T eps = std::numeric_limits<float>::epsilon();
  parallel_region(n_threads, [&](int t, int nt) {
    std::vector<T> r(static_cast<std::size_t>(cols)), hess(static_cast<std::size_t>(k)),
        num(static_cast<std::size_t>(k)), den(static_cast<std::size_t>(k));
    Eigen::MatrixXd G(k, k);
    Eigen::VectorXd b(k), ysol(k);
    index_t lo, hi;
    split_range(rows, t, nt, lo, hi);
    for (index_t i = lo; i < hi; ++i) {
      const T* x = X + i * cols;
      const T* m = M + i * cols;
      T* y = Y + i * k;
      auto residual = [&] {
        for (index_t l = 0; l < cols; ++l) r[l] = x[l];
        for (index_t j = 0; j < k; ++j) {
          const T yj = y[j];
          if (yj == T(0)) continue;
          const T* f = Ft + j * cols;
#pragma omp simd
          for (index_t l = 0; l < cols; ++l) r[l] -= yj * f[l];
        }
      };
      residual();
      if (solver == Solver::Hals) {
        for (index_t j = 0; j < k; ++j) {
          const T* f = Ft + j * cols;
          T h = T(0);
#pragma omp simd reduction(+ : h)
          for (index_t l = 0; l < cols; ++l) h += m[l] * f[l] * f[l];
          hess[j] = h + l2;
        }
        for (int s = 0; s < sweeps; ++s)
          for (index_t j = 0; j < k; ++j) {
            if (!(hess[j] > T(0)) || !std::isfinite(T(1) / hess[j])) continue;  // no curvature left
            const T* f = Ft + j * cols;
            T g = T(0);
#pragma omp simd reduction(+ : g)
            for (index_t l = 0; l < cols; ++l) g += m[l] * r[l] * f[l];
            const T grad = l1 + l2 * y[j] - g;
            const T updated = std::max(T(0), y[j] - grad / hess[j]);
            const T d = updated - y[j];
            if (d == T(0)) continue;
            y[j] = updated;
#pragma omp simd
            for (index_t l = 0; l < cols; ++l) r[l] -= d * f[l];
          }
      } else if (solver == Solver::Mu) {
        for (index_t j = 0; j < k; ++j) {
          const T* f = Ft + j * cols;
          T a = T(0), c = T(0);
#pragma omp simd reduction(+ : a, c)
          for (index_t l = 0; l < cols; ++l) {
            a += m[l] * x[l] * f[l];
            c += m[l] * (x[l] - r[l]) * f[l];
          }
          num[j] = a;
          if (l1 > T(0)) c += l1;
          if (l2 > T(0)) c += l2 * y[j];
          den[j] = c < std::numeric_limits<T>::min() ? eps : c;
        }
        for (index_t j = 0; j < k; ++j) y[j] *= num[j] / den[j];
        if (want_loss) residual();
      } else {
        G.setZero();
        b.setZero();
        for (index_t l = 0; l < cols; ++l) {
          const double w = m[l];
          if (w == 0.0) continue;
          for (index_t a = 0; a < k; ++a) {
            const double fa = Ft[a * cols + l];
            b[a] += w * x[l] * fa;
            for (index_t c = 0; c <= a; ++c) G(a, c) += w * fa * Ft[c * cols + l];
          }
        }
        for (index_t a = 0; a < k; ++a) {
          for (index_t c = 0; c < a; ++c) G(c, a) = G(a, c);
          G(a, a) += pen.l2;
          b[a] -= pen.l1;
        }
        NnlsSolver nnls(G);
        nnls.solve(b, ysol);
        // With k above the data's rank a row's Gram matrix is singular and the
        // active-set solve can land slightly above the optimum; the half-step
        // keeps whichever of the old and the new row has the lower objective
        // 0.5 y^T G y - b^T y, so that the fit never climbs.
        Eigen::VectorXd yold(k);
        for (index_t j = 0; j < k; ++j) yold[j] = static_cast<double>(y[j]);
        const double f_new = 0.5 * ysol.dot(G * ysol) - b.dot(ysol);
        const double f_old = 0.5 * yold.dot(G * yold) - b.dot(yold);
        if (f_new <= f_old || !std::isfinite(f_old))
          for (index_t j = 0; j < k; ++j) y[j] = static_cast<T>(ysol[j]);
        if (want_loss) residual();
      }
      if (!want_loss) continue;
      double loss = 0.0;
      for (index_t l = 0; l < cols; ++l) loss += static_cast<double>(m[l]) * r[l] * r[l];
      row_loss[static_cast<std::size_t>(i)] = loss;
    }
  });
  double total = 0.0;
  for (double v : row_loss) total += v;
  return total;
}

template <typename T>
void transpose_into(const T* A, index_t rows, index_t cols, T* out) {
  for (index_t i = 0; i < rows; ++i)
    for (index_t j = 0; j < cols; ++j) out[j * rows + i] = A[i * cols + j];
}

// Transform with missing values: each row of W solved exactly (weighted NNLS).
template <typename T>
void masked_solve_rows(const T* X, const T* M, index_t rows, index_t cols, T* W, const T* Ht, index_t k, Penalty pen,
                       int n_threads) {
  std::vector<T> H(static_cast<std::size_t>(k * cols));
  transpose_into(Ht, cols, k, H.data());
  masked_update_rows(X, M, rows, cols, W, H.data(), k, pen, Solver::Anls, 1, n_threads, false);
}

}  // namespace nmf
}  // namespace rankfold
