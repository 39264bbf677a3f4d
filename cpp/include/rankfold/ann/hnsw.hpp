// HNSW: hierarchical navigable small-world graph for approximate k-NN search
// (Malkov & Yashunin, "Efficient and robust approximate nearest neighbor search
// using Hierarchical Navigable Small World graphs", TPAMI 2018).
//
// Memory layout. Every node (slot) owns one fixed-size block in a single
// contiguous, 64-byte aligned array:
//
//     [ vector: dim float32 | degree: uint32 | level-0 neighbours: M0 x uint32 ]
//
// rounded up to a multiple of 64 bytes, so a node's vector starts on a cache
// line and a search touches one block per visited node. The few nodes above
// level 0 (about 1/M of them) keep their upper lists ([degree, M ids] per level)
// in one shared pool indexed by a per-slot offset. Labels (int64 user ids),
// levels and flags live in side arrays.
//
// Search. Upper levels: greedy descent. Level 0: a best-first search whose
// candidate set is one sorted array of at most ef (distance, slot) entries with
// a "expanded" bit per entry (cheaper than the two binary heaps of the paper for
// the ef values used in practice). Neighbour vectors are prefetched one step
// ahead; a per-thread visited set is an epoch-tagged uint16 array reused across
// queries (reset only when the epoch wraps). Searches that must skip some
// nodes (filters, removed items) use the paper's two-queue variant, which keeps
// walking through the skipped nodes until ef admissible results are found.
//
// Insertion. Levels are drawn from the seeded generator (stream per insertion
// counter) before the parallel phase, so they do not depend on thread timing.
// Threads insert nodes concurrently; each neighbour list is guarded by a
// one-byte spin lock of its node, and the entry point by a mutex. Neighbours are
// chosen with the paper's heuristic (Algorithm 4 without extension or kept
// pruned connections): a candidate is kept only if it is closer to the new node
// than to every neighbour kept so far. With one thread the graph is fully
// determined by the seed; with several it depends on the insertion interleaving,
// as in every parallel HNSW build.
//
// Removal unlinks the removed nodes (delete consolidation as in FreshDiskANN,
// Singh et al. 2021): one scan over all lists finds every list that points to a
// removed node, and each such list of a node u is rebuilt with the selection
// heuristic from u's surviving neighbours plus the surviving neighbours of the
// removed nodes it pointed to. Afterwards no list holds a removed slot, so
// removed nodes are unreachable, searches walk only live nodes, and a freed
// slot reused by add is linked exactly like a fresh node (nothing points to it).
// A removed entry point is replaced by a live node of the highest level left.
// compact() renumbers the live slots densely and returns the freed memory.
//
// Concurrency. One reader-writer lock per index, taken once for the whole
// public call. search (its filter is resolved inside the same call),
// get_vectors, contains, live_labels, size, capacity, next_label, stats and
// save take it shared: any number run at once. add, remove and reserve take it
// exclusively: they wait for running readers, readers wait for them, and two
// writers run one after the other. ef is an atomic setting.
//
// Interrupts. add inserts in batches of about 50 ms of work and polls its
// Cancellation between them; every batch leaves the bookkeeping (live count,
// id map, entry point) complete, so an interrupted add keeps the vectors of the
// batches done before it. search polls between chunks of queries.
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <mutex>
#include <ostream>
#include <queue>
#include <shared_mutex>
#include <unordered_map>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include "../core/error.hpp"
#include "../core/interrupt.hpp"
#include "../core/memory.hpp"
#include "../core/rng.hpp"
#include "../core/threads.hpp"
#include "../core/topk.hpp"
#include "../core/types.hpp"
#include "distance.hpp"
#include "exact.hpp"
#include "file_format.hpp"

namespace rankfold {

namespace hnsw_detail {

using slot_t = std::uint32_t;
constexpr slot_t kNone = std::numeric_limits<slot_t>::max();

inline void prefetch(const void* p) {
#if defined(__GNUC__) || defined(__clang__)
  __builtin_prefetch(p, 0, 3);
#else
  (void)p;
#endif
}

// Distance functors: "smaller is closer". Cosine vectors are normalised on
// entry, so cosine uses the inner-product functor.
struct L2Dist {
  static float eval(const float* a, const float* b, std::size_t d) { return l2_sq(a, b, d); }
  // A value > bound when the distance exceeds bound, else the distance.
  static float bounded(const float* a, const float* b, std::size_t d, float bound) {
    return l2_sq_bounded(a, b, d, bound);
  }
};
struct IPDist {
  static float eval(const float* a, const float* b, std::size_t d) { return 1.f - dot(a, b, d); }
  static float bounded(const float* a, const float* b, std::size_t d, float) { return eval(a, b, d); }
};

// An epoch-tagged visited set: marks are valid while tag[i] == epoch, so
// starting a new query costs nothing except every 65535 queries.
class VisitedSet {
 public:
  explicit VisitedSet(std::size_t n = 0) { resize(n); }
  void resize(std::size_t n) {
    if (n > tags_.size()) {
      tags_.assign(n, 0);
      epoch_ = 0;
    }
  }
  std::size_t size() const { return tags_.size(); }
  void next() {
    if (++epoch_ == 0) {
      std::fill(tags_.begin(), tags_.end(), std::uint16_t{0});
      epoch_ = 1;
    }
  }
  bool visited(slot_t i) const { return tags_[i] == epoch_; }
  // Marks i; returns true if it was not marked yet.
  bool mark(slot_t i) {
    if (tags_[i] == epoch_) return false;
    tags_[i] = epoch_;
    return true;
  }
  const std::uint16_t* tag_address(slot_t i) const { return tags_.data() + i; }

 private:
  std::vector<std::uint16_t> tags_;
  std::uint16_t epoch_ = 0;
};

// The best-first candidate list: at most `capacity` entries sorted by distance,
// each flagged once expanded. `next_unexpanded` walks a cursor that moves back
// when a closer entry is inserted.
class CandidateList {
 public:
  void reset(int capacity) {
    cap_ = capacity;
    size_ = 0;
    cursor_ = 0;
    if (static_cast<int>(dist_.size()) < capacity + 1) {
      dist_.resize(static_cast<std::size_t>(capacity) + 1);
      slot_.resize(static_cast<std::size_t>(capacity) + 1);
    }
  }
  int size() const { return size_; }
  bool full() const { return size_ == cap_; }
  float worst() const { return size_ == cap_ ? dist_[static_cast<std::size_t>(size_ - 1)] : std::numeric_limits<float>::infinity(); }

  // Inserts if there is room or d beats the worst entry.
  void insert(float d, slot_t s) {
    if (size_ == cap_ && !(d < dist_[static_cast<std::size_t>(size_ - 1)])) return;
    // Position: first entry with a larger distance (linear from the end is
    // fastest for the short lists and mostly-late insertions seen here).
    int pos = size_ < cap_ ? size_ : size_ - 1;
    while (pos > 0 && dist_[static_cast<std::size_t>(pos - 1)] > d) --pos;
    const int move = (size_ < cap_ ? size_ : size_ - 1) - pos;
    if (move > 0) {
      std::memmove(&dist_[static_cast<std::size_t>(pos + 1)], &dist_[static_cast<std::size_t>(pos)], sizeof(float) * static_cast<std::size_t>(move));
      std::memmove(&slot_[static_cast<std::size_t>(pos + 1)], &slot_[static_cast<std::size_t>(pos)], sizeof(slot_t) * static_cast<std::size_t>(move));
    }
    dist_[static_cast<std::size_t>(pos)] = d;
    slot_[static_cast<std::size_t>(pos)] = s;
    if (size_ < cap_) ++size_;
    if (pos < cursor_) cursor_ = pos;
  }

  // The next entry to expand (marked expanded), or kNone when all are done.
  slot_t pop_unexpanded() {
    while (cursor_ < size_ && (slot_[static_cast<std::size_t>(cursor_)] & kExpanded)) ++cursor_;
    if (cursor_ >= size_) return kNone;
    const slot_t s = slot_[static_cast<std::size_t>(cursor_)];
    slot_[static_cast<std::size_t>(cursor_)] = s | kExpanded;
    ++cursor_;
    return s;
  }
  // Peek at the entry the next pop will most likely return (for prefetching).
  slot_t peek_unexpanded() const {
    for (int c = cursor_; c < size_; ++c)
      if (!(slot_[static_cast<std::size_t>(c)] & kExpanded)) return slot_[static_cast<std::size_t>(c)];
    return kNone;
  }
  slot_t slot(int i) const { return slot_[static_cast<std::size_t>(i)] & ~kExpanded; }
  float dist(int i) const { return dist_[static_cast<std::size_t>(i)]; }

