// NMF with beta-divergence losses by multiplicative updates (Fevotte & Idier
// 2011; scikit-learn's solver="mu" rules):
//
//   D_beta(X | W H) = sum_ij d_beta(x_ij | (W H)_ij)
//     beta = 1: generalized Kullback-Leibler  x log(x / y) - x + y
//     beta = 0: Itakura-Saito                 x / y - log(x / y) - 1
//     else:     (x^b + (b - 1) y^b - b x y^(b-1)) / (b (b - 1))
//
// MU for the factor on the left of a row-major view A (rows x cols) ~ L R^T:
//   L *= ((A .* P^(b-2)) R / (P^(b-1) R + l1 + l2 L))^gamma,   P = L R^T,
// and for the right factor the same with the roles of rows and columns
// swapped. For KL, P^(b-1) = 1, so the denominator is a column sum of the
// other factor and P is needed only where A is nonzero: sparse X is never
// densified. Other betas need P everywhere; it is formed a block of rows at
// a time and never materialised whole.
//
// One pass over the rows of A updates L block by block and, with the block's
// new rows, accumulates the right factor's numerator and denominator in
// per-thread buffers (W and then H of the textbook order when A = X): X is
// read once per iteration. The objective of the current iterate is computed
// in the same pass from the P it forms anyway, so it arrives one pass late;
// fit_beta keeps a copy of the left factor to step back when that late
// objective says the fit should have stopped, and its iterates, losses and
// stopping are those of the plain W-then-H loop (fit.hpp's, whose stopping
// rule, hook and Ctrl-C polling it shares; the late objective is why it is a
// loop of its own).
//
// Weighted (missing-value) fits multiply both the numerator and denominator
// matrices by the weights M (dense X only): the loss sum_ij M_ij d(x_ij|y_ij).
#pragma once

#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>
#include <vector>

#include "rankfold/core/error.hpp"
#include "rankfold/core/interrupt.hpp"
#include "rankfold/core/sparse.hpp"
#include "rankfold/core/threads.hpp"
#include "rankfold/core/types.hpp"
#include "rankfold/nmf/solver.hpp"

namespace rankfold {
namespace nmf {

enum class BetaKind { KullbackLeibler, ItakuraSaito, General };

// The element-wise rules of one beta, with scikit-learn's safeguards: y below
// float32 epsilon is raised to it where a negative power or a ratio needs it,
// entries with x <= epsilon drop out of the x-terms of the divergence.
template <typename T>
struct BetaRule {
  double beta;
  BetaKind kind;
  double gamma;  // MM exponent (Fevotte & Idier): 1 for beta in [1, 2]
  T eps = std::numeric_limits<float>::epsilon();

  explicit BetaRule(double b) : beta(b) {
    require(std::isfinite(b), "beta must be finite");
    require(b != 2.0, "beta = 2 (Frobenius) is served by the least-squares solvers");
    kind = b == 1.0 ? BetaKind::KullbackLeibler : (b == 0.0 ? BetaKind::ItakuraSaito : BetaKind::General);
    gamma = b < 1.0 ? 1.0 / (2.0 - b) : (b > 2.0 ? 1.0 / (b - 1.0) : 1.0);
  }

  // Whether the denominator needs P everywhere (not only a factor's sums).
  bool dense_denominator() const { return kind != BetaKind::KullbackLeibler; }

  // q = x * y^(b-2): the numerator matrix at one entry.
  T numerator(T x, T y) const {
    if (kind == BetaKind::KullbackLeibler) return x / std::max(y, eps);
    if (kind == BetaKind::ItakuraSaito) {
      const T c = std::max(y, eps);
      return x / (c * c);
    }
    const T c = beta < 2.0 ? std::max(y, eps) : y;
    return x * static_cast<T>(std::pow(c, static_cast<T>(beta - 2.0)));
  }

  // s = y^(b-1): the denominator matrix at one entry.
  T denominator(T y) const {
    if (kind == BetaKind::KullbackLeibler) return T(1);
    if (kind == BetaKind::ItakuraSaito) return T(1) / std::max(y, eps);
    const T c = beta < 1.0 ? std::max(y, eps) : y;
    return static_cast<T>(std::pow(c, static_cast<T>(beta - 1.0)));
  }

