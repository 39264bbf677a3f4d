// Zero-copy views of compressed sparse matrices (SciPy CSR/CSC, int32 or int64
// indices) and the sparse-times-dense products the solvers need.
#pragma once

#include <algorithm>
#include <cstdint>
#include <type_traits>
#include <vector>

#include "error.hpp"
#include "threads.hpp"
#include "types.hpp"
#include "vec.hpp"

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

namespace detail {

// Output columns are processed in panels of P columns whose sums stay in
// vector registers for a whole row of A. Left to itself the compiler keeps
// them in memory (it cannot rule out that `out` aliases B) or vectorises
// across stored entries with gathers; both cost several times more.
// A panel holds at most kMaxVectors vectors (twice that many sums: 12 of the
// 16 registers of AVX2).
constexpr index_t kMaxVectors = 6;

// o[0..P) = sum over the stored entries p of row r of a_p * B[col_p, 0 .. P)
// (B already offset to the panel). Two interleaved sets of sums, so that
// consecutive entries do not wait on each other's FMA latency.
template <int P, typename T, typename I>
inline void gather_panel(const CompressedView<T, I>& A, index_t r, const T* B, index_t ld_b, T* o) {
  I p = A.indptr[r];
  const I end = A.indptr[r + 1];
  if constexpr (P % kVec<T> == 0) {
    constexpr int V = static_cast<int>(P / kVec<T>);
    constexpr index_t w = kVec<T>;
    Vec<T> acc0[V], acc1[V];
    for (int v = 0; v < V; ++v) acc0[v] = acc1[v] = Vec<T>{};
    for (; p + 1 < end; p += 2) {
      const T a0 = A.data[p], a1 = A.data[p + 1];
      const T* b0 = B + static_cast<index_t>(A.indices[p]) * ld_b;
      const T* b1 = B + static_cast<index_t>(A.indices[p + 1]) * ld_b;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) {
        acc0[v] += a0 * vload<T>(b0 + v * w);
        acc1[v] += a1 * vload<T>(b1 + v * w);
      }
    }
    if (p < end) {
      const T a0 = A.data[p];
      const T* b0 = B + static_cast<index_t>(A.indices[p]) * ld_b;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) acc0[v] += a0 * vload<T>(b0 + v * w);
    }
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) vstore<T>(o + v * w, acc0[v] + acc1[v]);
  } else {  // fewer columns than one vector
    T acc[P] = {};
    for (; p < end; ++p) {
      const T a = A.data[p];
      const T* b = B + static_cast<index_t>(A.indices[p]) * ld_b;
#pragma GCC unroll 16
      for (int j = 0; j < P; ++j) acc[j] += a * b[j];
    }
    for (int j = 0; j < P; ++j) o[j] = acc[j];
  }
}

// out[col_p, 0 .. P) += a_p * b[0 .. P) over the stored entries p in
// [begin, end) of one row (b and out already offset to the panel); b stays
// in registers.
template <int P, typename T, typename I>
inline void scatter_panel(const CompressedView<T, I>& A, I begin, I end, const T* b, T* out, index_t ld_out) {
  if constexpr (P % kVec<T> == 0) {
    constexpr int V = static_cast<int>(P / kVec<T>);
    constexpr index_t w = kVec<T>;
    Vec<T> bv[V];
    for (int v = 0; v < V; ++v) bv[v] = vload<T>(b + v * w);
    for (I p = begin; p < end; ++p) {
      const T a = A.data[p];
      T* o = out + static_cast<index_t>(A.indices[p]) * ld_out;
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) vstore<T>(o + v * w, vload<T>(o + v * w) + a * bv[v]);
    }
  } else {
    T bs[P];
    for (int j = 0; j < P; ++j) bs[j] = b[j];
    for (I p = begin; p < end; ++p) {
      const T a = A.data[p];
      T* o = out + static_cast<index_t>(A.indices[p]) * ld_out;
#pragma GCC unroll 16
      for (int j = 0; j < P; ++j) o[j] += a * bs[j];
    }
  }
}

