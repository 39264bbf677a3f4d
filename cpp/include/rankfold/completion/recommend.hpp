// Recommendation: the n best items by dot product for a batch of query
// vectors, skipping items a user has already seen, optionally among a subset
// of candidate items. Scores of a block of queries are one GEMM against the
// candidates; selection uses the shared TopK heap. Parallel over query blocks.
#pragma once

#include <Eigen/Core>
#include <limits>
#include <vector>

#include "../core/error.hpp"
#include "../core/sparse.hpp"
#include "../core/threads.hpp"
#include "../core/topk.hpp"
#include "../core/types.hpp"

namespace rankfold {
namespace completion {

// Q: nq x k queries; Y: n_items x k item vectors (row-major). seen (may be
// null): row seen_rows[q] of it lists the items to skip for query q
// (seen_rows[q] < 0: nothing to skip). candidates (may be null): the item ids
// to rank; otherwise all items. Writes n ids and scores per query, best
// first; places that cannot be filled hold id -1 and score -inf.
template <typename T, typename I>
void topk_dot(const T* Q, index_t nq, const T* Y, index_t n_items, index_t k, int n,
              const CompressedView<T, I>* seen, const index_t* seen_rows, const index_t* candidates,
              index_t n_candidates, index_t* out_ids, T* out_scores, int n_threads) {
  require(n >= 1, "n must be >= 1, got ", n);
  require(k >= 1, "factors must be >= 1");
  const bool subset = candidates != nullptr;
  const index_t m = subset ? n_candidates : n_items;
  // The candidates' vectors, contiguous, and item id -> candidate position.
  RowMatrix<T> Ysub;
  std::vector<index_t> position;
  if (subset) {
    Ysub.resize(m, k);
    position.assign(static_cast<std::size_t>(n_items), -1);
    for (index_t j = 0; j < m; ++j) {
      const index_t item = candidates[j];
      require(item >= 0 && item < n_items, "item id ", item, " out of range [0, ", n_items, ")");
      position[static_cast<std::size_t>(item)] = j;
      Ysub.row(j) = row_view(Y + item * k, 1, k);
    }
  }
  const T* Yc = subset ? Ysub.data() : Y;
  const auto Ym = row_view(Yc, m, k);
  const index_t block = 32;
  const index_t n_blocks = (nq + block - 1) / block;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int threads = resolve_threads(n_threads);
  std::vector<RowMatrix<T>> scores(static_cast<std::size_t>(threads));
  parallel_for(
      0, n_blocks, threads,
      [&](index_t b) {
        const index_t q0 = b * block, nb = std::min(block, nq - q0);
        RowMatrix<T>& S = scores[static_cast<std::size_t>(thread_id())];
        if (S.rows() != block || S.cols() != m) S.resize(block, m);
        S.topRows(nb).noalias() = row_view(Q + q0 * k, nb, k) * Ym.transpose();
        TopK<T> top(n);
        for (index_t q = q0; q < q0 + nb; ++q) {
          T* s = S.row(q - q0).data();
          if (seen && seen_rows && seen_rows[q] >= 0) {
            const index_t r = seen_rows[q];
            for (I p = seen->indptr[r]; p < seen->indptr[r + 1]; ++p) {
              const index_t item = static_cast<index_t>(seen->indices[p]);
              const index_t j = subset ? position[static_cast<std::size_t>(item)] : item;
              if (j >= 0 && j < m) s[j] = neg_inf;
            }
          }
          top.reset(n);
          T thr = top.threshold();
          for (index_t j = 0; j < m; ++j) {
            const T v = -s[j];
            if (v <= thr && v != -neg_inf) {  // skips NaN and filtered items
              top.push(v, subset ? candidates[j] : j);
              thr = top.threshold();
            }
          }
          top.write_sorted(out_ids + q * n, out_scores + q * n);
          for (int i = 0; i < n; ++i) out_scores[q * n + i] = -out_scores[q * n + i];
        }
      },
      1);
}

}  // namespace completion
}  // namespace rankfold
