// Row-wise update rules shared by both halves of an NMF iteration.
//
// Every half-step has the same shape: with the other factor fixed, minimise
//   0.5 ||X - Y F^T||^2 + l1 sum(Y) + 0.5 l2 ||Y||^2,   Y >= 0,
// which, given A = X F (rows x k) and G = F^T F (k x k), splits into one
// independent k-dimensional problem per row y of Y:
//   0.5 y^T G y - a^T y + l1 sum(y) + 0.5 l2 |y|^2.
// So the W update works on (W, X H^T, H H^T) and the H update on
// (H^T, X^T W, W^T W) with the very same kernels, parallel over rows, each
// row staying in cache for all its inner sweeps.
//
// HALS: a column-by-column HALS sweep updates column j of Y using only the
// current Y; restricted to one row it is a Gauss-Seidel pass over that row's
// k coordinates, so a row-wise sweep gives exactly the iterates of textbook
// (column-wise) HALS, and several inner sweeps cost k^2 per row each, much
// less than recomputing A (accelerated HALS, Gillis & Glineur 2012).
#pragma once

#include <Eigen/Cholesky>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "rankfold/core/threads.hpp"
#include "rankfold/core/types.hpp"
#include "rankfold/core/vec.hpp"

namespace rankfold {
namespace nmf {

struct Penalty {
  double l1 = 0.0;
  double l2 = 0.0;
};

// Inner sweeps: `max_sweeps` per row; with `early_stop` > 0 a block of rows
// stops once the squared change of a sweep falls below early_stop^2 times its
// first one.
//
// Rows are processed in tiles of `Lanes` rows stored transposed (k x Lanes):
// the Gauss-Seidel recurrence over coordinates is sequential within a row,
// but independent across rows, so the tile runs the recurrence in SIMD lanes
// and each coordinate update costs k vector FMAs for Lanes rows. The
// arithmetic per row is the scalar one, in the same order. The tile is 128
// bytes of lanes whatever the vector width (two AVX-512, four AVX2 or eight
// SSE registers), so that the early stop, decided per tile, and hence the
// iterates are the same on every SIMD path.
template <typename T>
void update_rows_hals(T* Y, const T* A, const T* G, index_t rows, index_t k, Penalty pen, int max_sweeps,
                      double early_stop, int n_threads) {
  constexpr index_t Lanes = static_cast<index_t>(128 / sizeof(T));
  constexpr int NV = static_cast<int>(Lanes / kVec<T>);  // vectors per coordinate of a tile
  constexpr index_t w = kVec<T>;
  std::vector<T> inv_hess(static_cast<std::size_t>(k));
  std::vector<char> active(static_cast<std::size_t>(k));
  for (index_t j = 0; j < k; ++j) {
    // A curvature so small that its inverse overflows (a component that has
    // all but vanished) is no curvature: the coordinate is left as it is.
    const T h = static_cast<T>(G[j * k + j] + pen.l2);
    active[j] = h > T(0) && std::isfinite(T(1) / h);
    inv_hess[j] = active[j] ? T(1) / h : T(0);
  }
  const T l1 = static_cast<T>(pen.l1), l2 = static_cast<T>(pen.l2);
  const T tiny = std::numeric_limits<T>::min();
  const double stop2 = early_stop * early_stop;
  const index_t n_tiles = (rows + Lanes - 1) / Lanes;
  parallel_for(
      0, n_tiles, n_threads,
      [&](index_t tile) {
        const index_t r0 = tile * Lanes, nr = std::min(Lanes, rows - r0);
        std::vector<T> buf(static_cast<std::size_t>(2 * k * Lanes), T(0));
        T* y = buf.data();       // y[j * Lanes + r]
        T* a = y + k * Lanes;    // a[j * Lanes + r]
        for (index_t r = 0; r < nr; ++r)
          for (index_t j = 0; j < k; ++j) {
            y[j * Lanes + r] = Y[(r0 + r) * k + j];
            a[j * Lanes + r] = A[(r0 + r) * k + j];
          }
        alignas(64) T grad[Lanes];
        double first = 0.0;
        for (int s = 0; s < max_sweeps; ++s) {
          double change = 0.0;
          for (index_t j = 0; j < k; ++j) {
            if (!active[j]) continue;
            const T* g = G + j * k;
            T* yj = y + j * Lanes;
            const T* aj = a + j * Lanes;
            // grad = l1 - a_j + l2 y_j + sum_l G_jl y_l over the tile's lanes,
            // NV vectors, with even and odd l in separate accumulators so
            // consecutive FMAs do not wait for each other.
            Vec<T> ge[NV], go[NV];
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) {
              ge[v] = (l2 * vload<T>(yj + v * w) + l1) - vload<T>(aj + v * w);
              go[v] = Vec<T>{};
            }
            index_t l = 0;
            for (; l + 1 < k; l += 2) {
              const T* ya = y + l * Lanes;
              const T* yb = ya + Lanes;
              const T ga = g[l], gb = g[l + 1];
#pragma GCC unroll 8
              for (int v = 0; v < NV; ++v) {
                ge[v] += ga * vload<T>(ya + v * w);
                go[v] += gb * vload<T>(yb + v * w);
              }
            }
            if (l < k) {
              const T* ya = y + l * Lanes;
#pragma GCC unroll 8
              for (int v = 0; v < NV; ++v) ge[v] += g[l] * vload<T>(ya + v * w);
            }
#pragma GCC unroll 8
            for (int v = 0; v < NV; ++v) vstore<T>(grad + v * w, ge[v] + go[v]);
            const T ih = inv_hess[j];
            T ch = T(0);
#pragma omp simd reduction(+ : ch)
            for (index_t r = 0; r < Lanes; ++r) {
              // Values below the smallest normal number become 0: denormals
              // would slow every later sweep down by orders of magnitude.
              T updated = yj[r] - grad[r] * ih;
              updated = updated > tiny ? updated : T(0);
              const T d = updated - yj[r];
              ch += d * d;
              yj[r] = updated;
            }
            change += static_cast<double>(ch);
          }
          if (early_stop <= 0.0) continue;
          if (s == 0)
            first = change;
          else if (change <= stop2 * first)
            break;
        }
        for (index_t r = 0; r < nr; ++r)
          for (index_t j = 0; j < k; ++j) Y[(r0 + r) * k + j] = y[j * Lanes + r];
      },
      1);
}

// Multiplicative update (Lee & Seung, with scikit-learn's elastic-net terms
// in the denominator): y_j *= a_j / ((G y)_j + l1 + l2 y_j), all j from the
// old y (Jacobi), a zero (or subnormal) denominator replaced by float32 epsilon. The
// denominators of a block of rows are one small GEMM (Y_b G, G symmetric):
// per-row dot products of length k would spend most of their time in
// horizontal reductions.
template <typename T>
void update_rows_mu(T* Y, const T* A, const T* G, index_t rows, index_t k, Penalty pen, int n_threads) {
  const T l1 = static_cast<T>(pen.l1), l2 = static_cast<T>(pen.l2);
  const T eps = std::numeric_limits<float>::epsilon();
  const T tiny = std::numeric_limits<T>::min();  // a subnormal denominator overflows the ratio too
  constexpr index_t kBlock = 256;
  const index_t n_blocks = (rows + kBlock - 1) / kBlock;
  auto g = row_view(G, k, k);
  parallel_for(
      0, n_blocks, n_threads,
      [&](index_t b) {
        const index_t r0 = b * kBlock, nr = std::min(kBlock, rows - r0);
        RowMatrix<T> D(nr, k);
        D.noalias() = row_view(static_cast<const T*>(Y + r0 * k), nr, k) * g;
        for (index_t r = 0; r < nr; ++r) {
          T* y = Y + (r0 + r) * k;
          const T* a = A + (r0 + r) * k;
          for (index_t j = 0; j < k; ++j) {
            T s = D(r, j);
            if (l1 > T(0)) s += l1;
            if (l2 > T(0)) s += l2 * y[j];
            y[j] *= a[j] / (s < tiny ? eps : s);
          }
        }
      },
      1);
}

// Exact nonnegative least squares in Gram form for one row:
//   min 0.5 y^T G y - b^T y,  y >= 0
// by the Lawson-Hanson active-set method (finite termination), solved in
// double. Coordinates with G_jj == 0 stay 0. `y` is overwritten.
class NnlsSolver {
 public:
  explicit NnlsSolver(const Eigen::MatrixXd& G) : G_(G), k_(G.rows()) {
    scale_ = std::max(1e-300, G.diagonal().cwiseAbs().maxCoeff());
    tol_ = 1e-12 * scale_ * static_cast<double>(k_);
  }

