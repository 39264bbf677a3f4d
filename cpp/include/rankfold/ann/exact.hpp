// Exact k-nearest-neighbour search.
//
// Distances come from blocked matrix products: a block of queries times a block
// of base vectors (Eigen's GEMM, one thread per block), turned into distances
// with precomputed squared norms and scanned into per-query top-k heaps. Work is
// split over query blocks, and also over base segments when there are too few
// query blocks to keep every thread busy (partial top-k lists are merged).
//
// Reported distances: l2 -> squared Euclidean; ip -> 1 - <q, x>;
// cosine -> 1 - cos(q, x) (inputs normalised first).
#pragma once

#include <cmath>
#include <type_traits>
#include <cstdint>
#include <istream>
#include <limits>
#include <ostream>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"
#include "../core/threads.hpp"
#include "../core/topk.hpp"
#include "../core/types.hpp"
#include "distance.hpp"
#include "file_format.hpp"

namespace rankfold {

struct ExactSearchOptions {
  index_t query_block = 512;  // queries per GEMM block
  index_t base_block = 256;   // base vectors per GEMM block
};

// Squared norms of the rows of a (n x d) row-major matrix.
template <typename T>
void row_sqnorms(const T* X, index_t n, index_t d, T* out, int n_threads) {
  parallel_for(0, n, n_threads, [&](index_t i) { out[i] = static_cast<T>(dot(X + i * d, X + i * d, d)); }, 1024);
}

// Scales the rows of X (n x d) to unit norm; throws if a row is zero.
template <typename T>
void normalize_rows(T* X, index_t n, index_t d, int n_threads, const char* name = "X") {
  parallel_for(
      0, n, n_threads,
      [&](index_t i) {
        T* row = X + i * d;
        double s = 0;
        for (index_t j = 0; j < d; ++j) s += static_cast<double>(row[j]) * row[j];
        require(s > 0, name, " row ", i, " is a zero vector; cosine distance is undefined for it");
        const T inv = static_cast<T>(1.0 / std::sqrt(s));
        for (index_t j = 0; j < d; ++j) row[j] *= inv;
      },
      1024);
}

namespace detail {

// Pushes the candidates of one row of products s[0..nb) into `top`. The
// ranking value is norms[j] - 2 s[j] (L2, norms given) or -s[j] (inner
// product). Most candidates lose against the current k-th best, so the
// AVX-512 path compares 16 at a time and only walks the lanes that pass.
template <typename T>
inline void scan_block(const T* s, const T* norms, const index_t* labels, index_t first, index_t nb, TopK<T>& top) {
  index_t j = 0;
  T thr = top.threshold();
#if defined(__AVX512F__)
  if constexpr (std::is_same<T, float>::value) {
    const __m512 minus_two = _mm512_set1_ps(-2.f);
    for (; j + 16 <= nb; j += 16) {
      const __m512 prod = _mm512_loadu_ps(s + j);
      const __m512 v = norms ? _mm512_fmadd_ps(minus_two, prod, _mm512_loadu_ps(norms + j))
                             : _mm512_sub_ps(_mm512_setzero_ps(), prod);
      __mmask16 mask = _mm512_cmp_ps_mask(v, _mm512_set1_ps(thr), _CMP_LE_OQ);
      while (mask) {
        const int lane = __builtin_ctz(mask);
        mask &= static_cast<__mmask16>(mask - 1);
        const index_t c = j + lane;
        const T val = norms ? norms[c] - 2 * s[c] : -s[c];
        if (val <= thr) {
          top.push(val, labels ? labels[c] : first + c);
          thr = top.threshold();
        }
      }
    }
  }
#endif
  for (; j < nb; ++j) {
    const T v = norms ? norms[j] - 2 * s[j] : -s[j];
    if (v <= thr) {
      top.push(v, labels ? labels[j] : first + j);
      thr = top.threshold();
    }
  }
}

}  // namespace detail

// k nearest rows of `base` (n x d) for each row of `queries` (nq x d), both
// row-major and contiguous. metric L2 needs `base_sqnorms` (length n);
// InnerProduct/Cosine expect already-normalised inputs for cosine. `labels`
// (length n, optional) maps rows to reported ids. Writes nq x k ids and
// distances, padded with (-1, +inf) when n < k.
template <typename T>
void exact_search(const T* base, index_t n, index_t d, const T* base_sqnorms, const index_t* labels,
                  const T* queries, index_t nq, int k, Metric metric, index_t* out_ids, T* out_dist,
                  int n_threads, const ExactSearchOptions& opt = {}) {
  require(k >= 1, "k must be >= 1, got ", k);
  require(d >= 1, "dimension must be >= 1");
  require(metric != Metric::L2 || n == 0 || base_sqnorms != nullptr, "L2 search needs base norms");
  if (nq == 0) return;
  const int threads = resolve_threads(n_threads);
  const bool l2 = metric == Metric::L2;
  const index_t BQ = opt.query_block, BN = opt.base_block;
  const index_t n_qblocks = (nq + BQ - 1) / BQ;
  const index_t n_bblocks = std::max<index_t>(1, (n + BN - 1) / BN);
  index_t n_segments = 1;
  if (n_qblocks < 2 * threads) n_segments = std::min(n_bblocks, (2 * threads + n_qblocks - 1) / n_qblocks);
  const index_t blocks_per_seg = (n_bblocks + n_segments - 1) / n_segments;

  // With several segments each keeps its own top-k lists, merged afterwards.
  std::vector<index_t> part_ids;
  std::vector<T> part_dist;
  if (n_segments > 1) {
    part_ids.resize(static_cast<std::size_t>(n_segments * nq * k));
    part_dist.resize(part_ids.size());
  }

  std::vector<T> query_sqnorms;
  if (l2) {
    query_sqnorms.resize(static_cast<std::size_t>(nq));
    row_sqnorms(queries, nq, d, query_sqnorms.data(), threads);
  }

  parallel_for(0, n_qblocks * n_segments, threads, [&](index_t task) {
    const index_t qb = task / n_segments, seg = task % n_segments;
    const index_t q0 = qb * BQ, q1 = std::min(nq, q0 + BQ), nqb = q1 - q0;
    const index_t b_start = seg * blocks_per_seg * BN, b_end = std::min(n, (seg + 1) * blocks_per_seg * BN);
    std::vector<TopK<T>> tops(static_cast<std::size_t>(nqb), TopK<T>(k));
    RowMatrix<T> scratch(nqb, std::min(BN, std::max<index_t>(n, 1)));
    const auto Q = row_view(queries + q0 * d, nqb, d);
    for (index_t b0 = b_start; b0 < b_end; b0 += BN) {
      const index_t nb = std::min(BN, b_end - b0);
      const auto B = row_view(base + b0 * d, nb, d);
      auto S = scratch.leftCols(nb);
      S.noalias() = Q * B.transpose();
      for (index_t qi = 0; qi < nqb; ++qi) {
        detail::scan_block(S.row(qi).data(), l2 ? base_sqnorms + b0 : nullptr, labels ? labels + b0 : nullptr, b0, nb,
                   tops[static_cast<std::size_t>(qi)]);
      }
    }
    for (index_t qi = 0; qi < nqb; ++qi) {
      const index_t q = q0 + qi;
      index_t* ids = n_segments > 1 ? &part_ids[static_cast<std::size_t>((seg * nq + q) * k)] : out_ids + q * k;
      T* dist = n_segments > 1 ? &part_dist[static_cast<std::size_t>((seg * nq + q) * k)] : out_dist + q * k;
      tops[static_cast<std::size_t>(qi)].write_sorted(ids, dist);
    }
  });

  // Merge segment lists, then convert ranking values to reported distances.
  parallel_for(
      0, nq, threads,
      [&](index_t q) {
        if (n_segments > 1) {
          TopK<T> top(k);
          for (index_t seg = 0; seg < n_segments; ++seg) {
            const std::size_t off = static_cast<std::size_t>((seg * nq + q) * k);
            for (int i = 0; i < k && part_ids[off + i] >= 0; ++i) top.push(part_dist[off + i], part_ids[off + i]);
          }
          top.write_sorted(out_ids + q * k, out_dist + q * k);
        }
        T* dist = out_dist + q * k;
        for (int i = 0; i < k; ++i) {
          if (out_ids[q * k + i] < 0) continue;
          dist[i] = l2 ? std::max<T>(0, dist[i] + query_sqnorms[static_cast<std::size_t>(q)]) : 1 + dist[i];
        }
      },
      64);
}

// A flat index: stores float32 vectors and searches them exactly.
class ExactIndex {
 public:
  ExactIndex(index_t dim, Metric metric) : dim_(dim), metric_(metric) {
    require(dim >= 1, "dim must be >= 1, got ", dim);
  }

