// Bindings of the core utilities: top-k selection and sparse products.
#include "common.hpp"

#include "rankfold/core/sparse.hpp"
#include "rankfold/core/topk.hpp"

namespace rankfold {
namespace bindings {

namespace {

template <typename T>
py::tuple topk(const CArray<T>& scores, int k, bool largest, int n_threads) {
  check_matrix(scores, "scores");
  const index_t rows = scores.shape(0), cols = scores.shape(1);
  require(k >= 1, "k must be >= 1, got ", k);
  auto ids = new_matrix<index_t>(rows, k);
  auto values = new_matrix<T>(rows, k);
  {
    const T* s = scores.data();
    index_t* pi = ids.mutable_data();
    T* pv = values.mutable_data();
    py::gil_scoped_release release;
    topk_rows(s, rows, cols, cols, k, largest, pi, pv, n_threads);
  }
  return py::make_tuple(ids, values);
}

// A * B (transpose=false) or A^T * B (transpose=true) for the compressed-row
// view A given by (indptr, indices, data, shape).
template <typename T, typename I>
py::array_t<T> spmm_binding(const CArray<I>& indptr, const CArray<I>& indices, const CArray<T>& data,
                            index_t rows, index_t cols, const CArray<T>& B, bool transpose, int n_threads) {
  require(indptr.ndim() == 1 && indptr.shape(0) == rows + 1, "indptr must have rows + 1 entries");
  require(indices.ndim() == 1 && data.ndim() == 1 && indices.shape(0) == data.shape(0),
          "indices and data must be 1-D of equal length");
  check_matrix(B, "B");
  require(B.shape(0) == (transpose ? rows : cols), "B must have ", transpose ? rows : cols, " rows, got ",
          B.shape(0));
  CompressedView<T, I> A{rows, cols, indptr.data(), indices.data(), data.data()};
  require(A.nnz() <= indices.shape(0), "indptr[-1] exceeds the number of stored entries");
  const index_t k = B.shape(1);
  auto out = new_matrix<T>(transpose ? cols : rows, k);
  const T* pb = B.data();
  T* po = out.mutable_data();
  {
    py::gil_scoped_release release;
    A.validate();
    if (transpose)
      spmm_transposed(A, pb, k, k, po, k, n_threads);
    else
      spmm(A, pb, k, k, po, k, n_threads);
  }
  return out;
}

}  // namespace

void register_core(py::module_& m) {
  m.def("topk", &topk<float>, py::arg("scores"), py::arg("k"), py::arg("largest"), py::arg("n_threads"));
  m.def("topk", &topk<double>, py::arg("scores"), py::arg("k"), py::arg("largest"), py::arg("n_threads"));
  m.def("spmm", &spmm_binding<float, std::int32_t>);
  m.def("spmm", &spmm_binding<float, std::int64_t>);
  m.def("spmm", &spmm_binding<double, std::int32_t>);
  m.def("spmm", &spmm_binding<double, std::int64_t>);
}

}  // namespace bindings
}  // namespace rankfold
