// Alternating least squares for matrix completion.
//
// One "half sweep" solves every row of one side (users or items) with the
// other side's factors Y fixed. Two models:
//
// * implicit feedback (Hu, Koren & Volinsky 2008): preference p_ui = 1 where
//   r_ui > 0, confidence c_ui = 1 + alpha r_ui, every unobserved cell has
//   p = 0, c = 1. Row u solves
//       (Y^T Y + Y^T (C_u - I) Y + lambda I) x_u = Y^T C_u p_u,
//   where Y^T Y is shared by all rows, so a row costs O(nnz_u k^2 + k^3)
//   exactly (Cholesky) or O(k^2 + nnz_u k) per conjugate-gradient step.
// * explicit feedback with weighted-lambda regularisation (Zhou et al. 2008):
//       (Y_u^T Y_u + lambda n_u I) x_u = Y_u^T (r_u - mu - b_item),
//   optionally with a per-row bias learnt jointly (the other side's vectors
//   get an extra constant 1 coordinate).
//
// solver: Cholesky (exact) or a few warm-started conjugate-gradient steps
// (inexact updates keep alternating minimisation converging at O(|Omega| k)
// cost per sweep). Rows are processed in parallel, in chunks of roughly equal
// work (nonzeros, not rows), with per-thread scratch and no allocation in the
// hot loop. Rows without observations get a zero vector (and zero bias).
#pragma once

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/interrupt.hpp"
#include "../core/rng.hpp"
#include "../core/sparse.hpp"
#include "../core/threads.hpp"
#include "../core/types.hpp"

