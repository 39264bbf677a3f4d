// The compiled module rankfold._core: exception translation and registration
// of each family's bindings (one file per family).
#include "common.hpp"

#include "rankfold/ann/distance.hpp"
#include "rankfold/core/threads.hpp"

#ifndef RANKFOLD_VERSION
#define RANKFOLD_VERSION "0.0.0"
#endif

PYBIND11_MODULE(_core, m) {
  m.doc() = "rankfold's compiled kernels (C++17, Eigen, OpenMP). Use the rankfold package instead.";
  m.attr("__version__") = RANKFOLD_VERSION;

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const rankfold::TypeMismatch& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const rankfold::InvalidArgument& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const rankfold::FormatError& e) {
      PyErr_SetString(PyExc_ValueError, e.what());
    } catch (const rankfold::NonFiniteError& e) {
      PyErr_SetString(PyExc_FloatingPointError, e.what());
    } catch (const rankfold::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what());
    } catch (const std::bad_alloc&) {
      PyErr_SetString(PyExc_MemoryError, "rankfold: out of memory");
    }
  });

  m.def("default_threads", &rankfold::default_threads,
        "Threads used when n_threads is None (OpenMP default: OMP_NUM_THREADS or all cores).");
  m.def("openmp_enabled", [] {
#ifdef _OPENMP
    return true;
#else
    return false;
#endif
  });
  m.def("simd_isa", [] { return std::string(rankfold::simd::isa()); },
        "Instruction set used by the distance kernels.");
  m.def("eigen_version", [] {
    return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
           std::to_string(EIGEN_MINOR_VERSION);
  });

  rankfold::bindings::register_core(m);
  rankfold::bindings::register_ann(m);
  rankfold::bindings::register_completion(m);
  rankfold::bindings::register_nmf(m);
}