  // The x-terms of d(x | y) for one stored entry x > eps (double).
  double x_terms(double x, double y) const {
    const double c = std::max(y, static_cast<double>(eps));
    if (kind == BetaKind::KullbackLeibler) return x * std::log(x / c) - x;
    if (kind == BetaKind::ItakuraSaito) return x / c - std::log(x / c);
    return (std::pow(x, beta) - beta * x * std::pow(c, beta - 1.0)) / (beta * (beta - 1.0));
  }

  // sum_j w_j d(x_j | y_j) over a dense row (w null: weight 1), SIMD through
  // Eigen's vectorised log; `tmp` is scratch of length n.
  double dense_row(const T* x, const T* y, const T* w, index_t n, T* tmp) const {
    using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
    Eigen::Map<const Arr> X(x, n), Y(y, n);
    Eigen::Map<Arr> t(tmp, n);
    const T e = eps;
    if (kind == BetaKind::KullbackLeibler) {
      t = (X / Y.max(e)).log();
      t = (X > e).select(X * t - X, T(0)) + Y;
    } else if (kind == BetaKind::ItakuraSaito) {
      t = X / Y.max(e);
      t = (X > e).select(t - t.log(), T(0)) - T(1);
    } else {
      const T b = static_cast<T>(beta);
      t = (X > e).select(X.pow(b) - b * X * Y.max(e).pow(b - T(1)), T(0)) + (b - T(1)) * Y.pow(b);
      t /= b * (b - T(1));
    }
    if (w != nullptr) t *= Eigen::Map<const Arr>(w, n);
    return t.template cast<double>().sum();
  }

  // The y-only terms summed over a dense row of P (sparse X with dense P).
  double y_terms_row(const T* y, index_t n) const {
    if (kind == BetaKind::KullbackLeibler) {
      double s = 0.0;
      for (index_t j = 0; j < n; ++j) s += y[j];
      return s;
    }
    if (kind == BetaKind::ItakuraSaito) return -static_cast<double>(n);
    double s = 0.0;
    for (index_t j = 0; j < n; ++j) s += std::pow(static_cast<double>(y[j]), beta);
    return s / beta;
  }
};

// The multiplicative step of one row: y_j *= (num_j / (den_j + l1 + l2 y_j))^gamma,
// a zero (or subnormal) denominator replaced by float32 epsilon, entries below float64
// epsilon set to 0 when `zero_small` (scikit-learn's stabilisation for beta < 1).
template <typename T>
inline void mu_step(T* y, const T* num, const T* den, index_t den_stride, index_t k, Penalty pen, double gamma,
                    bool zero_small) {
  const T l1 = static_cast<T>(pen.l1), l2 = static_cast<T>(pen.l2);
  const T eps = std::numeric_limits<float>::epsilon();
  const T small = static_cast<T>(std::numeric_limits<double>::epsilon());
  for (index_t j = 0; j < k; ++j) {
    T d = den[j * den_stride];
    if (l1 > T(0)) d += l1;
    if (l2 > T(0)) d += l2 * y[j];
    if (d < std::numeric_limits<T>::min()) d = eps;  // zero or subnormal: the ratio would overflow
    T r = num[j] / d;
    if (gamma == 0.5)
      r = std::sqrt(r);
    else if (gamma != 1.0)
      r = static_cast<T>(std::pow(r, static_cast<T>(gamma)));
    y[j] *= r;
    if (zero_small && y[j] < small) y[j] = T(0);
  }
}

// The rows of X (or of X^T) as a row-major dense view, with optional weights
// of the same layout.
template <typename T>
struct DenseRows {
  const T* x = nullptr;
  const T* w = nullptr;
  index_t rows = 0, cols = 0, ld = 0;
};

// The rows of a compressed view (CSR X, or CSC X seen as CSR X^T).
template <typename T, typename I>
struct SparseRows {
  CompressedView<T, I> v;
  index_t rows() const { return v.rows; }
  index_t cols() const { return v.cols; }
};

enum BetaPassFlags : int { kBetaLoss = 1, kBetaUpdateLeft = 2, kBetaAccumulateRight = 4 };

// One pass over the rows of a source, see the file comment. Src is
// DenseRows<T> or SparseRows<T, I>.
template <typename T, typename Src>
class BetaEngine {
  static constexpr bool kSparse = !std::is_same_v<Src, DenseRows<T>>;

