// Bindings of the NMF family: the one fit (nmf::fit and its models, or the
// beta-divergence loop), the exact row solve used by transform, the exact
// residual, the randomized SVD, and the step kernels for outer loops that
// live elsewhere (rankfold.dask). X arrives as a spec
// tuple ("dense", array) or ("csr"|"csc", indptr, indices, data, rows, cols)
// built by rankfold/nmf.py; factors are C-ordered arrays of X's dtype.
#include <chrono>
#include <functional>
#include <string>

#include <pybind11/functional.h>
#include <pybind11/stl.h>

#include "common.hpp"

#include "rankfold/nmf/graph.hpp"
#include "rankfold/nmf/beta.hpp"
#include "rankfold/nmf/masked.hpp"
#include "rankfold/nmf/randomized_svd.hpp"
#include "rankfold/nmf/robust.hpp"
#include "rankfold/nmf/fit.hpp"
#include "rankfold/nmf/solver.hpp"

namespace rankfold {
namespace bindings {

namespace {

template <typename T>
T* mutable_ptr(py::array& a, const char* name, index_t rows, index_t cols) {
  require<TypeMismatch>(same_dtype<T>(a), name,
                        " must have the dtype of X");
  require(a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols, name, " must have shape (", rows, ", ",
          cols, ")");
  require((a.flags() & py::array::c_style) != 0 && a.writeable(), name, " must be a writeable C-ordered array");
  return static_cast<T*>(a.mutable_data());
}

template <typename T>
const T* const_ptr(const py::array& a, const char* name, index_t rows, index_t cols) {
  require<TypeMismatch>(same_dtype<T>(a), name, " must have the dtype of X");
  require(a.ndim() == 2 && a.shape(0) == rows && a.shape(1) == cols, name, " must have shape (", rows, ", ",
          cols, ")");
  require((a.flags() & py::array::c_style) != 0, name, " must be C-ordered");
  return static_cast<const T*>(a.data());
}

template <typename T, typename I, typename Fn>
void visit_sparse(const py::tuple& spec, bool csc, Fn&& fn) {
  py::array indptr = spec[1], indices = spec[2], data = spec[3];
  const index_t rows = spec[4].cast<index_t>(), cols = spec[5].cast<index_t>();
  require<TypeMismatch>(same_dtype<T>(data), "X data must have the dtype of the factors");
  require<TypeMismatch>(same_dtype<I>(indices) && same_dtype<I>(indptr),
                        "X indices and indptr must share one int dtype");
  require(indptr.ndim() == 1 && indices.ndim() == 1 && data.ndim() == 1, "X sparse arrays must be 1-D");
  require((indptr.flags() & indices.flags() & data.flags() & py::array::c_style) != 0,
          "X sparse arrays must be contiguous");
  CompressedView<T, I> v;
  v.rows = csc ? cols : rows;
  v.cols = csc ? rows : cols;
  require(indptr.shape(0) == v.rows + 1, "X indptr has the wrong length");
  v.indptr = static_cast<const I*>(indptr.data());
  v.indices = static_cast<const I*>(indices.data());
  v.data = static_cast<const T*>(data.data());
  require(indices.shape(0) >= v.nnz() && data.shape(0) >= v.nnz(), "X indices/data are shorter than indptr says");
  v.validate();
  nmf::SparseOperator<T, I> op(v, csc);
  fn(op);
}

// Calls fn(op) with the operator the spec describes.
template <typename T, typename Fn>
void visit_operator(const py::tuple& spec, Fn&& fn) {
  require(spec.size() >= 2, "bad X spec");
  const std::string kind = spec[0].cast<std::string>();
  if (kind == "dense") {
    py::array a = spec[1];
    require<TypeMismatch>(same_dtype<T>(a), "X must have the dtype of the factors");
    require(a.ndim() == 2, "X must be 2-D");
    const bool c = (a.flags() & py::array::c_style) != 0;
    const bool f = (a.flags() & py::array::f_style) != 0;
    require(c || f, "X must be C- or F-contiguous");
    nmf::DenseOperator<T> op(static_cast<const T*>(a.data()), a.shape(0), a.shape(1), c);
    fn(op);
    return;
  }
  require(kind == "csr" || kind == "csc", "unknown X kind ", kind);
  require(spec.size() == 6, "bad sparse X spec");
  py::array indices = spec[2];
  if (same_dtype<std::int32_t>(indices))
    visit_sparse<T, std::int32_t>(spec, kind == "csc", fn);
  else
    visit_sparse<T, std::int64_t>(spec, kind == "csc", fn);
}

// The per-iteration callback of the fit loops: the Python callback, called
// with the GIL taken back for it (the loops run without it). Its falsy
// return stops the fit; an exception it raises propagates unchanged (the
// estimator then stays as it was before fit). Ctrl-C is the loops' own
// business (a Cancellation polled once per iteration).
nmf::Hook python_hook(const py::object& hook) {
  if (hook.is_none()) return {};
  return [&hook](int it, double loss) {
    py::gil_scoped_acquire acquire;
    py::object r = hook(it, loss);
    return r.is_none() || r.cast<bool>();
  };
}

nmf::Solver solver_from(const std::string& name) {
  if (name == "hals") return nmf::Solver::Hals;
  if (name == "mu") return nmf::Solver::Mu;
  if (name == "anls") return nmf::Solver::Anls;
  throw InvalidArgument("solver must be 'hals', 'mu' or 'anls', got '" + name + "'");
}

nmf::Robust robust_from(const py::object& robust) {
  if (robust.is_none()) return nmf::Robust::None;
  const std::string name = robust.cast<std::string>();
  if (name == "band") return nmf::Robust::Band;
  if (name == "entry") return nmf::Robust::Entry;
  throw InvalidArgument("robust must be None, 'band' or 'entry', got '" + name + "'");
}

template <typename T>
nmf::Graph<T, std::int64_t> graph_view(const py::array& indptr, const py::array& indices, const py::array& data,
                                       const py::array& degree, index_t rows, double lam);

// The result object of a fit: a dict (n_iter, converged, losses, sigma2, weights).
py::dict result_dict(const nmf::Result& res, py::object weights) {
  py::dict out;
  out["n_iter"] = res.n_iter;
  out["converged"] = res.converged;
  out["losses"] = res.losses;
  out["sigma2"] = res.sigma2;
  out["weights"] = std::move(weights);
  return out;
}

template <typename T, typename Fn>
void visit_beta_source(const py::tuple& spec, const T* weights, Fn&& fn);

template <typename T>
void check_source_shape(const nmf::DenseRows<T>& s, bool transposed, index_t m, index_t n);
template <typename T, typename I>
void check_source_shape(const nmf::SparseRows<T, I>& s, bool transposed, index_t m, index_t n);

// The one NMF fit: the problem description arrives as arguments (X, the
// factors, the solver settings, and the optional terms: beta, mask, graph,
// simplex, robust), W and Ht are updated in place, and the result is one dict.
template <typename T>
py::dict fit(const py::tuple& spec, py::array W, py::array Ht, const std::string& solver, int max_iter, double tol,
             double l1_W, double l2_W, double l1_H, double l2_H, int inner_sweeps, double inner_stop, bool update_W,
             bool update_H, int n_threads, const py::object& hook, bool extrapolate, double beta,
             const py::object& mask, const py::object& graph, bool simplex, const py::object& robust, double sigma2) {
  nmf::Options opt;
  opt.extrapolate = extrapolate;
  opt.solver = solver_from(solver);
  opt.max_iter = max_iter;
  opt.tol = tol;
  opt.pen_W = {l1_W, l2_W};
  opt.pen_H = {l1_H, l2_H};
  opt.inner_sweeps = inner_sweeps;
  opt.inner_stop = inner_stop;
  opt.update_W = update_W;
  opt.update_H = update_H;
  opt.n_threads = n_threads;
  require(max_iter >= 0, "max_iter must be >= 0");
  require(tol >= 0, "tol must be >= 0");
  require(l1_W >= 0 && l2_W >= 0 && l1_H >= 0 && l2_H >= 0, "penalties must be >= 0");
  require(std::isfinite(beta), "beta must be finite");
  require(W.ndim() == 2, "W must be 2-D");
  const index_t m = W.shape(0), k = W.shape(1);
  const auto callback = python_hook(hook);
  nmf::Terms<T> terms;
  terms.simplex = simplex;
  terms.robust = robust_from(robust);
  terms.sigma2 = sigma2;
  const T* weights = nullptr;
  if (!mask.is_none()) {
    require(spec.size() == 2 && spec[0].cast<std::string>() == "dense", "mask needs a dense X");
    weights = const_ptr<T>(mask.cast<py::array>(), "mask", m, spec[1].cast<py::array>().shape(1));
  }
  nmf::Result res;
  py::object out_weights = py::none();

  if (beta != 2.0) {  // beta-divergence MU: its own fused loop (beta.hpp)
    require(opt.solver == nmf::Solver::Mu, "beta != 2 needs solver 'mu'");
    require(!extrapolate, "extrapolation does not work with solver 'mu' (use 'hals' or 'anls')");
    require(graph.is_none() && !simplex && terms.robust == nmf::Robust::None,
            "graph, simplex and robust terms need the Frobenius loss (beta = 2)");
    require(update_W, "the beta-divergence fit always updates W");
    nmf::BetaOptions bopt;
    bopt.beta = beta;
    bopt.max_iter = max_iter;
    bopt.tol = tol;
    bopt.pen_W = opt.pen_W;
    bopt.pen_H = opt.pen_H;
    bopt.update_H = update_H;
    bopt.n_threads = n_threads;
    require(Ht.ndim() == 2, "H^T must be 2-D");
    const index_t n = Ht.shape(0);
    T* w = mutable_ptr<T>(W, "W", m, k);
    T* h = mutable_ptr<T>(Ht, "H^T", n, k);
    visit_beta_source<T>(spec, weights, [&](const auto& src, bool transposed) {
      check_source_shape(src, transposed, m, n);
      with_interrupts([&](Cancellation& cancel) { res = nmf::fit_beta<T>(src, transposed, w, h, k, bopt, callback, cancel); });
    });
    return result_dict(res, out_weights);
  }

  if (weights != nullptr || terms.robust == nmf::Robust::Entry) {  // the weighted model: dense, C-ordered X
    require(spec.size() == 2 && spec[0].cast<std::string>() == "dense", "weighted NMF needs a dense X");
    require(graph.is_none() && !simplex, "weighted NMF takes no graph or simplex term");
    py::array X = spec[1];
    require(X.ndim() == 2, "X must be 2-D");
    const index_t n = X.shape(1);
    nmf::WeightedData<T> data;
    data.X = const_ptr<T>(X, "X", m, n);
    data.M = weights;
    data.m = m;
    data.n = n;
    T* w = mutable_ptr<T>(W, "W", m, k);
    T* h = mutable_ptr<T>(Ht, "H^T", n, k);
    if (terms.robust == nmf::Robust::Entry) {
      auto M = new_matrix<T>(m, n);
      terms.robust_weights = M.mutable_data();
      out_weights = M;
    }
    with_interrupts([&](Cancellation& cancel) { res = nmf::fit_weighted<T>(data, w, h, k, opt, callback, cancel, terms); });
    return result_dict(res, out_weights);
  }

  nmf::Graph<T, std::int64_t> g;
  if (!graph.is_none()) {
    const py::tuple gt = graph.cast<py::tuple>();
    require(gt.size() == 5, "graph must be (indptr, indices, data, degree, lam)");
    g = graph_view<T>(gt[0].cast<py::array>(), gt[1].cast<py::array>(), gt[2].cast<py::array>(),
                      gt[3].cast<py::array>(), m, gt[4].cast<double>());
    terms.graph = &g;
  }
  visit_operator<T>(spec, [&](const auto& op) {
    const index_t n = op.cols();
    require(op.rows() == m, "W must have shape (", op.rows(), ", ", k, ")");
    T* w = mutable_ptr<T>(W, "W", m, k);
    T* h = mutable_ptr<T>(Ht, "H^T", n, k);
    if (terms.robust == nmf::Robust::Band) {
      py::array_t<T> om(static_cast<py::ssize_t>(n));
      terms.robust_weights = om.mutable_data();
      out_weights = om;
    }
    with_interrupts([&](Cancellation& cancel) { res = nmf::fit<T>(op, w, h, k, opt, callback, cancel, terms); });
  });
  return result_dict(res, out_weights);
}

template <typename T>
void solve_rows(const py::tuple& spec, py::array W, const py::array& Ht, double l1, double l2, int n_threads) {
  visit_operator<T>(spec, [&](const auto& op) {
    const index_t m = op.rows(), n = op.cols();
    require(W.ndim() == 2, "W must be 2-D");
    const index_t k = W.shape(1);
    T* w = mutable_ptr<T>(W, "W", m, k);
    const T* h = const_ptr<T>(Ht, "H^T", n, k);
    py::gil_scoped_release release;
    nmf::solve_rows<T>(op, w, h, k, nmf::Penalty{l1, l2}, n_threads);
  });
}

template <typename T>
double residual(const py::tuple& spec, const py::array& W, const py::array& Ht, int n_threads) {
  double out = 0.0;
  visit_operator<T>(spec, [&](const auto& op) {
    const index_t m = op.rows(), n = op.cols();
    require(W.ndim() == 2, "W must be 2-D");
    const index_t k = W.shape(1);
    const T* w = const_ptr<T>(W, "W", m, k);
    const T* h = const_ptr<T>(Ht, "H^T", n, k);
    py::gil_scoped_release release;
    out = op.residual(w, h, k, n_threads);
  });
  return out;
}

template <typename T>
py::tuple sums(const py::tuple& spec, int n_threads) {
  double s = 0.0, ss = 0.0;
  visit_operator<T>(spec, [&](const auto& op) {
    py::gil_scoped_release release;
    s = op.sum(n_threads);
    ss = op.squared_norm(n_threads);
  });
  return py::make_tuple(s, ss);
}

template <typename T>
py::tuple rsvd(const py::tuple& spec, index_t k, index_t oversample, int power_iters, std::uint64_t seed,
               int n_threads) {
  nmf::SvdResult<T> r;
  visit_operator<T>(spec, [&](const auto& op) {
    with_interrupts([&](Cancellation& cancel) {
      r = nmf::randomized_svd<T>(op, k, oversample, power_iters, seed, n_threads, cancel);
    });
  });
  auto U = new_matrix<T>(r.U.rows(), r.U.cols());
  auto Vt = new_matrix<T>(r.Vt.rows(), r.Vt.cols());
  py::array_t<T> S(static_cast<py::ssize_t>(r.S.size()));
  std::copy(r.U.data(), r.U.data() + r.U.size(), U.mutable_data());
  std::copy(r.Vt.data(), r.Vt.data() + r.Vt.size(), Vt.mutable_data());
  std::copy(r.S.data(), r.S.data() + r.S.size(), S.mutable_data());
  return py::make_tuple(U, S, Vt);
}

template <typename T>
void masked_solve_rows(const py::array& X, const py::array& M, py::array W, const py::array& Ht, double l1,
                       double l2, int n_threads) {
  require(X.ndim() == 2 && W.ndim() == 2, "X and W must be 2-D");
  const index_t m = X.shape(0), n = X.shape(1), k = W.shape(1);
  const T* x = const_ptr<T>(X, "X", m, n);
  const T* mk = const_ptr<T>(M, "mask", m, n);
  T* w = mutable_ptr<T>(W, "W", m, k);
  const T* h = const_ptr<T>(Ht, "H^T", n, k);
  py::gil_scoped_release release;
  nmf::masked_solve_rows<T>(x, mk, m, n, w, h, k, nmf::Penalty{l1, l2}, n_threads);
}

// ---- step-level kernels: one half-step of an NMF iteration at a time, for
// drivers that own the outer loop (rankfold.dask.NMF).

// X F (transpose=false: F is n x k, result m x k) or X^T F (F is m x k, result n x k).
template <typename T>
py::array_t<T> products(const py::tuple& spec, const py::array& F, bool transpose, int n_threads) {
  py::array_t<T> out;
  visit_operator<T>(spec, [&](const auto& op) {
    const index_t m = op.rows(), n = op.cols();
    require(F.ndim() == 2, "F must be 2-D");
    const index_t k = F.shape(1);
    const T* f = const_ptr<T>(F, "F", transpose ? m : n, k);
    out = new_matrix<T>(transpose ? n : m, k);
    T* o = out.mutable_data();
    py::gil_scoped_release release;
    if (transpose)
      op.transpose_times(f, k, o, n_threads);
    else
      op.times(f, k, o, n_threads);
  });
  return out;
}

template <typename T>
py::array_t<T> gram_of(const py::array& Y, int n_threads) {
  require(Y.ndim() == 2, "Y must be 2-D");
  const index_t rows = Y.shape(0), k = Y.shape(1);
  const T* y = const_ptr<T>(Y, "Y", rows, k);
  auto G = new_matrix<T>(k, k);
  T* g = G.mutable_data();
  py::gil_scoped_release release;
  nmf::gram(y, rows, k, g, n_threads);
  return G;
}

// Y (rows x k) in place from A = X F (rows x k) and G = F^T F (k x k).
template <typename T>
void update_rows(py::array Y, const py::array& A, const py::array& G, const std::string& solver, double l1,
                 double l2, int sweeps, double early_stop, int n_threads) {
  require(Y.ndim() == 2, "Y must be 2-D");
  const index_t rows = Y.shape(0), k = Y.shape(1);
  T* y = mutable_ptr<T>(Y, "Y", rows, k);
  const T* a = const_ptr<T>(A, "A", rows, k);
  const T* g = const_ptr<T>(G, "G", k, k);
  const nmf::Solver s = solver_from(solver);
  require(sweeps >= 1, "sweeps must be >= 1");
  require(l1 >= 0 && l2 >= 0, "penalties must be >= 0");
  const nmf::Penalty pen{l1, l2};
  py::gil_scoped_release release;
  switch (s) {
    case nmf::Solver::Hals:
      nmf::update_rows_hals(y, a, g, rows, k, pen, sweeps, early_stop, n_threads);
      break;
    case nmf::Solver::Mu:
      nmf::update_rows_mu(y, a, g, rows, k, pen, n_threads);
      break;
    case nmf::Solver::Anls:
      nmf::update_rows_bpp(y, a, g, rows, k, pen, n_threads);
      break;
  }
}

}  // namespace

// ---- the graph view of the fit, and the step kernels of the research terms
// (the graph-regularized W half-step, the correntropy entry weights, the H
// half-step with per-band scales) for tests and outside loops.
namespace {

// The affinity S as a CSR view: int64 indptr/indices, data of the factors' dtype.
template <typename T>
nmf::Graph<T, std::int64_t> graph_view(const py::array& indptr, const py::array& indices, const py::array& data,
                                       const py::array& degree, index_t rows, double lam) {
  require<TypeMismatch>(same_dtype<std::int64_t>(indptr) && same_dtype<std::int64_t>(indices),
                        "graph indptr and indices must be int64");
  require<TypeMismatch>(same_dtype<T>(data) && same_dtype<T>(degree), "graph data and degree must have W's dtype");
  require(indptr.ndim() == 1 && indices.ndim() == 1 && data.ndim() == 1 && degree.ndim() == 1,
          "graph arrays must be 1-D");
  require((indptr.flags() & indices.flags() & data.flags() & degree.flags() & py::array::c_style) != 0,
          "graph arrays must be contiguous");
  require(indptr.shape(0) == rows + 1 && degree.shape(0) == rows, "the graph must be n_samples x n_samples");
  require(lam >= 0.0, "graph_reg must be >= 0");
  nmf::Graph<T, std::int64_t> g;
  g.S.rows = rows;
  g.S.cols = rows;
  g.S.indptr = static_cast<const std::int64_t*>(indptr.data());
  g.S.indices = static_cast<const std::int64_t*>(indices.data());
  g.S.data = static_cast<const T*>(data.data());
  require(indices.shape(0) >= g.S.nnz() && data.shape(0) >= g.S.nnz(), "graph indices/data are shorter than indptr says");
  g.S.validate();
  g.degree = static_cast<const T*>(degree.data());
  g.lam = lam;
  return g;
}

template <typename T>
void graph_update(py::array W, const py::array& A, const py::array& G, const py::array& indptr,
                  const py::array& indices, const py::array& data, const py::array& degree, const std::string& solver,
                  double l1, double l2, double lam, int sweeps, int n_threads) {
  require(W.ndim() == 2, "W must be 2-D");
  const index_t rows = W.shape(0), k = W.shape(1);
  T* w = mutable_ptr<T>(W, "W", rows, k);
  const T* a = const_ptr<T>(A, "A", rows, k);
  const T* g = const_ptr<T>(G, "G", k, k);
  const auto graph = graph_view<T>(indptr, indices, data, degree, rows, lam);
  const nmf::Solver s = solver_from(solver);
  require(s != nmf::Solver::Anls, "the graph-regularized update supports solver 'hals' or 'mu'");
  require(sweeps >= 1, "sweeps must be >= 1");
  require(l1 >= 0 && l2 >= 0, "penalties must be >= 0");
  py::gil_scoped_release release;
  if (s == nmf::Solver::Hals)
    nmf::graph_update_rows_hals(w, a, g, rows, k, nmf::Penalty{l1, l2}, graph, sweeps, n_threads);
  else
    nmf::graph_update_rows_mu(w, a, g, rows, k, nmf::Penalty{l1, l2}, graph, n_threads);
}

template <typename T>
double graph_trace_of(const py::array& W, const py::array& indptr, const py::array& indices, const py::array& data,
                      const py::array& degree, int n_threads) {
  require(W.ndim() == 2, "W must be 2-D");
  const index_t rows = W.shape(0), k = W.shape(1);
  const T* w = const_ptr<T>(W, "W", rows, k);
  const auto graph = graph_view<T>(indptr, indices, data, degree, rows, 0.0);
  py::gil_scoped_release release;
  return nmf::graph_trace(w, rows, k, graph.S, graph.degree, n_threads);
}

template <typename T>
double entry_weights(const py::array& X, const py::array& W, const py::array& Ht, double sigma2, py::array M,
                     int n_threads) {
  require(X.ndim() == 2 && W.ndim() == 2, "X and W must be 2-D");
  const index_t m = X.shape(0), n = X.shape(1), k = W.shape(1);
  const T* x = const_ptr<T>(X, "X", m, n);
  const T* w = const_ptr<T>(W, "W", m, k);
  const T* h = const_ptr<T>(Ht, "H^T", n, k);
  T* out = mutable_ptr<T>(M, "M", m, n);
  require(sigma2 > 0.0 && std::isfinite(sigma2), "sigma must be a positive finite number");
  py::gil_scoped_release release;
  return nmf::correntropy_entry_weights(x, m, n, w, h, k, sigma2, out, n_threads);
}

template <typename T>
void scaled_update(py::array Y, const py::array& A, const py::array& G, const py::array& scale,
                   const std::string& solver, double l1, double l2, int sweeps, int n_threads) {
  require(Y.ndim() == 2, "Y must be 2-D");
  const index_t rows = Y.shape(0), k = Y.shape(1);
  T* y = mutable_ptr<T>(Y, "Y", rows, k);
  const T* a = const_ptr<T>(A, "A", rows, k);
  const T* g = const_ptr<T>(G, "G", k, k);
  require<TypeMismatch>(same_dtype<T>(scale), "scale must have Y's dtype");
  require(scale.ndim() == 1 && scale.shape(0) == rows && (scale.flags() & py::array::c_style) != 0,
          "scale must be a contiguous vector with one entry per row of Y");
  const T* s = static_cast<const T*>(scale.data());
  require(sweeps >= 1, "sweeps must be >= 1");
  require(l1 >= 0 && l2 >= 0, "penalties must be >= 0");
  const nmf::Solver sol = solver_from(solver);
  py::gil_scoped_release release;
  nmf::update_rows_scaled(y, a, g, s, rows, k, nmf::Penalty{l1, l2}, sol, sweeps, n_threads);
}

}  // namespace

// ---------------------------------------------------------------- beta-divergence MU
namespace {

// Calls fn(source, transposed) with the row source the spec describes: the
// rows of X (C-ordered dense, CSR) or of X^T (F-ordered dense, CSC).
template <typename T, typename Fn>
void visit_beta_source(const py::tuple& spec, const T* weights, Fn&& fn) {
  require(spec.size() >= 2, "bad X spec");
  const std::string kind = spec[0].cast<std::string>();
  if (kind == "dense") {
    py::array a = spec[1];
    require<TypeMismatch>(same_dtype<T>(a), "X must have the dtype of the factors");
    require(a.ndim() == 2, "X must be 2-D");
    const bool c = (a.flags() & py::array::c_style) != 0;
    const bool f = (a.flags() & py::array::f_style) != 0;
    require(c || f, "X must be C- or F-contiguous");
    require(weights == nullptr || c, "weighted X must be C-ordered");
    nmf::DenseRows<T> src;
    src.x = static_cast<const T*>(a.data());
    src.w = weights;
    src.rows = c ? a.shape(0) : a.shape(1);
    src.cols = c ? a.shape(1) : a.shape(0);
    src.ld = src.cols;
    fn(src, !c);
    return;
  }
  require(weights == nullptr, "weights need a dense X");
  require(kind == "csr" || kind == "csc", "unknown X kind ", kind);
  require(spec.size() == 6, "bad sparse X spec");
  const bool csc = kind == "csc";
  auto run = [&](auto tag) {
    using I = decltype(tag);
    py::array indptr = spec[1], indices = spec[2], data = spec[3];
    const index_t rows = spec[4].cast<index_t>(), cols = spec[5].cast<index_t>();
    require<TypeMismatch>(same_dtype<T>(data), "X data must have the dtype of the factors");
    require<TypeMismatch>(same_dtype<I>(indices) && same_dtype<I>(indptr),
                          "X indices and indptr must share one int dtype");
    require(indptr.ndim() == 1 && indices.ndim() == 1 && data.ndim() == 1, "X sparse arrays must be 1-D");
    require((indptr.flags() & indices.flags() & data.flags() & py::array::c_style) != 0,
            "X sparse arrays must be contiguous");
    nmf::SparseRows<T, I> src;
    src.v.rows = csc ? cols : rows;
    src.v.cols = csc ? rows : cols;
    require(indptr.shape(0) == src.v.rows + 1, "X indptr has the wrong length");
    src.v.indptr = static_cast<const I*>(indptr.data());
    src.v.indices = static_cast<const I*>(indices.data());
    src.v.data = static_cast<const T*>(data.data());
    require(indices.shape(0) >= src.v.nnz() && data.shape(0) >= src.v.nnz(),
            "X indices/data are shorter than indptr says");
    src.v.validate();
    fn(src, csc);
  };
  if (same_dtype<std::int32_t>(spec[2].cast<py::array>()))
    run(std::int32_t{});
  else
    run(std::int64_t{});
}

template <typename T>
void check_source_shape(const nmf::DenseRows<T>& s, bool transposed, index_t m, index_t n) {
  require((transposed ? s.cols : s.rows) == m && (transposed ? s.rows : s.cols) == n,
          "X must have shape (", m, ", ", n, ") to match W and H");
}
template <typename T, typename I>
void check_source_shape(const nmf::SparseRows<T, I>& s, bool transposed, index_t m, index_t n) {
  require((transposed ? s.cols() : s.rows()) == m && (transposed ? s.rows() : s.cols()) == n,
          "X must have shape (", m, ", ", n, ") to match W and H");
}

template <typename T>
double beta_divergence(const py::tuple& spec, const py::object& mask, py::array W, py::array Ht, double beta,
                       int n_threads) {
  require(W.ndim() == 2 && Ht.ndim() == 2, "W and H^T must be 2-D");
  const index_t k = W.shape(1), m = W.shape(0), n = Ht.shape(0);
  T* w = mutable_ptr<T>(W, "W", m, k);
  T* h = mutable_ptr<T>(Ht, "H^T", n, k);
  const T* weights = nullptr;
  if (!mask.is_none()) weights = const_ptr<T>(mask.cast<py::array>(), "mask", m, n);
  double out = 0.0;
  visit_beta_source<T>(spec, weights, [&](const auto& src, bool transposed) {
    check_source_shape(src, transposed, m, n);
    py::gil_scoped_release release;
    out = nmf::beta_divergence<T>(src, transposed, w, h, k, beta, n_threads);
  });
  return out;
}

}  // namespace

void register_nmf(py::module_& m) {
  m.def(
      "nmf_fit",
      [](const py::tuple& spec, py::array W, py::array Ht, const std::string& solver, int max_iter, double tol,
         double l1_W, double l2_W, double l1_H, double l2_H, int inner_sweeps, double inner_stop, bool update_W,
         bool update_H, int n_threads, const py::object& hook, bool extrapolate, double beta, const py::object& mask,
         const py::object& graph, bool simplex, const py::object& robust, double sigma2) {
        return dispatch_float(W, "factors", [&](auto t) {
          return fit<decltype(t)>(spec, W, Ht, solver, max_iter, tol, l1_W, l2_W, l1_H, l2_H, inner_sweeps,
                                  inner_stop, update_W, update_H, n_threads, hook, extrapolate, beta, mask, graph,
                                  simplex, robust, sigma2);
        });
      },
      py::arg("X"), py::arg("W"), py::arg("Ht"), py::arg("solver"), py::arg("max_iter"), py::arg("tol"),
      py::arg("l1_W"), py::arg("l2_W"), py::arg("l1_H"), py::arg("l2_H"), py::arg("inner_sweeps"),
      py::arg("inner_stop"), py::arg("update_W"), py::arg("update_H"), py::arg("n_threads"), py::arg("hook"),
      py::arg("extrapolate") = false, py::kw_only(), py::arg("beta") = 2.0, py::arg("mask") = py::none(),
      py::arg("graph") = py::none(), py::arg("simplex") = false, py::arg("robust") = py::none(),
      py::arg("sigma2") = 0.0,
      "Fit W (m x k) and Ht (n x k) in place: the one NMF fit loop. Terms: beta (!= 2: beta-divergence MU), "
      "mask (entry weights of a dense, C-ordered X), graph ((indptr, indices, data, degree, lam): "
      "0.5 lam tr(W^T L W)), simplex (rows of W sum to one), robust (None, 'band' or 'entry' correntropy, "
      "kernel width sigma2, <= 0: from the residuals). Returns a dict: n_iter, converged, losses, sigma2, "
      "weights (the final correntropy weights or None).");
  m.def(
      "nmf_masked_solve_rows",
      [](const py::array& X, const py::array& M, py::array W, const py::array& Ht, double l1, double l2,
         int n_threads) {
        dispatch_float(W, "factors",
                       [&](auto t) { masked_solve_rows<decltype(t)>(X, M, W, Ht, l1, l2, n_threads); });
      },
      py::arg("X"), py::arg("M"), py::arg("W"), py::arg("Ht"), py::arg("l1"), py::arg("l2"), py::arg("n_threads"));
  m.def(
      "nmf_solve_rows",
      [](const py::tuple& spec, py::array W, const py::array& Ht, double l1, double l2, int n_threads) {
        dispatch_float(W, "factors", [&](auto t) { solve_rows<decltype(t)>(spec, W, Ht, l1, l2, n_threads); });
      },
      py::arg("X"), py::arg("W"), py::arg("Ht"), py::arg("l1"), py::arg("l2"), py::arg("n_threads"));
  m.def(
      "nmf_residual",
      [](const py::tuple& spec, const py::array& W, const py::array& Ht, int n_threads) {
        return dispatch_float(W, "factors", [&](auto t) { return residual<decltype(t)>(spec, W, Ht, n_threads); });
      },
      py::arg("X"), py::arg("W"), py::arg("Ht"), py::arg("n_threads"));
  m.def(
      "nmf_sums",
      [](const py::tuple& spec, const py::array& like, int n_threads) {
        return dispatch_float(like, "factors", [&](auto t) { return sums<decltype(t)>(spec, n_threads); });
      },
      py::arg("X"), py::arg("like"), py::arg("n_threads"));
  m.def(
      "randomized_svd",
      [](const py::tuple& spec, const py::array& like, index_t k, index_t oversample, int power_iters,
         std::uint64_t seed, int n_threads) {
        return dispatch_float(like, "factors", [&](auto t) {
          return rsvd<decltype(t)>(spec, k, oversample, power_iters, seed, n_threads);
        });
      },
      py::arg("X"), py::arg("like"), py::arg("k"), py::arg("oversample"), py::arg("power_iters"), py::arg("seed"),
      py::arg("n_threads"));
  m.def(
      "nmf_products",
      [](const py::tuple& spec, const py::array& F, bool transpose, int n_threads) -> py::array {
        return dispatch_float(
            F, "factors", [&](auto t) -> py::array { return products<decltype(t)>(spec, F, transpose, n_threads); });
      },
      py::arg("X"), py::arg("F"), py::arg("transpose"), py::arg("n_threads"),
      "X @ F (F: n x k) or, with transpose, X.T @ F (F: m x k), as a new C-ordered array.");
  m.def(
      "nmf_gram",
      [](const py::array& Y, int n_threads) -> py::array {
        return dispatch_float(Y, "factors", [&](auto t) -> py::array { return gram_of<decltype(t)>(Y, n_threads); });
      },
      py::arg("Y"), py::arg("n_threads"), "Y.T @ Y (k x k).");
  m.def(
      "nmf_update_rows",
      [](py::array Y, const py::array& A, const py::array& G, const std::string& solver, double l1, double l2,
         int sweeps, double early_stop, int n_threads) {
        dispatch_float(Y, "factors", [&](auto t) {
          update_rows<decltype(t)>(Y, A, G, solver, l1, l2, sweeps, early_stop, n_threads);
        });
      },
      py::arg("Y"), py::arg("A"), py::arg("G"), py::arg("solver"), py::arg("l1"), py::arg("l2"), py::arg("sweeps"),
      py::arg("early_stop"), py::arg("n_threads"),
      "One half-step in place: rows of Y minimise 0.5 y'Gy - a'y + l1 sum(y) + 0.5 l2 |y|^2, y >= 0.");
  m.def(
      "nmf_graph_update_rows",
      [](py::array W, const py::array& A, const py::array& G, const py::array& indptr, const py::array& indices,
         const py::array& data, const py::array& degree, const std::string& solver, double l1, double l2, double lam,
         int sweeps, int n_threads) {
        dispatch_float(W, "factors", [&](auto t) {
          graph_update<decltype(t)>(W, A, G, indptr, indices, data, degree, solver, l1, l2, lam, sweeps, n_threads);
        });
      },
      py::arg("W"), py::arg("A"), py::arg("G"), py::arg("indptr"), py::arg("indices"), py::arg("data"),
      py::arg("degree"), py::arg("solver"), py::arg("l1"), py::arg("l2"), py::arg("lam"), py::arg("sweeps"),
      py::arg("n_threads"),
      "Graph-regularized W half-step in place (HALS sweeps or one MU step) with the affinity S in CSR form.");
  m.def(
      "nmf_graph_trace",
      [](const py::array& W, const py::array& indptr, const py::array& indices, const py::array& data,
         const py::array& degree, int n_threads) {
        return dispatch_float(W, "factors", [&](auto t) {
          return graph_trace_of<decltype(t)>(W, indptr, indices, data, degree, n_threads);
        });
      },
      py::arg("W"), py::arg("indptr"), py::arg("indices"), py::arg("data"), py::arg("degree"), py::arg("n_threads"),
      "tr(W^T L W) with L = diag(degree) - S.");
  m.def(
      "nmf_correntropy_entry_weights",
      [](const py::array& X, const py::array& W, const py::array& Ht, double sigma2, py::array M, int n_threads) {
        return dispatch_float(
            W, "factors", [&](auto t) { return entry_weights<decltype(t)>(X, W, Ht, sigma2, M, n_threads); });
      },
      py::arg("X"), py::arg("W"), py::arg("Ht"), py::arg("sigma2"), py::arg("M"), py::arg("n_threads"),
      "M = exp(-(X - W Ht^T)^2 / (2 sigma2)) in place (dense C-ordered X); returns sum sigma2 (1 - M).");
  m.def(
      "nmf_update_rows_scaled",
      [](py::array Y, const py::array& A, const py::array& G, const py::array& scale, const std::string& solver,
         double l1, double l2, int sweeps, int n_threads) {
        dispatch_float(Y, "factors", [&](auto t) {
          scaled_update<decltype(t)>(Y, A, G, scale, solver, l1, l2, sweeps, n_threads);
        });
      },
      py::arg("Y"), py::arg("A"), py::arg("G"), py::arg("scale"), py::arg("solver"), py::arg("l1"), py::arg("l2"),
      py::arg("sweeps"), py::arg("n_threads"),
      "Rows of Y minimise s_r (0.5 y'Gy - a'y) + l1 sum(y) + 0.5 l2 |y|^2, y >= 0, in place.");
  m.def(
      "nmf_beta_divergence",
      [](const py::tuple& spec, const py::object& mask, py::array W, py::array Ht, double beta, int n_threads) {
        return dispatch_float(
            W, "factors", [&](auto t) { return beta_divergence<decltype(t)>(spec, mask, W, Ht, beta, n_threads); });
      },
      py::arg("X"), py::arg("mask"), py::arg("W"), py::arg("Ht"), py::arg("beta"), py::arg("n_threads"),
      "D_beta(X | W Ht^T) (weighted by mask when given).");
}

}  // namespace bindings
}  // namespace rankfold
