// Exact k-nearest-neighbour search.
//
// Two engines share one blocked driver (query blocks x base segments, per-query
// top-k heaps, segments merged when there are too few query blocks to keep
// every thread busy):
//  * exact_search: any scalar type; Eigen's GEMM computes a block of scores,
//    then a SIMD scan filters them into the heaps;
//  * exact_search_packed: float32 vectors packed 16-wide; a register-tiled
//    kernel computes scores and filters them without writing a score matrix,
//    one tile per SIMD level (core/simd.hpp): 12 queries x 32 vectors on
//    AVX-512, 6 x 16 on AVX2+FMA, 4 x 16 generic. ExactIndex and float32 knn
//    use it.
//
// Reported distances: l2 -> squared Euclidean; ip -> 1 - <q, x>;
// cosine -> 1 - cos(q, x) (inputs normalised first).
#pragma once

#include <cmath>
#include <cstring>
#include <type_traits>
#include <cstdint>
#include <istream>
#include <limits>
#include <memory>
#include <mutex>
#include <ostream>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"
#include "../core/interrupt.hpp"
#include "../core/simd.hpp"
#include "../core/threads.hpp"
#include "../core/topk.hpp"
#include "../core/types.hpp"
#include "distance.hpp"
#include "file_format.hpp"

namespace rankfold {

struct ExactSearchOptions {
  index_t query_block = 512;  // queries per GEMM block
  index_t base_block = 256;   // base vectors per GEMM block (a multiple of 32)
  // Polled between base blocks (Ctrl-C from Python); a cancelled search
  // throws Interrupted and leaves the output unspecified.
  Cancellation* cancel = nullptr;
};

// |x|^2 accumulated in double. Plain code, not dispatched: every SIMD level
// ranks with the same norms, so the levels agree on the results.
template <typename T>
inline T sqnorm(const T* x, index_t d) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (index_t j = 0; j < d; ++j) s += static_cast<double>(x[j]) * static_cast<double>(x[j]);
  return static_cast<T>(s);
}

// Squared norms of the rows of a (n x d) row-major matrix.
template <typename T>
void row_sqnorms(const T* X, index_t n, index_t d, T* out, int n_threads) {
  parallel_for(0, n, n_threads, [&](index_t i) { out[i] = sqnorm(X + i * d, d); }, 1024);
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

// Pushes candidate c (ranking value v) into `top` when it beats the k-th best.
template <typename T>
inline void push_candidate(T v, index_t c, const index_t* labels, index_t first, TopK<T>& top, T& thr) {
  if (v <= thr) {
    top.push(v, labels ? labels[c] : first + c);
    thr = top.threshold();
  }
}

// Pushes the candidates of one row of products s[0..nb) into `top`. The
// ranking value is norms[j] - 2 s[j] (L2, norms given) or -s[j] (inner
// product). Most candidates lose against the current k-th best, so the SIMD
// paths compare 16 (AVX-512) or 8 (AVX2) at a time and only walk the lanes
// that pass; every path computes the same values with the same operations.
template <typename T>
inline void scan_block_generic(const T* s, const T* norms, const index_t* labels, index_t first, index_t j,
                               index_t nb, TopK<T>& top) {
  T thr = top.threshold();
  for (; j < nb; ++j) push_candidate<T>(norms ? norms[j] - 2 * s[j] : -s[j], j, labels, first, top, thr);
}

#if defined(RANKFOLD_X86)
__attribute__((target("avx512f"))) inline index_t scan_block_avx512(const float* s, const float* norms,
                                                                     const index_t* labels, index_t first,
                                                                     index_t nb, TopK<float>& top) {
  index_t j = 0;
  float thr = top.threshold();
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
      push_candidate<float>(norms ? norms[c] - 2 * s[c] : -s[c], c, labels, first, top, thr);
    }
  }
  return j;
}

__attribute__((target("avx2,fma"))) inline index_t scan_block_avx2(const float* s, const float* norms,
                                                                    const index_t* labels, index_t first,
                                                                    index_t nb, TopK<float>& top) {
  index_t j = 0;
  float thr = top.threshold();
  const __m256 minus_two = _mm256_set1_ps(-2.f);
  for (; j + 8 <= nb; j += 8) {
    const __m256 prod = _mm256_loadu_ps(s + j);
    const __m256 v = norms ? _mm256_fmadd_ps(minus_two, prod, _mm256_loadu_ps(norms + j))
                           : _mm256_sub_ps(_mm256_setzero_ps(), prod);
    unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v, _mm256_set1_ps(thr), _CMP_LE_OQ)));
    while (mask) {
      const int lane = __builtin_ctz(mask);
      mask &= mask - 1;
      const index_t c = j + lane;
      push_candidate<float>(norms ? norms[c] - 2 * s[c] : -s[c], c, labels, first, top, thr);
    }
  }
  return j;
}
#endif

