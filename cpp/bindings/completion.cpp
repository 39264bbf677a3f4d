// Bindings of the matrix-completion family (alternating least squares):
// half sweeps, losses, initialisation and top-k recommendation. Sparse
// matrices arrive as CSR parts (indptr, indices, data) with int32 or int64
// indices; factor matrices are C-ordered and updated in place.
#include <cstdint>
#include <string>

#include "common.hpp"

#include "rankfold/completion/als.hpp"
#include "rankfold/completion/recommend.hpp"
#include "rankfold/completion/subspace.hpp"

namespace rankfold {
namespace bindings {

namespace {

using completion::SolveOptions;

template <typename T, typename I>
CompressedView<T, I> csr_view(const CArray<I>& indptr, const CArray<I>& indices, const CArray<T>& data,
                              index_t cols, const char* name) {
  require(indptr.ndim() == 1 && indptr.shape(0) >= 1, name, ": indptr must be a non-empty 1-D array");
  require(indices.ndim() == 1 && data.ndim() == 1 && indices.shape(0) == data.shape(0), name,
          ": indices and data must be 1-D arrays of equal length");
  CompressedView<T, I> v;
  v.rows = indptr.shape(0) - 1;
  v.cols = cols;
  v.indptr = indptr.data();
  v.indices = indices.data();
  v.data = data.data();
  require(static_cast<index_t>(v.indptr[v.rows]) == indices.shape(0), name, ": indptr[-1] must equal nnz");
  v.validate();
  return v;
}

template <typename T>
T* factors(CArray<T>& A, index_t rows, index_t k, const char* name) {
  check_matrix(A, name, k);
  require(A.shape(0) == rows, name, " must have ", rows, " rows, got ", A.shape(0));
  return A.mutable_data();
}

template <typename T>
const T* factors_const(const CArray<T>& A, index_t rows, index_t k, const char* name) {
  check_matrix(A, name, k);
  require(A.shape(0) == rows, name, " must have ", rows, " rows, got ", A.shape(0));
  return A.data();
}

template <typename T>
T* optional_vector(py::object obj, index_t n, const char* name) {
  if (obj.is_none()) return nullptr;
  auto arr = obj.cast<CArray<T>>();
  require(arr.ndim() == 1 && arr.shape(0) == n, name, " must be a 1-D array of length ", n);
  return arr.mutable_data();
}

// An optional precomputed k x k Gram matrix (None: null, computed in C++);
// `holder` keeps the converted array alive for the call.
template <typename T>
const T* optional_gram(py::object obj, index_t k, const char* name, CArray<T>& holder) {
  if (obj.is_none()) return nullptr;
  holder = obj.cast<CArray<T>>();
  check_matrix(holder, name, k);
  require(holder.shape(0) == k, name, " must be k x k");
  return holder.data();
}

SolveOptions options(const std::string& solver, int cg_steps, double regularization, bool nonnegative,
                     int n_threads) {
  SolveOptions opt;
  opt.solver = completion::solver_from_string(solver);
  opt.cg_steps = cg_steps;
  opt.regularization = regularization;
  opt.nonnegative = nonnegative;
  opt.n_threads = n_threads;
  require(regularization >= 0, "regularization must be >= 0");
  return opt;
}

template <typename T, typename I>
void implicit_half_sweep(const CArray<I>& indptr, const CArray<I>& indices, const CArray<T>& data, index_t cols,
                         const CArray<T>& Y, CArray<T>& X, double alpha, const std::string& solver, int cg_steps,
                         double regularization, bool nonnegative, int n_threads, py::object YtY) {
  const auto R = csr_view(indptr, indices, data, cols, "user_items");
  const index_t k = Y.ndim() == 2 ? Y.shape(1) : 0;
  const T* py = factors_const(Y, cols, k, "Y");
  T* px = factors(X, R.rows, k, "X");
  require(alpha > 0, "alpha must be > 0");
  const SolveOptions opt = options(solver, cg_steps, regularization, nonnegative, n_threads);
  CArray<T> gram_arr;
  const T* pg = optional_gram(YtY, k, "YtY", gram_arr);
  with_interrupts([&](Cancellation& cancel) {
    SolveOptions o = opt;
    o.cancel = &cancel;
    completion::implicit_half_sweep<T, I>(R, py, px, k, alpha, o, pg);
  });
}

template <typename T, typename I>
double implicit_loss(const CArray<I>& indptr, const CArray<I>& indices, const CArray<T>& data, index_t cols,
                     const CArray<T>& X, const CArray<T>& Y, double alpha, double regularization, int n_threads,
                     py::object XtX, py::object YtY) {
  const auto R = csr_view(indptr, indices, data, cols, "user_items");
  const index_t k = Y.ndim() == 2 ? Y.shape(1) : 0;
  const T* py = factors_const(Y, cols, k, "Y");
  const T* px = factors_const(X, R.rows, k, "X");
  CArray<T> gx, gy;
  const T* pgx = optional_gram(XtX, k, "XtX", gx);
  const T* pgy = optional_gram(YtY, k, "YtY", gy);
  py::gil_scoped_release release;
  return completion::implicit_loss<T, I>(R, px, py, k, alpha, regularization, n_threads, pgx, pgy);
}

template <typename T, typename I>
void explicit_half_sweep(const CArray<I>& indptr, const CArray<I>& indices, const CArray<T>& data, index_t cols,
                         const CArray<T>& Y, py::object other_bias, CArray<T>& X, py::object own_bias, double mu,
                         const std::string& solver, int cg_steps, double regularization, bool nonnegative,
                         int n_threads) {
  const auto R = csr_view(indptr, indices, data, cols, "user_items");
  const index_t k = Y.ndim() == 2 ? Y.shape(1) : 0;
  const T* py = factors_const(Y, cols, k, "Y");
  T* px = factors(X, R.rows, k, "X");
  const T* pob = optional_vector<T>(other_bias, cols, "other_bias");
  T* pown = optional_vector<T>(own_bias, R.rows, "own_bias");
  SolveOptions opt = options(solver, cg_steps, regularization, nonnegative, n_threads);
  with_interrupts([&](Cancellation& cancel) {
    opt.cancel = &cancel;
    completion::explicit_half_sweep<T, I>(R, py, pob, px, pown, k, mu, opt);
  });
}

// iALS++ half sweep (subspace descent, completion/subspace.hpp), implicit or
// explicit feedback.
template <typename T, typename I>
void subspace_half_sweep(const CArray<I>& indptr, const CArray<I>& indices, const CArray<T>& data, index_t cols,
                         const CArray<T>& Y, CArray<T>& X, index_t block_size, bool implicit, double alpha,
                         double mu, py::object other_bias, py::object own_bias, double regularization,
                         bool nonnegative, int n_threads, py::object YtY) {
  const auto R = csr_view(indptr, indices, data, cols, "user_items");
  const index_t k = Y.ndim() == 2 ? Y.shape(1) : 0;
  const T* py = factors_const(Y, cols, k, "Y");
  T* px = factors(X, R.rows, k, "X");
  require(block_size >= 1, "block_size must be >= 1, got ", block_size);
  completion::SubspaceProblem<T> prob;
  prob.implicit = implicit;
  CArray<T> gram_arr;
  if (implicit) {
    require(alpha > 0, "alpha must be > 0");
    require(other_bias.is_none() && own_bias.is_none(), "biases are only learnt with explicit feedback");
    prob.alpha = alpha;
    prob.gram = optional_gram(YtY, k, "YtY", gram_arr);
  } else {
    prob.mu = mu;
    prob.other_bias = optional_vector<T>(other_bias, cols, "other_bias");
    prob.own_bias = optional_vector<T>(own_bias, R.rows, "own_bias");
  }
  SolveOptions opt = options("cholesky", 1, regularization, nonnegative, n_threads);
  with_interrupts([&](Cancellation& cancel) {
    opt.cancel = &cancel;
    completion::subspace_half_sweep<T, I>(R, py, px, k, block_size, prob, opt);
  });
}

template <typename T, typename I>
py::tuple explicit_loss(const CArray<I>& indptr, const CArray<I>& indices, const CArray<T>& data, index_t cols,
                        const CArray<T>& X, const CArray<T>& Y, py::object row_bias, py::object col_bias, double mu,
                        double regularization, int n_threads) {
  const auto R = csr_view(indptr, indices, data, cols, "user_items");
  const index_t k = Y.ndim() == 2 ? Y.shape(1) : 0;
  const T* py = factors_const(Y, cols, k, "Y");
  const T* px = factors_const(X, R.rows, k, "X");
  const T* prb = optional_vector<T>(row_bias, R.rows, "row_bias");
  const T* pcb = optional_vector<T>(col_bias, cols, "col_bias");
  std::pair<double, double> out;
  {
    py::gil_scoped_release release;
    out = completion::explicit_loss<T, I>(R, px, py, prb, pcb, k, mu, regularization, n_threads);
  }
  return py::make_tuple(out.first, out.second);
}

template <typename T, typename I>
py::tuple topk_dot(const CArray<T>& Q, const CArray<T>& Y, int n, py::object seen_indptr, py::object seen_indices,
                   py::object seen_rows, py::object candidates, int n_threads) {
  check_matrix(Y, "item_factors");
  const index_t k = Y.shape(1), n_items = Y.shape(0);
  check_matrix(Q, "user_factors", k);
  const index_t nq = Q.shape(0);
  require(n >= 1, "n must be >= 1, got ", n);
  CArray<I> sp_indptr, sp_indices;
  CArray<T> sp_data;
  CArray<index_t> rows_arr, cand_arr;
  CompressedView<T, I> seen;
  const CompressedView<T, I>* pseen = nullptr;
  const index_t* prows = nullptr;
  if (!seen_indptr.is_none()) {
    sp_indptr = seen_indptr.cast<CArray<I>>();
    sp_indices = seen_indices.cast<CArray<I>>();
    require(sp_indptr.ndim() == 1 && sp_indptr.shape(0) >= 1 && sp_indices.ndim() == 1,
            "seen: indptr and indices must be 1-D arrays");
    seen.rows = sp_indptr.shape(0) - 1;
    seen.cols = n_items;
    seen.indptr = sp_indptr.data();
    seen.indices = sp_indices.data();
    require(static_cast<index_t>(seen.indptr[seen.rows]) == sp_indices.shape(0), "seen: indptr[-1] must equal nnz");
    seen.validate();
    for (index_t r = 0; r < seen.rows; ++r)
      for (I p = seen.indptr[r] + 1; p < seen.indptr[r + 1]; ++p)
        require(seen.indices[p - 1] < seen.indices[p], "seen: indices must be sorted and unique within each row");
    pseen = &seen;
    rows_arr = seen_rows.cast<CArray<index_t>>();
    require(rows_arr.ndim() == 1 && rows_arr.shape(0) == nq, "seen_rows must have one entry per query");
    prows = rows_arr.data();
    for (index_t q = 0; q < nq; ++q) require(prows[q] < seen.rows, "seen_rows entry out of range");
  }
  const index_t* pcand = nullptr;
  index_t n_cand = 0;
  if (!candidates.is_none()) {
    cand_arr = candidates.cast<CArray<index_t>>();
    require(cand_arr.ndim() == 1, "items must be a 1-D array");
    pcand = cand_arr.data();
    n_cand = cand_arr.shape(0);
  }
  auto ids = new_matrix<index_t>(nq, n);
  auto scores = new_matrix<T>(nq, n);
  const T* pq = Q.data();
  const T* pyy = Y.data();
  index_t* pi = ids.mutable_data();
  T* ps = scores.mutable_data();
  {
    py::gil_scoped_release release;
    completion::topk_dot<T, I>(pq, nq, pyy, n_items, k, n, pseen, prows, pcand, n_cand, pi, ps, n_threads);
  }
  return py::make_tuple(ids, scores);
}

template <typename T>
py::array_t<T> init_factors(index_t rows, index_t k, std::uint64_t seed, double scale, bool nonnegative,
                            bool uniform, int n_threads) {
  require(rows >= 0 && k >= 1, "invalid factor shape");
  auto out = new_matrix<T>(rows, k);
  T* p = out.mutable_data();
  py::gil_scoped_release release;
  completion::init_factors<T>(p, rows, k, seed, scale, nonnegative, uniform, n_threads);
  return out;
}

template <typename T>
py::array_t<T> gram_matrix(const CArray<T>& A, int n_threads) {
  check_matrix(A, "A");
  const index_t n = A.shape(0), k = A.shape(1);
  require(k >= 1, "A must have at least one column");
  auto out = new_matrix<T>(k, k);
  const T* pa = A.data();
  T* po = out.mutable_data();
  py::gil_scoped_release release;
  const ColMatrix<T> G = completion::gram(pa, n, k, n_threads);
  Eigen::Map<ColMatrix<T>>(po, k, k) = G;  // symmetric: the same in either order
  return out;
}

template <typename T, typename I>
void register_typed(py::module_& m) {
  m.def("als_implicit_half_sweep", &implicit_half_sweep<T, I>, py::arg("indptr"), py::arg("indices"),
        py::arg("data"), py::arg("n_cols"), py::arg("Y"), py::arg("X"), py::arg("alpha"), py::arg("solver"),
        py::arg("cg_steps"), py::arg("regularization"), py::arg("nonnegative"), py::arg("n_threads"),
        py::arg("YtY") = py::none());
  m.def("als_implicit_loss", &implicit_loss<T, I>, py::arg("indptr"), py::arg("indices"), py::arg("data"),
        py::arg("n_cols"), py::arg("X"), py::arg("Y"), py::arg("alpha"), py::arg("regularization"),
        py::arg("n_threads"), py::arg("XtX") = py::none(), py::arg("YtY") = py::none());
  m.def("als_explicit_half_sweep", &explicit_half_sweep<T, I>, py::arg("indptr"), py::arg("indices"),
        py::arg("data"), py::arg("n_cols"), py::arg("Y"), py::arg("other_bias"), py::arg("X"), py::arg("own_bias"),
        py::arg("mu"), py::arg("solver"), py::arg("cg_steps"), py::arg("regularization"), py::arg("nonnegative"),
        py::arg("n_threads"));
  m.def("als_subspace_half_sweep", &subspace_half_sweep<T, I>, py::arg("indptr"), py::arg("indices"),
        py::arg("data"), py::arg("n_cols"), py::arg("Y"), py::arg("X"), py::arg("block_size"), py::arg("implicit"),
        py::arg("alpha"), py::arg("mu"), py::arg("other_bias"), py::arg("own_bias"), py::arg("regularization"),
        py::arg("nonnegative"), py::arg("n_threads"), py::arg("YtY") = py::none());
  m.def("als_explicit_loss", &explicit_loss<T, I>, py::arg("indptr"), py::arg("indices"), py::arg("data"),
        py::arg("n_cols"), py::arg("X"), py::arg("Y"), py::arg("row_bias"), py::arg("col_bias"), py::arg("mu"),
        py::arg("regularization"), py::arg("n_threads"));
}

}  // namespace

void register_completion(py::module_& m) {
  register_typed<float, std::int32_t>(m);
  register_typed<float, std::int64_t>(m);
  register_typed<double, std::int32_t>(m);
  register_typed<double, std::int64_t>(m);
  // seen matrices are passed with int64 indices only (one instantiation per dtype)
  m.def("als_topk_dot", &topk_dot<float, std::int64_t>, py::arg("Q"), py::arg("Y"), py::arg("n"),
        py::arg("seen_indptr"), py::arg("seen_indices"), py::arg("seen_rows"), py::arg("candidates"),
        py::arg("n_threads"));
  m.def("als_topk_dot", &topk_dot<double, std::int64_t>, py::arg("Q"), py::arg("Y"), py::arg("n"),
        py::arg("seen_indptr"), py::arg("seen_indices"), py::arg("seen_rows"), py::arg("candidates"),
        py::arg("n_threads"));
  m.def("als_gram", &gram_matrix<float>, py::arg("A"), py::arg("n_threads"));
  m.def("als_gram", &gram_matrix<double>, py::arg("A"), py::arg("n_threads"));
  m.def("als_init_factors_float32", &init_factors<float>, py::arg("rows"), py::arg("k"), py::arg("seed"),
        py::arg("scale"), py::arg("nonnegative"), py::arg("uniform"), py::arg("n_threads"));
  m.def("als_init_factors_float64", &init_factors<double>, py::arg("rows"), py::arg("k"), py::arg("seed"),
        py::arg("scale"), py::arg("nonnegative"), py::arg("uniform"), py::arg("n_threads"));
}

}  // namespace bindings
}  // namespace rankfold
