// Cooperative cancellation of long calls (Ctrl-C from Python, a timeout from C++).
//
// A long computation takes a `Cancellation&`. Any thread may call `poll()`
// between batches or iterations; only the thread that created the token (the
// one that started the call: OpenMP thread 0 inside a region) runs the owner's
// poll function, at most every 50 ms, and raises the flag when that function
// answers true; on every other thread poll() is one atomic load. Every thread may
// read `stopped()` (one relaxed atomic load) to leave its loop early. The
// computation then leaves its data consistent (an index keeps the items fully
// added, an estimator's output is not written) and calls `throw_if_stopped()`,
// which throws `Interrupted`; the Python bindings turn that back into the
// KeyboardInterrupt the poll function caught.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <thread>
#include <utility>

#include "rankfold/core/error.hpp"

namespace rankfold {

// The call was cancelled (a signal, or the owner's request).
class Interrupted : public Error {
 public:
  using Error::Error;
};

class Cancellation {
 public:
  using clock = std::chrono::steady_clock;

  // A token that is never cancelled (C++ callers that do not need one).
  Cancellation() = default;
  // `poll_fn` answers "stop now?"; it is called from the starting thread only.
  explicit Cancellation(std::function<bool()> poll_fn, std::chrono::milliseconds every = std::chrono::milliseconds(50))
      : poll_fn_(std::move(poll_fn)), every_(every), last_(clock::now()), owner_(std::this_thread::get_id()) {}

  Cancellation(const Cancellation&) = delete;
  Cancellation& operator=(const Cancellation&) = delete;

  // Cheap (a clock read) between polls; on threads other than the one that
  // created the token, only reads the flag (a nested region's thread 0 may
  // be a worker of the outer one).
  bool poll() {
    if (stopped()) return true;
    if (!poll_fn_ || std::this_thread::get_id() != owner_) return false;
    const auto now = clock::now();
    if (now - last_ < every_) return false;
    last_ = now;
    if (poll_fn_()) cancel();
    return stopped();
  }

  // Any thread.
  bool stopped() const noexcept { return flag_.load(std::memory_order_relaxed); }
  void cancel() noexcept { flag_.store(true, std::memory_order_relaxed); }

  void throw_if_stopped(const char* what = "interrupted") const {
    if (stopped()) throw Interrupted(what);
  }

  // poll(), then throw if stopped: for serial loops between iterations.
  void check(const char* what = "interrupted") {
    poll();
    throw_if_stopped(what);
  }

 private:
  std::function<bool()> poll_fn_;
  std::chrono::milliseconds every_{50};
  clock::time_point last_{};
  std::thread::id owner_{};
  std::atomic<bool> flag_{false};
};

// A token for callers that never cancel.
inline Cancellation& no_cancellation() {
  thread_local Cancellation never;
  return never;
}

}  // namespace rankfold
