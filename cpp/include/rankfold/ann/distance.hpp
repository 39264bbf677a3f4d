// Distance kernels between two float32 vectors: squared L2 and inner product.
//
// Each kernel comes in AVX-512, AVX2+FMA and generic versions, chosen per call
// from simd::active_level() (core/simd.hpp: the CPU's best level, lowered by
// RANKFOLD_SIMD). The x86 versions carry target attributes, so a portable
// build (RANKFOLD_NATIVE=OFF) contains and runs them too, and a native build
// inlines the version of its own level into the graph traversals.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "../core/error.hpp"
#include "../core/simd.hpp"

namespace rankfold {

enum class Metric : int { L2 = 0, InnerProduct = 1, Cosine = 2 };

inline Metric metric_from_string(const std::string& name) {
  if (name == "l2") return Metric::L2;
  if (name == "ip") return Metric::InnerProduct;
  if (name == "cosine") return Metric::Cosine;
  throw InvalidArgument("metric must be 'l2', 'ip' or 'cosine', got '" + name + "'");
}

inline const char* metric_name(Metric m) {
  switch (m) {
    case Metric::L2: return "l2";
    case Metric::InnerProduct: return "ip";
    case Metric::Cosine: return "cosine";
  }
  return "?";
}

namespace simd {

inline float l2_sq_generic(const float* a, const float* b, std::size_t d) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (std::size_t i = 0; i < d; ++i) {
    const float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

inline float dot_generic(const float* a, const float* b, std::size_t d) {
  float s = 0.f;
#pragma omp simd reduction(+ : s)
  for (std::size_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

#ifdef RANKFOLD_X86
__attribute__((target("avx512f"))) inline float l2_sq_avx512(const float* a, const float* b,
                                                               std::size_t d) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  std::size_t i = 0;
  for (; i + 32 <= d; i += 32) {
    const __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    const __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16));
    s0 = _mm512_fmadd_ps(t0, t0, s0);
    s1 = _mm512_fmadd_ps(t1, t1, s1);
  }
  for (; i + 16 <= d; i += 16) {
    const __m512 t = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    s0 = _mm512_fmadd_ps(t, t, s0);
  }
  if (i < d) {
    const __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1u);
    const __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s1 = _mm512_fmadd_ps(t, t, s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx512f"))) inline float dot_avx512(const float* a, const float* b,
                                                             std::size_t d) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  std::size_t i = 0;
  if (d >= 128) {
    // Four independent chains: long vectors (text embeddings) are bound by
    // the FMA latency with two.
    __m512 s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    for (; i + 64 <= d; i += 64) {
      s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
      s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
      s2 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 32), _mm512_loadu_ps(b + i + 32), s2);
      s3 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 48), _mm512_loadu_ps(b + i + 48), s3);
    }
    s0 = _mm512_add_ps(s0, s2);
    s1 = _mm512_add_ps(s1, s3);
  }
  for (; i + 32 <= d; i += 32) {
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
    s1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), s1);
  }
  for (; i + 16 <= d; i += 16)
    s0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), s0);
  if (i < d) {
    const __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1u);
    s1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i), s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

// l2_sq with an early exit after each 64 dimensions once the partial sum
// exceeds `bound` (see l2_sq_bounded). Needs d >= 64.
__attribute__((target("avx512f"))) inline float l2_sq_bounded_avx512(const float* a, const float* b,
                                                                       std::size_t d, float bound) {
  __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps();
  std::size_t i = 0;
  // Check after each 64 dimensions (4 cache lines of each vector).
  for (; i + 64 <= d; i += 64) {
    for (std::size_t j = i; j < i + 64; j += 32) {
      const __m512 t0 = _mm512_sub_ps(_mm512_loadu_ps(a + j), _mm512_loadu_ps(b + j));
      const __m512 t1 = _mm512_sub_ps(_mm512_loadu_ps(a + j + 16), _mm512_loadu_ps(b + j + 16));
      s0 = _mm512_fmadd_ps(t0, t0, s0);
      s1 = _mm512_fmadd_ps(t1, t1, s1);
    }
    if (i + 64 < d) {
      const float partial = _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
      if (partial > bound) return partial;
    }
  }
  for (; i + 16 <= d; i += 16) {
    const __m512 t = _mm512_sub_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i));
    s0 = _mm512_fmadd_ps(t, t, s0);
  }
  if (i < d) {
    const __mmask16 m = static_cast<__mmask16>((1u << (d - i)) - 1u);
    const __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, a + i), _mm512_maskz_loadu_ps(m, b + i));
    s1 = _mm512_fmadd_ps(t, t, s1);
  }
  return _mm512_reduce_add_ps(_mm512_add_ps(s0, s1));
}