 public:
  BetaEngine(const Src& src, index_t k, const BetaRule<T>& rule, int n_threads)
      : src_(src), k_(k), rule_(rule), threads_(resolve_threads(n_threads)) {
    rows_ = rows_of(src);
    cols_ = cols_of(src);
    require(k >= 1, "n_components must be >= 1");
    threads_ = static_cast<int>(std::max<index_t>(1, std::min<index_t>(threads_, rows_)));
    weighted_ = weights_present(src);
    dense_den_ = rule.dense_denominator() || weighted_;
    block_ = std::clamp<index_t>((index_t(1) << 17) / std::max<index_t>(cols_, 1), 8, 256);
  }

  index_t rows() const { return rows_; }
  index_t cols() const { return cols_; }

  // Runs the pass: returns the part of the divergence of the current L, R
  // (before any update) that the pass sees when kBetaLoss is set (see
  // global_terms for the rest). With kBetaUpdateLeft, L is updated; with
  // kBetaAccumulateRight, the right factor's MU terms are accumulated with
  // the (new) L for apply_right.
  double pass(T* L, const T* R, int flags, Penalty pen_L, bool zero_L) {
    const index_t k = k_, cols = cols_;
    const bool want_loss = (flags & kBetaLoss) != 0;
    const bool upd_left = (flags & kBetaUpdateLeft) != 0;
    const bool acc_right = (flags & kBetaAccumulateRight) != 0;
    std::vector<T> rsum(static_cast<std::size_t>(k), T(0));
    if (upd_left && !dense_den_) {
      for (index_t j = 0; j < k; ++j) {
        double s = 0.0;
        for (index_t c = 0; c < cols; ++c) s += R[c * k + j];
        rsum[static_cast<std::size_t>(j)] = static_cast<T>(s);
      }
    }
    if (acc_right) {
      num_r_.assign(static_cast<std::size_t>(threads_), {});
      den_r_.assign(static_cast<std::size_t>(threads_), {});
      lsum_.assign(static_cast<std::size_t>(threads_), {});
    }
    std::vector<double> loss_parts(static_cast<std::size_t>(threads_), 0.0);
    used_threads_ = threads_;
    parallel_region(threads_, [&](int t, int nt) {
      if (t == 0) used_threads_ = nt;
      index_t lo, hi;
      thread_rows(t, nt, lo, hi);
      std::vector<T> num_r, den_r, lsum;
      if (acc_right) {
        num_r.assign(static_cast<std::size_t>(cols * k), T(0));
        if (dense_den_)
          den_r.assign(static_cast<std::size_t>(cols * k), T(0));
        else
          lsum.assign(static_cast<std::size_t>(k), T(0));
      }
      double loss = 0.0;
      if constexpr (kSparse) {
        if (!rule_.dense_denominator()) {
          loss = sparse_kl_rows(lo, hi, L, R, want_loss, upd_left, acc_right, rsum.data(), pen_L, zero_L, num_r,
                                lsum);
        } else {
          loss = block_rows(lo, hi, L, R, want_loss, upd_left, acc_right, rsum.data(), pen_L, zero_L, num_r, den_r,
                            lsum);
        }
      } else {
        loss = block_rows(lo, hi, L, R, want_loss, upd_left, acc_right, rsum.data(), pen_L, zero_L, num_r, den_r,
                          lsum);
      }
      loss_parts[static_cast<std::size_t>(t)] = loss;
      if (acc_right) {
        num_r_[static_cast<std::size_t>(t)] = std::move(num_r);
        den_r_[static_cast<std::size_t>(t)] = std::move(den_r);
        lsum_[static_cast<std::size_t>(t)] = std::move(lsum);
      }
    });
    double total = 0.0;
    for (double v : loss_parts) total += v;
    return total;
  }

