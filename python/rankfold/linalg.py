"""Dense and sparse linear-algebra building blocks with a public face:
parallel top-k selection and the randomized truncated SVD."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from . import _core
from ._operand import native, operand
from ._validation import check_array, check_int, check_n_threads, check_random_state, check_sparse

__all__ = ["topk", "randomized_svd"]


def topk(scores: Any, k: int, largest: bool = True,
         n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row top-k of a 2-D score matrix, best first, computed in parallel.

    Returns ``(indices, values)`` of shape (rows, k). Ties go to the lower
    column index; NaN scores are never selected; rows with fewer than k
    selectable entries are padded with index -1 and value -inf (largest) or
    +inf (smallest).
    """
    S = check_array(scores, "scores", allow_nan=True, allow_inf=True, min_rows=0, min_cols=0)
    k = check_int(k, "k", low=1, high=2**31 - 1)
    if not isinstance(largest, (bool, np.bool_)):
        raise TypeError(f"largest must be a bool, got {largest!r}")
    return _core.topk(S, k, bool(largest), check_n_threads(n_threads))


def randomized_svd(
    X: Any,
    n_components: int,
    *,
    n_oversamples: int = 10,
    n_iter: Any = "auto",
    random_state: Any = None,
    n_threads: Optional[int] = None,
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Truncated SVD ``X ~ U diag(S) Vt`` by randomized range finding.

    Works on dense arrays and scipy.sparse CSR/CSC matrices (never densified);
    float32 input is computed in float32. ``n_iter="auto"`` uses 7 power
    iterations when ``n_components < 0.1 min(X.shape)``, else 4 (as
    scikit-learn). Each column of ``U`` is signed so that its largest absolute
    entry is positive. Returns ``U`` (m x k), ``S`` (k, descending) and ``Vt``
    (k x n). Input whose products overflow (entries near the top of the dtype's
    range) raises ``FloatingPointError`` instead of returning non-finite factors.
    """
    if sp.issparse(X):
        X = check_sparse(X, "X")
        if X.indices.dtype != X.indptr.dtype:
            X = X.copy()
            X.indices = X.indices.astype(np.int64)
            X.indptr = X.indptr.astype(np.int64)
    else:
        X = check_array(native(X) if isinstance(X, np.ndarray) else X, "X", order=None)
    m, n = X.shape
    k = check_int(n_components, "n_components", low=1, high=min(m, n))
    p = check_int(n_oversamples, "n_oversamples", low=0)
    if isinstance(n_iter, str) and n_iter == "auto":
        q = 7 if k < 0.1 * min(m, n) else 4
    else:
        q = check_int(n_iter, "n_iter", low=0)
    seed = check_random_state(random_state)
    threads = check_n_threads(n_threads)
    like = np.empty((1, 1), dtype=X.dtype)
    U, S, Vt = _core.randomized_svd(operand(X), like, k, p, q, seed, threads)
    if not (np.isfinite(S).all() and np.isfinite(U).all() and np.isfinite(Vt).all()):
        raise FloatingPointError("randomized_svd: the products overflowed (non-finite factors); rescale X, "
                                 "e.g. divide it by its largest entry")
    return U, S, Vt