template <typename T>
inline void scan_block(const T* s, const T* norms, const index_t* labels, index_t first, index_t nb, TopK<T>& top) {
  index_t j = 0;
#if defined(RANKFOLD_X86)
  if constexpr (std::is_same<T, float>::value) {
    switch (simd::active_level()) {
      case simd::Level::AVX512: j = scan_block_avx512(s, norms, labels, first, nb, top); break;
      case simd::Level::AVX2: j = scan_block_avx2(s, norms, labels, first, nb, top); break;
      case simd::Level::Generic: break;
    }
  }
#endif
  scan_block_generic(s, norms, labels, first, j, nb, top);
}

}  // namespace detail

namespace detail {

// Runs the blocked search: the queries are cut into blocks of BQ, the base
// into segments (multiples of BN rows) when there are too few query blocks to
// keep every thread busy. block_fn(q0, nqb, b_start, b_end, tops) pushes the
// ranking values of base rows [b_start, b_end) for queries [q0, q0 + nqb)
// into tops[0 .. nqb). Ranking values are |x|^2 - 2<q,x> (L2) or -<q,x>;
// the driver merges segments and converts them to reported distances.
// Heaps and partial lists hold min(k, n) entries, whatever k: the places past
// n are padding (-1, +inf), written at the end. block_fn polls `cancel`
// (may be null) between base blocks and returns early once it is stopped.
template <typename T, typename BlockFn>
void run_blocked_search(index_t n, index_t nq, int k, bool l2, const T* query_sqnorms, index_t BQ, index_t BN,
                        int threads, index_t* out_ids, T* out_dist, Cancellation* cancel, BlockFn&& block_fn) {
  const int kk = static_cast<int>(std::min<index_t>(k, std::max<index_t>(n, 0)));
  if (kk == 0) {
    std::fill(out_ids, out_ids + nq * k, index_t{-1});
    std::fill(out_dist, out_dist + nq * k, std::numeric_limits<T>::infinity());
    return;
  }
  const index_t n_qblocks = (nq + BQ - 1) / BQ;
  const index_t n_bblocks = std::max<index_t>(1, (n + BN - 1) / BN);
  index_t n_segments = 1;
  if (n_qblocks < 2 * threads) n_segments = std::min(n_bblocks, (2 * threads + n_qblocks - 1) / n_qblocks);
  const index_t blocks_per_seg = (n_bblocks + n_segments - 1) / n_segments;

  // With several segments each keeps its own top-k lists, merged afterwards.
  std::vector<index_t> part_ids;
  std::vector<T> part_dist;
  if (n_segments > 1) {
    part_ids.resize(static_cast<std::size_t>(n_segments * nq * kk));
    part_dist.resize(part_ids.size());
  }

  parallel_for(0, n_qblocks * n_segments, threads, [&](index_t task) {
    if (cancel != nullptr && cancel->poll()) return;
    const index_t qb = task / n_segments, seg = task % n_segments;
    const index_t q0 = qb * BQ, nqb = std::min(nq, q0 + BQ) - q0;
    const index_t b_start = std::min(n, seg * blocks_per_seg * BN);
    const index_t b_end = std::min(n, (seg + 1) * blocks_per_seg * BN);
    std::vector<TopK<T>> tops(static_cast<std::size_t>(nqb), TopK<T>(kk));
    if (b_start < b_end) block_fn(q0, nqb, b_start, b_end, tops.data());
    for (index_t qi = 0; qi < nqb; ++qi) {
      const index_t q = q0 + qi;
      const std::size_t part = static_cast<std::size_t>((seg * nq + q) * kk);
      index_t* ids = n_segments > 1 ? &part_ids[part] : out_ids + q * k;
      T* dist = n_segments > 1 ? &part_dist[part] : out_dist + q * k;
      tops[static_cast<std::size_t>(qi)].write_sorted(ids, dist);
    }
  });
  if (cancel != nullptr) cancel->throw_if_stopped("search interrupted");

  parallel_for(
      0, nq, threads,
      [&](index_t q) {
        if (n_segments > 1) {
          TopK<T> top(kk);
          for (index_t seg = 0; seg < n_segments; ++seg) {
            const std::size_t off = static_cast<std::size_t>((seg * nq + q) * kk);
            for (int i = 0; i < kk && part_ids[off + i] >= 0; ++i) top.push(part_dist[off + i], part_ids[off + i]);
          }
          top.write_sorted(out_ids + q * k, out_dist + q * k);
        }
        T* dist = out_dist + q * k;
        for (int i = 0; i < kk; ++i) {
          if (out_ids[q * k + i] < 0) continue;
          dist[i] = l2 ? std::max<T>(0, dist[i] + query_sqnorms[q]) : 1 + dist[i];
        }
        std::fill(out_ids + q * k + kk, out_ids + (q + 1) * k, index_t{-1});
        std::fill(dist + kk, dist + k, std::numeric_limits<T>::infinity());
      },
      64);
}

}  // namespace detail

