// Helpers shared by the binding files: array checks and conversions.
// Python (rankfold/_validation.py) has already validated and converted the
// inputs; these checks are the last line of defence against misuse of _core.
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <utility>

#include "rankfold/core/error.hpp"
#include "rankfold/core/interrupt.hpp"
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

// dtype equality by value (dtype objects are not singletons: '<f8' vs 'float64').
template <typename T>
bool same_dtype(const py::array& a) {
  return a.dtype().normalized_num() == py::dtype::of<T>().normalized_num() &&
         a.dtype().itemsize() == static_cast<py::ssize_t>(sizeof(T)) && a.dtype().byteorder() != '>';
}

// The one float/double dispatch: picks the scalar type from `like` once and
// calls the generic `fn(T{})`, so that each kernel's arguments are written
// once, in the lambda: dispatch_float(W, "factors", [&](auto t) {
// using T = decltype(t); ... }).
template <typename Fn>
decltype(auto) dispatch_float(const py::array& like, const char* name, Fn&& fn) {
  if (same_dtype<float>(like)) return std::forward<Fn>(fn)(float{});
  require<TypeMismatch>(same_dtype<double>(like), name, " must be float32 or float64");
  return std::forward<Fn>(fn)(double{});
}

template <typename T>
inline py::array_t<T> new_matrix(index_t rows, index_t cols) {
  return py::array_t<T>({static_cast<py::ssize_t>(rows), static_cast<py::ssize_t>(cols)});
}

// Ctrl-C for a long call: `with_interrupts([&](Cancellation& c) { ... })` releases
// the GIL, runs the computation with a token whose poll takes the GIL briefly (at
// most every 50 ms) and calls PyErr_CheckSignals. When that raised (a
// KeyboardInterrupt from Python's handler, or whatever a handler raised), the
// computation sees the token stopped, leaves its data consistent and throws
// Interrupted; the Python exception the poll caught is then rethrown unchanged.
class SignalPoll {
 public:
  SignalPoll() : token_([this] { return pending(); }) {}
  Cancellation& token() { return token_; }
  // With the GIL held: the caught Python exception, or a KeyboardInterrupt.
  [[noreturn]] void rethrow() {
    if (error_) throw *error_;
    PyErr_SetNone(PyExc_KeyboardInterrupt);
    throw py::error_already_set();
  }

 private:
  bool pending() {
    py::gil_scoped_acquire acquire;
    if (PyErr_CheckSignals() == 0) return false;
    error_ = std::make_shared<py::error_already_set>();
    return true;
  }
  std::shared_ptr<py::error_already_set> error_;
  Cancellation token_;
};

template <typename F>
decltype(auto) with_interrupts(F&& compute) {
  SignalPoll poll;
  try {
    py::gil_scoped_release release;
    return std::forward<F>(compute)(poll.token());
  } catch (const Interrupted&) {
    poll.rethrow();
  }
}

void register_core(py::module_& m);
void register_ann(py::module_& m);
void register_completion(py::module_& m);
void register_nmf(py::module_& m);

}  // namespace bindings
}  // namespace rankfold
