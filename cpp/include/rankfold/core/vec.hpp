// A SIMD register's worth of T as a GCC/Clang vector-extension type, for the
// kernels whose inner loops the auto-vectoriser gets wrong (it vectorises the
// loop over stored entries, gathering, instead of the one over columns).
//
// The width is the target's register width: a vector wider than the registers
// (64 bytes on an AVX2 target) is not split into register pairs but kept on
// the stack, and every operation goes through memory (measured 10x slower on
// Zen 3). Compiled for the baseline (no -march), this is SSE2's 16 bytes.
#pragma once

#include <cstddef>
#include <cstring>

#include "types.hpp"

namespace rankfold {

#if defined(__AVX512F__)
constexpr std::size_t kVecBytes = 64;
#elif defined(__AVX__)
constexpr std::size_t kVecBytes = 32;
#else
constexpr std::size_t kVecBytes = 16;
#endif

template <typename T>
using Vec __attribute__((vector_size(kVecBytes))) = T;

template <typename T>
constexpr index_t kVec = static_cast<index_t>(kVecBytes / sizeof(T));

template <typename T>
inline Vec<T> vload(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
inline void vstore(T* p, const Vec<T>& v) {
  std::memcpy(p, &v, sizeof(v));
}

}  // namespace rankfold
