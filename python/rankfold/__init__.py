"""rankfold: fast low-rank learning and retrieval with a C++ core.

Nonnegative matrix factorization, matrix completion by alternating
minimization, and nearest-neighbour search, with scikit-learn-style APIs.
"""

from __future__ import annotations

import importlib
import os

from . import _core
from ._core import __version__

# Public names, imported on first use (PEP 562): ``import rankfold`` loads the
# compiled core only, so that a search service or a Dask worker does not pay
# for scikit-learn and the NMF family it never uses.
_LAZY = {
    "ExactIndex": "ann", "HNSWIndex": "ann", "knn": "ann",
    "ALS": "completion",
    "NMF": "nmf", "NMFk": "nmf", "SeNMF": "nmf",
    "randomized_svd": "linalg", "topk": "linalg",
}
_SUBMODULES = ("ann", "completion", "nmf", "linalg", "text", "metrics", "model_selection", "datasets", "dask")

__all__ = ["__version__", "ExactIndex", "HNSWIndex", "knn", "ALS", "NMF", "NMFk", "SeNMF", "randomized_svd", "topk",
           "get_include", "get_cmake_dir", "show_config"]


def __getattr__(name: str):
    if name in _LAZY:
        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        value = getattr(module, name)
        globals()[name] = value  # later lookups skip this function
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'rankfold' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(_SUBMODULES))


def get_include() -> str:
    """Folder holding rankfold's C++ headers (``#include <rankfold/...>``)."""
    return os.path.join(os.path.dirname(__file__), "include")


def get_cmake_dir() -> str:
    """Folder holding ``rankfoldConfig.cmake`` for ``find_package(rankfold)``."""
    return os.path.join(os.path.dirname(__file__), "share", "cmake", "rankfold")


def show_config() -> dict:
    """Build facts: version, OpenMP, SIMD dispatch, Eigen, threads.

    ``simd`` is the level the hand-vectorised kernels (distances, exact search)
    run at: ``simd_cpu``, the best this CPU supports, unless the environment
    variable ``RANKFOLD_SIMD=generic|avx2|avx512`` asks for a lower one (it is
    read once, when rankfold is imported; a request above the CPU's level is
    capped, an unknown value makes the import fail). ``simd_compiled`` is the
    build's baseline (``-march=native`` gives this CPU's level; the portable
    build, ``RANKFOLD_NATIVE=OFF``, gives ``generic`` and still runs every level
    through target attributes). ``simd_requested`` is RANKFOLD_SIMD's value.
    """
    simd = _core.simd_dispatch()
    return {
        "version": __version__,
        "openmp": bool(_core.openmp_enabled()),
        "simd": simd["active"],
        "simd_cpu": simd["cpu"],
        "simd_compiled": simd["compiled"],
        "simd_requested": simd["requested"],
        "eigen": _core.eigen_version(),
        "default_threads": int(_core.default_threads()),
    }