  // With max_added >= 0, gives up (returns false, y the last feasible
  // iterate) once that many indices have entered the passive set: block
  // principal pivoting uses a capped run to solve cheaply the rows whose
  // solution has only a few positive coordinates.
  bool solve(const Eigen::VectorXd& b, Eigen::VectorXd& y, int max_added = -1) {
    const index_t k = k_;
    y.setZero(k);
    std::vector<char> passive(static_cast<std::size_t>(k), 0);
    Eigen::VectorXd w = b;  // negative gradient at y = 0
    Eigen::VectorXd z(k);
    const int max_outer = static_cast<int>(3 * k + 10);
    bool converged = false;
    for (int outer = 0; outer < max_outer; ++outer) {
      index_t best = -1;
      double best_w = tol_ * std::max(1.0, b.cwiseAbs().maxCoeff() / scale_);
      for (index_t j = 0; j < k; ++j)
        if (!passive[j] && G_(j, j) > 0.0 && w[j] > best_w) {
          best_w = w[j];
          best = j;
        }
      if (best < 0) {
        converged = true;
        break;
      }
      if (max_added >= 0 && outer >= max_added) break;
      passive[best] = 1;
      for (int inner = 0; inner < 3 * k + 10; ++inner) {
        solve_passive(b, passive, z);
        double alpha = 1.0;
        bool feasible = true;
        for (index_t j = 0; j < k; ++j)
          if (passive[j] && z[j] <= 0.0) {
            feasible = false;
            const double denom = y[j] - z[j];
            if (denom > 0.0) alpha = std::min(alpha, y[j] / denom);
          }
        if (feasible) {
          y = z;
          break;
        }
        y += alpha * (z - y);
        for (index_t j = 0; j < k; ++j)
          if (passive[j] && y[j] <= 1e-15 * scale_) {
            passive[j] = 0;
            y[j] = 0.0;
          }
      }
      w = b - G_ * y;
    }
    for (index_t j = 0; j < k; ++j) y[j] = std::max(0.0, y[j]);
    return converged;
  }

