"""Quality measures for rating prediction and top-k recommendation.

Ranking metrics take ``recommended``, an integer array (n_users, >= k) of
item ids best first (as returned by ``ALS.recommend``; ids < 0 are empty
places), and ``test``, a scipy.sparse matrix whose row j holds the relevant
items of the user of row j of ``recommended`` (any stored nonzero is
relevant). Users without relevant items are left out of the average.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import scipy.sparse as sp

from ._validation import check_array, check_int

__all__ = ["rmse", "precision_at_k", "recall_at_k", "ndcg_at_k", "map_at_k", "ranking_hits"]


def rmse(y_true: Any, y_pred: Any) -> float:
    """Root mean squared error between two 1-D arrays of equal length."""
    a = check_array(y_true, "y_true", ndim=1)
    b = check_array(y_pred, "y_pred", ndim=1)
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {a.shape[0]} and {b.shape[0]}")
    d = a.astype(np.float64) - b.astype(np.float64)
    return float(np.sqrt(np.mean(d * d)))


def ranking_hits(recommended: Any, test: Any, k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Boolean hits (n_users, k) of the top-k lists against ``test`` and the
    number of relevant items per user."""
    k = check_int(k, "k", low=1)
    rec = np.asarray(recommended)
    if rec.dtype.kind not in "iu":
        raise TypeError(f"recommended must hold integer item ids, got dtype {rec.dtype}")
    if rec.ndim != 2:
        raise ValueError(f"recommended must be a 2-D array (n_users, n), got shape {rec.shape}")
    if rec.shape[1] < k:
        raise ValueError(f"recommended has {rec.shape[1]} columns, fewer than k = {k}")
    if not sp.issparse(test):
        raise TypeError(f"test must be a scipy.sparse matrix (users x items), got {type(test).__name__}")
    T = sp.csr_matrix(test)
    T.eliminate_zeros()
    if T.shape[0] != rec.shape[0]:
        raise ValueError(f"test must have one row per row of recommended ({rec.shape[0]}), got {T.shape[0]}")
    rec = rec[:, :k].astype(np.int64)
    valid = (rec >= 0) & (rec < T.shape[1])
    rows = np.repeat(np.arange(rec.shape[0]), k).reshape(rec.shape)
    hits = np.zeros(rec.shape, dtype=bool)
    if valid.any():
        vals = np.asarray(T[rows[valid], rec[valid]]).ravel()
        hits[valid] = vals != 0
    return hits, np.diff(T.indptr)


def precision_at_k(recommended: Any, test: Any, k: int = 10) -> float:
    """Mean over users of (relevant items among the top k) / k."""
    hits, n_rel = ranking_hits(recommended, test, k)
    m = n_rel > 0
    return float(hits[m].sum(1).mean() / k) if m.any() else 0.0


def recall_at_k(recommended: Any, test: Any, k: int = 10) -> float:
    """Mean over users of (relevant items among the top k) / (number of relevant items)."""
    hits, n_rel = ranking_hits(recommended, test, k)
    m = n_rel > 0
    return float((hits[m].sum(1) / n_rel[m]).mean()) if m.any() else 0.0


def ndcg_at_k(recommended: Any, test: Any, k: int = 10) -> float:
    """Mean normalised discounted cumulative gain at k (binary relevance)."""
    hits, n_rel = ranking_hits(recommended, test, k)
    m = n_rel > 0
    if not m.any():
        return 0.0
    disc = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = hits[m] @ disc
    ideal = np.cumsum(disc)[np.minimum(n_rel[m], k) - 1]
    return float((dcg / ideal).mean())


def map_at_k(recommended: Any, test: Any, k: int = 10) -> float:
    """Mean average precision at k: mean over users of
    sum over hit ranks j of precision@j, divided by min(k, relevant items)."""
    hits, n_rel = ranking_hits(recommended, test, k)
    m = n_rel > 0
    if not m.any():
        return 0.0
    h = hits[m]
    prec = np.cumsum(h, axis=1) / np.arange(1, k + 1)
    ap = (prec * h).sum(1) / np.minimum(n_rel[m], k)
    return float(ap.mean())