  index_t dim() const { return dim_; }
  Metric metric() const { return metric_; }
  index_t size() const { return static_cast<index_t>(labels_.size()); }
  const std::vector<float>& vectors() const { return data_; }
  const std::vector<index_t>& labels() const { return labels_; }
  index_t next_label() const { return next_label_; }

  bool contains(index_t label) const { return row_of_.count(label) > 0; }

  // Adds n vectors (row-major n x dim). labels == nullptr assigns
  // next_label(), next_label()+1, ... Labels must be new and unique.
  void add(const float* X, index_t n, const index_t* labels, int n_threads) {
    require(n >= 0, "number of vectors must be >= 0");
    std::vector<index_t> new_labels(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      const index_t lab = labels ? labels[i] : next_label_ + i;
      require(lab >= 0, "ids must be >= 0, got ", lab);
      new_labels[static_cast<std::size_t>(i)] = lab;
    }
    std::unordered_map<index_t, index_t> seen;
    for (index_t i = 0; i < n; ++i) {
      const index_t lab = new_labels[static_cast<std::size_t>(i)];
      require(!contains(lab), "ids: id ", lab, " is already in the index");
      require(seen.emplace(lab, i).second, "ids: id ", lab, " appears twice in this batch");
    }
    const index_t old = size();
    data_.insert(data_.end(), X, X + n * dim_);
    if (metric_ == Metric::Cosine) {
      try {
        normalize_rows(data_.data() + old * dim_, n, dim_, n_threads);
      } catch (...) {
        data_.resize(static_cast<std::size_t>(old * dim_));
        throw;
      }
    }
    sqnorms_.resize(static_cast<std::size_t>(old + n));
    row_sqnorms(data_.data() + old * dim_, n, dim_, sqnorms_.data() + old, n_threads);
    for (index_t i = 0; i < n; ++i) {
      const index_t lab = new_labels[static_cast<std::size_t>(i)];
      labels_.push_back(lab);
      row_of_[lab] = old + i;
      next_label_ = std::max(next_label_, lab + 1);
    }
  }

