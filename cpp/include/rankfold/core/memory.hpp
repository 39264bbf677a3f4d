// Size checks for allocations whose size comes from the caller (k, nq, a
// capacity) or from a file header.
//
// With the kernel's overcommit, an allocation larger than the machine can back
// may succeed and the process is killed later, when the pages are touched (a
// 1 x 2^31 result array fills 24 GB of padding). These helpers compute sizes
// without overflow and refuse, before allocating, what exceeds the machine's
// memory (RAM + swap, or the process's address-space limit when lower), so
// the caller gets a MemoryError naming what was asked.
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#if defined(__linux__)
#include <sys/resource.h>
#include <sys/sysinfo.h>
#endif

#include "error.hpp"

namespace rankfold {

// RAM + swap in bytes, capped by the address-space limit (ulimit -v) when
// one is set; the largest uint64 when unknown.
inline std::uint64_t machine_memory_bytes() {
  std::uint64_t limit = std::numeric_limits<std::uint64_t>::max();
#if defined(__linux__)
  struct sysinfo info {};
  if (sysinfo(&info) == 0 && info.mem_unit > 0) {
    const long double total = (static_cast<long double>(info.totalram) + static_cast<long double>(info.totalswap)) *
                              static_cast<long double>(info.mem_unit);
    if (total > 0 && total < static_cast<long double>(limit)) limit = static_cast<std::uint64_t>(total);
  }
  struct rlimit as {};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
    limit = std::min<std::uint64_t>(limit, static_cast<std::uint64_t>(as.rlim_cur));
#endif
  return limit;
}

// a * b, saturating at the largest uint64 (operands < 0 count as 0).
inline std::uint64_t saturating_mul(std::int64_t a, std::int64_t b) {
  if (a <= 0 || b <= 0) return 0;
  const auto ua = static_cast<std::uint64_t>(a), ub = static_cast<std::uint64_t>(b);
  if (ua > std::numeric_limits<std::uint64_t>::max() / ub) return std::numeric_limits<std::uint64_t>::max();
  return ua * ub;
}

inline std::uint64_t saturating_mul(std::uint64_t a, std::uint64_t b) {
  if (a != 0 && b > std::numeric_limits<std::uint64_t>::max() / a) return std::numeric_limits<std::uint64_t>::max();
  return a * b;
}

// Throws OutOfMemory when `bytes` cannot fit in this machine's memory.
template <typename... Parts>
inline void require_fits_in_memory(std::uint64_t bytes, const Parts&... what) {
  const std::uint64_t limit = machine_memory_bytes();
  if (bytes <= limit) return;
  constexpr double kGB = 1e9;
  throw OutOfMemory(detail::concat(what..., " needs ", static_cast<double>(bytes) / kGB,
                                   " GB, more than this machine's memory (", static_cast<double>(limit) / kGB,
                                   " GB: RAM + swap, or the process's address-space limit)"));
}

}  // namespace rankfold