  // Applies the MU step to the right factor from the last pass's sums.
  void apply_right(T* R, Penalty pen_R, bool zero_R) {
    const index_t k = k_, cols = cols_;
    const int nt = used_threads_;
    require(!num_r_.empty() && !num_r_[0].empty(), "apply_right needs a pass that accumulated the right factor");
    std::vector<T> lsum(static_cast<std::size_t>(k), T(0));
    if (!dense_den_) {
      for (int t = 0; t < nt; ++t)
        for (index_t j = 0; j < k; ++j) lsum[static_cast<std::size_t>(j)] += lsum_[static_cast<std::size_t>(t)][j];
    }
    const double gamma = rule_.gamma;
    parallel_for(
        0, cols, threads_,
        [&](index_t c) {
          T* num = num_r_[0].data() + c * k;
          T* den = dense_den_ ? den_r_[0].data() + c * k : nullptr;
          for (int t = 1; t < nt; ++t) {
            const T* o = num_r_[static_cast<std::size_t>(t)].data() + c * k;
            for (index_t j = 0; j < k; ++j) num[j] += o[j];
            if (den != nullptr) {
              const T* od = den_r_[static_cast<std::size_t>(t)].data() + c * k;
              for (index_t j = 0; j < k; ++j) den[j] += od[j];
            }
          }
          if (den != nullptr)
            mu_step(R + c * k, num, den, 1, k, pen_R, gamma, zero_R);
          else
            mu_step(R + c * k, num, lsum.data(), 1, k, pen_R, gamma, zero_R);
        },
        64);
  }

  // The divergence terms no pass sees: for sparse X, the y-terms of the
  // entries not stored (KL: sum of W H over all entries; IS: -1 per entry).
  double global_terms(const T* L, const T* R) const {
    if constexpr (!kSparse) {
      return 0.0;
    } else {
      if (rule_.kind == BetaKind::KullbackLeibler) {
        double total = 0.0;
        for (index_t j = 0; j < k_; ++j) {
          double a = 0.0, b = 0.0;
          for (index_t i = 0; i < rows_; ++i) a += L[i * k_ + j];
          for (index_t c = 0; c < cols_; ++c) b += R[c * k_ + j];
          total += a * b;
        }
        return total;
      }
      return 0.0;  // IS and general betas see every entry through the dense P blocks
    }
  }

 private:
  static index_t rows_of(const DenseRows<T>& s) { return s.rows; }
  template <typename I>
  static index_t rows_of(const SparseRows<T, I>& s) {
    return s.rows();
  }
  static index_t cols_of(const DenseRows<T>& s) { return s.cols; }
  template <typename I>
  static index_t cols_of(const SparseRows<T, I>& s) {
    return s.cols();
  }
  static bool weights_present(const DenseRows<T>& s) { return s.w != nullptr; }
  template <typename I>
  static bool weights_present(const SparseRows<T, I>&) {
    return false;
  }

  // Static row ranges; sparse rows are split by stored entries.
  void thread_rows(int t, int nt, index_t& lo, index_t& hi) const {
    if constexpr (kSparse) {
      const auto& v = src_.v;
      const index_t nnz = v.nnz();
      auto bound = [&](int q) -> index_t {
        if (q <= 0) return 0;
        if (q >= nt) return rows_;
        const index_t target = nnz * q / nt;
        return static_cast<index_t>(std::lower_bound(v.indptr, v.indptr + rows_ + 1, target) - v.indptr);
      };
      lo = std::min(bound(t), rows_);
      hi = std::min(bound(t + 1), rows_);
      if (hi < lo) hi = lo;
    } else {
      split_range(rows_, t, nt, lo, hi);
    }
  }