// k nearest rows of `base` (n x d) for each row of `queries` (nq x d), both
// row-major and contiguous, through Eigen's GEMM (any scalar type). metric L2
// needs `base_sqnorms` (length n); cosine expects normalised inputs and is
// searched as inner product. `labels` (length n, optional) maps rows to
// reported ids. Writes nq x k ids and distances, padded with (-1, +inf).
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
  std::vector<T> query_sqnorms(static_cast<std::size_t>(l2 ? nq : 0));
  if (l2) row_sqnorms(queries, nq, d, query_sqnorms.data(), threads);
  const index_t BN = opt.base_block;
  detail::run_blocked_search<T>(
      n, nq, k, l2, query_sqnorms.data(), opt.query_block, BN, threads, out_ids, out_dist, opt.cancel,
      [&](index_t q0, index_t nqb, index_t b_start, index_t b_end, TopK<T>* tops) {
        RowMatrix<T> scratch(nqb, std::min(BN, b_end - b_start));
        const auto Q = row_view(queries + q0 * d, nqb, d);
        for (index_t b0 = b_start; b0 < b_end; b0 += BN) {
          if (opt.cancel != nullptr && opt.cancel->poll()) return;
          const index_t nb = std::min(BN, b_end - b0);
          auto S = scratch.leftCols(nb);
          S.noalias() = Q * row_view(base + b0 * d, nb, d).transpose();
          for (index_t qi = 0; qi < nqb; ++qi)
            detail::scan_block(S.row(qi).data(), l2 ? base_sqnorms + b0 : nullptr, labels ? labels + b0 : nullptr,
                               b0, nb, tops[qi]);
        }
      });
}

// float32 vectors stored for the fused search kernel: groups of 16 vectors
// interleaved dimension by dimension (group g holds dim x 16 floats, entry
// [g][j][lane] = x[16 g + lane][j]), padded to a multiple of 32 vectors, and a
// per-vector bias: |x|^2 for L2, 0 for inner product, +inf for padding, so
// that bias - scale * <q, x> is the ranking value.
class PackedVectors {
 public:
  static constexpr index_t kLanes = 16;
  static constexpr index_t kGranule = 32;  // vectors per kernel call (two groups)

  PackedVectors(index_t dim, bool l2) : dim_(dim), l2_(l2) {}

  index_t size() const { return n_; }
  index_t dim() const { return dim_; }
  bool l2() const { return l2_; }
  const float* groups() const { return data_.data(); }
  const float* bias() const { return bias_.data(); }
  std::size_t memory_bytes() const { return (data_.capacity() + bias_.capacity()) * sizeof(float); }

  void append(const float* X, index_t n, int n_threads) {
    const index_t old = n_, total = n_ + n;
    const index_t padded = (total + kGranule - 1) / kGranule * kGranule;
    if (padded > static_cast<index_t>(bias_.size())) {
      data_.resize(static_cast<std::size_t>(padded * dim_), 0.f);
      bias_.resize(static_cast<std::size_t>(padded), std::numeric_limits<float>::infinity());
    }
    parallel_for(
        0, n, n_threads,
        [&](index_t i) {
          const index_t r = old + i;
          const float* x = X + i * dim_;
          float* g = data_.data() + (r / kLanes) * dim_ * kLanes + (r % kLanes);
          for (index_t j = 0; j < dim_; ++j) g[j * kLanes] = x[j];
          bias_[static_cast<std::size_t>(r)] = l2_ ? sqnorm(x, dim_) : 0.f;
        },
        256);
    n_ = total;
  }

  void row(index_t r, float* out) const {
    const float* g = data_.data() + (r / kLanes) * dim_ * kLanes + (r % kLanes);
    for (index_t j = 0; j < dim_; ++j) out[j] = g[j * kLanes];
  }

