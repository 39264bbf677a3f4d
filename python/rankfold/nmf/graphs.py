"""Sample affinity graphs for the graph-regularized NMF (``NMF(graph_reg=...)``):
a k-NN graph over the rows of X and the 8-neighbour grid of an image's pixels."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from .._validation import check_array, check_choice, check_int
from ..ann import knn

GRAPH_WEIGHTS = ("heat", "binary")

__all__ = ["knn_graph", "grid_graph"]


def knn_graph(X: Any, n_neighbors: int = 10, weights: str = "heat", n_threads: Optional[int] = None) -> sp.csr_matrix:
    """Symmetric k-NN affinity over the rows of X (exact search, squared L2).

    Heat-kernel weights ``exp(-d^2 / t)`` with ``t`` the mean squared distance
    over all k-NN pairs, or 1 ("binary"); i ~ j when either is among the
    other's neighbours (the larger weight kept).
    """
    X = check_array(X, "X", order=None)
    n_neighbors = check_int(n_neighbors, "n_neighbors", low=1)
    weights = check_choice(weights, "weights", GRAPH_WEIGHTS)
    m = X.shape[0]
    nn = min(n_neighbors, m - 1)
    if nn < 1:
        raise ValueError("graph='knn' needs at least 2 samples")
    ids, dist = knn(X, X, k=nn + 1, metric="l2", n_threads=n_threads)
    rows = np.repeat(np.arange(m), nn + 1)
    ids = ids.ravel()
    dist = np.maximum(dist.ravel().astype(np.float64), 0.0)
    keep = (ids != rows) & (ids >= 0)
    rows, ids, dist = rows[keep], ids[keep], dist[keep]
    # At most nn neighbours per row: the self match normally comes first, but
    # duplicates can push it out of the list.
    order = np.lexsort((dist, rows))
    rows, ids, dist = rows[order], ids[order], dist[order]
    first = np.searchsorted(rows, rows)
    rank = np.arange(rows.size) - first
    keep = rank < nn
    rows, ids, dist = rows[keep], ids[keep], dist[keep]
    if weights == "heat":
        t = float(dist.mean()) if dist.size else 1.0
        vals = np.exp(-dist / t) if t > 0 else np.ones_like(dist)
    else:
        vals = np.ones_like(dist)
    S = sp.csr_matrix((vals, (rows, ids)), shape=(m, m))
    return S.maximum(S.T).tocsr()


def grid_graph(X: np.ndarray, shape: Tuple[int, int], order: str = "F") -> sp.csr_matrix:
    """8-neighbour pixel-grid affinity for an image whose pixels are the rows of X.

    ``shape = (lines, columns)``; ``order`` says how pixels were flattened
    ("F": column-major, MATLAB's; "C": row-major). Edge weights are heat
    kernels of the spectral distance, ``exp(-|x_i - x_j|^2 / t)`` with t the
    mean over the edges: spatial neighbours of similar spectra count most
    (the spatial graph of structured sparse unmixing).
    """
    lines, cols = shape
    if lines * cols != X.shape[0]:
        raise ValueError(f"shape {shape} does not match the {X.shape[0]} rows of X")
    idx = np.arange(lines * cols).reshape(lines, cols, order=order)
    src, dst = [], []
    for di, dj in ((0, 1), (1, 0), (1, 1), (1, -1)):
        a = idx[0:lines - di, max(0, -dj):cols - max(0, dj)]
        b = idx[di:lines, max(0, dj):cols - max(0, -dj) if dj < 0 else cols][:, :a.shape[1]]
        src.append(a.ravel())
        dst.append(b.ravel())
    r, c = np.concatenate(src), np.concatenate(dst)
    Xd = np.asarray(X, dtype=np.float64)
    d2 = np.einsum("ij,ij->i", Xd[r] - Xd[c], Xd[r] - Xd[c])
    t = float(d2.mean()) if d2.size and d2.mean() > 0 else 1.0
    S = sp.csr_matrix((np.exp(-d2 / t), (r, c)), shape=(X.shape[0], X.shape[0]))
    return (S + S.T).tocsr()
