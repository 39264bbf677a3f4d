// Thread control: an explicit thread count per call, never global state.
//
// parallel_for runs a loop body on up to n_threads OpenMP threads. An exception
// thrown by any iteration is captured, the remaining iterations are skipped, and
// the first exception is rethrown on the calling thread after the join, so an
// error inside a parallel region becomes an ordinary C++ (and Python) exception.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <exception>
#include <mutex>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace rankfold {

// Threads used when the caller passes n_threads <= 0: OpenMP's default, which
// honours OMP_NUM_THREADS and otherwise equals the number of cores.
inline int default_threads() {
#ifdef _OPENMP
  return std::max(1, omp_get_max_threads());
#else
  return 1;
#endif
}

inline int resolve_threads(int n_threads) {
  return n_threads > 0 ? n_threads : default_threads();
}

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// Collects the first exception raised inside a parallel region.
class ExceptionGuard {
 public:
  bool failed() const { return failed_.load(std::memory_order_relaxed); }

  template <typename F>
  void run(F&& f) noexcept {
    if (failed()) return;
    try {
      f();
    } catch (...) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!error_) error_ = std::current_exception();
      failed_.store(true, std::memory_order_relaxed);
    }
  }

  void rethrow() const {
    if (error_) std::rethrow_exception(error_);
  }

 private:
  std::atomic<bool> failed_{false};
  std::mutex mutex_;
  std::exception_ptr error_;
};

// body(i) for i in [begin, end), dynamic schedule with the given chunk size.
template <typename Body>
void parallel_for(std::int64_t begin, std::int64_t end, int n_threads, Body&& body,
                  std::int64_t chunk = 1) {
  if (end <= begin) return;
  const int threads = static_cast<int>(
      std::min<std::int64_t>(resolve_threads(n_threads), end - begin));
  ExceptionGuard guard;
#ifdef _OPENMP
#pragma omp parallel for schedule(dynamic, chunk) num_threads(threads)
#endif
  for (std::int64_t i = begin; i < end; ++i) {
    guard.run([&] { body(i); });
  }
  (void)threads;
  (void)chunk;
  guard.rethrow();
}

// body(thread_index, n_workers) once per worker: for kernels that split work
// themselves (static ranges, per-thread scratch).
template <typename Body>
void parallel_region(int n_threads, Body&& body) {
  const int threads = resolve_threads(n_threads);
  ExceptionGuard guard;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int nt = omp_get_num_threads();
    guard.run([&] { body(t, nt); });
  }
#else
  guard.run([&] { body(0, 1); });
#endif
  (void)threads;
  guard.rethrow();
}

// The half-open range [lo, hi) of n items that worker t of nt owns.
inline void split_range(std::int64_t n, int t, int nt, std::int64_t& lo, std::int64_t& hi) {
  const std::int64_t base = n / nt, extra = n % nt;
  lo = t * base + std::min<std::int64_t>(t, extra);
  hi = lo + base + (t < extra ? 1 : 0);
}

}  // namespace rankfold