namespace rankfold {
namespace completion {

enum class Solver { Cholesky, CG };

inline Solver solver_from_string(const std::string& name) {
  if (name == "cholesky") return Solver::Cholesky;
  if (name == "cg") return Solver::CG;
  throw InvalidArgument("solver must be 'cholesky' or 'cg', got '" + name + "'");
}

namespace detail {

template <typename T>
inline T dot(const T* a, const T* b, index_t k) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (index_t j = 0; j < k; ++j) s += a[j] * b[j];
  return s;
}

template <typename T>
inline void axpy(T a, const T* x, T* y, index_t k) {
#pragma omp simd
  for (index_t j = 0; j < k; ++j) y[j] += a * x[j];
}

}  // namespace detail

// Boundaries of row chunks of roughly equal work (nnz + a per-row constant),
// about `per_thread` chunks per thread, for a dynamic schedule over chunks.
template <typename I>
std::vector<index_t> balanced_chunks(const I* indptr, index_t rows, double row_cost, int n_threads,
                                     int per_thread = 32) {
  std::vector<index_t> bounds{0};
  if (rows <= 0) return bounds;
  const double total = static_cast<double>(indptr[rows]) + row_cost * static_cast<double>(rows);
  const double target = std::max(1.0, total / (static_cast<double>(std::max(1, n_threads)) * per_thread));
  double acc = 0;
  for (index_t r = 0; r < rows; ++r) {
    acc += static_cast<double>(indptr[r + 1] - indptr[r]) + row_cost;
    if (acc >= target) {
      bounds.push_back(r + 1);
      acc = 0;
    }
  }
  if (bounds.back() != rows) bounds.push_back(rows);
  return bounds;
}

// Runs body(row, scratch) over all rows, balanced by nonzeros, with one
// Scratch object per thread (built by make_scratch()).
// With a cancellation token, the calling thread polls it between rows (a
// clock read; a row can take milliseconds at large k, a chunk seconds) and
// every thread stops at its next row once it is cancelled; the sweep then
// throws Interrupted (the rows solved so far keep their new values).
template <typename I, typename MakeScratch, typename Body>
void for_rows_balanced(const I* indptr, index_t rows, double row_cost, int n_threads,
                       MakeScratch&& make_scratch, Body&& body, Cancellation* cancel = nullptr) {
  const int threads = resolve_threads(n_threads);
  const std::vector<index_t> bounds = balanced_chunks(indptr, rows, row_cost, threads);
  using Scratch = decltype(make_scratch());
  std::vector<Scratch> scratch;
  scratch.reserve(static_cast<std::size_t>(threads));
  for (int t = 0; t < threads; ++t) scratch.push_back(make_scratch());
  const index_t n_chunks = static_cast<index_t>(bounds.size()) - 1;
  parallel_for(
      0, n_chunks, threads,
      [&](index_t c) {
        const bool polls = cancel != nullptr && thread_id() == 0;
        Scratch& s = scratch[static_cast<std::size_t>(thread_id())];
        for (index_t r = bounds[c]; r < bounds[c + 1]; ++r) {
          if (cancel != nullptr) {
            if (polls) cancel->poll();
            if (cancel->stopped()) return;
          }
          body(r, s);
        }
      },
      1);
  if (cancel != nullptr) cancel->throw_if_stopped("ALS interrupted");
}

// G = A^T A (k x k) of a row-major n x k matrix, in parallel over row blocks:
// a fixed number of blocks (at most 8, at least 256 rows each), whatever the
// thread count, each forming a partial Gram matrix; the partials are summed
// in order, so the result depends neither on timing nor on n_threads.
template <typename T>
ColMatrix<T> gram(const T* A, index_t n, index_t k, int n_threads) {
  const int parts = static_cast<int>(std::max<index_t>(1, std::min<index_t>(8, n / 256 + 1)));
  const int threads = std::min(resolve_threads(n_threads), parts);
  std::vector<ColMatrix<T>> partial(static_cast<std::size_t>(parts), ColMatrix<T>::Zero(k, k));
  parallel_region(threads, [&](int t, int nt) {
    for (int part = t; part < parts; part += nt) {
      index_t lo, hi;
      split_range(n, part, parts, lo, hi);
      if (hi <= lo) continue;
      const auto block = row_view(A + lo * k, hi - lo, k);
      partial[static_cast<std::size_t>(part)].template selfadjointView<Eigen::Lower>().rankUpdate(block.transpose());
    }
  });
  ColMatrix<T> G = ColMatrix<T>::Zero(k, k);
  for (const auto& P : partial) G += P;
  G.template triangularView<Eigen::StrictlyUpper>() = G.transpose();
  return G;
}

// Initial factors, one random stream per row so the result depends on the
// seed only: uniform in [0, scale) (uniform = true; a common positive
// direction, which gives implicit-feedback ALS a popularity-like start) or
// N(0, scale^2) (|.| when nonnegative).
template <typename T>
void init_factors(T* out, index_t rows, index_t k, std::uint64_t seed, double scale, bool nonnegative,
                  bool uniform, int n_threads) {
  const Rng base(seed);
  parallel_for(
      0, rows, n_threads,
      [&](index_t r) {
        Rng rng = base.stream(static_cast<std::uint64_t>(r));
        for (index_t j = 0; j < k; ++j) {
          const double v = uniform ? rng.uniform() * scale : rng.normal() * scale;
          out[r * k + j] = static_cast<T>(nonnegative ? std::abs(v) : v);
        }
      },
      256);
}

struct SolveOptions {
  Solver solver = Solver::CG;
  int cg_steps = 3;
  double regularization = 0.01;
  bool nonnegative = false;
  int n_threads = 0;
  Cancellation* cancel = nullptr;  // polled between row chunks (Ctrl-C from Python)
};

// ---------------------------------------------------------------- implicit

// Cholesky factorisation of a small dense SPD matrix, in place, for the
// per-row solves: column-major, leading dimension ld a multiple of the SIMD
// width, rows k..ld of every column zero. Full-width column updates (the
// entries above the diagonal are clobbered, never read) keep every inner loop
// a whole number of aligned vectors; this runs about twice as fast as a
// general-purpose LLT at k = 64. Returns false when A is not positive definite.
template <typename T>
constexpr index_t simd_lanes() {
  return 64 / static_cast<index_t>(sizeof(T));
}

template <typename T>
bool cholesky_in_place(T* A, index_t k, index_t ld, T* inv_diag) {
  constexpr index_t W = simd_lanes<T>();
  for (index_t j = 0; j < k; ++j) {
    T* cj = A + j * ld;
    const index_t r0 = j & ~(W - 1);
    index_t p = 0;
    for (; p + 4 <= j; p += 4) {
      const T* c0 = A + p * ld;
      const T* c1 = c0 + ld;
      const T* c2 = c1 + ld;
      const T* c3 = c2 + ld;
      const T s0 = c0[j], s1 = c1[j], s2 = c2[j], s3 = c3[j];
#pragma omp simd
      for (index_t r = r0; r < ld; ++r) cj[r] -= s0 * c0[r] + s1 * c1[r] + s2 * c2[r] + s3 * c3[r];
    }
    for (; p < j; ++p) {
      const T* c0 = A + p * ld;
      const T s0 = c0[j];
#pragma omp simd
      for (index_t r = r0; r < ld; ++r) cj[r] -= s0 * c0[r];
    }
    const T d = cj[j];
    if (!(d > T(0)) || !std::isfinite(d)) return false;
    const T sd = std::sqrt(d), inv = T(1) / sd;
#pragma omp simd
    for (index_t r = r0; r < ld; ++r) cj[r] *= inv;
    cj[j] = sd;
    inv_diag[j] = inv;
  }
  return true;
}

// Solves (L L^T) x = b in place with the factor of cholesky_in_place.
template <typename T>
void cholesky_solve_in_place(const T* L, index_t k, index_t ld, const T* inv_diag, T* b) {
  for (index_t j = 0; j < k; ++j) {
    const T* c = L + j * ld;
    const T v = b[j] * inv_diag[j];
    b[j] = v;
#pragma omp simd
    for (index_t r = j + 1; r < k; ++r) b[r] -= v * c[r];
  }
  for (index_t j = k - 1; j >= 0; --j) {
    const T* c = L + j * ld;
    T s = 0;
#pragma omp simd reduction(+ : s)
    for (index_t r = j + 1; r < k; ++r) s += c[r] * b[r];
    b[j] = (b[j] - s) * inv_diag[j];
  }
}

template <typename T>
struct ImplicitScratch {
  Vector<T> r, Ap, b, inv_diag;
  // CG: M = [G | y_1 ... y_n] (k x (k + n)) and v = [p; d], so that
  // A p = G p + Yu diag(c - 1) Yu^T p is one matrix-vector product M v.
  // Cholesky: the columns after G hold sqrt(c_i - 1) y_i.
  ColMatrix<T> M;
  Vector<T> v;
  Vector<T> cm1;  // confidence - 1 of the row's items
  ColMatrix<T> A;  // Cholesky: the padded kp x k system
};

// Solves every row of X (rows x k, row-major, updated in place: the current
// values are the CG warm start) against Y (cols x k) with confidences
// 1 + alpha * R. R's stored values must be > 0 (zeros are skipped).
// YtY (k x k, may be null): the precomputed Gram matrix Y^T Y, reused
// across calls by the caller (it is computed here when null).
template <typename T, typename I>
void implicit_half_sweep(const CompressedView<T, I>& R, const T* Y, T* X, index_t k, double alpha,
                         const SolveOptions& opt, const T* YtY = nullptr) {
  require(k >= 1, "factors must be >= 1");
  require(opt.cg_steps >= 1, "cg_steps must be >= 1");
  ColMatrix<T> G = YtY ? ColMatrix<T>(Eigen::Map<const ColMatrix<T>>(YtY, k, k)) : gram(Y, R.cols, k, opt.n_threads);
  G.diagonal().array() += static_cast<T>(opt.regularization);
  constexpr index_t W = simd_lanes<T>();
  const index_t kp = (k + W - 1) / W * W;
  ColMatrix<T> Gp = ColMatrix<T>::Zero(kp, k);
  Gp.topRows(k) = G;
  const T a = static_cast<T>(alpha);
  const index_t initial_cap = 64;
  auto make = [&] {
    ImplicitScratch<T> s;
    s.r.resize(k);
    s.Ap.resize(k);
    s.b.resize(k);
    s.inv_diag.resize(k);
    s.M.resize(k, k + initial_cap);
    s.M.leftCols(k) = G;
    s.v.resize(k + initial_cap);
    s.cm1.resize(initial_cap);
    if (opt.solver == Solver::Cholesky) s.A.resize(kp, k);
    return s;
  };
  const double row_cost = opt.solver == Solver::CG ? 0.5 * static_cast<double>(k) : static_cast<double>(k) / 3.0;
  for_rows_balanced(R.indptr, R.rows, row_cost, opt.n_threads, make, [&](index_t u, ImplicitScratch<T>& s) {
    const I begin = R.indptr[u], end = R.indptr[u + 1];
    T* x = X + u * k;
    // Gather the row's item vectors and confidences (skipping stored zeros).
    const index_t cap = static_cast<index_t>(end - begin);
    if (s.M.cols() < k + cap) {
      const index_t c = std::max<index_t>(cap, 2 * (s.M.cols() - k));
      s.M.resize(k, k + c);
      s.M.leftCols(k) = G;
      s.v.resize(k + c);
      s.cm1.resize(c);
    }
    index_t n = 0;
    for (I q = begin; q < end; ++q) {
      const T c = a * R.data[q];
      if (!(c > 0)) continue;
      const T* y = Y + static_cast<index_t>(R.indices[q]) * k;
      T* dst = s.M.col(k + n).data();
      for (index_t j = 0; j < k; ++j) dst[j] = y[j];
      s.cm1[n++] = c;
    }
    if (n == 0) {  // no observations: b = 0, the solution is 0
      std::fill(x, x + k, T(0));
      return;
    }
    const auto Yu = s.M.middleCols(k, n);
    const auto Mn = s.M.leftCols(k + n);
    const T* cm1 = s.cm1.data();
    T* v = s.v.data();
    T* r = s.r.data();
    T* Ap = s.Ap.data();
    if (opt.solver == Solver::CG) {
      Eigen::Map<Vector<T>> xv(x, k);
      // r = b - A x = M [-x; w] with w_i = c_i - (c_i - 1) (y_i . x)
      s.v.segment(k, n).noalias() = Yu.transpose() * xv;
      for (index_t i = 0; i < n; ++i) v[k + i] = T(1) + cm1[i] - cm1[i] * v[k + i];
      for (index_t j = 0; j < k; ++j) v[j] = -x[j];
      s.r.noalias() = Mn * s.v.head(k + n);
      T rs_old = 0;
      for (index_t j = 0; j < k; ++j) {
        v[j] = r[j];  // p = r
        rs_old += r[j] * r[j];
      }
      for (int it = 0; it < opt.cg_steps; ++it) {
        if (!(rs_old > T(0))) break;
        // A p = M [p; (c - 1) * (Yu^T p)]
        s.v.segment(k, n).noalias() = Yu.transpose() * s.v.head(k);
        for (index_t i = 0; i < n; ++i) v[k + i] *= cm1[i];
        s.Ap.noalias() = Mn * s.v.head(k + n);
        T pAp = 0;
#pragma omp simd reduction(+ : pAp)
        for (index_t j = 0; j < k; ++j) pAp += v[j] * Ap[j];
        if (!(pAp > T(0))) break;
        const T step = rs_old / pAp;
        T rs_new = 0;
#pragma omp simd reduction(+ : rs_new)
        for (index_t j = 0; j < k; ++j) {
          x[j] += step * v[j];
          r[j] -= step * Ap[j];
          rs_new += r[j] * r[j];
        }
        const T beta = rs_new / rs_old;
#pragma omp simd
        for (index_t j = 0; j < k; ++j) v[j] = r[j] + beta * v[j];
        rs_old = rs_new;
      }
    } else {
      // A = G + Yu diag(c - 1) Yu^T as a blocked symmetric rank-n update
      // (scaled copies sqrt(c_i - 1) y_i), then an in-place Cholesky solve.
      for (index_t i = 0; i < n; ++i) v[i] = T(1) + cm1[i];
      s.b.noalias() = Yu * s.v.head(n);
      for (index_t i = 0; i < n; ++i) s.M.col(k + i) *= std::sqrt(cm1[i]);
      s.A = Gp;
      s.A.topRows(k).template selfadjointView<Eigen::Lower>().rankUpdate(Yu);
      require<NumericalError>(cholesky_in_place(s.A.data(), k, kp, s.inv_diag.data()),
                              "Cholesky factorisation failed for row ", u, "; increase regularization");
      cholesky_solve_in_place(s.A.data(), k, kp, s.inv_diag.data(), s.b.data());
      std::copy(s.b.data(), s.b.data() + k, x);
    }
    if (opt.nonnegative) {
      for (index_t j = 0; j < k; ++j) x[j] = std::max(x[j], T(0));
    }
  }, opt.cancel);
}

// Objective: sum over all cells c_ui (p_ui - x_u.y_i)^2 + lambda (|X|^2 + |Y|^2),
// computed as trace(X^T X Y^T Y) + sum over nonzeros [c (1 - s)^2 - s^2].
// XtX, YtY (may be null): precomputed Gram matrices.
template <typename T, typename I>
double implicit_loss(const CompressedView<T, I>& R, const T* X, const T* Y, index_t k, double alpha,
                     double regularization, int n_threads, const T* XtX = nullptr, const T* YtY = nullptr) {
  const ColMatrix<T> GY = YtY ? ColMatrix<T>(Eigen::Map<const ColMatrix<T>>(YtY, k, k)) : gram(Y, R.cols, k, n_threads);
  const ColMatrix<T> GX = XtX ? ColMatrix<T>(Eigen::Map<const ColMatrix<T>>(XtX, k, k)) : gram(X, R.rows, k, n_threads);
  double total = GX.template cast<double>().cwiseProduct(GY.template cast<double>()).sum();
  const int threads = resolve_threads(n_threads);
  std::vector<double> partial(static_cast<std::size_t>(threads), 0.0);
  parallel_region(threads, [&](int t, int nt) {
    index_t lo, hi;
    split_range(R.rows, t, nt, lo, hi);
    double acc = 0;
    for (index_t u = lo; u < hi; ++u) {
      const T* x = X + u * k;
      for (I q = R.indptr[u]; q < R.indptr[u + 1]; ++q) {
        const double c = 1.0 + alpha * static_cast<double>(R.data[q]);
        if (!(c > 1.0)) continue;
        const double sc = detail::dot(x, Y + static_cast<index_t>(R.indices[q]) * k, k);
        acc += c * (1.0 - sc) * (1.0 - sc) - sc * sc;
      }
    }
    partial[static_cast<std::size_t>(t)] = acc;
  });
  for (double v : partial) total += v;
  return total + regularization * (GX.trace() + static_cast<double>(GY.trace()));
}

// ---------------------------------------------------------------- explicit

template <typename T>
struct ExplicitScratch {
  ColMatrix<T> Z;  // d x nnz_u: the other side's vectors of row u (plus a 1 for the bias)
  Vector<T> t, x, r, p, Ap, b, inv_diag;
  ColMatrix<T> A;  // Cholesky: padded dp x d system
};

// Solves every row of X (rows x k) against Y (cols x k) on the observed
// entries R: target r_ui - mu - other_bias[i]; own_bias (may be null) is
// learnt jointly when non-null. Weighted-lambda: penalty lambda * n_u.
template <typename T, typename I>
void explicit_half_sweep(const CompressedView<T, I>& R, const T* Y, const T* other_bias, T* X, T* own_bias,
                         index_t k, double mu, const SolveOptions& opt) {
  require(k >= 1, "factors must be >= 1");
  require(opt.cg_steps >= 1, "cg_steps must be >= 1");
  const bool bias = own_bias != nullptr;
  const index_t d = k + (bias ? 1 : 0);
  constexpr index_t W = simd_lanes<T>();
  const index_t dp = (d + W - 1) / W * W;
  auto make = [&] {
    ExplicitScratch<T> s;
    s.x.resize(d);
    s.r.resize(d);
    s.p.resize(d);
    s.Ap.resize(d);
    s.b.resize(d);
    if (opt.solver == Solver::Cholesky) {
      s.A.resize(dp, d);
      s.inv_diag.resize(d);
    }
    return s;
  };
  const double row_cost = opt.solver == Solver::CG ? 1.0 : static_cast<double>(k) / 3.0;
  for_rows_balanced(R.indptr, R.rows, row_cost, opt.n_threads, make, [&](index_t u, ExplicitScratch<T>& s) {
    const I begin = R.indptr[u], end = R.indptr[u + 1];
    const index_t n = static_cast<index_t>(end - begin);
    Eigen::Map<Vector<T>> xu(X + u * k, k);
    if (n == 0) {
      xu.setZero();
      if (bias) own_bias[u] = T(0);
      return;
    }
    if (s.Z.cols() < n) s.Z.resize(d, std::max<index_t>(n, 2 * s.Z.cols()));
    if (s.t.size() < n) s.t.resize(std::max<index_t>(n, 2 * s.t.size()));
    for (index_t q = 0; q < n; ++q) {
      const index_t i = static_cast<index_t>(R.indices[begin + q]);
      T* z = s.Z.col(q).data();
      const T* y = Y + i * k;
      for (index_t j = 0; j < k; ++j) z[j] = y[j];
      if (bias) z[k] = T(1);
      s.t[q] = R.data[begin + q] - static_cast<T>(mu) - (other_bias ? other_bias[i] : T(0));
    }
    const auto Z = s.Z.leftCols(n);
    const auto t = s.t.head(n);
    const T lam = static_cast<T>(opt.regularization * static_cast<double>(n));
    s.b.noalias() = Z * t;
    s.x.head(k) = xu;
    if (bias) s.x[k] = own_bias[u];
    if (opt.solver == Solver::Cholesky) {
      s.A.setZero();
      s.A.topRows(d).template selfadjointView<Eigen::Lower>().rankUpdate(Z);
      s.A.topRows(d).diagonal().array() += lam;
      require<NumericalError>(cholesky_in_place(s.A.data(), d, dp, s.inv_diag.data()),
                              "Cholesky factorisation failed for row ", u, "; increase regularization");
      s.x = s.b;
      cholesky_solve_in_place(s.A.data(), d, dp, s.inv_diag.data(), s.x.data());
    } else {
      // A v = Z (Z^T v) + lam v, two passes over the gathered vectors.
      auto apply = [&](const Vector<T>& v, Vector<T>& out) {
        out = lam * v;
        for (index_t q = 0; q < n; ++q) {
          const T* z = s.Z.col(q).data();
          detail::axpy(detail::dot(z, v.data(), d), z, out.data(), d);
        }
      };
      apply(s.x, s.Ap);
      s.r = s.b - s.Ap;
      s.p = s.r;
      T rs_old = s.r.squaredNorm();
      for (int it = 0; it < opt.cg_steps; ++it) {
        if (!(rs_old > T(0))) break;
        apply(s.p, s.Ap);
        const T pAp = s.p.dot(s.Ap);
        if (!(pAp > T(0))) break;
        const T step = rs_old / pAp;
        s.x.noalias() += step * s.p;
        s.r.noalias() -= step * s.Ap;
        const T rs_new = s.r.squaredNorm();
        s.p = s.r + (rs_new / rs_old) * s.p;
        rs_old = rs_new;
      }
    }
    if (opt.nonnegative) s.x.head(k) = s.x.head(k).cwiseMax(T(0));
    xu = s.x.head(k);
    if (bias) own_bias[u] = s.x[k];
  }, opt.cancel);
}

// Sum of squared errors over the stored entries and the weighted-lambda
// penalty of the rows of this side: returns {sse, penalty}.
template <typename T, typename I>
std::pair<double, double> explicit_loss(const CompressedView<T, I>& R, const T* X, const T* Y, const T* row_bias,
                                        const T* col_bias, index_t k, double mu, double regularization,
                                        int n_threads) {
  const int threads = resolve_threads(n_threads);
  std::vector<double> sse(static_cast<std::size_t>(threads), 0.0), pen(static_cast<std::size_t>(threads), 0.0);
  parallel_region(threads, [&](int t, int nt) {
    index_t lo, hi;
    split_range(R.rows, t, nt, lo, hi);
    double acc = 0, p = 0;
    for (index_t u = lo; u < hi; ++u) {
      const T* x = X + u * k;
      const double n = static_cast<double>(R.indptr[u + 1] - R.indptr[u]);
      double sq = 0;
      for (index_t j = 0; j < k; ++j) sq += static_cast<double>(x[j]) * x[j];
      if (row_bias) sq += static_cast<double>(row_bias[u]) * row_bias[u];
      p += regularization * n * sq;
      for (I q = R.indptr[u]; q < R.indptr[u + 1]; ++q) {
        const index_t i = static_cast<index_t>(R.indices[q]);
        double pred = mu + static_cast<double>(detail::dot(x, Y + i * k, k));
        if (row_bias) pred += row_bias[u];
        if (col_bias) pred += col_bias[i];
        const double e = static_cast<double>(R.data[q]) - pred;
        acc += e * e;
      }
    }
    sse[static_cast<std::size_t>(t)] = acc;
    pen[static_cast<std::size_t>(t)] = p;
  });
  double a = 0, b = 0;
  for (int t = 0; t < threads; ++t) {
    a += sse[static_cast<std::size_t>(t)];
    b += pen[static_cast<std::size_t>(t)];
  }
  return {a, b};
}

}  // namespace completion
}  // namespace rankfold
