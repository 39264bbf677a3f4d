// The data matrix X as an operator: the only things the NMF solvers need from
// X are the two tall-skinny products X*B and X^T*B, a few sums, and the exact
// residual. Dense X (C or F order) uses Eigen's blocked products, split by us
// over threads (Eigen itself runs single-threaded here); sparse X uses the
// core spmm kernels and is never densified.
#pragma once

#include <algorithm>
#include <cmath>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/sparse.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/core/types.hpp"

namespace rankfold {
namespace nmf {

// Sum of per-block partial results in block order: deterministic for a given
// block count, whatever the thread timing.
template <typename F>
double blocked_sum(index_t n, index_t block, int n_threads, F&& partial) {
  const index_t n_blocks = (n + block - 1) / block;
  std::vector<double> parts(static_cast<std::size_t>(std::max<index_t>(n_blocks, 1)), 0.0);
  parallel_for(0, n_blocks, n_threads, [&](index_t b) {
    const index_t lo = b * block, hi = std::min(n, lo + block);
    parts[static_cast<std::size_t>(b)] = partial(lo, hi);
  });
  double s = 0.0;
  for (double p : parts) s += p;
  return s;
}

// Products with very few right-hand columns (l <= kSmallRank, e.g. hyperspectral
// unmixing with 3-6 endmembers) are memory-bound streams over X; a blocked GEMM
// packs and pads them into wasted work. These two kernels read each entry of
// A once and vectorise along A's rows.
constexpr index_t kSmallRank = 8;

// out (rows x l, row-major) = A (rows x cols, row-major, stride lda) * B (cols x l, row-major).
template <typename T>
void small_times(const T* A, index_t rows, index_t cols, index_t lda, const T* B, index_t l, T* out,
                 int n_threads) {
  std::vector<T> Bt(static_cast<std::size_t>(l * cols));  // B transposed: l rows of length cols
  for (index_t c = 0; c < cols; ++c)
    for (index_t j = 0; j < l; ++j) Bt[j * cols + c] = B[c * l + j];
  parallel_for(
      0, rows, n_threads,
      [&](index_t i) {
        const T* a = A + i * lda;
        for (index_t j = 0; j < l; ++j) {
          const T* b = Bt.data() + j * cols;
          T acc = T(0);
#pragma omp simd reduction(+ : acc)
          for (index_t c = 0; c < cols; ++c) acc += a[c] * b[c];
          out[i * l + j] = acc;
        }
      },
      64);
}

// out (cols x l, row-major) = A^T * B with A (rows x cols, row-major, stride lda), B (rows x l).
// Each worker sums a static range of rows into its own l x cols buffer; the
// buffers are added in worker order.
template <typename T>
void small_transpose_times(const T* A, index_t rows, index_t cols, index_t lda, const T* B, index_t l, T* out,
                           int n_threads) {
  const int workers = static_cast<int>(std::max<index_t>(1, std::min<index_t>(resolve_threads(n_threads), rows / 64 + 1)));
  std::vector<T> parts(static_cast<std::size_t>(workers) * l * cols, T(0));
  parallel_region(workers, [&](int t, int nt) {
    index_t lo, hi;
    split_range(rows, t, nt, lo, hi);
    T* acc = parts.data() + static_cast<std::size_t>(t) * l * cols;
    for (index_t i = lo; i < hi; ++i) {
      const T* a = A + i * lda;
      for (index_t j = 0; j < l; ++j) {
        const T w = B[i * l + j];
        if (w == T(0)) continue;
        T* o = acc + j * cols;
#pragma omp simd
        for (index_t c = 0; c < cols; ++c) o[c] += w * a[c];
      }
    }
  });
  for (index_t c = 0; c < cols; ++c)
    for (index_t j = 0; j < l; ++j) {
      T s = T(0);
      for (int t = 0; t < workers; ++t) s += parts[(static_cast<std::size_t>(t) * l + j) * cols + c];
      out[c * l + j] = s;
    }
}

// Dense X, m x n, C order (row_major) or F order. All B/out buffers are
// C-ordered (row-major) with l columns.
template <typename T>
class DenseOperator {
 public:
  DenseOperator(const T* data, index_t rows, index_t cols, bool row_major)
      : data_(data), rows_(rows), cols_(cols), row_major_(row_major) {
    require(rows >= 0 && cols >= 0, "X has a negative dimension");
  }

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }

  // The cost of one pass over X in multiply-adds per component (m n): the
  // unit that the automatic inner sweeps weigh a sweep against.
  double pass_cost() const { return static_cast<double>(rows_) * static_cast<double>(cols_); }

  // out[c] = ||X[:, c]||^2, in double.
  void column_squared_norms(double* out) const {
    std::fill(out, out + cols_, 0.0);
    for (index_t r = 0; r < rows_; ++r)
      for (index_t c = 0; c < cols_; ++c) {
        const double v = row_major_ ? data_[r * cols_ + c] : data_[c * rows_ + r];
        out[c] += v * v;
      }
  }

