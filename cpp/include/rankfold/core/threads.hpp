// Thread control: an explicit thread count per call, never global state.
//
// parallel_for runs a loop body on up to n_threads OpenMP threads. An exception
// thrown by any iteration is captured, the remaining iterations are skipped, and
// the first exception is rethrown on the calling thread after the join, so an
// error inside a parallel region becomes an ordinary C++ (and Python) exception.
//
// Fork safety. libgomp's thread pool does not survive fork(): a child whose
// parent had run parallel regions deadlocks in its first one (multiprocessing's
// "fork" start method, joblib's multiprocessing backend). A pthread_atfork
// handler marks every child, and in a child both functions below run on a small
// pool of std::threads of its own (created on first use, threads kept for the
// next region) instead of OpenMP, at the same thread count. Nothing else in the
// library calls OpenMP directly; per-thread scratch uses thread_id().
#pragma once

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

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

namespace detail {

// The worker index inside a region run by the fork pool (-1 outside).
inline int& pool_thread_index() {
  thread_local int index = -1;
  return index;
}

// The std::thread pool used in forked children. Regions run one at a time (a
// second Python thread waits for the running one); a region started from inside
// a region runs on the calling thread alone.
class ForkPool {
 public:
  void run(int n_threads, const std::function<void(int, int)>& body) {
    if (pool_thread_index() >= 0 || n_threads <= 1) {  // nested: on this thread
      body(0, 1);
      return;
    }
    // Another Python thread's region: wait for it, so the result does not depend
    // on timing (the same thread count always gives the same answer).
    std::unique_lock<std::mutex> region(region_mutex_);
    while (static_cast<int>(workers_.size()) < n_threads - 1) {
      const int w = static_cast<int>(workers_.size()) + 1;
      workers_.emplace_back([this, w] { work(w); });
      workers_.back().detach();  // never joined: the pool lives as long as the process
    }
    {
      std::lock_guard<std::mutex> g(mutex_);
      job_ = &body;
      job_threads_ = n_threads;
      pending_ = n_threads - 1;
      ++generation_;
    }
    wake_.notify_all();
    pool_thread_index() = 0;
    body(0, n_threads);
    pool_thread_index() = -1;
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return pending_ == 0; });
    job_ = nullptr;
  }

 private:
  void work(int w) {
    std::uint64_t seen = 0;
    pool_thread_index() = w;
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      wake_.wait(lock, [&] { return generation_ != seen; });
      seen = generation_;
      if (w >= job_threads_) continue;
      const std::function<void(int, int)>* job = job_;
      const int nt = job_threads_;
      lock.unlock();
      (*job)(w, nt);  // the body catches its own exceptions (ExceptionGuard)
      lock.lock();
      if (--pending_ == 0) done_.notify_one();
    }
  }

  std::mutex region_mutex_, mutex_;
  std::condition_variable wake_, done_;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  int job_threads_ = 0, pending_ = 0;
  std::uint64_t generation_ = 0;
};

struct ForkState {
  bool in_child = false;
  std::once_flag made;
  ForkPool* pool = nullptr;
};

inline ForkState*& fork_state() {
  static ForkState* state = new ForkState();
  return state;
}

// In the child: a fresh state (the parent's pool threads do not exist here, and
// its mutexes may have been copied locked, so the old state is abandoned).
inline void after_fork_in_child() {
  ForkState* fresh = new ForkState();
  fresh->in_child = true;
  fork_state() = fresh;
}

inline bool register_fork_handler() {
  static const bool registered = pthread_atfork(nullptr, nullptr, &after_fork_in_child) == 0;
  return registered;
}

// Registered when the library is loaded, before any fork can happen.
inline const bool fork_handler_registered = register_fork_handler();

inline bool in_forked_child() {
  (void)fork_handler_registered;
  return fork_state()->in_child;
}

// Whether parallel regions run on the pool above instead of OpenMP: in forked
// children, and always in ThreadSanitizer builds (RANKFOLD_OWN_THREAD_POOL, set
// by CMake's RANKFOLD_SANITIZE=thread): libgomp is not instrumented, so TSan
// cannot see its barriers and would report every region, while it sees the
// pool's mutexes and condition variables.
inline bool use_own_pool() {
#ifdef RANKFOLD_OWN_THREAD_POOL
  return true;
#else
  return in_forked_child();
#endif
}

inline ForkPool& fork_pool() {
  ForkState* st = fork_state();
  std::call_once(st->made, [st] { st->pool = new ForkPool(); });
  return *st->pool;
}

}  // namespace detail

// True in a process created by fork() from one that had loaded rankfold: its
// parallel regions then run on rankfold's own thread pool instead of OpenMP's.
inline bool in_forked_child() { return detail::in_forked_child(); }

inline int thread_id() {
  const int pooled = detail::pool_thread_index();
  if (pooled >= 0) return pooled;
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
  if (threads > 1 && detail::use_own_pool()) {
    std::atomic<std::int64_t> next{begin};
    const std::int64_t step = std::max<std::int64_t>(chunk, 1);
    detail::fork_pool().run(threads, [&](int, int) {
      for (std::int64_t lo; (lo = next.fetch_add(step)) < end;) {
        const std::int64_t hi = std::min(end, lo + step);
        for (std::int64_t i = lo; i < hi; ++i) guard.run([&] { body(i); });
      }
    });
    guard.rethrow();
    return;
  }
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
  if (threads > 1 && detail::use_own_pool()) {
    detail::fork_pool().run(threads, [&](int t, int nt) { guard.run([&] { body(t, nt); }); });
    guard.rethrow();
    return;
  }
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