  static constexpr slot_t kExpanded = 0x80000000u;

 private:
  std::vector<float> dist_;
  std::vector<slot_t> slot_;
  int cap_ = 0, size_ = 0, cursor_ = 0;
};

struct SearchScratch {
  VisitedSet visited;
  CandidateList list;
  std::vector<slot_t> fresh;
  std::vector<slot_t> links;
};

// A tiny test-and-test-and-set lock (one byte per node).
class SpinLocks {
 public:
  void resize(std::size_t n) { locks_.reset(new std::atomic<std::uint8_t>[n]()); size_ = n; }
  void lock(slot_t i) {
    auto& l = locks_[i];
    for (;;) {
      if (l.exchange(1, std::memory_order_acquire) == 0) return;
      while (l.load(std::memory_order_relaxed)) {
#if defined(RANKFOLD_X86)
        _mm_pause();
#endif
      }
    }
  }
  void unlock(slot_t i) { locks_[i].store(0, std::memory_order_release); }
  std::size_t size() const { return size_; }

 private:
  std::unique_ptr<std::atomic<std::uint8_t>[]> locks_;
  std::size_t size_ = 0;
};

struct LockGuard {
  SpinLocks& locks;
  slot_t i;
  LockGuard(SpinLocks& l, slot_t s) : locks(l), i(s) { locks.lock(i); }
  ~LockGuard() { locks.unlock(i); }
};

struct AlignedFree {
  void operator()(char* p) const { std::free(p); }
};

}  // namespace hnsw_detail

// The optional filter of a search: allowed ids (ids not in the index are
// ignored) or a boolean mask over ids [0, n_mask). Resolved to per-slot flags
// inside the search call, under its lock.
struct HnswFilter {
  const index_t* ids = nullptr;
  index_t n_ids = 0;
  const std::uint8_t* mask = nullptr;
  index_t n_mask = 0;
  bool use_mask = false;
};

struct HnswStats {
  index_t size = 0, slots = 0, capacity = 0, removed = 0;
  int max_level = -1;
  std::vector<index_t> nodes_per_level;
  double mean_degree0 = 0;
  std::uint64_t memory_bytes = 0;
  std::uint64_t bytes_per_node = 0;
};

class HnswIndex {
  using slot_t = hnsw_detail::slot_t;
  static constexpr slot_t kNone = hnsw_detail::kNone;

 public:
  HnswIndex(index_t dim, Metric metric, int M = 16, int ef_construction = 200, std::uint64_t seed = 0)
      : dim_(dim), metric_(metric), M_(M), M0_(2 * M), ef_construction_(ef_construction), rng_(seed), seed_(seed) {
    require(dim >= 1 && dim <= (1 << 24), "dim must be in [1, 2^24], got ", dim);
    require(M >= 2 && M <= 1024, "M must be in [2, 1024], got ", M);
    require(ef_construction >= 1 && ef_construction <= kMaxEfConstruction, "ef_construction must be in [1, 2^20], got ",
            ef_construction);
    level_mult_ = 1.0 / std::log(static_cast<double>(M));
    const std::size_t raw = sizeof(float) * static_cast<std::size_t>(dim) + sizeof(slot_t) * (1 + static_cast<std::size_t>(M0_));
    stride_ = (raw + 63) / 64 * 64;
    vec_bytes_ = sizeof(float) * static_cast<std::size_t>(dim);
    prefetch_bytes_ = vec_bytes_;
    upper_width_ = 1 + static_cast<std::size_t>(M_);
  }

  HnswIndex(const HnswIndex&) = delete;
  HnswIndex& operator=(const HnswIndex&) = delete;
  HnswIndex(HnswIndex&&) = delete;

