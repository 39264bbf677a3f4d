// Truncated SVD by randomized range finding (Halko, Martinsson & Tropp 2011):
// a Gaussian sketch, a few power iterations with QR re-orthonormalisation,
// then an exact SVD of the small projected matrix. Works on any operator with
// times / transpose_times (dense or sparse X), so it never densifies X.
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <cmath>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/interrupt.hpp"
#include "rankfold/core/rng.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/core/types.hpp"
#include "rankfold/nmf/operator.hpp"

namespace rankfold {
namespace nmf {

// Thin Q factor of A (rows x l, row-major) by Householder QR, written back
// into A, and its R factor (l x l, upper triangular) into R. Serial.
template <typename T>
void householder_orthonormalize(RowMatrix<T>& A, Eigen::MatrixXd& R) {
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic> a = A.template cast<double>();
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(a.rows(), a.cols());
  R = qr.matrixQR().topRows(a.cols()).template triangularView<Eigen::Upper>();
  A = q.cast<T>();
}

// One Cholesky QR pass: G = A^T A = L L^T, A <- A L^{-T}, R = L^T. False (A
// unchanged) when G is too ill-conditioned for it: a pivot below 1e-10 of the
// largest column norm, i.e. cond(A) beyond ~1e5, where one pass would leave
// A far from orthonormal.
template <typename T>
bool cholesky_qr_pass(RowMatrix<T>& A, Eigen::MatrixXd& R, int n_threads) {
  const index_t rows = A.rows(), l = A.cols();
  const Eigen::MatrixXd G = gram_in_double(A.data(), rows, l, n_threads);
  Eigen::LLT<Eigen::MatrixXd> llt(G);
  if (llt.info() != Eigen::Success) return false;
  const Eigen::MatrixXd L = llt.matrixL();
  const double top = G.diagonal().maxCoeff();
  if (!(top > 0.0) || !std::isfinite(top)) return false;
  for (index_t j = 0; j < l; ++j)
    if (!(L(j, j) * L(j, j) > 1e-10 * top)) return false;
  R = L.transpose();
  const Eigen::MatrixXd inv = R.triangularView<Eigen::Upper>().solve(Eigen::MatrixXd::Identity(l, l));
  const index_t block = 1024;
  parallel_for(0, (rows + block - 1) / block, n_threads, [&](index_t b) {
    const index_t lo = b * block, n = std::min(rows, lo + block) - lo;
    auto a = row_view(A.data() + lo * l, n, l);
    const Eigen::MatrixXd q = a.template cast<double>() * inv.triangularView<Eigen::Upper>();
    a = q.cast<T>();
  });
  return true;
}

// Thin Q factor of A (rows x l, row-major, rows >= l), written back into A,
// with A = Q R (R: l x l upper triangular, returned). Cholesky QR twice
// (CholQR2: the second pass restores the orthogonality the first loses to
// rounding): two parallel Grams and two parallel triangular updates instead
// of a serial Householder QR, about ten times less time for the tall sketches
// of the randomized SVD. Falls back to Householder QR when A is too
// ill-conditioned (rank-deficient sketches of low-rank X).
template <typename T>
Eigen::MatrixXd orthonormalize(RowMatrix<T>& A, int n_threads) {
  Eigen::MatrixXd R1, R2;
  if (!cholesky_qr_pass(A, R1, n_threads)) {  // A unchanged
    householder_orthonormalize(A, R1);
    return R1;
  }
  if (!cholesky_qr_pass(A, R2, n_threads)) householder_orthonormalize(A, R2);
  return R2 * R1;
}

template <typename T>
struct SvdResult {
  RowMatrix<T> U;   // m x k
  Vector<T> S;      // k
  RowMatrix<T> Vt;  // k x n
};

// Top-k singular triplets with `oversample` extra sketch columns and
// `power_iters` power iterations. Signs: each column of U has its largest
// absolute entry positive (deterministic output). The token is checked between
// passes over X (Ctrl-C).
template <typename T, typename Op>
SvdResult<T> randomized_svd(const Op& X, index_t k, index_t oversample, int power_iters, std::uint64_t seed,
                            int n_threads, Cancellation& cancel = no_cancellation()) {
  const index_t m = X.rows(), n = X.cols();
  require(k >= 1 && k <= std::min(m, n), "n_components must be in [1, min(n_samples, n_features)] = [1, ",
          std::min(m, n), "], got ", k);
  require(oversample >= 0, "n_oversamples must be >= 0");
  require(power_iters >= 0, "n_iter must be >= 0");
  const index_t l = std::min(k + oversample, std::min(m, n));
  RowMatrix<T> omega(n, l);
  Rng rng(seed);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < l; ++j) omega(i, j) = static_cast<T>(rng.normal());
  RowMatrix<T> Y(m, l), Z(n, l);
  X.times(omega.data(), l, Y.data(), n_threads);
  for (int q = 0; q < power_iters; ++q) {
    cancel.check("randomized_svd interrupted");
    orthonormalize(Y, n_threads);
    X.transpose_times(Y.data(), l, Z.data(), n_threads);
    orthonormalize(Z, n_threads);
    X.times(Z.data(), l, Y.data(), n_threads);
  }
  cancel.check("randomized_svd interrupted");
  orthonormalize(Y, n_threads);                         // Q: m x l
  X.transpose_times(Y.data(), l, Z.data(), n_threads);  // B^T = X^T Q: n x l
  // B^T = Q2 R, R = Ur S Vr^T  =>  X ~ Q B = (Q Vr) S (Q2 Ur)^T
  const Eigen::MatrixXd r = orthonormalize(Z, n_threads);  // Z <- Q2
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(r, Eigen::ComputeFullU | Eigen::ComputeFullV);
  Eigen::MatrixXd left = Y.template cast<double>() * svd.matrixV().leftCols(k);  // m x k
  Eigen::MatrixXd right = Z.template cast<double>() * svd.matrixU().leftCols(k);  // n x k
  for (index_t j = 0; j < k; ++j) {
    index_t arg;
    left.col(j).cwiseAbs().maxCoeff(&arg);
    if (left(arg, j) < 0) {
      left.col(j) *= -1.0;
      right.col(j) *= -1.0;
    }
  }
  SvdResult<T> out;
  out.U = left.cast<T>();
  out.S = svd.singularValues().head(k).cast<T>();
  out.Vt = right.transpose().cast<T>();
  return out;
}

}  // namespace nmf
}  // namespace rankfold
