// Subspace (block coordinate) descent for ALS half sweeps: iALS++.
//
// Rendle, Krichene, Zhang & Koren, "iALS++: Speeding up Matrix Factorization
// with Subspace Optimization" (2021). The row problem of a half sweep is a
// quadratic min_x x^T A x - 2 b^T x with
//   implicit:  A = Y^T Y + Y_u^T diag(c - 1) Y_u + lambda I,  b = Y_u^T c
//   explicit:  A = Z_u^T Z_u + lambda n_u I,                   b = Z_u^T t_u
// (als.hpp). ALS solves it exactly at O(n_u d^2 + d^3) per row; conjugate
// gradients approximately at O(d^2 + n_u d) per step. Subspace descent splits
// the d coordinates into blocks of b and solves each block exactly with the
// others fixed (one pass over the blocks per sweep):
//   H_SS delta = -(A x - b)_S,  x_S += delta,
// at O(n_u b^2 + b^3) per row and block, so O(n_u d b + d b^2) per row and
// sweep, plus the Gramian term (Y^T Y x)_S, which is one matrix product
// X G_{:,S} per block for all rows (O(rows d b) per block, d^2 per row and
// sweep, at matrix-matrix speed). b = d is exactly ALS (one block, solved by
// Cholesky); b = 1 is coordinate descent (iCD).
//
// The gradient needs the current predictions s_q = x_u . y_i of every stored
// entry; they are computed once per sweep (O(nnz d)) and updated after each
// block (O(n_u b)). Memory: nnz predictions plus per-thread block scratch.
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/interrupt.hpp"
#include "../core/sparse.hpp"
#include "../core/threads.hpp"
#include "../core/types.hpp"
#include "als.hpp"