  // KL on sparse rows: P only at the stored entries, one dot product each.
  template <typename Vec>
  double sparse_kl_rows(index_t lo, index_t hi, T* L, const T* R, bool want_loss, bool upd_left, bool acc_right,
                        const T* rsum, Penalty pen_L, bool zero_L, Vec& num_r, Vec& lsum) {
    if constexpr (kSparse) {
      const auto& v = src_.v;
      const index_t k = k_;
      const T eps = rule_.eps;
      std::vector<T> num(static_cast<std::size_t>(k)), q;
      double loss = 0.0;
      using Arr = Eigen::Array<T, Eigen::Dynamic, 1>;
      // q_e = (L_i . R_j) for the stored entries e of row i, then x_e / max(q_e, eps).
      auto ratios = [&](const T* y, index_t p0, index_t len, bool with_loss) {
        for (index_t e = 0; e < len; ++e) {
          const T* r = R + static_cast<index_t>(v.indices[p0 + e]) * k;
          T dot = T(0);
#pragma omp simd reduction(+ : dot)
          for (index_t j = 0; j < k; ++j) dot += y[j] * r[j];
          q[static_cast<std::size_t>(e)] = dot;
        }
        Eigen::Map<const Arr> X(v.data + p0, len);
        Eigen::Map<Arr> Q(q.data(), len);
        Q = X / Q.max(eps);
        if (with_loss) loss += (X > eps).select(X * Q.log() - X, T(0)).template cast<double>().sum();
      };
      for (index_t i = lo; i < hi; ++i) {
        T* y = L + i * k;
        const index_t p0 = static_cast<index_t>(v.indptr[i]), len = static_cast<index_t>(v.indptr[i + 1]) - p0;
        if (static_cast<index_t>(q.size()) < len) q.resize(static_cast<std::size_t>(len));
        if (want_loss || upd_left) {
          ratios(y, p0, len, want_loss);
          if (upd_left) {
            std::fill(num.begin(), num.end(), T(0));
            for (index_t e = 0; e < len; ++e) {
              const T* r = R + static_cast<index_t>(v.indices[p0 + e]) * k;
              const T qe = q[static_cast<std::size_t>(e)];
#pragma omp simd
              for (index_t j = 0; j < k; ++j) num[j] += qe * r[j];
            }
            mu_step(y, num.data(), rsum, 1, k, pen_L, rule_.gamma, zero_L);
          }
        }
        if (acc_right) {
          if (upd_left || !want_loss) ratios(y, p0, len, false);  // else q already holds this y's ratios
          for (index_t e = 0; e < len; ++e) {
            T* o = num_r.data() + static_cast<index_t>(v.indices[p0 + e]) * k;
            const T qe = q[static_cast<std::size_t>(e)];
#pragma omp simd
            for (index_t j = 0; j < k; ++j) o[j] += qe * y[j];
          }
          for (index_t j = 0; j < k; ++j) lsum[j] += y[j];
        }
      }
      return loss;
    } else {
      (void)lo, (void)hi, (void)L, (void)R, (void)want_loss, (void)upd_left, (void)acc_right, (void)rsum,
          (void)pen_L, (void)zero_L, (void)num_r, (void)lsum;
      return 0.0;
    }
  }

  // Fills P = L_b R^T for rows [i0, i0 + b) of the block buffer.
  void form_p(const T* L, const T* R, index_t i0, index_t b, T* P) const {
    auto p = row_view(P, b, cols_);
    p.noalias() = row_view(L + i0 * k_, b, k_) * row_view(R, cols_, k_).transpose();
  }

  // Q (numerator matrix) and, with dense denominators, S from P; rows [i0, i0 + b).
  void form_qs(index_t i0, index_t b, const T* P, T* Q, T* S) const {
    const index_t cols = cols_;
    for (index_t r = 0; r < b; ++r) {
      const T* p = P + r * cols;
      T* q = Q + r * cols;
      T* s = S != nullptr ? S + r * cols : nullptr;
      if constexpr (kSparse) {
        const auto& v = src_.v;
        std::fill(q, q + cols, T(0));
        for (auto e = v.indptr[i0 + r]; e < v.indptr[i0 + r + 1]; ++e) {
          const index_t c = static_cast<index_t>(v.indices[e]);
          q[c] = rule_.numerator(v.data[e], p[c]);
        }
        if (s != nullptr)
          for (index_t c = 0; c < cols; ++c) s[c] = rule_.denominator(p[c]);
      } else {
        const T* x = src_.x + (i0 + r) * src_.ld;
        const T* w = src_.w != nullptr ? src_.w + (i0 + r) * src_.ld : nullptr;
        if (s != nullptr) {
          if (rule_.kind == BetaKind::KullbackLeibler) {
            for (index_t c = 0; c < cols; ++c) s[c] = w[c];
          } else if (rule_.kind == BetaKind::ItakuraSaito) {
            const T e = rule_.eps;
#pragma omp simd
            for (index_t c = 0; c < cols; ++c) s[c] = T(1) / std::max(p[c], e);
          } else {
            for (index_t c = 0; c < cols; ++c) s[c] = rule_.denominator(p[c]);
          }
          if (w != nullptr && rule_.kind != BetaKind::KullbackLeibler)
            for (index_t c = 0; c < cols; ++c) s[c] *= w[c];
        }
        const T e = rule_.eps;
        if (rule_.kind == BetaKind::KullbackLeibler) {
#pragma omp simd
          for (index_t c = 0; c < cols; ++c) q[c] = x[c] / std::max(p[c], e);
        } else if (rule_.kind == BetaKind::ItakuraSaito) {
#pragma omp simd
          for (index_t c = 0; c < cols; ++c) {
            const T d = std::max(p[c], e);
            q[c] = x[c] / (d * d);
          }
        } else {
          for (index_t c = 0; c < cols; ++c) q[c] = rule_.numerator(x[c], p[c]);
        }
        if (w != nullptr)
          for (index_t c = 0; c < cols; ++c) q[c] *= w[c];
      }
    }
  }