  void search(const float* Q, index_t nq, int k, index_t* out_ids, float* out_dist, int n_threads) const {
    const float* queries = Q;
    std::vector<float> normalized;
    if (metric_ == Metric::Cosine) {
      normalized.assign(Q, Q + nq * dim_);
      normalize_rows(normalized.data(), nq, dim_, n_threads, "Q");
      queries = normalized.data();
    }
    exact_search<float>(data_.data(), size(), dim_, sqnorms_.data(), labels_.data(), queries, nq, k,
                        metric_, out_ids, out_dist, n_threads);
  }

  // Copies the stored vectors of `labels` (n x dim); unknown labels throw.
  void get_vectors(const index_t* labels, index_t n, float* out) const {
    for (index_t i = 0; i < n; ++i) {
      auto it = row_of_.find(labels[i]);
      require(it != row_of_.end(), "ids: id ", labels[i], " is not in the index");
      std::copy_n(data_.data() + it->second * dim_, dim_, out + i * dim_);
    }
  }

  std::uint64_t payload_size() const {
    return 8 * 4 + static_cast<std::uint64_t>(size()) * (8 + 4 * dim_);
  }

  void save(std::ostream& out) const {
    io::Writer w(out, io::IndexKind::Exact, payload_size());
    w.value<std::int64_t>(dim_);
    w.value<std::int64_t>(static_cast<std::int64_t>(metric_));
    w.value<std::int64_t>(size());
    w.value<std::int64_t>(next_label_);
    w.array(labels_.data(), labels_.size());
    w.array(data_.data(), data_.size());
    w.finish();
  }

  static ExactIndex load(const char* data, std::size_t size, const std::string& what, int n_threads) {
    io::Reader r(data, size, io::IndexKind::Exact, what);
    const auto dim = r.value<std::int64_t>();
    const auto metric = r.value<std::int64_t>();
    const auto n = r.value<std::int64_t>();
    const auto next = r.value<std::int64_t>();
    require<FormatError>(dim >= 1 && dim <= (1 << 24) && metric >= 0 && metric <= 2 && n >= 0, what,
                         " is corrupted (invalid header fields)");
    require<FormatError>(static_cast<std::uint64_t>(n) <= r.remaining() / (8 + 4 * static_cast<std::uint64_t>(dim)),
                         what, " is corrupted (counts do not match the size)");
    ExactIndex index(dim, static_cast<Metric>(metric));
    std::vector<index_t> labels(static_cast<std::size_t>(n));
    r.array(labels.data(), labels.size());
    std::vector<float> vectors(static_cast<std::size_t>(n * dim));
    r.array(vectors.data(), vectors.size());
    r.expect_end();
    for (index_t lab : labels) require<FormatError>(lab >= 0 && lab < next, what, " is corrupted (bad id)");
    index.data_ = std::move(vectors);
    index.labels_ = std::move(labels);
    index.sqnorms_.resize(static_cast<std::size_t>(n));
    row_sqnorms(index.data_.data(), n, dim, index.sqnorms_.data(), n_threads);
    for (index_t i = 0; i < n; ++i) {
      require<FormatError>(index.row_of_.emplace(index.labels_[static_cast<std::size_t>(i)], i).second, what,
                           " is corrupted (duplicate id)");
    }
    index.next_label_ = next;
    return index;
  }

 private:
  index_t dim_;
  Metric metric_;
  std::vector<float> data_;
  std::vector<float> sqnorms_;
  std::vector<index_t> labels_;
  std::unordered_map<index_t, index_t> row_of_;
  index_t next_label_ = 0;
};

}  // namespace rankfold