namespace rankfold {
namespace completion {

// What a subspace sweep solves: implicit feedback (confidence 1 + alpha r, the
// Gramian of the other side shared by all rows) or explicit ratings
// (weighted-lambda penalty, optional own bias learnt as an extra coordinate
// against a constant 1 on the other side).
template <typename T>
struct SubspaceProblem {
  bool implicit = true;
  double alpha = 1.0;               // implicit: confidence 1 + alpha r
  const T* gram = nullptr;          // implicit: Y^T Y (k x k, column-major); null: computed here
  double mu = 0.0;                  // explicit: global mean
  const T* other_bias = nullptr;    // explicit: the other side's biases (may be null)
  T* own_bias = nullptr;            // explicit: this side's biases, learnt (null: no bias)
};

namespace detail {

template <typename T>
struct SubspaceScratch {
  ColMatrix<T> Ys;  // b x n_u: the block's coordinates of the row's other-side vectors
  ColMatrix<T> Yw;  // b x n_u: the same, each column times its entry's Hessian weight
  ColMatrix<T> H;   // padded bp x b block system
  ColMatrix<T> P;   // implicit: (rows of a sub-block) x b, the Gramian term X G_{:,S}
  Vector<T> coef, weight, grad, inv_diag, delta;  // per entry: gradient coefficient, Hessian weight
};

}  // namespace detail

// One half sweep of subspace descent over every row of X (rows x k,
// row-major, updated in place: its current values are the starting point)
// against Y (cols x k). block: the block size b (1 <= b; clipped to the
// number of coordinates). Rows without observations get zero (their exact
// solution), as in ALS.
template <typename T, typename I>
void subspace_half_sweep(const CompressedView<T, I>& R, const T* Y, T* X, index_t k, index_t block,
                         const SubspaceProblem<T>& prob, const SolveOptions& opt) {
  require(k >= 1, "factors must be >= 1");
  require(block >= 1, "block_size must be >= 1, got ", block);
  const bool bias = !prob.implicit && prob.own_bias != nullptr;
  const index_t d = k + (bias ? 1 : 0);  // coordinates: the factors, then the bias
  const index_t b = std::min(block, d);
  const int threads = resolve_threads(opt.n_threads);
  const T lambda = static_cast<T>(opt.regularization);
  const T a = static_cast<T>(prob.alpha);

  ColMatrix<T> computed;  // the Gram matrix when the caller did not pass one
  if (prob.implicit && prob.gram == nullptr) computed = gram(Y, R.cols, k, threads);
  const Eigen::Map<const ColMatrix<T>> G(prob.gram ? prob.gram : computed.data(), prob.implicit ? k : 0,
                                         prob.implicit ? k : 0);
  auto coordinate = [&](index_t u, index_t j) -> T& { return j < k ? X[u * k + j] : prob.own_bias[u]; };

  // Predictions of every stored entry; rows without observations are zeroed.
  const index_t nnz = static_cast<index_t>(R.indptr[R.rows]);
  std::vector<T> pred(static_cast<std::size_t>(nnz));
  parallel_for(
      0, R.rows, threads,
      [&](index_t u) {
        T* x = X + u * k;
        if (R.indptr[u + 1] == R.indptr[u]) {
          std::fill(x, x + k, T(0));
          if (bias) prob.own_bias[u] = T(0);
          return;
        }
        const T own = bias ? prob.own_bias[u] : T(0);
        for (I q = R.indptr[u]; q < R.indptr[u + 1]; ++q)
          pred[static_cast<std::size_t>(q)] = detail::dot(x, Y + static_cast<index_t>(R.indices[q]) * k, k) + own;
      },
      64);

  // Work per row and block: n_u b^2 for the rank update, b^3 / 3 for the
  // solve and (implicit) k b for the Gramian term, in units of b^2 per entry.
  const double row_cost = static_cast<double>(b) / 3.0 + (prob.implicit ? static_cast<double>(k) / b : 0.0);
  // Chunks independent of the thread count (sized for 16 threads), so the
  // Gramian-term products, and the result, are the same for any n_threads.
  const std::vector<index_t> bounds = balanced_chunks(R.indptr, R.rows, row_cost, 16);
  const index_t n_chunks = static_cast<index_t>(bounds.size()) - 1;
  constexpr index_t W = simd_lanes<T>();
  const index_t bp = (b + W - 1) / W * W;
  constexpr index_t kSubRows = 128;  // rows per Gramian-term product
  std::vector<detail::SubspaceScratch<T>> scratch(static_cast<std::size_t>(threads));
  for (auto& s : scratch) {
    s.H.resize(bp, b);
    s.coef.resize(64);
    s.weight.resize(64);
    s.grad.resize(b);
    s.inv_diag.resize(b);
    s.delta.resize(b);
    s.Ys.resize(b, 64);
    s.Yw.resize(b, 64);
    if (prob.implicit) s.P.resize(kSubRows, b);
  }

  // The block's columns of Y as one contiguous panel (cols x bs): the rows'
  // random accesses to the other side's vectors then stay within a few MB
  // that the cache holds, instead of one cache miss into all of Y per entry
  // and block (that gather took most of the sweep's time at d = 1024).
  std::vector<T> panel(static_cast<std::size_t>(R.cols * b));
  for (index_t S0 = 0; S0 < d; S0 += b) {
    const index_t bs = std::min(b, d - S0);
    parallel_for(
        0, R.cols, threads,
        [&](index_t i) {
          const T* y = Y + i * k;
          T* out = panel.data() + i * bs;
          for (index_t j = 0; j < bs; ++j) out[j] = S0 + j < k ? y[S0 + j] : T(1);
        },
        1024);
    parallel_for(
        0, n_chunks, threads,
        [&](index_t c) {
          const bool polls = opt.cancel != nullptr && thread_id() == 0;
          detail::SubspaceScratch<T>& s = scratch[static_cast<std::size_t>(thread_id())];
          for (index_t lo = bounds[c]; lo < bounds[c + 1]; lo += kSubRows) {
            if (opt.cancel != nullptr) {  // between sub-blocks of at most 128 rows
              if (polls) opt.cancel->poll();
              if (opt.cancel->stopped()) return;
            }
            const index_t hi = std::min(bounds[c + 1], lo + kSubRows);
            if (prob.implicit) {
              // (Y^T Y x_u)_S for the sub-block's rows, before any of them moves.
              s.P.topLeftCorner(hi - lo, bs).noalias() =
                  row_view(X + lo * k, hi - lo, k) * G.middleCols(S0, bs);
            }
            for (index_t u = lo; u < hi; ++u) {
              const I begin = R.indptr[u], end = R.indptr[u + 1];
              const index_t n = static_cast<index_t>(end - begin);
              if (n == 0) continue;
              if (s.Ys.cols() < n) {
                const index_t cap = std::max<index_t>(n, 2 * s.Ys.cols());
                s.Ys.resize(b, cap);
                s.Yw.resize(b, cap);
                s.coef.resize(cap);
                s.weight.resize(cap);
              }
              // Gather the block of each entry's vector, its gradient
              // coefficient and Hessian weight.
              index_t m = 0;
              for (I q = begin; q < end; ++q) {
                const index_t i = static_cast<index_t>(R.indices[q]);
                const T* y = panel.data() + i * bs;
                T* col = s.Ys.col(m).data();
                for (index_t j = 0; j < bs; ++j) col[j] = y[j];
                const T p = pred[static_cast<std::size_t>(q)];
                if (prob.implicit) {
                  // loss c (1 - s)^2 on observed cells over the all-cells s^2 of
                  // the Gramian: weight c - 1, gradient (c - 1) s - c.
                  const T w = a * R.data[q];
                  s.coef[m] = w * p - (w + T(1));
                  s.weight[m] = w;
                } else {
                  const T t = R.data[q] - static_cast<T>(prob.mu) - (prob.other_bias ? prob.other_bias[i] : T(0));
                  s.coef[m] = p - t;
                  s.weight[m] = T(1);
                }
                ++m;
              }
              // H = [G_SS] + lam I + sum_m w_m y_m y_m^T (full columns, padding
              // rows zero), grad = [(G x)_S] + lam x_S + sum_m coef_m y_m: one
              // weighted rank-1 update per entry, vectorised over a column
              // (faster than a library rank-n update at these small sizes).
              const T lam = prob.implicit ? lambda : lambda * static_cast<T>(n);
              T* H = s.H.data();
              T* grad = s.grad.data();
              for (index_t j = 0; j < bs; ++j) {
                T* h = H + j * bp;
                std::fill(h, h + bp, T(0));
                if (prob.implicit) {
                  const T* g = G.data() + (S0 + j) * k + S0;
                  for (index_t l = 0; l < bs; ++l) h[l] = g[l];
                  grad[j] = s.P(u - lo, j);
                } else {
                  grad[j] = T(0);
                }
                h[j] += lam;
                grad[j] += lam * coordinate(u, S0 + j);
              }
              // The entries' terms as two small matrix products (Eigen's packed
              // kernels run them at full vector width):
              //   H_SS += Ys diag(w) Ys^T,  grad += Ys coef.
              {
                const auto Ysb = s.Ys.topLeftCorner(bs, n);
                s.Yw.topLeftCorner(bs, n).noalias() = Ysb * s.weight.head(n).asDiagonal();
                Eigen::Map<ColMatrix<T>, 0, Eigen::OuterStride<>> Hm(H, bs, bs, Eigen::OuterStride<>(bp));
                Hm.noalias() += s.Yw.topLeftCorner(bs, n) * Ysb.transpose();
                Eigen::Map<Vector<T>>(grad, bs).noalias() += Ysb * s.coef.head(n);
              }
              require<NumericalError>(cholesky_in_place(s.H.data(), bs, bp, s.inv_diag.data()),
                                      "Cholesky factorisation failed for row ", u, "; increase regularization");
              auto delta = s.delta.head(bs);
              for (index_t j = 0; j < bs; ++j) delta[j] = -grad[j];
              cholesky_solve_in_place(s.H.data(), bs, bp, s.inv_diag.data(), delta.data());
              for (index_t j = 0; j < bs; ++j) {
                T& x = coordinate(u, S0 + j);
                T next = x + delta[j];
                if (opt.nonnegative && S0 + j < k) next = std::max(next, T(0));
                delta[j] = next - x;
                x = next;
              }
              // predictions follow the move: s_q += y_{q,S} . delta
              m = 0;
              for (I q = begin; q < end; ++q, ++m)
                pred[static_cast<std::size_t>(q)] += detail::dot(s.Ys.col(m).data(), delta.data(), bs);
            }
          }
        },
        1);
    if (opt.cancel != nullptr) opt.cancel->throw_if_stopped("ALS interrupted");
  }
}

}  // namespace completion
}  // namespace rankfold