 private:
  index_t dim_;
  bool l2_;
  index_t n_ = 0;
  std::vector<float> data_;
  std::vector<float> bias_;
};

namespace detail {

// Queries Q[0 .. nq) (nq <= Rows) interleaved for a tile of Rows queries:
// out[j * Rows + r] = Q[r][j], zero rows past nq.
template <int Rows>
inline void pack_query_tile(const float* Q, index_t d, index_t nq, float* out) {
  for (index_t j = 0; j < d; ++j)
    for (int r = 0; r < Rows; ++r) out[j * Rows + r] = r < nq ? Q[r * d + j] : 0.f;
}

// A fused tile computes the products of `Rows` packed queries with `Cols`
// packed vectors in registers, turns them into ranking values
// bias - scale * <q, x>, compares each query's row against its current k-th
// best and pushes only the winners. One tile per SIMD level, sized for that
// level's register file; all accumulate <q, x> in the order of the
// dimensions with one fused multiply-add per term, so in a build where the
// generic loop is contracted to FMA (the native build) every level gives the
// same bits. `rows` real queries (<= Rows), `valid` real vectors (<= Cols).

// AVX-512: 12 queries x 32 vectors (24 zmm accumulators of the 32).
constexpr int kTileQueries = 12;

#if defined(RANKFOLD_X86)
__attribute__((target("avx512f"))) inline void fused_tile_avx512(
    const float* qtile, const float* g0, index_t d, const float* bias, float scale, int rows, index_t valid,
    index_t first, const index_t* labels, TopK<float>* tops, float* thr) {
  __m512 acc0[kTileQueries], acc1[kTileQueries];
  for (int r = 0; r < kTileQueries; ++r) acc0[r] = acc1[r] = _mm512_setzero_ps();
  const float* g1 = g0 + d * PackedVectors::kLanes;
  for (index_t j = 0; j < d; ++j) {
    const __m512 x0 = _mm512_loadu_ps(g0 + j * 16), x1 = _mm512_loadu_ps(g1 + j * 16);
    const float* q = qtile + j * kTileQueries;
#pragma GCC unroll 12
    for (int r = 0; r < kTileQueries; ++r) {
      const __m512 a = _mm512_set1_ps(q[r]);
      acc0[r] = _mm512_fmadd_ps(a, x0, acc0[r]);
      acc1[r] = _mm512_fmadd_ps(a, x1, acc1[r]);
    }
  }
  const __m512 s = _mm512_set1_ps(-scale), b0 = _mm512_loadu_ps(bias), b1 = _mm512_loadu_ps(bias + 16);
  const std::uint32_t valid_mask = valid >= 32 ? 0xFFFFFFFFu : ((1u << valid) - 1u);
  for (int r = 0; r < rows; ++r) {
    const __m512 v0 = _mm512_fmadd_ps(s, acc0[r], b0), v1 = _mm512_fmadd_ps(s, acc1[r], b1);
    const __m512 t = _mm512_set1_ps(thr[r]);
    std::uint32_t mask = (static_cast<std::uint32_t>(_mm512_cmp_ps_mask(v1, t, _CMP_LE_OQ)) << 16) |
                         _mm512_cmp_ps_mask(v0, t, _CMP_LE_OQ);
    mask &= valid_mask;
    if (!mask) continue;
    alignas(64) float vals[32];
    _mm512_store_ps(vals, v0);
    _mm512_store_ps(vals + 16, v1);
    while (mask) {
      const int c = __builtin_ctz(mask);
      mask &= mask - 1;
      if (vals[c] <= thr[r]) {
        tops[r].push(vals[c], labels ? labels[first + c] : first + c);
        thr[r] = tops[r].threshold();
      }
    }
  }
}

// AVX2 + FMA: R (<= 6) queries x 16 vectors (one packed group, two ymm wide):
// 12 ymm accumulators, two for the vectors and one broadcast query value fit
// the 16 ymm registers, and each step issues 12 independent FMAs for 2
// vector loads and 6 broadcasts, which keeps both FMA pipes busy.
constexpr int kAvx2TileQueries = 6;

template <int R>
__attribute__((target("avx2,fma"))) inline void fused_tile_avx2_rows(const float* qtile, const float* g, index_t d,
                                                                      const float* bias, float scale, index_t valid,
                                                                      index_t first, const index_t* labels,
                                                                      TopK<float>* tops, float* thr) {
  __m256 lo[R], hi[R];
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) lo[r] = hi[r] = _mm256_setzero_ps();
  for (index_t j = 0; j < d; ++j) {
    const __m256 x0 = _mm256_loadu_ps(g + j * 16), x1 = _mm256_loadu_ps(g + j * 16 + 8);
    const float* q = qtile + j * kAvx2TileQueries;
#pragma GCC unroll 6
    for (int r = 0; r < R; ++r) {
      const __m256 a = _mm256_broadcast_ss(q + r);
      lo[r] = _mm256_fmadd_ps(a, x0, lo[r]);
      hi[r] = _mm256_fmadd_ps(a, x1, hi[r]);
    }
  }
  const __m256 s = _mm256_set1_ps(-scale), b0 = _mm256_loadu_ps(bias), b1 = _mm256_loadu_ps(bias + 8);
  const unsigned valid_mask = valid >= 16 ? 0xFFFFu : ((1u << valid) - 1u);
#pragma GCC unroll 6
  for (int r = 0; r < R; ++r) {
    const __m256 v0 = _mm256_fmadd_ps(s, lo[r], b0), v1 = _mm256_fmadd_ps(s, hi[r], b1);
    const __m256 t = _mm256_set1_ps(thr[r]);
    unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v0, t, _CMP_LE_OQ))) |
                    (static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(v1, t, _CMP_LE_OQ))) << 8);
    mask &= valid_mask;
    if (!mask) continue;
    alignas(32) float vals[16];
    _mm256_store_ps(vals, v0);
    _mm256_store_ps(vals + 8, v1);
    while (mask) {
      const int c = __builtin_ctz(mask);
      mask &= mask - 1;
      if (vals[c] <= thr[r]) {
        tops[r].push(vals[c], labels ? labels[first + c] : first + c);
        thr[r] = tops[r].threshold();
      }
    }
  }
}