  index_t dim() const { return dim_; }
  Metric metric() const { return metric_; }
  int M() const { return M_; }
  int ef_construction() const { return ef_construction_; }
  int ef() const { return ef_.load(std::memory_order_relaxed); }
  void set_ef(int ef) {
    require(ef >= 1, "ef must be >= 1, got ", ef);
    ef_.store(ef, std::memory_order_relaxed);
  }
  index_t size() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return live_;
  }
  index_t capacity() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return static_cast<index_t>(capacity_);
  }
  index_t next_label() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return next_label_;
  }

  void reserve(index_t n) {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    grow(static_cast<std::size_t>(std::max<index_t>(n, 0)));
  }

  bool contains(index_t label) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return slot_of_.count(label) > 0;
  }
  // out[i] = whether labels[i] is live, all under one lock.
  void contains(const index_t* labels, index_t n, bool* out) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (index_t i = 0; i < n; ++i) out[i] = slot_of_.count(labels[i]) > 0;
  }

  std::vector<index_t> live_labels() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    std::vector<index_t> out;
    out.reserve(static_cast<std::size_t>(live_));
    for (std::size_t s = 0; s < n_slots_; ++s)
      if (!deleted_[s]) out.push_back(labels_[s]);
    return out;
  }

  // ------------------------------------------------------------------ add
  // Adds n vectors (row-major n x dim); labels == nullptr assigns
  // next_label(), next_label()+1, ... Labels must be >= 0, new and unique.
  // `cancel` (optional) is polled between insertion batches: a cancelled add
  // throws Interrupted and keeps the vectors of the batches already done.
  void add(const float* X, index_t n, const index_t* labels, int n_threads, Cancellation* cancel = nullptr) {
    require(n >= 0, "number of vectors must be >= 0");
    if (n == 0) return;
    std::unique_lock<std::shared_mutex> lock(mutex_);
    // Validate everything before changing anything.
    require(labels != nullptr || next_label_ <= std::numeric_limits<index_t>::max() - n,
            "ids: the default ids would pass 2^63 - 1; pass ids explicitly");
    std::vector<index_t> new_labels(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      const index_t lab = labels ? labels[i] : next_label_ + i;
      require(lab >= 0 && lab < std::numeric_limits<index_t>::max(), "ids must be >= 0 and < 2^63 - 1, got ", lab);
      require(slot_of_.count(lab) == 0, "ids: id ", lab, " is already in the index");
      new_labels[static_cast<std::size_t>(i)] = lab;
    }
    if (labels) {
      // Duplicates by sorting a copy: one flat buffer, returned to the
      // system afterwards (a hash set would leave its nodes in the heap).
      std::vector<index_t> sorted(new_labels);
      std::sort(sorted.begin(), sorted.end());
      const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
      require(dup == sorted.end(), "ids: id ", dup == sorted.end() ? 0 : *dup, " appears twice in this batch");
    }
    std::vector<float> normalized;
    if (metric_ == Metric::Cosine) {
      normalized.assign(X, X + n * dim_);
      normalize_rows(normalized.data(), n, dim_, n_threads, "X");
      X = normalized.data();
    }
    for (index_t i = 0; i < n * dim_; ++i)
      require(std::isfinite(X[i]), "X contains NaN or infinity; all values must be finite");
    require(static_cast<std::uint64_t>(n_slots_) + static_cast<std::uint64_t>(n) < static_cast<std::uint64_t>(kNone) / 2,
            "the index cannot hold more than 2^31 vectors");

    // Room for the whole call at once; the batches below never grow.
    const std::size_t fresh_total = static_cast<std::size_t>(n) - std::min(free_slots_.size(), static_cast<std::size_t>(n));
    if (n_slots_ + fresh_total > capacity_) grow(std::max(n_slots_ + fresh_total, capacity_ + capacity_ / 2));

    // Batches sized to about kBatchTime of work (measured on the previous
    // batch), so that Ctrl-C is seen quickly whatever the dimension, M or
    // ef_construction; with one thread the insertion order, and so the graph,
    // is the same as in one batch.
    using clock = std::chrono::steady_clock;
    const int threads = resolve_threads(n_threads);
    index_t batch = 16 * static_cast<index_t>(threads);
    for (index_t b0 = 0; b0 < n;) {
      const index_t nb = std::min(batch, n - b0);
      const auto t0 = clock::now();
      add_batch(X + b0 * dim_, new_labels.data() + b0, nb, threads);
      b0 += nb;
      const double seconds = std::chrono::duration<double>(clock::now() - t0).count();
      const double per_vector = std::max(seconds, 1e-6) / static_cast<double>(nb);
      batch = static_cast<index_t>(std::clamp(kBatchTime / per_vector, 16.0, 65536.0));
      if (cancel != nullptr && b0 < n) cancel->check("add interrupted");
    }
  }

 private:
  static constexpr double kBatchTime = 0.05;  // seconds of insertion work between interrupt polls

  // Inserts n validated vectors with their labels (one batch of add).
  void add_batch(const float* X, const index_t* new_labels, index_t n, int n_threads) {
    // Slots: reuse removed ones first, then new ones.
    const std::size_t reuse = std::min(free_slots_.size(), static_cast<std::size_t>(n));
    const std::size_t fresh = static_cast<std::size_t>(n) - reuse;
    if (n_slots_ + fresh > capacity_) grow(std::max(n_slots_ + fresh, capacity_ + capacity_ / 2));
    std::vector<slot_t> slots(static_cast<std::size_t>(n));
    for (std::size_t i = 0; i < reuse; ++i) {
      slots[i] = free_slots_.back();
      free_slots_.pop_back();
    }
    for (std::size_t i = 0; i < fresh; ++i) slots[reuse + i] = static_cast<slot_t>(n_slots_ + i);
    n_slots_ += fresh;

    // Serial prelude: vectors, labels, levels and (empty) link lists in place.
    for (index_t i = 0; i < n; ++i) {
      const slot_t s = slots[static_cast<std::size_t>(i)];
      const bool reused = static_cast<std::size_t>(i) < reuse;
      if (!reused) std::memset(block(s), 0, stride_);  // padding too: files are byte-reproducible
      std::memcpy(vector_of(s), X + i * dim_, vec_bytes_);
      *degree0(s) = 0;
      if (!reused) {
        Rng r = rng_.stream(insert_counter_++);
        const double u = 1.0 - r.uniform();  // (0, 1]
        const int level = std::min(kMaxLevel, static_cast<int>(-std::log(u) * level_mult_));
        levels_[s] = static_cast<std::uint8_t>(level);
        if (level > 0) {
          upper_offset_[s] = static_cast<std::uint32_t>(upper_pool_.size() / upper_width_);
          upper_pool_.resize(upper_pool_.size() + static_cast<std::size_t>(level) * upper_width_, 0);
        } else {
          upper_offset_[s] = kNone;
        }
      } else {
        for (int l = 1; l <= levels_[s]; ++l) *upper_list(s, l) = 0;
        pending_[s] = 1;
      }
      const index_t lab = new_labels[static_cast<std::size_t>(i)];
      labels_[s] = lab;
      deleted_[s] = 0;
      slot_of_[lab] = s;
      next_label_ = std::max(next_label_, lab + 1);
    }
    live_ += n;
    if (reuse > 0) removed_ -= static_cast<index_t>(reuse);

    // The first node ever becomes the entry point.
    std::size_t start = 0;
    if (entry_ == kNone) {
      entry_ = slots[0];
      max_level_ = levels_[entry_];
      pending_[entry_] = 0;
      start = 1;
    }
    ensure_scratch(resolve_threads(n_threads));
    const int threads = resolve_threads(n_threads);
    if (metric_ == Metric::L2) {
      parallel_for(static_cast<index_t>(start), n, threads,
                   [&](index_t i) { insert<hnsw_detail::L2Dist>(slots[static_cast<std::size_t>(i)]); }, 16);
    } else {
      parallel_for(static_cast<index_t>(start), n, threads,
                   [&](index_t i) { insert<hnsw_detail::IPDist>(slots[static_cast<std::size_t>(i)]); }, 16);
    }
  }

 public:
  // ------------------------------------------------------------------ remove
  // Removes labels and repairs the graph around them (see the header). Unknown
  // or repeated labels throw before anything changes; so does a cancellation
  // (the repair is computed first and committed only when complete).
  void remove(const index_t* labels, index_t n, int n_threads, Cancellation& cancel = no_cancellation()) {
    require(n >= 0, "number of ids must be >= 0");
    std::unique_lock<std::shared_mutex> lock(mutex_);
    std::vector<slot_t> removed(static_cast<std::size_t>(n));
    for (index_t i = 0; i < n; ++i) {
      auto it = slot_of_.find(labels[i]);
      require(it != slot_of_.end(), "ids: id ", labels[i], " is not in the index");
      removed[static_cast<std::size_t>(i)] = it->second;
    }
    {
      std::vector<slot_t> sorted(removed);
      std::sort(sorted.begin(), sorted.end());
      const auto dup = std::adjacent_find(sorted.begin(), sorted.end());
      require(dup == sorted.end(), "ids: id ", dup == sorted.end() ? 0 : labels_[*dup], " appears twice");
    }
    if (n == 0) return;
    for (slot_t s : removed) deleted_[s] = 1;
    try {
      unlink_deleted(n_threads, cancel);
    } catch (...) {
      for (slot_t s : removed) deleted_[s] = 0;
      throw;
    }
    for (index_t i = 0; i < n; ++i) slot_of_.erase(labels[i]);
    live_ -= n;
    removed_ += n;
    for (slot_t s : removed) {
      clear_lists(s);
      free_slots_.push_back(s);
    }
    if (entry_ != kNone && deleted_[entry_]) replace_entry();
  }

  // ------------------------------------------------------------------ compact
  // Drops the removed slots: live slots are renumbered densely (ids, vectors
  // and graph unchanged) into storage sized for them, and the memory of the
  // removed ones is returned.
  void compact() {
    std::unique_lock<std::shared_mutex> lock(mutex_);
    const std::size_t n_live = static_cast<std::size_t>(live_);
    std::vector<slot_t> new_slot(n_slots_, kNone);
    std::size_t next = 0;
    for (std::size_t s = 0; s < n_slots_; ++s)
      if (!deleted_[s]) new_slot[s] = static_cast<slot_t>(next++);
    std::size_t cap = std::max<std::size_t>(n_live, 1);
    auto blocks = allocate_blocks(cap);
    std::vector<index_t> labels(cap, -1);
    std::vector<std::uint8_t> levels(cap, 0);
    std::vector<std::uint32_t> upper_offset(cap, kNone);
    std::vector<slot_t> pool;
    std::size_t pool_size = 0;
    for (std::size_t s = 0; s < n_slots_; ++s)
      if (!deleted_[s]) pool_size += static_cast<std::size_t>(levels_[s]) * upper_width_;
    pool.reserve(pool_size);
    auto remap = [&](slot_t* list) {
      for (slot_t j = 1; j <= list[0]; ++j) list[j] = new_slot[list[j]];
    };
    for (std::size_t s = 0; s < n_slots_; ++s) {
      const slot_t to = new_slot[s];
      if (to == kNone) continue;
      char* dst = blocks.get() + static_cast<std::size_t>(to) * stride_;
      std::memcpy(dst, block(static_cast<slot_t>(s)), stride_);
      remap(reinterpret_cast<slot_t*>(dst + vec_bytes_));
      labels[to] = labels_[s];
      levels[to] = levels_[s];
      if (levels_[s] > 0) {
        upper_offset[to] = static_cast<std::uint32_t>(pool.size() / upper_width_);
        for (int l = 1; l <= levels_[s]; ++l) {
          const slot_t* src = upper_list(static_cast<slot_t>(s), l);
          const std::size_t at = pool.size();
          pool.insert(pool.end(), src, src + upper_width_);
          remap(pool.data() + at);
        }
      }
    }
    std::unordered_map<index_t, slot_t> slot_of;
    slot_of.reserve(n_live);
    for (std::size_t s = 0; s < n_live; ++s) slot_of.emplace(labels[s], static_cast<slot_t>(s));
    if (entry_ != kNone) entry_ = new_slot[entry_];
    blocks_ = std::move(blocks);
    labels_ = std::move(labels);
    levels_ = std::move(levels);
    upper_offset_ = std::move(upper_offset);
    upper_pool_ = std::move(pool);
    deleted_.assign(cap, 0);
    deleted_.shrink_to_fit();
    pending_.assign(cap, 0);
    pending_.shrink_to_fit();
    locks_.resize(cap);
    slot_of_ = std::move(slot_of);
    std::vector<slot_t>().swap(free_slots_);
    n_slots_ = n_live;
    capacity_ = cap;
    removed_ = 0;
    // The per-thread visited sets were sized for the old capacity.
    std::lock_guard<std::mutex> g(scratch_mutex_);
    scratch_pool_.clear();
  }

  // ------------------------------------------------------------------ search
  // For each of nq queries, the k nearest live vectors: ids and distances
  // (l2: squared Euclidean, ip/cosine: 1 - <q, x>), padded with (-1, inf).
  // `filter` (optional) restricts the results. ef <= 0 uses the index's ef;
  // the effective ef is max(ef, k). Candidate lists and heaps never hold more
  // than the index's slots, whatever k and ef: the places past the live count
  // are padding. `cancel` (optional) is polled between chunks of queries; a
  // cancelled search throws Interrupted and leaves the output unspecified.
  void search(const float* Q, index_t nq, int k, int ef, const HnswFilter* filter, index_t* out_ids,
              float* out_dist, int n_threads, Cancellation* cancel = nullptr) const {
    require(k >= 1, "k must be >= 1, got ", k);
    std::shared_lock<std::shared_mutex> lock(mutex_);
    // The filter is resolved under the lock of this call: the slots it names
    // are those the search walks.
    std::vector<std::uint8_t> allowed;
    if (filter != nullptr) {
      allowed = filter->use_mask ? allowed_from_mask(filter->mask, filter->n_mask)
                                 : allowed_from_labels(filter->ids, filter->n_ids);
    }
    // The candidate list never holds more than all nodes.
    const int ef_eff = static_cast<int>(std::min<std::int64_t>(std::max(ef > 0 ? ef : this->ef(), k),
                                                               std::max<std::int64_t>(static_cast<std::int64_t>(n_slots_), 1)));
    std::vector<float> normalized;
    if (metric_ == Metric::Cosine && nq > 0) {
      normalized.assign(Q, Q + nq * dim_);
      normalize_rows(normalized.data(), nq, dim_, n_threads, "Q");
      Q = normalized.data();
    }
    if (entry_ == kNone || live_ == 0 || nq == 0) {
      pad(out_ids, out_dist, nq * k);
      return;
    }
    // live_ > 0, so there are slots and a filter's flags are not empty.
    const std::uint8_t* allow = filter != nullptr ? allowed.data() : nullptr;
    if (allow) {
      std::size_t n_allowed = 0;
      for (std::size_t s = 0; s < n_slots_; ++s) n_allowed += allow[s] && !deleted_[s];
      if (static_cast<double>(n_allowed) < threshold_for(ef_eff)) {
        exact_over(allow, n_allowed, Q, nq, k, out_ids, out_dist, n_threads, cancel);
        return;
      }
    } else if (removed_ > 0) {
      if (static_cast<double>(live_) < threshold_for(ef_eff)) {
        exact_over(nullptr, static_cast<std::size_t>(live_), Q, nq, k, out_ids, out_dist, n_threads, cancel);
        return;
      }
    }
    // Removed nodes are unlinked (unreachable), so only filters need the
    // two-queue search.
    const bool plain = !allow;
    const int threads = static_cast<int>(std::min<index_t>(resolve_threads(n_threads), nq));
    // Queries are handed out in small chunks from a shared counter, so a
    // thread that is descheduled (shared machines) does not hold up the batch.
    std::atomic<index_t> next_query{0};
    const index_t chunk = std::max<index_t>(1, std::min<index_t>(16, nq / (8 * threads)));
    parallel_region(threads, [&](int, int) {
      auto scratch = acquire_scratch();
      struct Release {
        const HnswIndex* self;
        std::unique_ptr<hnsw_detail::SearchScratch>& s;
        ~Release() { self->release_scratch(std::move(s)); }
      } release{this, scratch};
      for (;;) {
        if (cancel != nullptr && cancel->poll()) break;
        const index_t lo = next_query.fetch_add(chunk, std::memory_order_relaxed);
        if (lo >= nq) break;
        const index_t hi = std::min(nq, lo + chunk);
        for (index_t q = lo; q < hi; ++q) {
        if (metric_ == Metric::L2)
          search_one<hnsw_detail::L2Dist>(Q + q * dim_, k, ef_eff, plain, allow, *scratch, out_ids + q * k, out_dist + q * k);
        else
          search_one<hnsw_detail::IPDist>(Q + q * dim_, k, ef_eff, plain, allow, *scratch, out_ids + q * k, out_dist + q * k);
        }
      }
    });
    if (cancel != nullptr) cancel->throw_if_stopped("search interrupted");
  }

  // Below this many admissible items a filtered search scans them exactly:
  // a graph search restricted to a fraction s of the nodes visits about
  // 1/s times the ~30 ef nodes of an unrestricted one, while the scan costs one
  // distance per admissible item, so the scan wins when
  // n_allowed < sqrt(30 * ef * n_live).
  double exact_filter_threshold(int ef) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    return threshold_for(ef);
  }

 private:
  // exact_filter_threshold with the lock held.
  double threshold_for(int ef) const {
    return std::sqrt(30.0 * static_cast<double>(ef) * static_cast<double>(std::max<index_t>(live_, 1)));
  }

  // Per-slot admissible flags from a list of labels (unknown labels ignored).
  // With the lock held.
  std::vector<std::uint8_t> allowed_from_labels(const index_t* labels, index_t n) const {
    std::vector<std::uint8_t> allow(n_slots_, 0);
    for (index_t i = 0; i < n; ++i) {
      auto it = slot_of_.find(labels[i]);
      if (it != slot_of_.end()) allow[it->second] = 1;
    }
    return allow;
  }

  // Per-slot admissible flags from a boolean mask over labels [0, n). With
  // the lock held.
  std::vector<std::uint8_t> allowed_from_mask(const std::uint8_t* mask, index_t n) const {
    require(n >= next_label_, "filter: a boolean mask must have one entry per id, i.e. length >= ", next_label_,
            " (largest id + 1), got ", n);
    std::vector<std::uint8_t> allow(n_slots_, 0);
    for (std::size_t s = 0; s < n_slots_; ++s) allow[s] = !deleted_[s] && mask[labels_[s]] != 0;
    return allow;
  }

 public:
  void get_vectors(const index_t* labels, index_t n, float* out) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    for (index_t i = 0; i < n; ++i) {
      auto it = slot_of_.find(labels[i]);
      require(it != slot_of_.end(), "ids: id ", labels[i], " is not in the index");
      std::memcpy(out + i * dim_, vector_of(it->second), vec_bytes_);
    }
  }

  HnswStats stats() const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    HnswStats st;
    st.size = live_;
    st.slots = static_cast<index_t>(n_slots_);
    st.capacity = static_cast<index_t>(capacity_);
    st.removed = removed_;
    st.max_level = entry_ == kNone ? -1 : max_level_;
    st.nodes_per_level.assign(static_cast<std::size_t>(std::max(0, st.max_level + 1)), 0);
    std::uint64_t degree_sum = 0;
    for (std::size_t s = 0; s < n_slots_; ++s) {
      if (deleted_[s]) continue;
      for (int l = 0; l <= levels_[s] && l <= st.max_level; ++l) ++st.nodes_per_level[static_cast<std::size_t>(l)];
      degree_sum += *degree0(static_cast<slot_t>(s));
    }
    st.mean_degree0 = live_ > 0 ? static_cast<double>(degree_sum) / static_cast<double>(live_) : 0.0;
    st.memory_bytes = memory_bytes();
    st.bytes_per_node = live_ > 0 ? st.memory_bytes / static_cast<std::uint64_t>(live_) : 0;
    return st;
  }

  // Bytes held by the index (blocks, side arrays, upper lists, id map).
  std::uint64_t memory_bytes() const {
    const std::uint64_t per_slot = stride_ + sizeof(index_t) + sizeof(std::uint32_t) + 3 + 1;  // + level, deleted, pending, lock
    const std::uint64_t map_bytes = slot_of_.bucket_count() * sizeof(void*) +
                                    slot_of_.size() * (sizeof(void*) + sizeof(std::pair<index_t, slot_t>) + sizeof(std::size_t));
    return per_slot * capacity_ + upper_pool_.capacity() * sizeof(std::uint32_t) + map_bytes +
           free_slots_.capacity() * sizeof(slot_t);
  }

  // ------------------------------------------------------------------ persistence
  // The file keeps the layout readers of every version check: the entry point
  // is a node of the top level and no node is above it. A removed slot (empty
  // lists) may sit above the top level left after removals, so the file gives
  // it at most the entry's level; an index with no live node names slot 0.
  int file_max_level() const {
    if (entry_ != kNone) return max_level_;
    return n_slots_ > 0 ? 0 : -1;
  }
  std::uint8_t file_level(std::size_t s) const {
    return deleted_[s] ? static_cast<std::uint8_t>(std::min<int>(levels_[s], file_max_level())) : levels_[s];
  }
  std::uint64_t file_pool_size() const {
    std::uint64_t n = 0;
    for (std::size_t s = 0; s < n_slots_; ++s) n += file_level(s);
    return n * upper_width_;
  }

  std::uint64_t payload_size() const {
    return 8 * 12 + static_cast<std::uint64_t>(n_slots_) * (8 + 1 + 1 + stride_) + 8 + file_pool_size() * 4;
  }

  void save(std::ostream& out) const {
    std::shared_lock<std::shared_mutex> lock(mutex_);
    io::Writer w(out, io::IndexKind::Hnsw, payload_size());
    w.value<std::int64_t>(dim_);
    w.value<std::int64_t>(static_cast<std::int64_t>(metric_));
    w.value<std::int64_t>(M_);
    w.value<std::int64_t>(ef_construction_);
    w.value<std::int64_t>(ef());
    w.value<std::int64_t>(static_cast<std::int64_t>(n_slots_));
    w.value<std::int64_t>(live_);
    w.value<std::int64_t>(next_label_);
    w.value<std::int64_t>(entry_ != kNone ? static_cast<std::int64_t>(entry_) : n_slots_ > 0 ? 0 : -1);
    w.value<std::int64_t>(file_max_level());
    w.value<std::uint64_t>(seed_);
    w.value<std::uint64_t>(insert_counter_);
    w.array(labels_.data(), n_slots_);
    std::vector<std::uint8_t> levels(n_slots_);
    for (std::size_t s = 0; s < n_slots_; ++s) levels[s] = file_level(s);
    w.array(levels.data(), n_slots_);
    w.array(deleted_.data(), n_slots_);
    w.array(blocks_.get(), n_slots_ * stride_);
    w.value<std::uint64_t>(file_pool_size());
    const std::vector<slot_t> empty(upper_width_, 0);
    for (std::size_t s = 0; s < n_slots_; ++s) {
      for (int l = 1; l <= levels[s]; ++l)
        w.array(deleted_[s] ? empty.data() : upper_list(static_cast<slot_t>(s), l), upper_width_);
    }
    w.finish();
  }

  static std::unique_ptr<HnswIndex> load(const char* data, std::size_t size, const std::string& what) {
    io::Reader r(data, size, io::IndexKind::Hnsw, what);
    const auto dim = r.value<std::int64_t>();
    const auto metric = r.value<std::int64_t>();
    const auto M = r.value<std::int64_t>();
    const auto efc = r.value<std::int64_t>();
    const auto ef = r.value<std::int64_t>();
    const auto n_slots = r.value<std::int64_t>();
    const auto live = r.value<std::int64_t>();
    const auto next = r.value<std::int64_t>();
    const auto entry = r.value<std::int64_t>();
    const auto max_level = r.value<std::int64_t>();
    const auto seed = r.value<std::uint64_t>();
    const auto counter = r.value<std::uint64_t>();
    auto bad = [&](bool cond, const char* why) { require<FormatError>(cond, what, " is corrupted (", why, ")"); };
    // Every field that sizes an allocation is bounded as the constructor and
    // the Python setters bound it.
    bad(dim >= 1 && dim <= (1 << 24) && metric >= 0 && metric <= 2 && M >= 2 && M <= 1024 && efc >= 1 &&
            efc <= kMaxEfConstruction && ef >= 1 && ef <= (1 << 30),
        "invalid header fields");
    bad(n_slots >= 0 && n_slots < (1LL << 31) && live >= 0 && live <= n_slots && next >= 0, "invalid counts");
    auto index = std::make_unique<HnswIndex>(dim, static_cast<Metric>(metric), static_cast<int>(M),
                                             static_cast<int>(efc), seed);
    const std::size_t ns = static_cast<std::size_t>(n_slots);
    bad(ns <= r.remaining() / (index->stride_ + 10), "counts do not match the size");
    bad((entry == -1) == (n_slots == 0) && entry >= -1 && entry < n_slots && max_level >= -1 &&
            max_level <= kMaxLevel,
        "invalid entry point");
    index->set_ef(static_cast<int>(ef));
    index->insert_counter_ = counter;
    index->grow(std::max<std::size_t>(ns, 1));
    index->n_slots_ = ns;
    r.array(index->labels_.data(), ns);
    r.array(index->levels_.data(), ns);
    r.array(index->deleted_.data(), ns);
    r.array(index->blocks_.get(), ns * index->stride_);
    const auto pool = r.value<std::uint64_t>();
    bad(pool <= r.remaining() / 4, "upper lists run past the end");
    index->upper_pool_.resize(static_cast<std::size_t>(pool));
    r.array(index->upper_pool_.data(), index->upper_pool_.size());
    r.expect_end();

    // Structural checks: every reference in range, so a search cannot stray.
    std::size_t upper_used = 0;
    index_t n_live = 0;
    for (std::size_t s = 0; s < ns; ++s) {
      const int lvl = index->levels_[s];
      bad(lvl <= max_level && index->deleted_[s] <= 1, "invalid node level or flag");
      bad(index->labels_[s] >= 0 && index->labels_[s] < next, "bad id");
      if (lvl > 0) {
        index->upper_offset_[s] = static_cast<std::uint32_t>(upper_used / index->upper_width_);
        upper_used += static_cast<std::size_t>(lvl) * index->upper_width_;
        bad(upper_used <= index->upper_pool_.size(), "upper lists do not match the levels");
      } else {
        index->upper_offset_[s] = kNone;
      }
    }
    bad(upper_used == index->upper_pool_.size(), "upper lists do not match the levels");
    for (std::size_t s = 0; s < ns; ++s) {
      const slot_t sl = static_cast<slot_t>(s);
      bad(*index->degree0(sl) <= static_cast<slot_t>(index->M0_), "level-0 degree out of range");
      const slot_t* links = index->links0(sl);
      for (slot_t j = 0; j < *index->degree0(sl); ++j) bad(links[j] < ns, "neighbour out of range");
      for (int l = 1; l <= index->levels_[s]; ++l) {
        const slot_t* up = index->upper_list(sl, l);
        bad(up[0] <= static_cast<slot_t>(M), "upper degree out of range");
        for (slot_t j = 1; j <= up[0]; ++j) bad(up[j] < ns && index->levels_[up[j]] >= l, "upper neighbour out of range");
      }
      if (!index->deleted_[s]) {
        ++n_live;
        bad(index->slot_of_.emplace(index->labels_[s], sl).second, "duplicate id");
      }
    }
    bad(n_live == live, "live count mismatch");
    if (entry >= 0) {
      index->entry_ = static_cast<slot_t>(entry);
      index->max_level_ = static_cast<int>(max_level);
      bad(index->levels_[index->entry_] == max_level, "entry point level mismatch");
    }
    index->live_ = live;
    index->removed_ = static_cast<index_t>(ns) - live;
    index->next_label_ = next;
    if (index->removed_ > 0) {
      // Files of earlier versions kept removed nodes linked (and a removed
      // entry point): unlink them as remove() does now. Otherwise one scan.
      index->unlink_deleted(0, no_cancellation());
      for (std::size_t s = 0; s < ns; ++s) {
        if (!index->deleted_[s]) continue;
        index->clear_lists(static_cast<slot_t>(s));
        index->free_slots_.push_back(static_cast<slot_t>(s));
      }
      std::reverse(index->free_slots_.begin(), index->free_slots_.end());
      if (index->entry_ != kNone && index->deleted_[index->entry_]) index->replace_entry();
    }
    return index;
  }

 private:
  static constexpr int kMaxLevel = 30;
  static constexpr std::int64_t kMaxEfConstruction = std::int64_t{1} << 20;

  // --------------------------------------------------------------- storage
  char* block(slot_t s) const { return blocks_.get() + static_cast<std::size_t>(s) * stride_; }
  float* vector_of(slot_t s) const { return reinterpret_cast<float*>(block(s)); }
  slot_t* degree0(slot_t s) const { return reinterpret_cast<slot_t*>(block(s) + vec_bytes_); }
  slot_t* links0(slot_t s) const { return degree0(s) + 1; }
  // [degree, ids...] of slot s at level l >= 1.
  slot_t* upper_list(slot_t s, int l) const {
    return const_cast<slot_t*>(upper_pool_.data()) + (static_cast<std::size_t>(upper_offset_[s]) + static_cast<std::size_t>(l - 1)) * upper_width_;
  }
  slot_t* list_at(slot_t s, int l) const { return l == 0 ? degree0(s) : upper_list(s, l); }

  // Node storage for at least `cap` slots; cap is raised to what the
  // allocation holds.
  std::unique_ptr<char, hnsw_detail::AlignedFree> allocate_blocks(std::size_t& cap) const {
    // Blocks, side arrays, the per-slot lock and the id map's buckets.
    require_fits_in_memory(saturating_mul(static_cast<std::uint64_t>(cap), static_cast<std::uint64_t>(stride_ + 32)),
                           "an HNSW index of capacity ", cap);
    // Large graphs live on transparent huge pages where the kernel allows it
    // (madvise mode): a search jumps between random nodes, and 2 MB pages
    // remove most of the TLB misses of those jumps.
    constexpr std::size_t kHuge = std::size_t{2} << 20;
    std::size_t bytes = std::max<std::size_t>(cap * stride_, 64);
    const bool huge = bytes >= 2 * kHuge;
    if (huge) {
      // The rounding slack of the last huge page becomes extra capacity.
      bytes = (bytes + kHuge - 1) / kHuge * kHuge;
      cap = bytes / stride_;
    }
    char* raw = static_cast<char*>(std::aligned_alloc(huge ? kHuge : 64, bytes));
    if (!raw) throw std::bad_alloc();
#if defined(__linux__) && defined(MADV_HUGEPAGE)
    if (huge) madvise(raw, bytes, MADV_HUGEPAGE);
#endif
    return std::unique_ptr<char, hnsw_detail::AlignedFree>(raw);
  }

  void grow(std::size_t cap) {
    if (cap <= capacity_) return;
    auto fresh = allocate_blocks(cap);
    if (n_slots_ > 0) std::memcpy(fresh.get(), blocks_.get(), n_slots_ * stride_);
    // Unused blocks stay untouched (not resident) until add fills them.
    blocks_ = std::move(fresh);
    labels_.resize(cap, -1);
    levels_.resize(cap, 0);
    deleted_.resize(cap, 0);
    pending_.resize(cap, 0);
    upper_offset_.resize(cap, kNone);
    locks_.resize(cap);
    capacity_ = cap;
    labels_.shrink_to_fit();
    levels_.shrink_to_fit();
    deleted_.shrink_to_fit();
    pending_.shrink_to_fit();
    upper_offset_.shrink_to_fit();
    slot_of_.reserve(cap);
    std::lock_guard<std::mutex> g(scratch_mutex_);
    for (auto& s : scratch_pool_) s->visited.resize(cap);
  }

  // --------------------------------------------------------------- scratch pool
  void ensure_scratch(int n) const {
    std::lock_guard<std::mutex> g(scratch_mutex_);
    while (static_cast<int>(scratch_pool_.size()) < n) scratch_pool_.push_back(make_scratch());
  }
  std::unique_ptr<hnsw_detail::SearchScratch> make_scratch() const {
    auto s = std::make_unique<hnsw_detail::SearchScratch>();
    s->visited.resize(capacity_);
    s->fresh.resize(static_cast<std::size_t>(M0_) + 1);
    s->links.resize(static_cast<std::size_t>(M0_) + 1);
    return s;
  }
  std::unique_ptr<hnsw_detail::SearchScratch> acquire_scratch() const {
    {
      std::lock_guard<std::mutex> g(scratch_mutex_);
      if (!scratch_pool_.empty()) {
        auto s = std::move(scratch_pool_.back());
        scratch_pool_.pop_back();
        s->visited.resize(capacity_);
        return s;
      }
    }
    return make_scratch();
  }
  void release_scratch(std::unique_ptr<hnsw_detail::SearchScratch> s) const {
    if (!s) return;
    std::lock_guard<std::mutex> g(scratch_mutex_);
    scratch_pool_.push_back(std::move(s));
  }

  static void pad(index_t* ids, float* dist, index_t n) {
    std::fill(ids, ids + n, index_t{-1});
    std::fill(dist, dist + n, std::numeric_limits<float>::infinity());
  }

  void prefetch_vector(slot_t s) const {
    const char* p = block(s);
    // The whole vector: its lines are needed right after.
    for (std::size_t off = 0; off < prefetch_bytes_; off += 64) hnsw_detail::prefetch(p + off);
  }

  // --------------------------------------------------------------- search
  // Greedy descent through the upper levels down to `stop_level` (exclusive).
  template <class Dist>
  slot_t descend(const float* q, slot_t ep, float& d_ep, int from_level, int stop_level, bool locked) const {
    for (int l = from_level; l > stop_level; --l) {
      bool changed = true;
      while (changed) {
        changed = false;
        slot_t buf[1 + 1024];
        const slot_t* list = upper_list(ep, l);
        slot_t cnt;
        if (locked) {
          hnsw_detail::LockGuard g(locks_, ep);
          cnt = list[0];
          std::memcpy(buf, list + 1, sizeof(slot_t) * cnt);
        } else {
          cnt = list[0];
          std::memcpy(buf, list + 1, sizeof(slot_t) * cnt);
        }
        for (slot_t j = 0; j < cnt; ++j) {
          const slot_t c = buf[j];
          if (locked && is_pending(c)) continue;
          const float d = Dist::eval(q, vector_of(c), static_cast<std::size_t>(dim_));
          if (d < d_ep) {
            d_ep = d;
            ep = c;
            changed = true;
          }
        }
      }
    }
    return ep;
  }

  // Best-first search of level `level` from ep with list size ef; the result
  // is left in scratch.list (sorted). `locked` reads neighbour lists under
  // their node's lock (during insertion).
  template <class Dist>
  void search_level(const float* q, slot_t ep, float d_ep, int level, int ef, hnsw_detail::SearchScratch& sc,
                    bool locked) const {
    auto& list = sc.list;
    auto& visited = sc.visited;
    list.reset(ef);
    visited.next();
    visited.mark(ep);
    list.insert(d_ep, ep);
    const std::size_t d = static_cast<std::size_t>(dim_);
    slot_t* fresh = sc.fresh.data();
    slot_t* links = sc.links.data();
    for (;;) {
      const slot_t cur = list.pop_unexpanded();
      if (cur == kNone) break;
      slot_t cnt;
      const slot_t* src = list_at(cur, level);
      if (locked) {
        hnsw_detail::LockGuard g(locks_, cur);
        cnt = src[0];
        std::memcpy(links, src + 1, sizeof(slot_t) * cnt);
      } else {
        cnt = src[0];
        links = const_cast<slot_t*>(src + 1);
      }
      if (!locked) {
        // Overlap: the list of the next candidate will be read soon.
        const slot_t nxt = list.peek_unexpanded();
        if (nxt != kNone && level == 0) hnsw_detail::prefetch(degree0(nxt));
      }
      for (slot_t j = 0; j < cnt; ++j) hnsw_detail::prefetch(visited.tag_address(links[j]));
      int n_fresh = 0;
      if (locked) {
        for (slot_t j = 0; j < cnt; ++j) {
          const slot_t c = links[j];
          if (visited.mark(c) && !is_pending(c)) fresh[n_fresh++] = c;
        }
      } else {
        for (slot_t j = 0; j < cnt; ++j) {
          const slot_t c = links[j];
          if (visited.mark(c)) fresh[n_fresh++] = c;
        }
      }
      if (n_fresh == 0) {
        links = sc.links.data();
        continue;
      }
      for (int j = 0; j < lookahead_ && j < n_fresh; ++j) prefetch_vector(fresh[j]);
      for (int j = 0; j < n_fresh; ++j) {
        if (j + lookahead_ < n_fresh) prefetch_vector(fresh[j + lookahead_]);
        const float dist = Dist::bounded(q, vector_of(fresh[j]), d, list.worst());
        list.insert(dist, fresh[j]);
      }
      links = sc.links.data();
    }
  }

  // Two-queue search (paper's Algorithm 2) returning only admissible nodes:
  // walks through inadmissible ones until ef admissible results are found.
  template <class Dist>
  void search_level_filtered(const float* q, slot_t ep, float d_ep, int ef, const std::uint8_t* allow,
                             hnsw_detail::SearchScratch& sc, TopK<float>& top) const {
    using Item = std::pair<float, slot_t>;
    std::priority_queue<Item, std::vector<Item>, std::greater<Item>> cand;
    std::priority_queue<Item> best;
    auto admissible = [&](slot_t s) { return !deleted_[s] && (!allow || allow[s]); };
    auto& visited = sc.visited;
    visited.next();
    visited.mark(ep);
    float bound = std::numeric_limits<float>::infinity();
    if (admissible(ep)) {
      best.emplace(d_ep, ep);
      bound = d_ep;
    }
    cand.emplace(d_ep, ep);
    const std::size_t d = static_cast<std::size_t>(dim_);
    slot_t* fresh = sc.fresh.data();
    while (!cand.empty()) {
      const Item cur = cand.top();
      if (cur.first > bound && static_cast<int>(best.size()) >= ef) break;
      cand.pop();
      const slot_t cnt = *degree0(cur.second);
      const slot_t* links = links0(cur.second);
      for (slot_t j = 0; j < cnt; ++j) hnsw_detail::prefetch(visited.tag_address(links[j]));
      int n_fresh = 0;
      for (slot_t j = 0; j < cnt; ++j)
        if (visited.mark(links[j])) fresh[n_fresh++] = links[j];
      if (n_fresh > 0) prefetch_vector(fresh[0]);
      for (int j = 0; j < n_fresh; ++j) {
        if (j + 1 < n_fresh) prefetch_vector(fresh[j + 1]);
        const slot_t c = fresh[j];
        const float dist = Dist::eval(q, vector_of(c), d);
        if (static_cast<int>(best.size()) < ef || dist < bound) {
          cand.emplace(dist, c);
          if (admissible(c)) {
            best.emplace(dist, c);
            if (static_cast<int>(best.size()) > ef) best.pop();
            bound = best.top().first;
          }
        }
      }
    }
    while (!best.empty()) {
      top.push(best.top().first, labels_[best.top().second]);
      best.pop();
    }
  }

  template <class Dist>
  void search_one(const float* q, int k, int ef, bool plain, const std::uint8_t* allow, hnsw_detail::SearchScratch& sc,
                  index_t* out_ids, float* out_dist) const {
    slot_t ep = entry_;
    float d_ep = Dist::eval(q, vector_of(ep), static_cast<std::size_t>(dim_));
    ep = descend<Dist>(q, ep, d_ep, max_level_, 0, false);
    if (plain) {
      search_level<Dist>(q, ep, d_ep, 0, ef, sc, false);
      const int n = std::min(k, sc.list.size());
      for (int i = 0; i < n; ++i) {
        out_ids[i] = labels_[sc.list.slot(i)];
        out_dist[i] = clean(sc.list.dist(i));
      }
      pad(out_ids + n, out_dist + n, k - n);
    } else {
      // The filtered search keeps at most ef results: no larger heap.
      const int kk = std::min(k, ef);
      TopK<float> top(kk);
      search_level_filtered<Dist>(q, ep, d_ep, ef, allow, sc, top);
      top.write_sorted(out_ids, out_dist);
      for (int i = 0; i < kk; ++i)
        if (out_ids[i] >= 0) out_dist[i] = clean(out_dist[i]);
      pad(out_ids + kk, out_dist + kk, k - kk);
    }
  }

  bool is_pending(slot_t s) const { return __atomic_load_n(&pending_[s], __ATOMIC_ACQUIRE) != 0; }

  float clean(float d) const { return metric_ == Metric::L2 ? std::max(0.f, d) : d; }

  // Exact scan over the admissible live slots (allow == nullptr: all live).
  void exact_over(const std::uint8_t* allow, std::size_t n_allowed, const float* Q, index_t nq, int k, index_t* out_ids,
                  float* out_dist, int n_threads, Cancellation* cancel) const {
    std::vector<float> base(n_allowed * static_cast<std::size_t>(dim_));
    std::vector<index_t> labels(n_allowed);
    std::size_t j = 0;
    for (std::size_t s = 0; s < n_slots_; ++s) {
      if (deleted_[s] || (allow && !allow[s])) continue;
      std::memcpy(base.data() + j * static_cast<std::size_t>(dim_), vector_of(static_cast<slot_t>(s)), vec_bytes_);
      labels[j++] = labels_[s];
    }
    const index_t n = static_cast<index_t>(j);
    std::vector<float> norms;
    if (metric_ == Metric::L2) {
      norms.resize(j);
      row_sqnorms(base.data(), n, dim_, norms.data(), n_threads);
    }
    // Inner-product metrics report 1 - <q, x>, as exact_search does.
    ExactSearchOptions opt;
    opt.cancel = cancel;
    exact_search<float>(base.data(), n, dim_, norms.data(), labels.data(), Q, nq, k,
                        metric_ == Metric::L2 ? Metric::L2 : Metric::InnerProduct, out_ids, out_dist, n_threads, opt);
  }

  // --------------------------------------------------------------- insertion
  // Neighbour selection heuristic over candidates sorted by distance to the
  // base point; keeps at most m. cand: (distance, slot).
  template <class Dist>
  void select_neighbours(std::vector<std::pair<float, slot_t>>& cand, int m) const {
    if (static_cast<int>(cand.size()) <= m) return;
    const std::size_t d = static_cast<std::size_t>(dim_);
    std::size_t kept = 0;
    for (std::size_t i = 0; i < cand.size() && static_cast<int>(kept) < m; ++i) {
      bool good = true;
      const float* v = vector_of(cand[i].second);
      for (std::size_t r = 0; r < kept; ++r) {
        if (Dist::eval(v, vector_of(cand[r].second), d) < cand[i].first) {
          good = false;
          break;
        }
      }
      if (good) cand[kept++] = cand[i];
    }
    cand.resize(kept);
  }

  template <class Dist>
  void insert(slot_t s) {
    const int level = levels_[s];
    const float* v = vector_of(s);
    const std::size_t d = static_cast<std::size_t>(dim_);
    auto scratch = acquire_scratch();
    struct Release {
      HnswIndex* self;
      std::unique_ptr<hnsw_detail::SearchScratch>& sc;
      ~Release() { self->release_scratch(std::move(sc)); }
    } release{this, scratch};

    std::unique_lock<std::mutex> top_lock(entry_mutex_);
    const int top = max_level_;
    const slot_t entry = entry_;
    if (level <= top) top_lock.unlock();
    if (entry == s) return;  // a reused entry slot cannot happen; guard anyway

    slot_t ep = entry;
    float d_ep = Dist::eval(v, vector_of(ep), d);
    if (level < top) ep = descend<Dist>(v, ep, d_ep, top, level, true);
    // Phase 1: choose the neighbours on every level. Phase 2: write all of
    // s's own lists. Phase 3: link back. s becomes reachable only in phase 3,
    // so no other thread ever finds s with a list not yet written (it would
    // see a dead end, and its back-links into s would be overwritten).
    const int first = std::min(level, top);
    std::vector<std::vector<std::pair<float, slot_t>>> chosen(static_cast<std::size_t>(first + 1));
    for (int l = first; l >= 0; --l) {
      search_level<Dist>(v, ep, d_ep, l, ef_construction_, *scratch, true);
      const auto& list = scratch->list;
      auto& cand = chosen[static_cast<std::size_t>(l)];
      for (int i = 0; i < list.size(); ++i)
        if (list.slot(i) != s) cand.emplace_back(list.dist(i), list.slot(i));
      if (!cand.empty()) {
        ep = cand[0].second;
        d_ep = cand[0].first;
      }
      select_neighbours<Dist>(cand, M_);
    }
    {
      hnsw_detail::LockGuard g(locks_, s);
      for (int l = first; l >= 0; --l) {
        const auto& cand = chosen[static_cast<std::size_t>(l)];
        slot_t* own = list_at(s, l);
        own[0] = static_cast<slot_t>(cand.size());
        for (std::size_t i = 0; i < cand.size(); ++i) own[1 + i] = cand[i].second;
      }
    }
    for (int l = first; l >= 0; --l) {
      const int max_deg = l == 0 ? M0_ : M_;
      for (const auto& c : chosen[static_cast<std::size_t>(l)]) link_back<Dist>(c.second, s, c.first, l, max_deg);
    }
    __atomic_store_n(&pending_[s], std::uint8_t{0}, __ATOMIC_RELEASE);
    if (level > top) {
      // top_lock is still held: publish the new entry point.
      if (level > max_level_) {
        max_level_ = level;
        entry_ = s;
      }
    }
  }

  // Adds `s` to the neighbour list of `n` at level l, re-pruning with the
  // heuristic when the list is full.
  template <class Dist>
  void link_back(slot_t n, slot_t s, float d_ns, int l, int max_deg) {
    hnsw_detail::LockGuard g(locks_, n);
    slot_t* list = list_at(n, l);
    const slot_t cnt = list[0];
    for (slot_t j = 0; j < cnt; ++j)
      if (list[1 + j] == s) return;
    if (static_cast<int>(cnt) < max_deg) {
      list[1 + cnt] = s;
      list[0] = cnt + 1;
      return;
    }
    const std::size_t d = static_cast<std::size_t>(dim_);
    std::vector<std::pair<float, slot_t>> cand;
    cand.reserve(cnt + 1);
    cand.emplace_back(d_ns, s);
    const float* vn = vector_of(n);
    for (slot_t j = 0; j < cnt; ++j) cand.emplace_back(Dist::eval(vn, vector_of(list[1 + j]), d), list[1 + j]);
    std::sort(cand.begin(), cand.end());
    select_neighbours<Dist>(cand, max_deg);
    list[0] = static_cast<slot_t>(cand.size());
    for (std::size_t j = 0; j < cand.size(); ++j) list[1 + j] = cand[j].second;
  }

  // --------------------------------------------------------------- removal
  // Rebuilds every list of a live node that holds a slot flagged in deleted_
  // (the nodes being removed; lists of earlier removed nodes are empty). The
  // new lists are computed in parallel into a buffer and written only when all
  // are done, so a cancellation leaves the graph unchanged (and throws).
  void unlink_deleted(int n_threads, Cancellation& cancel) {
    const int threads = resolve_threads(n_threads);
    // Pass 1: the (node, level) lists that point to a deleted slot, found by
    // one scan of all lists (cheaper than keeping reverse links: a few
    // milliseconds per million nodes, and nothing to maintain on insertion).
    std::vector<std::vector<std::uint64_t>> found(static_cast<std::size_t>(threads));
    parallel_region(threads, [&](int t, int nt) {
      std::int64_t lo, hi;
      split_range(static_cast<std::int64_t>(n_slots_), t, nt, lo, hi);
      auto& mine = found[static_cast<std::size_t>(t)];
      for (std::int64_t s = lo; s < hi; ++s) {
        if (deleted_[static_cast<std::size_t>(s)]) continue;
        for (int l = 0; l <= levels_[static_cast<std::size_t>(s)]; ++l) {
          const slot_t* list = list_at(static_cast<slot_t>(s), l);
          for (slot_t j = 1; j <= list[0]; ++j) {
            if (deleted_[list[j]]) {
              mine.push_back(static_cast<std::uint64_t>(s) << 8 | static_cast<std::uint64_t>(l));
              break;
            }
          }
        }
      }
    });
    std::vector<std::uint64_t> affected;
    for (auto& f : found) affected.insert(affected.end(), f.begin(), f.end());
    std::vector<std::vector<std::uint64_t>>().swap(found);
    if (affected.empty()) return;

    // Pass 2: the new lists, (M0 + 1) entries per affected list.
    const std::size_t width = static_cast<std::size_t>(M0_) + 1;
    std::vector<slot_t> rebuilt(affected.size() * width);
    const index_t n_aff = static_cast<index_t>(affected.size());
    std::atomic<index_t> next{0};
    const index_t chunk = 16;
    parallel_region(std::min<index_t>(threads, (n_aff + chunk - 1) / chunk), [&](int t, int) {
      std::vector<slot_t> pool;
      std::vector<std::pair<float, slot_t>> cand;
      for (;;) {
        if (t == 0) cancel.poll();
        if (cancel.stopped()) return;
        const index_t lo = next.fetch_add(chunk, std::memory_order_relaxed);
        if (lo >= n_aff) return;
        for (index_t i = lo; i < std::min(n_aff, lo + chunk); ++i) {
          const std::uint64_t code = affected[static_cast<std::size_t>(i)];
          const slot_t u = static_cast<slot_t>(code >> 8);
          const int l = static_cast<int>(code & 0xff);
          if (metric_ == Metric::L2)
            relink<hnsw_detail::L2Dist>(u, l, pool, cand);
          else
            relink<hnsw_detail::IPDist>(u, l, pool, cand);
          slot_t* out = rebuilt.data() + static_cast<std::size_t>(i) * width;
          out[0] = static_cast<slot_t>(cand.size());
          for (std::size_t j = 0; j < cand.size(); ++j) out[1 + j] = cand[j].second;
        }
      }
    });
    cancel.throw_if_stopped("interrupted: nothing was removed");

    // Pass 3: commit.
    parallel_for(0, n_aff, threads, [&](index_t i) {
      const std::uint64_t code = affected[static_cast<std::size_t>(i)];
      const slot_t* src = rebuilt.data() + static_cast<std::size_t>(i) * width;
      std::memcpy(list_at(static_cast<slot_t>(code >> 8), static_cast<int>(code & 0xff)), src,
                  sizeof(slot_t) * (1 + src[0]));
    }, 256);
  }

  // The new level-l list of live node u, left in `cand`: u's live neighbours,
  // the live neighbours of its deleted neighbours, and (where a deleted
  // neighbour's neighbour is deleted too, common when half the index goes at
  // once) theirs, filtered by the selection heuristic.
  template <class Dist>
  void relink(slot_t u, int l, std::vector<slot_t>& pool, std::vector<std::pair<float, slot_t>>& cand) const {
    pool.clear();
    cand.clear();
    const slot_t* list = list_at(u, l);
    for (slot_t j = 1; j <= list[0]; ++j) {
      const slot_t v = list[j];
      if (!deleted_[v]) {
        pool.push_back(v);
        continue;
      }
      const slot_t* second = list_at(v, l);
      for (slot_t a = 1; a <= second[0]; ++a) {
        const slot_t w = second[a];
        if (!deleted_[w]) {
          pool.push_back(w);
          continue;
        }
        if (w == v) continue;
        const slot_t* third = list_at(w, l);
        for (slot_t b = 1; b <= third[0]; ++b)
          if (!deleted_[third[b]]) pool.push_back(third[b]);
      }
    }
    std::sort(pool.begin(), pool.end());
    pool.erase(std::unique(pool.begin(), pool.end()), pool.end());
    const float* vu = vector_of(u);
    const std::size_t d = static_cast<std::size_t>(dim_);
    for (slot_t c : pool)
      if (c != u) cand.emplace_back(Dist::eval(vu, vector_of(c), d), c);
    // The nearest ef_construction candidates, as an insertion would see them.
    const std::size_t keep = std::max<std::size_t>(static_cast<std::size_t>(ef_construction_),
                                                   static_cast<std::size_t>(l == 0 ? M0_ : M_));
    if (cand.size() > keep) {
      std::nth_element(cand.begin(), cand.begin() + static_cast<std::ptrdiff_t>(keep), cand.end());
      cand.resize(keep);
    }
    std::sort(cand.begin(), cand.end());
    select_neighbours<Dist>(cand, l == 0 ? M0_ : M_);
  }

  // Empties every list of slot s (a removed node: nothing points to it).
  void clear_lists(slot_t s) {
    *degree0(s) = 0;
    for (int l = 1; l <= levels_[s]; ++l) *upper_list(s, l) = 0;
  }

  // A live node of the highest level becomes the entry point (none: empty).
  void replace_entry() {
    entry_ = kNone;
    max_level_ = -1;
    for (std::size_t s = 0; s < n_slots_; ++s) {
      if (deleted_[s] || static_cast<int>(levels_[s]) <= max_level_) continue;
      entry_ = static_cast<slot_t>(s);
      max_level_ = levels_[s];
    }
  }

  // --------------------------------------------------------------- state
  index_t dim_;
  Metric metric_;
  int M_, M0_, ef_construction_;
  std::atomic<int> ef_{50};
  double level_mult_;
  std::size_t stride_ = 0, vec_bytes_ = 0, upper_width_ = 0, prefetch_bytes_ = 0;
  static constexpr int lookahead_ = 2;  // neighbour vectors prefetched ahead of the distance loop

  std::unique_ptr<char, hnsw_detail::AlignedFree> blocks_;
  std::size_t capacity_ = 0, n_slots_ = 0;
  std::vector<index_t> labels_;
  std::vector<std::uint8_t> levels_;
  std::vector<std::uint8_t> deleted_;
  // Set for a reused slot between the serial prelude of add (new vector, empty
  // lists) and its insertion: it must not be taken as a neighbour before it has
  // its own lists. (Removal unlinks a node, so no list points to a freed slot;
  // the flag is a second guard.)
  std::vector<std::uint8_t> pending_;
  std::vector<std::uint32_t> upper_offset_;
  std::vector<slot_t> upper_pool_;
  mutable hnsw_detail::SpinLocks locks_;
  std::unordered_map<index_t, slot_t> slot_of_;
  std::vector<slot_t> free_slots_;

  slot_t entry_ = kNone;
  int max_level_ = -1;
  index_t live_ = 0, removed_ = 0, next_label_ = 0;
  Rng rng_;
  std::uint64_t seed_;
  std::uint64_t insert_counter_ = 0;

  mutable std::shared_mutex mutex_;
  std::mutex entry_mutex_;
  mutable std::mutex scratch_mutex_;
  mutable std::vector<std::unique_ptr<hnsw_detail::SearchScratch>> scratch_pool_;
};

}  // namespace rankfold