 private:
  void solve_passive(const Eigen::VectorXd& b, const std::vector<char>& passive, Eigen::VectorXd& z) {
    idx_.clear();
    for (index_t j = 0; j < k_; ++j)
      if (passive[j]) idx_.push_back(j);
    const index_t p = static_cast<index_t>(idx_.size());
    Eigen::MatrixXd sub(p, p);
    Eigen::VectorXd rhs(p);
    for (index_t a = 0; a < p; ++a) {
      rhs[a] = b[idx_[a]];
      for (index_t c = 0; c < p; ++c) sub(a, c) = G_(idx_[a], idx_[c]);
    }
    Eigen::VectorXd sol = sub.ldlt().solve(rhs);
    z.setZero(k_);
    for (index_t a = 0; a < p; ++a) z[idx_[a]] = std::isfinite(sol[a]) ? sol[a] : 0.0;
  }

  Eigen::MatrixXd G_;
  index_t k_;
  double scale_, tol_;
  std::vector<index_t> idx_;
};

// Every row solved exactly: y = argmin over y >= 0 of the row problem.
template <typename T>
void update_rows_nnls(T* Y, const T* A, const T* G, index_t rows, index_t k, Penalty pen, int n_threads) {
  Eigen::MatrixXd g(k, k);
  for (index_t i = 0; i < k; ++i)
    for (index_t j = 0; j < k; ++j) g(i, j) = static_cast<double>(G[i * k + j]) + (i == j ? pen.l2 : 0.0);
  parallel_region(n_threads, [&](int t, int nt) {
    NnlsSolver solver(g);
    Eigen::VectorXd b(k), y(k);
    index_t lo, hi;
    split_range(rows, t, nt, lo, hi);
    for (index_t r = lo; r < hi; ++r) {
      for (index_t j = 0; j < k; ++j) b[j] = static_cast<double>(A[r * k + j]) - pen.l1;
      solver.solve(b, y);
      for (index_t j = 0; j < k; ++j) Y[r * k + j] = static_cast<T>(y[j]);
    }
  });
}

}  // namespace nmf
}  // namespace rankfold
