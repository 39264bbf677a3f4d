// The compiled module rankfold._core: exception translation and registration
// of each family's bindings (one file per family).
#include "common.hpp"

#include "rankfold/ann/distance.hpp"
#include "rankfold/core/interrupt.hpp"
#include "rankfold/core/simd.hpp"
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
    } catch (const rankfold::OutOfMemory& e) {
      PyErr_SetString(PyExc_MemoryError, e.what());
    } catch (const rankfold::Interrupted& e) {
      PyErr_SetString(PyExc_KeyboardInterrupt, e.what());
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
  // An unknown RANKFOLD_SIMD value fails the import with its reason (ImportError).
  rankfold::simd::check_environment();
  m.def("simd_isa", [] { return std::string(rankfold::simd::isa()); },
        "SIMD level the hand-vectorised kernels run at (generic, avx2, avx512).");
  m.def("simd_dispatch", [] {
    namespace simd = rankfold::simd;
    const simd::Dispatch& d = simd::dispatch();
    py::dict out;
    out["active"] = simd::level_name(d.level);
    out["cpu"] = simd::level_name(d.cpu);
    out["compiled"] = simd::level_name(simd::compiled_level());
    out["requested"] = d.requested.empty() ? py::object(py::none()) : py::object(py::str(d.requested));
    return out;
  }, "The SIMD dispatch: active level, the CPU's best, the build's baseline, the RANKFOLD_SIMD value.");
  m.def("simd_resolve", [](py::object value, const std::string& cpu) {
    namespace simd = rankfold::simd;
    simd::Level cpu_level = simd::Level::Generic;
    if (cpu == "avx2") cpu_level = simd::Level::AVX2;
    else if (cpu == "avx512") cpu_level = simd::Level::AVX512;
    else rankfold::require(cpu == "generic", "cpu must be generic, avx2 or avx512, got '", cpu, "'");
    const std::string v = value.is_none() ? std::string() : value.cast<std::string>();
    const simd::Dispatch d = simd::resolve_dispatch(value.is_none() ? nullptr : v.c_str(), cpu_level);
    if (!d.error.empty()) throw rankfold::InvalidArgument(d.error);
    return std::string(simd::level_name(d.level));
  }, py::arg("value"), py::arg("cpu"),
     "The level RANKFOLD_SIMD=value would select on a CPU whose best level is cpu (for tests).");
  m.def("eigen_version", [] {
    return std::to_string(EIGEN_WORLD_VERSION) + "." + std::to_string(EIGEN_MAJOR_VERSION) + "." +
           std::to_string(EIGEN_MINOR_VERSION);
  });

  rankfold::bindings::register_core(m);
  rankfold::bindings::register_ann(m);
  rankfold::bindings::register_completion(m);
  rankfold::bindings::register_nmf(m);
}