inline void fused_tile_avx2(const float* qtile, const float* g, index_t d, const float* bias, float scale, int rows,
                            index_t valid, index_t first, const index_t* labels, TopK<float>* tops, float* thr) {
  switch (rows) {
    case 1: return fused_tile_avx2_rows<1>(qtile, g, d, bias, scale, valid, first, labels, tops, thr);
    case 2: return fused_tile_avx2_rows<2>(qtile, g, d, bias, scale, valid, first, labels, tops, thr);
    case 3: return fused_tile_avx2_rows<3>(qtile, g, d, bias, scale, valid, first, labels, tops, thr);
    case 4: return fused_tile_avx2_rows<4>(qtile, g, d, bias, scale, valid, first, labels, tops, thr);
    case 5: return fused_tile_avx2_rows<5>(qtile, g, d, bias, scale, valid, first, labels, tops, thr);
    default: return fused_tile_avx2_rows<6>(qtile, g, d, bias, scale, valid, first, labels, tops, thr);
  }
}
#endif  // RANKFOLD_X86

// Generic: 4 queries x 16 vectors in plain C++ that the compiler vectorises
// for the build's baseline (64 accumulators: 16 SSE registers).
constexpr int kGenericTileQueries = 4;

inline void fused_tile_generic(const float* qtile, const float* g, index_t d, const float* bias, float scale,
                               int rows, index_t valid, index_t first, const index_t* labels, TopK<float>* tops,
                               float* thr) {
  constexpr int R = kGenericTileQueries;
  float acc[R][16] = {};
  for (index_t j = 0; j < d; ++j) {
    const float* x = g + j * 16;
    const float* q = qtile + j * R;
    for (int r = 0; r < R; ++r) {
      const float a = q[r];
#pragma omp simd
      for (int c = 0; c < 16; ++c) acc[r][c] += a * x[c];
    }
  }
  for (int r = 0; r < rows; ++r) {
    for (index_t c = 0; c < valid; ++c) {
      const float v = bias[c] - scale * acc[r][c];
      if (v <= thr[r]) {
        tops[r].push(v, labels ? labels[first + c] : first + c);
        thr[r] = tops[r].threshold();
      }
    }
  }
}