  // out (rows x l) = X * B, B (cols x l).
  void times(const T* B, index_t l, T* out, int n_threads) const {
    if (l <= kSmallRank) {
      if (row_major_)
        small_times(data_, rows_, cols_, cols_, B, l, out, n_threads);
      else
        small_transpose_times(data_, cols_, rows_, rows_, B, l, out, n_threads);
      return;
    }
    auto b = row_view(B, cols_, l);
    const int nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(resolve_threads(n_threads), rows_ / 16 + 1)));
    parallel_region(nt, [&](int t, int workers) {
      index_t lo, hi;
      split_range(rows_, t, workers, lo, hi);
      if (lo >= hi) return;
      auto o = row_view(out + lo * l, hi - lo, l);
      if (row_major_) {
        auto x = row_view(data_ + lo * cols_, hi - lo, cols_);
        o.noalias() = x * b;
      } else {
        ConstColView<T> x(data_ + lo, hi - lo, cols_, Eigen::OuterStride<>(rows_));
        o.noalias() = x * b;
      }
    });
  }

  // out (cols x l) = X^T * B, B (rows x l).
  void transpose_times(const T* B, index_t l, T* out, int n_threads) const {
    if (l <= kSmallRank) {
      if (row_major_)
        small_transpose_times(data_, rows_, cols_, cols_, B, l, out, n_threads);
      else
        small_times(data_, cols_, rows_, rows_, B, l, out, n_threads);
      return;
    }
    auto b = row_view(B, rows_, l);
    const int nt = static_cast<int>(std::max<index_t>(1, std::min<index_t>(resolve_threads(n_threads), cols_ / 16 + 1)));
    parallel_region(nt, [&](int t, int workers) {
      index_t lo, hi;
      split_range(cols_, t, workers, lo, hi);
      if (lo >= hi) return;
      auto o = row_view(out + lo * l, hi - lo, l);
      if (row_major_) {
        ConstRowView<T> x(data_ + lo, rows_, hi - lo, Eigen::OuterStride<>(cols_));
        o.noalias() = x.transpose() * b;
      } else {
        ConstColView<T> x(data_ + lo * rows_, rows_, hi - lo, Eigen::OuterStride<>(rows_));
        o.noalias() = x.transpose() * b;
      }
    });
  }

  double sum(int n_threads) const {
    const index_t total = rows_ * cols_;
    return blocked_sum(total, 1 << 16, n_threads, [&](index_t lo, index_t hi) {
      double s = 0.0;
      for (index_t i = lo; i < hi; ++i) s += static_cast<double>(data_[i]);
      return s;
    });
  }

  double squared_norm(int n_threads) const {
    const index_t total = rows_ * cols_;
    return blocked_sum(total, 1 << 16, n_threads, [&](index_t lo, index_t hi) {
      double s = 0.0;
      for (index_t i = lo; i < hi; ++i) s += static_cast<double>(data_[i]) * data_[i];
      return s;
    });
  }

  // Exact ||X - W Ht^T||_F^2 by row blocks (W: rows x k, Ht: cols x k, row-major).
  double residual(const T* W, const T* Ht, index_t k, int n_threads) const {
    auto h = row_view(Ht, cols_, k);
    const index_t block = 64;
    return blocked_sum(rows_, block, n_threads, [&](index_t lo, index_t hi) {
      auto w = row_view(W + lo * k, hi - lo, k);
      RowMatrix<T> approx = w * h.transpose();
      double s = 0.0;
      for (index_t i = lo; i < hi; ++i)
        for (index_t j = 0; j < cols_; ++j) {
          const T x = row_major_ ? data_[i * cols_ + j] : data_[j * rows_ + i];
          const double d = static_cast<double>(x) - approx(i - lo, j);
          s += d * d;
        }
      return s;
    });
  }

 private:
  const T* data_;
  index_t rows_, cols_;
  bool row_major_;
};

// G (k x k, double) = A^T A for A (n x k, row-major) accumulated in double
// whatever T, split over row blocks and summed in block order (deterministic).
template <typename T>
Eigen::MatrixXd gram_in_double(const T* A, index_t n, index_t k, int n_threads) {
  const index_t block = 2048;
  const index_t n_blocks = std::max<index_t>(1, (n + block - 1) / block);
  std::vector<Eigen::MatrixXd> parts(static_cast<std::size_t>(n_blocks));
  parallel_for(0, n_blocks, n_threads, [&](index_t b) {
    const index_t lo = b * block, hi = std::min(n, lo + block);
    Eigen::MatrixXd g = Eigen::MatrixXd::Zero(k, k);
    if (hi > lo) {
      const Eigen::MatrixXd a = row_view(A + lo * k, hi - lo, k).template cast<double>();
      g.selfadjointView<Eigen::Lower>().rankUpdate(a.transpose());
    }
    parts[static_cast<std::size_t>(b)] = g.selfadjointView<Eigen::Lower>();
  });
  Eigen::MatrixXd out = Eigen::MatrixXd::Zero(k, k);
  for (auto& p : parts) out += p;
  return out;
}

