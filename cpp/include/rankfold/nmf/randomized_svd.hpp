// Truncated SVD by randomized range finding (Halko, Martinsson & Tropp 2011):
// a Gaussian sketch, a few power iterations with QR re-orthonormalisation,
// then an exact SVD of the small projected matrix. Works on any operator with
// times / transpose_times (dense or sparse X), so it never densifies X.
#pragma once

#include <Eigen/QR>
#include <Eigen/SVD>
#include <algorithm>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/rng.hpp"
#include "rankfold/core/types.hpp"

namespace rankfold {
namespace nmf {

// Thin Q factor of A (rows x l, row-major), written back into A.
template <typename T>
void orthonormalize(RowMatrix<T>& A) {
  Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic> a = A.template cast<double>();
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(a);
  Eigen::MatrixXd q = qr.householderQ() * Eigen::MatrixXd::Identity(a.rows(), a.cols());
  A = q.cast<T>();
}

template <typename T>
struct SvdResult {
  RowMatrix<T> U;   // m x k
  Vector<T> S;      // k
  RowMatrix<T> Vt;  // k x n
};

// Top-k singular triplets with `oversample` extra sketch columns and
// `power_iters` power iterations. Signs: each column of U has its largest
// absolute entry positive (deterministic output).
template <typename T, typename Op>
SvdResult<T> randomized_svd(const Op& X, index_t k, index_t oversample, int power_iters, std::uint64_t seed,
                            int n_threads) {
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
    orthonormalize(Y);
    X.transpose_times(Y.data(), l, Z.data(), n_threads);
    orthonormalize(Z);
    X.times(Z.data(), l, Y.data(), n_threads);
  }
  orthonormalize(Y);  // Q: m x l
  X.transpose_times(Y.data(), l, Z.data(), n_threads);  // B^T = X^T Q: n x l
  // B^T = Q2 R, R = Ur S Vr^T  =>  X ~ Q B = (Q Vr) S (Q2 Ur)^T
  Eigen::MatrixXd bt = Z.template cast<double>();
  Eigen::HouseholderQR<Eigen::MatrixXd> qr(bt);
  Eigen::MatrixXd q2 = qr.householderQ() * Eigen::MatrixXd::Identity(n, l);
  Eigen::MatrixXd r = qr.matrixQR().topRows(l).template triangularView<Eigen::Upper>();
  Eigen::JacobiSVD<Eigen::MatrixXd> svd(r, Eigen::ComputeFullU | Eigen::ComputeFullV);
  Eigen::MatrixXd left = Y.template cast<double>() * svd.matrixV().leftCols(k);  // m x k
  Eigen::MatrixXd right = q2 * svd.matrixU().leftCols(k);                         // n x k
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