// The tiles as policies for the shared driver: queries per tile, vectors per
// tile call (a multiple of the packing's 16 lanes dividing its 32-vector
// granule) and the kernel.
struct TileAvx512 {
  static constexpr int kRows = kTileQueries;
  static constexpr index_t kCols = 32;
#if defined(RANKFOLD_X86)
  static void run(const float* qtile, const float* g, index_t d, const float* bias, float scale, int rows,
                  index_t valid, index_t first, const index_t* labels, TopK<float>* tops, float* thr) {
    fused_tile_avx512(qtile, g, d, bias, scale, rows, valid, first, labels, tops, thr);
  }
#endif
};
struct TileAvx2 {
  static constexpr int kRows = kAvx2TileQueries;
  static constexpr index_t kCols = 16;
#if defined(RANKFOLD_X86)
  static void run(const float* qtile, const float* g, index_t d, const float* bias, float scale, int rows,
                  index_t valid, index_t first, const index_t* labels, TopK<float>* tops, float* thr) {
    fused_tile_avx2(qtile, g, d, bias, scale, rows, valid, first, labels, tops, thr);
  }
#endif
};
struct TileGeneric {
  static constexpr int kRows = kGenericTileQueries;
  static constexpr index_t kCols = 16;
  static void run(const float* qtile, const float* g, index_t d, const float* bias, float scale, int rows,
                  index_t valid, index_t first, const index_t* labels, TopK<float>* tops, float* thr) {
    fused_tile_generic(qtile, g, d, bias, scale, rows, valid, first, labels, tops, thr);
  }
};

// Base vectors per cache block: about 256 KiB of packed vectors (512 at
// dim 128), so a block stays in L2 while every query tile of a task runs
// over it; a multiple of the 32-vector granule.
inline index_t packed_base_block(index_t d) {
  const index_t per_block = (std::int64_t{1} << 16) / std::max<index_t>(d, 1);
  return std::max<index_t>(PackedVectors::kGranule,
                           std::min<index_t>(512, per_block / PackedVectors::kGranule * PackedVectors::kGranule));
}

// Queries per task: at most `max_block`, a multiple of the tile's rows, and
// a number of tasks that is a multiple of the thread count when there are
// enough queries, so that no thread waits for a short last block.
inline index_t packed_query_block(index_t nq, int rows, int threads, index_t max_block) {
  index_t blocks = (nq + max_block - 1) / max_block;
  if (threads > 1 && nq >= static_cast<index_t>(threads) * rows * 4) blocks = (blocks + threads - 1) / threads * threads;
  const index_t per = (nq + blocks - 1) / blocks;
  return std::max<index_t>(rows, (per + rows - 1) / rows * rows);
}

// The fused search with one tile kind: tasks of query blocks (x base
// segments), each packing its queries once and running every query tile over
// one L2-sized block of base vectors after another.
template <typename Tile>
void search_packed_with(const PackedVectors& base, const index_t* labels, const float* queries, index_t nq, int k,
                        bool l2, const float* query_sqnorms, index_t* out_ids, float* out_dist, int threads,
                        Cancellation* cancel) {
  constexpr int kRows = Tile::kRows;
  constexpr index_t kCols = Tile::kCols;
  const index_t d = base.dim(), n = base.size();
  const index_t BQ = packed_query_block(nq, kRows, threads, kRows * (240 / kRows));
  const index_t BN = packed_base_block(d);
  const float scale = l2 ? 2.f : 1.f;
  run_blocked_search<float>(
      n, nq, k, l2, query_sqnorms, BQ, BN, threads, out_ids, out_dist, cancel,
      [&](index_t q0, index_t nqb, index_t b_start, index_t b_end, TopK<float>* tops) {
        const index_t n_tiles = (nqb + kRows - 1) / kRows;
        std::vector<float> qpack(static_cast<std::size_t>(n_tiles * kRows * d));
        std::vector<float> thr(static_cast<std::size_t>(nqb), std::numeric_limits<float>::infinity());
        for (index_t t = 0; t < n_tiles; ++t) {
          const index_t r0 = t * kRows;
          pack_query_tile<kRows>(queries + (q0 + r0) * d, d, std::min<index_t>(kRows, nqb - r0),
                                 qpack.data() + r0 * d);
        }
        for (index_t c0 = b_start; c0 < b_end; c0 += BN) {
          if (cancel != nullptr && cancel->poll()) return;
          const index_t c1 = std::min(b_end, c0 + BN);
          for (index_t t = 0; t < n_tiles; ++t) {
            const index_t r0 = t * kRows;
            const int rows = static_cast<int>(std::min<index_t>(kRows, nqb - r0));
            for (index_t b = c0; b < c1; b += kCols) {
              Tile::run(qpack.data() + r0 * d, base.groups() + (b / PackedVectors::kLanes) * d * PackedVectors::kLanes,
                        d, base.bias() + b, scale, rows, std::min<index_t>(kCols, c1 - b), b, labels, tops + r0,
                        thr.data() + r0);
            }
          }
        }
      });
}

}  // namespace detail

