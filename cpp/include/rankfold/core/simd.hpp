// Runtime SIMD dispatch: the one scheme every hand-vectorised kernel uses.
//
// Levels: generic (plain C++, auto-vectorised for the build's baseline),
// avx2 (AVX2 + FMA, 16 ymm registers) and avx512 (AVX-512F, 32 zmm registers).
// Each kernel has one version per level; the x86 versions carry a target
// attribute, so every build contains all of them:
//  * a source build (RANKFOLD_NATIVE=ON, -march=native) can inline the level
//    it was compiled for into its callers;
//  * a portable build (RANKFOLD_NATIVE=OFF) compiles for baseline x86-64 and
//    still runs the AVX2 / AVX-512 kernels, chosen at run time.
//
// The active level is the CPU's best, lowered by the environment variable
// RANKFOLD_SIMD=generic|avx2|avx512 (case-insensitive; empty or "auto" means
// the CPU's best). A request above what the CPU supports is capped to what it
// supports, so RANKFOLD_SIMD=avx512 on an AVX2 machine runs avx2. An unknown
// value is an error: check_environment() throws InvalidArgument (the Python
// module calls it when imported, so `import rankfold` fails with the reason);
// kernels never throw for it and run the CPU's best level meanwhile. The
// variable is read once per process, on first use.
#pragma once

#include <cctype>
#include <cstdlib>
#include <string>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define RANKFOLD_X86 1
#include <immintrin.h>
#endif

#include "error.hpp"

namespace rankfold {
namespace simd {

enum class Level : int { Generic = 0, AVX2 = 1, AVX512 = 2 };

inline const char* level_name(Level level) {
  switch (level) {
    case Level::AVX512: return "avx512";
    case Level::AVX2: return "avx2";
    case Level::Generic: return "generic";
  }
  return "generic";
}

// The best level this CPU and its operating system support (the compiler's
// feature check includes the OS's register-state support, XGETBV).
inline Level cpu_level() {
#if defined(RANKFOLD_X86)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Level::AVX512;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Level::AVX2;
#endif
  return Level::Generic;
}

// The level of the build's baseline flags (what -march gave every function).
constexpr Level compiled_level() {
#if defined(__AVX512F__)
  return Level::AVX512;
#elif defined(__AVX2__) && defined(__FMA__)
  return Level::AVX2;
#else
  return Level::Generic;
#endif
}

// The levels whose kernels this build contains.
constexpr Level highest_compiled_kernel() {
#if defined(RANKFOLD_X86)
  return Level::AVX512;
#else
  return Level::Generic;
#endif
}

struct Dispatch {
  Level level = Level::Generic;  // what the kernels run
  Level cpu = Level::Generic;    // the CPU's best
  std::string requested;         // the environment's value, "" when unset
  std::string error;             // non-empty when `requested` is not a level
};

// The dispatch for a CPU whose best level is `cpu` and a RANKFOLD_SIMD value
// (nullptr when unset). Pure, so it is testable without the environment.
inline Dispatch resolve_dispatch(const char* value, Level cpu) {
  Dispatch d;
  d.cpu = cpu;
  const Level best = static_cast<int>(cpu) < static_cast<int>(highest_compiled_kernel()) ? cpu
                                                                                        : highest_compiled_kernel();
  d.level = best;
  if (value == nullptr) return d;
  d.requested = value;
  std::string v;
  for (const char c : d.requested)
    if (!std::isspace(static_cast<unsigned char>(c))) v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  Level want;
  if (v.empty() || v == "auto") {
    return d;
  } else if (v == "generic") {
    want = Level::Generic;
  } else if (v == "avx2") {
    want = Level::AVX2;
  } else if (v == "avx512") {
    want = Level::AVX512;
  } else {
    d.error = "RANKFOLD_SIMD='" + d.requested +
              "' is not a SIMD level: use generic, avx2, avx512 or auto (or leave it unset for the CPU's best)";
    return d;
  }
  if (static_cast<int>(want) < static_cast<int>(best)) d.level = want;
  return d;
}

// The process's dispatch: RANKFOLD_SIMD read once, on first use.
inline const Dispatch& dispatch() {
  static const Dispatch d = resolve_dispatch(std::getenv("RANKFOLD_SIMD"), cpu_level());
  return d;
}

// The level every kernel runs at (cheap: one static load).
inline Level active_level() { return dispatch().level; }

// Throws InvalidArgument when RANKFOLD_SIMD holds an unknown value.
inline void check_environment() {
  const Dispatch& d = dispatch();
  if (!d.error.empty()) throw InvalidArgument(d.error);
}

}  // namespace simd
}  // namespace rankfold