// Sparse X, m x n: a CSR matrix (view of X) or a CSC matrix (view of X^T).
// The product with the view's transpose keeps what it learns about X (sorted
// rows, entries per column) from call to call, so one operator serves one
// caller at a time.
template <typename T, typename I>
class SparseOperator {
 public:
  SparseOperator(const CompressedView<T, I>& view, bool is_csc) : v_(view), csc_(is_csc) {}

  index_t rows() const { return csc_ ? v_.cols : v_.rows; }
  index_t cols() const { return csc_ ? v_.rows : v_.cols; }

  // One pass over X costs nnz multiply-adds per component.
  double pass_cost() const { return static_cast<double>(v_.nnz()); }

  // out[c] = ||X[:, c]||^2, in double.
  void column_squared_norms(double* out) const {
    std::fill(out, out + cols(), 0.0);
    for (index_t r = 0; r < v_.rows; ++r)
      for (I p = v_.indptr[r]; p < v_.indptr[r + 1]; ++p) {
        const double v = v_.data[p];
        out[csc_ ? r : static_cast<index_t>(v_.indices[p])] += v * v;
      }
  }

  void times(const T* B, index_t l, T* out, int n_threads) const {
    if (csc_)
      spmm_transposed(v_, B, l, l, out, l, n_threads, transpose_ws_);
    else
      spmm(v_, B, l, l, out, l, n_threads);
  }

  void transpose_times(const T* B, index_t l, T* out, int n_threads) const {
    if (csc_)
      spmm(v_, B, l, l, out, l, n_threads);
    else
      spmm_transposed(v_, B, l, l, out, l, n_threads, transpose_ws_);
  }

  double sum(int n_threads) const {
    return blocked_sum(v_.nnz(), 1 << 16, n_threads, [&](index_t lo, index_t hi) {
      double s = 0.0;
      for (index_t i = lo; i < hi; ++i) s += static_cast<double>(v_.data[i]);
      return s;
    });
  }

  double squared_norm(int n_threads) const {
    return blocked_sum(v_.nnz(), 1 << 16, n_threads, [&](index_t lo, index_t hi) {
      double s = 0.0;
      for (index_t i = lo; i < hi; ++i) s += static_cast<double>(v_.data[i]) * v_.data[i];
      return s;
    });
  }

  // ||X||^2 - 2 <X, W H> + <W^T W, H H^T>; the middle term visits only the
  // stored entries, so the cost is O(nnz k + (m + n) k^2), never m n.
  double residual(const T* W, const T* Ht, index_t k, int n_threads) const {
    const T* left = csc_ ? Ht : W;  // factor indexed by the view's rows
    const T* right = csc_ ? W : Ht;
    const double cross = blocked_sum(v_.rows, 256, n_threads, [&](index_t lo, index_t hi) {
      double s = 0.0;
      for (index_t r = lo; r < hi; ++r) {
        const T* a = left + r * k;
        for (I p = v_.indptr[r]; p < v_.indptr[r + 1]; ++p) {
          const T* b = right + static_cast<index_t>(v_.indices[p]) * k;
          double dot = 0.0;  // in SIMD lanes: a serial sum would wait k FMA latencies per entry
#pragma omp simd reduction(+ : dot)
          for (index_t j = 0; j < k; ++j) dot += static_cast<double>(a[j]) * b[j];
          s += static_cast<double>(v_.data[p]) * dot;
        }
      }
      return s;
    });
    const double xx = squared_norm(n_threads);
    const Eigen::MatrixXd ww = gram_in_double(W, rows(), k, n_threads);
    const Eigen::MatrixXd hh = gram_in_double(Ht, cols(), k, n_threads);
    return std::max(0.0, xx - 2.0 * cross + ww.cwiseProduct(hh).sum());
  }

 private:

  CompressedView<T, I> v_;
  bool csc_;
  mutable TransposeWorkspace<T> transpose_ws_;
};

// G (k x k) = A^T A for A (n x k, row-major), split over row blocks; partial
// Grams are summed in block order (deterministic).
template <typename T>
void gram(const T* A, index_t n, index_t k, T* G, int n_threads) {
  // Small Grams (a few MFLOP) are not worth a parallel region.
  const index_t block = n * k * k < (index_t(1) << 22) ? std::max<index_t>(n, 1) : 2048;
  const index_t n_blocks = std::max<index_t>(1, (n + block - 1) / block);
  std::vector<RowMatrix<T>> parts(static_cast<std::size_t>(n_blocks));
  parallel_for(0, n_blocks, n_threads, [&](index_t b) {
    const index_t lo = b * block, hi = std::min(n, lo + block);
    auto a = row_view(A + lo * k, std::max<index_t>(hi - lo, 0), k);
    RowMatrix<T> g = RowMatrix<T>::Zero(k, k);
    if (hi > lo) g.template selfadjointView<Eigen::Lower>().rankUpdate(a.transpose());
    parts[static_cast<std::size_t>(b)] = g.template selfadjointView<Eigen::Lower>();
  });
  auto out = row_view(G, k, k);
  out.setZero();
  for (auto& p : parts) out += p;
}

}  // namespace nmf
}  // namespace rankfold