// Calls panel(std::integral_constant<int, P>{}, j0) over [0, k) in panels:
// whole vectors, at most kMaxVectors per panel (so that a row's B entries are
// read in one pass for the usual k <= 6 vectors: k = 20 in float64 on AVX2 is
// one panel of 5 vectors), then the binary digits of the columns left over.
template <typename T, typename Panel>
inline void for_each_panel(index_t k, Panel&& panel) {
  constexpr int vec = static_cast<int>(kVec<T>);
  index_t j0 = 0;
  index_t full = k / vec;
  for (; full > kMaxVectors; full -= 4, j0 += 4 * vec) panel(std::integral_constant<int, 4 * vec>{}, j0);
  switch (full) {
    case 6: panel(std::integral_constant<int, 6 * vec>{}, j0); break;
    case 5: panel(std::integral_constant<int, 5 * vec>{}, j0); break;
    case 4: panel(std::integral_constant<int, 4 * vec>{}, j0); break;
    case 3: panel(std::integral_constant<int, 3 * vec>{}, j0); break;
    case 2: panel(std::integral_constant<int, 2 * vec>{}, j0); break;
    case 1: panel(std::integral_constant<int, vec>{}, j0); break;
    default: break;
  }
  j0 += full * vec;
  const index_t rest = k - j0;  // < vec <= 16
  if constexpr (vec > 8) {
    if (rest & 8) panel(std::integral_constant<int, 8>{}, j0), j0 += 8;
  }
  if constexpr (vec > 4) {
    if (rest & 4) panel(std::integral_constant<int, 4>{}, j0), j0 += 4;
  }
  if constexpr (vec > 2) {
    if (rest & 2) panel(std::integral_constant<int, 2>{}, j0), j0 += 2;
  }
  if (rest & 1) panel(std::integral_constant<int, 1>{}, j0);
}

// The first row of worker t's share when rows are split into nt ranges of
// (about) equal nonzero count.
template <typename T, typename I>
index_t nnz_balanced_start(const CompressedView<T, I>& A, int t, int nt) {
  if (t <= 0) return 0;
  if (t >= nt) return A.rows;
  const double target = static_cast<double>(A.nnz()) * t / nt;
  const I* first = A.indptr;
  const I* last = A.indptr + A.rows + 1;
  const I* it = std::lower_bound(first, last, static_cast<I>(target));
  return std::min<index_t>(static_cast<index_t>(it - first), A.rows);
}

}  // namespace detail

// out (rows x k, row-major, ld_out) = A (rows x cols) * B (cols x k, row-major, ld_b).
// Parallel over rows, balanced by nonzeros through a dynamic schedule; each
// row's sums are formed in registers and written once.
template <typename T, typename I>
void spmm(const CompressedView<T, I>& A, const T* B, index_t k, index_t ld_b, T* out,
          index_t ld_out, int n_threads) {
  parallel_for(
      0, A.rows, n_threads,
      [&](index_t r) {
        T* o = out + r * ld_out;
        detail::for_each_panel<T>(k, [&](auto width, index_t j0) {
          detail::gather_panel<decltype(width)::value>(A, r, B + j0, ld_b, o + j0);
        });
      },
      64);
}

// What the transposed product learns about one matrix A on its first call
// and reuses on the next ones: whether every row's column indices are
// strictly increasing (SciPy's canonical format), the running count of
// entries per column, and buffers for the fallback.
template <typename T>
struct TransposeWorkspace {
  int sorted = -1;                   // -1: not checked yet
  std::vector<index_t> column_ends;  // column_ends[c]: entries in columns 0 .. c
  std::vector<T> scratch;            // per-thread sums (rows not sorted)
};

namespace detail {

template <typename T, typename I>
void learn_columns(const CompressedView<T, I>& A, TransposeWorkspace<T>& ws) {
  bool sorted = true;
  std::vector<index_t> count(static_cast<std::size_t>(A.cols), 0);
  for (index_t r = 0; r < A.rows; ++r)
    for (I p = A.indptr[r]; p < A.indptr[r + 1]; ++p) {
      ++count[static_cast<std::size_t>(A.indices[p])];
      if (p > A.indptr[r] && !(A.indices[p - 1] < A.indices[p])) sorted = false;
    }
  index_t run = 0;
  for (auto& c : count) c = run += c;
  ws.column_ends = std::move(count);
  ws.sorted = sorted ? 1 : 0;
}

// The first output row (column of A) of segment s of nseg, the columns split
// into ranges of (about) equal entry count.
inline index_t column_split(const std::vector<index_t>& column_ends, index_t nnz, int s, int nseg) {
  if (s <= 0) return 0;
  const index_t cols = static_cast<index_t>(column_ends.size());
  if (s >= nseg) return cols;
  const index_t target = static_cast<index_t>(static_cast<double>(nnz) * s / nseg);
  return static_cast<index_t>(std::upper_bound(column_ends.begin(), column_ends.end(), target - 1) -
                              column_ends.begin());
}

}  // namespace detail

