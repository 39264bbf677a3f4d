"""rankfold: fast low-rank learning and retrieval with a C++ core.

Nonnegative matrix factorization, matrix completion by alternating
minimization, and nearest-neighbour search, with scikit-learn-style APIs.
"""

from __future__ import annotations

import os

from . import _core
from ._core import __version__
from .ann import ExactIndex, HNSWIndex, knn
from .completion import ALS
from .nmf import NMF, randomized_svd
from .nmfk import NMFk
from .senmf import SeNMF
from .utils import topk

__all__ = ["__version__", "ExactIndex", "HNSWIndex", "knn", "ALS", "NMF", "NMFk", "SeNMF", "randomized_svd", "topk",
           "get_include", "get_cmake_dir", "show_config"]


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