  // The loss of rows [i0, i0 + b) from their P.
  double block_loss(index_t i0, index_t b, const T* P, T* tmp) const {
    const index_t cols = cols_;
    double loss = 0.0;
    for (index_t r = 0; r < b; ++r) {
      const T* p = P + r * cols;
      if constexpr (kSparse) {
        const auto& v = src_.v;
        for (auto e = v.indptr[i0 + r]; e < v.indptr[i0 + r + 1]; ++e) {
          const T x = v.data[e];
          if (x > rule_.eps) loss += rule_.x_terms(x, p[static_cast<index_t>(v.indices[e])]);
        }
        loss += rule_.y_terms_row(p, cols);
      } else {
        const T* x = src_.x + (i0 + r) * src_.ld;
        const T* w = src_.w != nullptr ? src_.w + (i0 + r) * src_.ld : nullptr;
        loss += rule_.dense_row(x, p, w, cols, tmp);
      }
    }
    return loss;
  }

  // Dense P by blocks of rows: dense X, or sparse X with a beta other than 1.
  template <typename Vec>
  double block_rows(index_t lo, index_t hi, T* L, const T* R, bool want_loss, bool upd_left, bool acc_right,
                    const T* rsum, Penalty pen_L, bool zero_L, Vec& num_r, Vec& den_r, Vec& lsum) {
    const index_t k = k_, cols = cols_, blk = block_;
    std::vector<T> P(static_cast<std::size_t>(blk * cols)), Q(static_cast<std::size_t>(blk * cols));
    std::vector<T> S(dense_den_ ? static_cast<std::size_t>(blk * cols) : 0);
    std::vector<T> tmp(static_cast<std::size_t>(cols));
    RowMatrix<T> num(blk, k), den(dense_den_ ? blk : 0, k);
    T* s_ptr = dense_den_ ? S.data() : nullptr;
    auto Rm = row_view(R, cols, k);
    double loss = 0.0;
    for (index_t i0 = lo; i0 < hi; i0 += blk) {
      const index_t b = std::min(blk, hi - i0);
      form_p(L, R, i0, b, P.data());
      if (want_loss) loss += block_loss(i0, b, P.data(), tmp.data());
      if (upd_left) {
        form_qs(i0, b, P.data(), Q.data(), s_ptr);
        num.topRows(b).noalias() = row_view(Q.data(), b, cols) * Rm;
        if (dense_den_) den.topRows(b).noalias() = row_view(s_ptr, b, cols) * Rm;
        for (index_t r = 0; r < b; ++r) {
          T* y = L + (i0 + r) * k;
          if (dense_den_)
            mu_step(y, &num(r, 0), &den(r, 0), 1, k, pen_L, rule_.gamma, zero_L);
          else
            mu_step(y, &num(r, 0), rsum, 1, k, pen_L, rule_.gamma, zero_L);
        }
        if (acc_right) form_p(L, R, i0, b, P.data());
      }
      if (acc_right) {
        form_qs(i0, b, P.data(), Q.data(), s_ptr);
        auto Lb = row_view(static_cast<const T*>(L + i0 * k), b, k);
        row_view(num_r.data(), cols, k).noalias() += row_view(Q.data(), b, cols).transpose() * Lb;
        if (dense_den_) {
          row_view(den_r.data(), cols, k).noalias() += row_view(s_ptr, b, cols).transpose() * Lb;
        } else {
          for (index_t r = 0; r < b; ++r)
            for (index_t j = 0; j < k; ++j) lsum[j] += Lb(r, j);
        }
      }
    }
    return loss;
  }

