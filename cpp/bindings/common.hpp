// Helpers shared by the binding files: array checks and conversions.
// Python (rankfold/_validation.py) has already validated and converted the
// inputs; these checks are the last line of defence against misuse of _core.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <string>

#include "rankfold/core/error.hpp"
#include "rankfold/core/types.hpp"

namespace py = pybind11;

namespace rankfold {
namespace bindings {

template <typename T>
using CArray = py::array_t<T, py::array::c_style>;

// A C-contiguous 2-D array's shape, checked.
template <typename T>
inline void check_matrix(const CArray<T>& a, const char* name, index_t cols = -1) {
  require(a.ndim() == 2, name, " must be a 2-D array, got ", a.ndim(), " dimensions");
  require(cols < 0 || a.shape(1) == cols, name, " must have ", cols, " columns, got ", a.shape(1));
}

template <typename T>
inline py::array_t<T> new_matrix(index_t rows, index_t cols) {
  return py::array_t<T>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
}

void register_core(py::module_& m);
void register_ann(py::module_& m);
void register_completion(py::module_& m);
void register_nmf(py::module_& m);

}  // namespace bindings
}  // namespace rankfold
