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
// null): row seen_rows[q] of it lists the items to skip for query q, with
// sorted indices
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
  // Blocks of queries x tiles of candidates: each score tile (64 x 1024) is
  // one GEMM that stays in L2 while it is filtered and scanned into the
  // queries' heaps. Seen lists are walked in step with the tiles (their
  // indices are sorted), so no pass touches a whole score row.
  const index_t qblock = 64, tile = 1024;
  const index_t n_blocks = (nq + qblock - 1) / qblock;
  const T neg_inf = -std::numeric_limits<T>::infinity();
  const int threads = resolve_threads(n_threads);
  struct Scratch {
    RowMatrix<T> S;
    std::vector<TopK<T>> heaps;
    std::vector<I> cursor;
  };
  std::vector<Scratch> scratch(static_cast<std::size_t>(threads));
  parallel_for(
      0, n_blocks, threads,
      [&](index_t b) {
        const index_t q0 = b * qblock, nb = std::min(qblock, nq - q0);
        Scratch& sc = scratch[static_cast<std::size_t>(thread_id())];
        if (sc.S.rows() != qblock || sc.S.cols() != tile) sc.S.resize(qblock, tile);
        sc.heaps.resize(static_cast<std::size_t>(qblock));
        sc.cursor.resize(static_cast<std::size_t>(qblock));
        for (index_t q = 0; q < nb; ++q) {
          sc.heaps[static_cast<std::size_t>(q)].reset(n);
          const bool has_seen = seen && seen_rows && seen_rows[q0 + q] >= 0;
          sc.cursor[static_cast<std::size_t>(q)] = has_seen ? seen->indptr[seen_rows[q0 + q]] : I(0);
        }
        const auto Qb = row_view(Q + q0 * k, nb, k);
        for (index_t j0 = 0; j0 < m; j0 += tile) {
          const index_t nt = std::min(tile, m - j0);
          sc.S.topLeftCorner(nb, nt).noalias() = Qb * row_view(Yc + j0 * k, nt, k).transpose();
          for (index_t q = 0; q < nb; ++q) {
            T* s = sc.S.row(q).data();
            if (seen && seen_rows && seen_rows[q0 + q] >= 0) {
              const index_t r = seen_rows[q0 + q];
              I& p = sc.cursor[static_cast<std::size_t>(q)];
              if (subset) {  // candidates are in the caller's order: map each seen item to its position
                for (I pp = seen->indptr[r]; pp < seen->indptr[r + 1]; ++pp) {
                  const index_t pos = position[static_cast<std::size_t>(seen->indices[pp])];
                  if (pos >= j0 && pos < j0 + nt) s[pos - j0] = neg_inf;
                }
              } else {
                const I stop = seen->indptr[r + 1];
                while (p < stop && static_cast<index_t>(seen->indices[p]) < j0 + nt) {
                  const index_t item = static_cast<index_t>(seen->indices[p]);
                  if (item >= j0) s[item - j0] = neg_inf;
                  ++p;
                }
              }
            }
            TopK<T>& top = sc.heaps[static_cast<std::size_t>(q)];
            T thr = top.threshold();
            for (index_t j = 0; j < nt; ++j) {
              const T v = -s[j];
              if (v <= thr && v != -neg_inf) {  // skips NaN and filtered items
                top.push(v, subset ? candidates[j0 + j] : j0 + j);
                thr = top.threshold();
              }
            }
          }
        }
        for (index_t q = q0; q < q0 + nb; ++q) {
          sc.heaps[static_cast<std::size_t>(q - q0)].write_sorted(out_ids + q * n, out_scores + q * n);
          for (int i = 0; i < n; ++i) out_scores[q * n + i] = -out_scores[q * n + i];
        }
      },
      1);
}

}  // namespace completion
}  // namespace rankfold
