"""The only completion module that calls the compiled core: one function per
kernel, over CSR parts (indptr, indices, data) and C-ordered factor arrays.
``rankfold.completion.ALS`` and ``rankfold.dask.ALS`` both run on these."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from .. import _core


def half_sweep(parts: tuple, n_cols: int, other: np.ndarray, other_bias: Optional[np.ndarray], own: np.ndarray,
                own_bias: Optional[np.ndarray], mu: float, gram: Optional[np.ndarray], p: dict, nonnegative: bool,
                n_threads: int) -> None:
    """One half sweep: every row of ``own`` (updated in place, with its bias)
    solved against ``other`` on the CSR ``parts`` with the solver of ``p``
    (``ALS._params``). ``gram``: ``other``'s Gram matrix (implicit; None:
    computed in C++). The one dispatch shared by ALS and rankfold.dask.ALS."""
    implicit = p["feedback"] == "implicit"
    if p["solver"] == "ials++":
        _core.als_subspace_half_sweep(*parts, n_cols, other, own, block_size=p["block_size"], implicit=implicit,
                                      alpha=p["alpha"], mu=mu, other_bias=None if implicit else other_bias,
                                      own_bias=None if implicit else own_bias, regularization=p["reg"],
                                      nonnegative=nonnegative, n_threads=n_threads,
                                      YtY=gram if implicit else None)
        return
    common = dict(solver=p["solver"], cg_steps=p["cg_steps"], regularization=p["reg"], nonnegative=nonnegative,
                  n_threads=n_threads)
    if implicit:
        _core.als_implicit_half_sweep(*parts, n_cols, other, own, alpha=p["alpha"], YtY=gram, **common)
    else:
        _core.als_explicit_half_sweep(*parts, n_cols, other, other_bias, own, own_bias, mu, **common)


def index_dtype(X: sp.csr_matrix) -> np.dtype:
    limit = np.iinfo(np.int32).max
    return np.dtype(np.int32) if max(X.nnz, *X.shape) < limit else np.dtype(np.int64)


def csr_parts(X: sp.csr_matrix, dtype: Optional[np.dtype] = None) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(indptr, indices, data) of CSR X, the indices in `dtype` (default: the narrowest that fits)."""
    dt = dtype or index_dtype(X)
    return (np.ascontiguousarray(X.indptr, dtype=dt), np.ascontiguousarray(X.indices, dtype=dt),
            np.ascontiguousarray(X.data))


def init_factors(dtype: Any, rows: int, k: int, seed: int, scale: float, nonnegative: bool, implicit: bool,
                 n_threads: int) -> np.ndarray:
    """Starting factors (rows x k) of ``dtype`` from the C++ generator."""
    init = _core.als_init_factors_float32 if np.dtype(dtype) == np.float32 else _core.als_init_factors_float64
    return init(rows, k, seed, scale, nonnegative, implicit, n_threads)


def gram(F: np.ndarray, n_threads: int) -> np.ndarray:
    """F^T F (k x k)."""
    return _core.als_gram(F, n_threads)


def implicit_loss(*args: Any) -> float:
    """The implicit-feedback objective (see ``_core.als_implicit_loss``)."""
    return _core.als_implicit_loss(*args)


def explicit_loss(*args: Any) -> Tuple[float, float]:
    """Squared error and the users' penalty (see ``_core.als_explicit_loss``)."""
    return _core.als_explicit_loss(*args)


def topk_dot(*args: Any) -> Tuple[np.ndarray, np.ndarray]:
    """Top-n items by inner product, seen items filtered (see ``_core.als_topk_dot``)."""
    return _core.als_topk_dot(*args)


def implicit_half_sweep(*args: Any, **kw: Any) -> None:
    _core.als_implicit_half_sweep(*args, **kw)


def explicit_half_sweep(*args: Any, **kw: Any) -> None:
    _core.als_explicit_half_sweep(*args, **kw)