// out (cols x k, row-major) = A^T (cols x rows) * B (rows x k, row-major).
//
// Rows with sorted column indices (the usual case): the output rows (A's
// columns) are split into one range of equal entry count per worker, and
// each worker walks all rows of A but only the entries of its own columns
// (found by binary search in each row), scattering into its own part of
// `out`. So X is read once in all, nothing is written by two threads, and
// there is no buffer, no reduction and no barrier; each output row is
// summed in row order, the serial result.
//
// Otherwise the rows of A are split into ranges of equal nonzero count,
// worker 0 scatters into `out`, worker t > 0 into its own cols x k buffer,
// and the buffers are added in worker order (deterministic for a thread count).
//
// `ws` must belong to this A (it caches facts about it); pass the same one
// again to reuse them.
template <typename T, typename I>
void spmm_transposed(const CompressedView<T, I>& A, const T* B, index_t k, index_t ld_b, T* out,
                     index_t ld_out, int n_threads, TransposeWorkspace<T>& ws) {
  const index_t cols = A.cols;
  if (ws.sorted < 0) detail::learn_columns(A, ws);
  const index_t nnz = A.nnz();
  if (ws.sorted == 1) {
    const int threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(resolve_threads(n_threads), cols)));
    parallel_region(threads, [&](int t, int nt) {
      for (int seg = t; seg < threads; seg += nt) {  // nt < threads only if OpenMP gave fewer
        const index_t c0 = detail::column_split(ws.column_ends, nnz, seg, threads);
        const index_t c1 = detail::column_split(ws.column_ends, nnz, seg + 1, threads);
        if (c0 >= c1) continue;
        for (index_t c = c0; c < c1; ++c)
          for (index_t j = 0; j < k; ++j) out[c * ld_out + j] = T(0);
        const I lo = static_cast<I>(c0), hi = static_cast<I>(c1);
        for (index_t r = 0; r < A.rows; ++r) {
          const I* first = A.indices + A.indptr[r];
          const I* last = A.indices + A.indptr[r + 1];
          if (first == last) continue;
          const I begin = static_cast<I>((c0 == 0 ? first : std::lower_bound(first, last, lo)) - A.indices);
          const I end = static_cast<I>((c1 == cols ? last : std::lower_bound(first, last, hi)) - A.indices);
          if (begin == end) continue;
          detail::for_each_panel<T>(k, [&](auto width, index_t j0) {
            detail::scatter_panel<decltype(width)::value>(A, begin, end, B + r * ld_b + j0, out + j0, ld_out);
          });
        }
      }
    });
    return;
  }
  // A worker needs a share of at least ~ the size of its buffer to pay for it.
  const index_t by_work = std::max<index_t>(1, nnz / std::max<index_t>(1, cols));
  const int threads = static_cast<int>(std::max<index_t>(1, std::min<index_t>(resolve_threads(n_threads), by_work)));
  const std::size_t slab = static_cast<std::size_t>(cols * k);
  if (threads > 1 && ws.scratch.size() < slab * static_cast<std::size_t>(threads - 1))
    ws.scratch.resize(slab * static_cast<std::size_t>(threads - 1));
  // Two regions, not one with a barrier between the phases: the regions of
  // forked children (and of ThreadSanitizer builds) run on rankfold's own
  // threads, where an OpenMP barrier does not synchronise anything.
  int parts = 1;  // workers of the first region = partial sums to add up
  parallel_region(threads, [&](int t, int nt) {
    if (t == 0) parts = nt;
    T* acc = t == 0 ? out : ws.scratch.data() + static_cast<std::size_t>(t - 1) * slab;
    const index_t ld = t == 0 ? ld_out : k;
    for (index_t c = 0; c < cols; ++c)
      for (index_t j = 0; j < k; ++j) acc[c * ld + j] = T(0);
    const index_t lo = detail::nnz_balanced_start(A, t, nt), hi = detail::nnz_balanced_start(A, t + 1, nt);
    for (index_t r = lo; r < hi; ++r)
      if (A.indptr[r] < A.indptr[r + 1])
        detail::for_each_panel<T>(k, [&](auto width, index_t j0) {
          detail::scatter_panel<decltype(width)::value>(A, A.indptr[r], A.indptr[r + 1], B + r * ld_b + j0,
                                                        acc + j0, ld);
        });
  });
  if (parts == 1) return;
  parallel_region(threads, [&](int t, int nt) {
    index_t c0, c1;
    split_range(cols, t, nt, c0, c1);
    for (int s = 1; s < parts; ++s) {
      const T* part = ws.scratch.data() + static_cast<std::size_t>(s - 1) * slab;
      for (index_t c = c0; c < c1; ++c) {
#pragma omp simd
        for (index_t j = 0; j < k; ++j) out[c * ld_out + j] += part[c * k + j];
      }
    }
  });
}

template <typename T, typename I>
void spmm_transposed(const CompressedView<T, I>& A, const T* B, index_t k, index_t ld_b, T* out,
                     index_t ld_out, int n_threads) {
  TransposeWorkspace<T> ws;
  spmm_transposed(A, B, k, ld_b, out, ld_out, n_threads, ws);
}

}  // namespace rankfold