  const Src& src_;
  index_t k_;
  BetaRule<T> rule_;
  int threads_;
  index_t rows_ = 0, cols_ = 0, block_ = 64;
  bool weighted_ = false, dense_den_ = false;
  int used_threads_ = 1;
  std::vector<std::vector<T>> num_r_, den_r_, lsum_;
};

struct BetaOptions {
  double beta = 1.0;
  int max_iter = 200;
  double tol = 1e-4;
  Penalty pen_W, pen_H;
  bool update_H = true;
  int n_threads = 0;
};

// Fits W (m x k) and Ht (n x k) in place for the beta-divergence. The source
// holds the rows of X (`transposed` false: L = W, R = Ht) or of X^T
// (`transposed` true: L = Ht, R = W). losses[i] is the objective (divergence
// + penalties) after iteration i + 1.
template <typename T, typename Src>
Result fit_beta(const Src& src, bool transposed, T* W, T* Ht, index_t k, const BetaOptions& opt,
                const std::function<bool(int, double)>& hook, Cancellation& cancel = no_cancellation()) {
  require(opt.max_iter >= 0, "max_iter must be >= 0");
  require(opt.tol >= 0.0, "tol must be >= 0");
  BetaRule<T> rule(opt.beta);
  BetaEngine<T, Src> engine(src, k, rule, opt.n_threads);
  const index_t m = transposed ? engine.cols() : engine.rows();
  const index_t n = transposed ? engine.rows() : engine.cols();
  T* L = transposed ? Ht : W;
  T* R = transposed ? W : Ht;
  const bool zero_W = opt.beta < 1.0, zero_H = opt.beta <= 1.0;  // scikit-learn's rule
  Result res;
  if (opt.max_iter == 0) return res;
  std::vector<T> saved(static_cast<std::size_t>(m * k));
  double prev = std::numeric_limits<double>::infinity();
  // Records the objective of iterate `it`; true when the fit stops there.
  auto record = [&](int it, double loss) {
    require_finite_loss(loss, it, "mu");
    res.losses.push_back(loss);
    res.n_iter = it;
    if (hook && !hook(it, loss)) return true;
    if (Stopping{opt.tol}.converged(prev, loss)) {
      res.converged = true;
      return true;
    }
    prev = loss;
    cancel.check();  // Ctrl-C: once per iteration
    return false;
  };
  auto finish = [&] {
    require_finite_factors(W, static_cast<std::size_t>(m * k), Ht, static_cast<std::size_t>(n * k), "mu");
    return res;
  };
  auto objective_extra = [&] {
    return engine.global_terms(L, R) + penalties(W, m, k, opt.pen_W) + penalties(Ht, n, k, opt.pen_H);
  };
  for (int it = 1; it <= opt.max_iter; ++it) {
    const double extra = objective_extra();
    double seen;
    if (!transposed) {
      std::copy(W, W + m * k, saved.begin());
      const int flags = kBetaLoss | kBetaUpdateLeft | (opt.update_H ? kBetaAccumulateRight : 0);
      seen = engine.pass(W, Ht, flags, opt.pen_W, zero_W);
      if (it > 1 && record(it - 1, seen + extra)) {
        std::copy(saved.begin(), saved.end(), W);  // step back to the iterate that stopped the fit
        return finish();
      }
      if (opt.update_H) engine.apply_right(Ht, opt.pen_H, zero_H);
    } else {
      seen = engine.pass(Ht, W, kBetaLoss | kBetaAccumulateRight, opt.pen_H, zero_H);
      if (it > 1 && record(it - 1, seen + extra)) return finish();
      engine.apply_right(W, opt.pen_W, zero_W);
      if (opt.update_H) engine.pass(Ht, W, kBetaUpdateLeft, opt.pen_H, zero_H);
    }
  }
  const double extra = objective_extra();
  record(opt.max_iter, engine.pass(L, R, kBetaLoss, Penalty{}, false) + extra);
  return finish();
}

// D_beta(X | W H) of the current factors (no penalties).
template <typename T, typename Src>
double beta_divergence(const Src& src, bool transposed, T* W, T* Ht, index_t k, double beta, int n_threads) {
  BetaRule<T> rule(beta);
  BetaEngine<T, Src> engine(src, k, rule, n_threads);
  T* L = transposed ? Ht : W;
  T* R = transposed ? W : Ht;
  return engine.pass(L, R, kBetaLoss, Penalty{}, false) + engine.global_terms(L, R);
}

}  // namespace nmf
}  // namespace rankfold
