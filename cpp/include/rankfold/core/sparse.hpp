// Zero-copy views of compressed sparse matrices (SciPy CSR/CSC, int32 or int64
// indices) and the sparse-times-dense products the solvers need.
#pragma once

#include <cstdint>

#include "error.hpp"
#include "threads.hpp"
#include "types.hpp"

namespace rankfold {

// A compressed-row view: row r holds entries indptr[r] .. indptr[r+1]-1 with
// column indices `indices` and values `data`. A CSC matrix of shape (m, n) is
// the CompressedView of its transpose, shape (n, m).
template <typename T, typename I>
struct CompressedView {
  index_t rows = 0;
  index_t cols = 0;
  const I* indptr = nullptr;
  const I* indices = nullptr;
  const T* data = nullptr;

  index_t nnz() const { return rows > 0 ? static_cast<index_t>(indptr[rows]) : 0; }

  // O(nnz) structural check: monotone indptr, column indices in range.
  void validate() const {
    require(rows >= 0 && cols >= 0, "sparse matrix has a negative dimension");
    if (rows == 0) return;
    require(indptr[0] == 0, "sparse matrix indptr must start at 0");
    for (index_t r = 0; r < rows; ++r)
      require(indptr[r] <= indptr[r + 1], "sparse matrix indptr is not monotone at row ", r);
    const index_t n = nnz();
    for (index_t p = 0; p < n; ++p)
      require(indices[p] >= 0 && static_cast<index_t>(indices[p]) < cols,
              "sparse matrix column index out of range at position ", p);
  }
};

// out (rows x k, row-major, ld_out) = A (rows x cols) * B (cols x k, row-major, ld_b).
// Parallel over rows, balanced by nonzeros through a dynamic schedule.
template <typename T, typename I>
void spmm(const CompressedView<T, I>& A, const T* B, index_t k, index_t ld_b, T* out,
          index_t ld_out, int n_threads) {
  parallel_for(
      0, A.rows, n_threads,
      [&](index_t r) {
        T* o = out + r * ld_out;
        for (index_t j = 0; j < k; ++j) o[j] = T(0);
        for (I p = A.indptr[r]; p < A.indptr[r + 1]; ++p) {
          const T a = A.data[p];
          const T* b = B + static_cast<index_t>(A.indices[p]) * ld_b;
#pragma omp simd
          for (index_t j = 0; j < k; ++j) o[j] += a * b[j];
        }
      },
      64);
}

// out (cols x k, row-major) = A^T (cols x rows) * B (rows x k, row-major).
// Each thread owns a slice of the k output columns, so no two threads write
// the same place and no atomics or reductions are needed.
template <typename T, typename I>
void spmm_transposed(const CompressedView<T, I>& A, const T* B, index_t k, index_t ld_b, T* out,
                     index_t ld_out, int n_threads) {
  const int threads = static_cast<int>(std::min<index_t>(resolve_threads(n_threads), std::max<index_t>(k, 1)));
  parallel_region(threads, [&](int t, int nt) {
    index_t lo, hi;
    split_range(k, t, nt, lo, hi);
    if (lo >= hi) return;
    for (index_t c = 0; c < A.cols; ++c)
      for (index_t j = lo; j < hi; ++j) out[c * ld_out + j] = T(0);
    for (index_t r = 0; r < A.rows; ++r) {
      const T* b = B + r * ld_b;
      for (I p = A.indptr[r]; p < A.indptr[r + 1]; ++p) {
        const T a = A.data[p];
        T* o = out + static_cast<index_t>(A.indices[p]) * ld_out;
#pragma omp simd
        for (index_t j = lo; j < hi; ++j) o[j] += a * b[j];
      }
    }
  });
}

}  // namespace rankfold