// Exact search over packed float32 vectors with the fused kernel of the
// active SIMD level: no score matrix is written to memory, each tile's scores
// go from registers straight into the top-k filter. Same conventions as
// exact_search (`cancel`: see ExactSearchOptions).
inline void exact_search_packed(const PackedVectors& base, const index_t* labels, const float* queries, index_t nq,
                                int k, Metric metric, index_t* out_ids, float* out_dist, int n_threads,
                                Cancellation* cancel = nullptr) {
  require(k >= 1, "k must be >= 1, got ", k);
  require(base.l2() == (metric == Metric::L2), "packed vectors were built for another metric");
  if (nq == 0) return;
  const int threads = resolve_threads(n_threads);
  const bool l2 = metric == Metric::L2;
  const index_t d = base.dim();
  std::vector<float> query_sqnorms(static_cast<std::size_t>(l2 ? nq : 0));
  if (l2) row_sqnorms(queries, nq, d, query_sqnorms.data(), threads);
  switch (simd::active_level()) {
#if defined(RANKFOLD_X86)
    case simd::Level::AVX512:
      return detail::search_packed_with<detail::TileAvx512>(base, labels, queries, nq, k, l2, query_sqnorms.data(),
                                                            out_ids, out_dist, threads, cancel);
    case simd::Level::AVX2:
      return detail::search_packed_with<detail::TileAvx2>(base, labels, queries, nq, k, l2, query_sqnorms.data(),
                                                          out_ids, out_dist, threads, cancel);
#endif
    default:
      return detail::search_packed_with<detail::TileGeneric>(base, labels, queries, nq, k, l2, query_sqnorms.data(),
                                                             out_ids, out_dist, threads, cancel);
  }
}

// A flat index: stores float32 vectors (packed for the fused kernel) and
// searches them exactly.
//
// Concurrency: one reader-writer lock per index, taken once for the whole
// call. search, get_vectors, contains, labels, size, next_label and save take
// it shared (any number run together); add takes it exclusively (it waits for
// running readers, and readers wait for it; two adds run one after the other).
class ExactIndex {
 public:
  ExactIndex(index_t dim, Metric metric) : dim_(dim), metric_(metric), packed_(dim, metric == Metric::L2) {
    require(dim >= 1 && dim <= (1 << 24), "dim must be in [1, 2^24], got ", dim);
  }

  ExactIndex(const ExactIndex&) = delete;
  ExactIndex& operator=(const ExactIndex&) = delete;

