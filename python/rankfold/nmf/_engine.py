"""The only NMF module that calls the compiled core.

Every function takes the data matrix as validated by
``rankfold._operand.check_matrix`` (dense, CSR or CSC) and hands the C++ core
its operand; factors are C-ordered ``W`` (m x k) and ``Ht`` (n x k) of X's
dtype. ``fit`` is the one fit loop (``nmf/fit.hpp``) for every model; the
step kernels below it serve transforms, NMFk's refits and ``rankfold.dask.NMF``
(which runs the same iteration over row blocks).
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._operand import operand


def fit(X: Any, W: np.ndarray, Ht: np.ndarray, solver: str, *args: Any, **kw: Any) -> dict:
    """Fits W and Ht in place (see ``_core.nmf_fit``); returns n_iter, converged, losses (and sigma2, weights)."""
    return _core.nmf_fit(operand(X), W, Ht, solver, *args, **kw)


def sums(X: Any, n_threads: int) -> Tuple[float, float]:
    """(sum of the entries, sum of their squares), accumulated in float64."""
    return _core.nmf_sums(operand(X), np.empty((1, 1), X.dtype), n_threads)


def residual(X: Any, W: np.ndarray, Ht: np.ndarray, n_threads: int) -> float:
    """||X - W Ht^T||_F^2 without forming W Ht^T."""
    return _core.nmf_residual(operand(X), W, Ht, n_threads)


def beta_divergence(X: Any, weights: Optional[np.ndarray], W: np.ndarray, Ht: np.ndarray, beta: float,
                    n_threads: int) -> float:
    """D_beta(X | W Ht^T), over the entries of nonzero weight when weights are given."""
    return _core.nmf_beta_divergence(operand(X), weights, W, Ht, beta, n_threads)


def solve_rows(X: Any, W: np.ndarray, Ht: np.ndarray, l1: float, l2: float, n_threads: int) -> None:
    """W = argmin_{W >= 0} 0.5 ||X - W Ht^T||^2 + l1 |W|_1 + l2/2 |W|^2, exactly, row by row (in place)."""
    _core.nmf_solve_rows(operand(X), W, Ht, l1, l2, n_threads)


def masked_solve_rows(X: np.ndarray, weights: np.ndarray, W: np.ndarray, Ht: np.ndarray, l1: float, l2: float,
                      n_threads: int) -> None:
    """``solve_rows`` over the observed entries only (dense X, weights 0 where missing)."""
    _core.nmf_masked_solve_rows(X, weights, W, Ht, l1, l2, n_threads)


def products(X: Any, F: np.ndarray, transpose: bool, n_threads: int) -> np.ndarray:
    """X F (transpose=False, F: n x k) or X^T F (transpose=True, F: m x k)."""
    return _core.nmf_products(operand(X), F, transpose, n_threads)


def gram(F: np.ndarray, n_threads: int) -> np.ndarray:
    """F^T F (k x k)."""
    return _core.nmf_gram(F, n_threads)


def update_rows(Y: np.ndarray, A: np.ndarray, G: np.ndarray, solver: str, l1: float, l2: float, sweeps: int,
                stop: float, n_threads: int) -> None:
    """One half-step of ``solver`` on the rows of Y (in place) from A = X F and G = F^T F."""
    _core.nmf_update_rows(Y, A, G, solver, l1, l2, sweeps, stop, n_threads)


def randomized_svd(X: Any, k: int, oversamples: int, power_iterations: int, seed: int,
                   n_threads: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truncated SVD (U, S, Vt) of validated X, in X's dtype (the NNDSVD starts)."""
    return _core.randomized_svd(operand(X), np.empty((1, 1), dtype=X.dtype), k, oversamples, power_iterations,
                                seed, n_threads)
