// Top-k selection.
//
// TopK keeps the k smallest (distance, id) pairs seen so far in a max-heap, with
// ties broken towards the smaller id; `threshold()` lets a scan skip most
// candidates with one comparison. topk_rows selects per row of a score matrix
// in parallel. Missing places (fewer than k candidates) are id -1, value +inf.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "error.hpp"
#include "threads.hpp"
#include "types.hpp"

namespace rankfold {

template <typename T>
class TopK {
 public:
  explicit TopK(int k = 0) { reset(k); }

  void reset(int k) {
    k_ = k;
    heap_.clear();
    heap_.reserve(static_cast<std::size_t>(k));
  }

  int k() const { return k_; }
  int size() const { return static_cast<int>(heap_.size()); }

  // Anything not below this value cannot enter (ties resolved in push).
  T threshold() const {
    return static_cast<int>(heap_.size()) < k_ ? std::numeric_limits<T>::infinity()
                                               : heap_.front().first;
  }

  void push(T value, index_t id) {
    if (k_ <= 0) return;
    if (static_cast<int>(heap_.size()) < k_) {
      heap_.emplace_back(value, id);
      std::push_heap(heap_.begin(), heap_.end(), worse_first);
    } else if (better(value, id, heap_.front().first, heap_.front().second)) {
      std::pop_heap(heap_.begin(), heap_.end(), worse_first);
      heap_.back() = {value, id};
      std::push_heap(heap_.begin(), heap_.end(), worse_first);
    }
  }

  // Writes k results in ascending order, padding with (-1, +inf).
  template <typename OutT>
  void write_sorted(index_t* ids, OutT* values) {
    std::sort_heap(heap_.begin(), heap_.end(), worse_first);
    const int n = static_cast<int>(heap_.size());
    for (int i = 0; i < n; ++i) {
      ids[i] = heap_[i].second;
      values[i] = static_cast<OutT>(heap_[i].first);
    }
    for (int i = n; i < k_; ++i) {
      ids[i] = -1;
      values[i] = std::numeric_limits<OutT>::infinity();
    }
    std::make_heap(heap_.begin(), heap_.end(), worse_first);
  }

  const std::vector<std::pair<T, index_t>>& items() const { return heap_; }

 private:
  static bool better(T a, index_t ia, T b, index_t ib) { return a < b || (a == b && ia < ib); }
  static bool worse_first(const std::pair<T, index_t>& a, const std::pair<T, index_t>& b) {
    return better(a.first, a.second, b.first, b.second);
  }

  int k_ = 0;
  std::vector<std::pair<T, index_t>> heap_;
};

// For each row of `scores` (rows x cols, leading dimension ld), the k smallest
// (largest=false) or largest (largest=true) entries: column ids and values,
// sorted best first. NaN scores are never selected.
template <typename T>
void topk_rows(const T* scores, index_t rows, index_t cols, index_t ld, int k, bool largest,
               index_t* out_ids, T* out_values, int n_threads) {
  require(k >= 1, "k must be >= 1, got ", k);
  require(rows >= 0 && cols >= 0 && ld >= cols, "invalid score matrix shape");
  parallel_for(
      0, rows, n_threads,
      [&](index_t r) {
        TopK<T> top(k);
        const T* row = scores + r * ld;
        T thr = top.threshold();
        for (index_t c = 0; c < cols; ++c) {
          const T v = largest ? -row[c] : row[c];
          if (v <= thr) {  // false for NaN
            top.push(v, c);
            thr = top.threshold();
          }
        }
        top.write_sorted(out_ids + r * k, out_values + r * k);
        if (largest) {
          for (int i = 0; i < k; ++i) out_values[r * k + i] = -out_values[r * k + i];
        }
      },
      16);
}

}  // namespace rankfold