__attribute__((target("avx2,fma"))) inline float hsum_avx2(__m256 v) {
  const __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  __m128 s = _mm_add_ps(lo, hi);
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 0x55));
  return _mm_cvtss_f32(s);
}

__attribute__((target("avx2,fma"))) inline float l2_sq_avx2(const float* a, const float* b,
                                                              std::size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  std::size_t i = 0;
  if (d >= 64) {
    // Four independent chains: two are bound by the FMA latency (4 cycles)
    // on vectors this long.
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (; i + 32 <= d; i += 32) {
      const __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
      const __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
      const __m256 t2 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16));
      const __m256 t3 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24));
      s0 = _mm256_fmadd_ps(t0, t0, s0);
      s1 = _mm256_fmadd_ps(t1, t1, s1);
      s2 = _mm256_fmadd_ps(t2, t2, s2);
      s3 = _mm256_fmadd_ps(t3, t3, s3);
    }
    s0 = _mm256_add_ps(s0, s2);
    s1 = _mm256_add_ps(s1, s3);
  }
  for (; i + 16 <= d; i += 16) {
    const __m256 t0 = _mm256_sub_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i));
    const __m256 t1 = _mm256_sub_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8));
    s0 = _mm256_fmadd_ps(t0, t0, s0);
    s1 = _mm256_fmadd_ps(t1, t1, s1);
  }
  float s = hsum_avx2(_mm256_add_ps(s0, s1));
  for (; i < d; ++i) {
    const float t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

__attribute__((target("avx2,fma"))) inline float dot_avx2(const float* a, const float* b,
                                                            std::size_t d) {
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  std::size_t i = 0;
  if (d >= 64) {
    __m256 s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    for (; i + 32 <= d; i += 32) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
      s2 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 16), _mm256_loadu_ps(b + i + 16), s2);
      s3 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 24), _mm256_loadu_ps(b + i + 24), s3);
    }
    s0 = _mm256_add_ps(s0, s2);
    s1 = _mm256_add_ps(s1, s3);
  }
  for (; i + 16 <= d; i += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), s1);
  }
  float s = hsum_avx2(_mm256_add_ps(s0, s1));
  for (; i < d; ++i) s += a[i] * b[i];
  return s;
}
#endif  // RANKFOLD_X86

// The level the kernels below run at, by name ("generic", "avx2", "avx512").
inline const char* isa() { return level_name(active_level()); }

}  // namespace simd

// Squared Euclidean distance between two float vectors of length d.
inline float l2_sq(const float* a, const float* b, std::size_t d) {
#if defined(RANKFOLD_X86)
  switch (simd::active_level()) {
    case simd::Level::AVX512: return simd::l2_sq_avx512(a, b, d);
    case simd::Level::AVX2: return simd::l2_sq_avx2(a, b, d);
    case simd::Level::Generic: break;
  }
#endif
  return simd::l2_sq_generic(a, b, d);
}

// Squared L2 distance with early exit: once a partial sum over a prefix of
// the dimensions exceeds `bound`, that partial sum (> bound) is returned
// instead of the full distance. Graph searches reject most candidates, and
// a rejection then needs only part of the vector. Exact when the distance is
// <= bound.
inline float l2_sq_bounded(const float* a, const float* b, std::size_t d, float bound) {
#if defined(RANKFOLD_X86)
  if (simd::active_level() == simd::Level::AVX512 && d >= 64) return simd::l2_sq_bounded_avx512(a, b, d, bound);
#endif
  (void)bound;
  return l2_sq(a, b, d);
}

// Inner product of two float vectors of length d.
inline float dot(const float* a, const float* b, std::size_t d) {
#if defined(RANKFOLD_X86)
  switch (simd::active_level()) {
    case simd::Level::AVX512: return simd::dot_avx512(a, b, d);
    case simd::Level::AVX2: return simd::dot_avx2(a, b, d);
    case simd::Level::Generic: break;
  }
#endif
  return simd::dot_generic(a, b, d);
}

inline double dot(const double* a, const double* b, std::size_t d) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::size_t i = 0; i < d; ++i) s += a[i] * b[i];
  return s;
}

inline double l2_sq(const double* a, const double* b, std::size_t d) {
  double s = 0.0;
#pragma omp simd reduction(+ : s)
  for (std::size_t i = 0; i < d; ++i) {
    const double t = a[i] - b[i];
    s += t * t;
  }
  return s;
}

// The distance rankfold reports for a metric, from vectors (cosine expects
// unit-norm inputs): l2 -> squared L2; ip and cosine -> 1 - <a, b>.
template <typename T>
inline T distance(Metric m, const T* a, const T* b, std::size_t d) {
  return m == Metric::L2 ? static_cast<T>(l2_sq(a, b, d)) : static_cast<T>(1) - static_cast<T>(dot(a, b, d));
}

}  // namespace rankfold