  index_t dim() const { return dim_; }
  Metric metric() const { return metric_; }
  index_t size() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return static_cast<index_t>(labels_.size());
  }
  // The ids in insertion order (a copy: the index may change afterwards).
  std::vector<index_t> labels() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return labels_;
  }
  index_t next_label() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return next_label_;
  }

  bool contains(index_t label) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return row_of_.count(label) > 0;
  }
  // out[i] = whether labels[i] is in the index, all under one lock.
  void contains(const index_t* labels, index_t n, bool* out) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (index_t i = 0; i < n; ++i) out[i] = row_of_.count(labels[i]) > 0;
  }

  // Adds n vectors (row-major n x dim). labels == nullptr assigns
  // next_label(), next_label()+1, ... Labels must be new and unique.
  // On error the index is unchanged.
  void add(const float* X, index_t n, const index_t* labels, int n_threads) {
    require(n >= 0, "number of vectors must be >= 0");
    // Normalising needs no lock: readers keep running meanwhile.
    std::vector<float> normalized;
    if (metric_ == Metric::Cosine && n > 0) {
      normalized.assign(X, X + n * dim_);
      normalize_rows(normalized.data(), n, dim_, n_threads);
      X = normalized.data();
    }
    std::unique_lock<std::shared_mutex> lock(mutex_);
    require(labels != nullptr || next_label_ <= std::numeric_limits<index_t>::max() - n,
            "ids: the default ids would pass 2^63 - 1; pass ids explicitly");
    std::vector<index_t> new_labels(static_cast<std::size_t>(n));
    std::unordered_map<index_t, index_t> seen;
    for (index_t i = 0; i < n; ++i) {
      const index_t lab = labels ? labels[i] : next_label_ + i;
      require(lab >= 0 && lab < std::numeric_limits<index_t>::max(), "ids must be >= 0 and < 2^63 - 1, got ", lab);
      require(row_of_.count(lab) == 0, "ids: id ", lab, " is already in the index");
      require(seen.emplace(lab, i).second, "ids: id ", lab, " appears twice in this batch");
      new_labels[static_cast<std::size_t>(i)] = lab;
    }
    packed_.append(X, n, n_threads);
    const index_t old = static_cast<index_t>(labels_.size());
    for (index_t i = 0; i < n; ++i) {
      const index_t lab = new_labels[static_cast<std::size_t>(i)];
      labels_.push_back(lab);
      row_of_[lab] = old + i;
      next_label_ = std::max(next_label_, lab + 1);
    }
  }

  // nq x k ids and distances, padded with (-1, +inf) past size(). `cancel`
  // (optional) is polled between blocks; a cancelled search throws
  // Interrupted.
  void search(const float* Q, index_t nq, int k, index_t* out_ids, float* out_dist, int n_threads,
              Cancellation* cancel = nullptr) const {
    const float* queries = Q;
    std::vector<float> normalized;
    if (metric_ == Metric::Cosine) {
      normalized.assign(Q, Q + nq * dim_);
      normalize_rows(normalized.data(), nq, dim_, n_threads, "Q");
      queries = normalized.data();
    }
    std::shared_lock<std::shared_mutex> lock(mutex_);
    exact_search_packed(packed_, labels_.data(), queries, nq, k, metric_, out_ids, out_dist, n_threads, cancel);
  }

  // Copies the stored vectors of `labels` (n x dim); unknown labels throw.
  void get_vectors(const index_t* labels, index_t n, float* out) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (index_t i = 0; i < n; ++i) {
      auto it = row_of_.find(labels[i]);
      require(it != row_of_.end(), "ids: id ", labels[i], " is not in the index");
      packed_.row(it->second, out + i * dim_);
    }
  }

  // A consistent snapshot: the whole file is written under one shared lock.
  void save(std::ostream& out) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    const index_t n = static_cast<index_t>(labels_.size());
    io::Writer w(out, io::IndexKind::Exact, 8 * 4 + static_cast<std::uint64_t>(n) * (8 + 4 * dim_));
    w.value<std::int64_t>(dim_);
    w.value<std::int64_t>(static_cast<std::int64_t>(metric_));
    w.value<std::int64_t>(n);
    w.value<std::int64_t>(next_label_);
    w.array(labels_.data(), labels_.size());
    std::vector<float> row(static_cast<std::size_t>(dim_));
    for (index_t i = 0; i < n; ++i) {
      packed_.row(i, row.data());
      w.array(row.data(), row.size());
    }
    w.finish();
  }

  static std::unique_ptr<ExactIndex> load(const char* data, std::size_t size, const std::string& what,
                                          int n_threads) {
    io::Reader r(data, size, io::IndexKind::Exact, what);
    const auto dim = r.value<std::int64_t>();
    const auto metric = r.value<std::int64_t>();
    const auto n = r.value<std::int64_t>();
    const auto next = r.value<std::int64_t>();
    require<FormatError>(dim >= 1 && dim <= (1 << 24) && metric >= 0 && metric <= 2 && n >= 0, what,
                         " is corrupted (invalid header fields)");
    require<FormatError>(static_cast<std::uint64_t>(n) <= r.remaining() / (8 + 4 * static_cast<std::uint64_t>(dim)),
                         what, " is corrupted (counts do not match the size)");
    auto index = std::make_unique<ExactIndex>(dim, static_cast<Metric>(metric));
    std::vector<index_t> labels(static_cast<std::size_t>(n));
    r.array(labels.data(), labels.size());
    const float* vectors = r.view<float>(static_cast<std::size_t>(n * dim));
    r.expect_end();
    for (index_t i = 0; i < n; ++i) {
      const index_t lab = labels[static_cast<std::size_t>(i)];
      require<FormatError>(lab >= 0 && lab < next, what, " is corrupted (bad id)");
      require<FormatError>(index->row_of_.emplace(lab, i).second, what, " is corrupted (duplicate id)");
    }
    // The payload is only 4-byte aligned by chance: copy rows out before packing.
    std::vector<float> rows(static_cast<std::size_t>(n * dim));
    if (!rows.empty()) std::memcpy(rows.data(), vectors, rows.size() * sizeof(float));
    index->packed_.append(rows.data(), n, n_threads);
    index->labels_ = std::move(labels);
    index->next_label_ = next;
    return index;
  }

 private:
  index_t dim_;
  Metric metric_;
  PackedVectors packed_;
  std::vector<index_t> labels_;
  std::unordered_map<index_t, index_t> row_of_;
  index_t next_label_ = 0;
  mutable std::shared_mutex mutex_;
};

}  // namespace rankfold
