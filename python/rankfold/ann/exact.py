"""Exact (brute-force) search: ``ExactIndex`` and the index-free ``knn``."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._validation import (
    check_array,
    check_choice,
    check_ids,
    check_index_file,
    check_int,
    check_n_threads,
)
from ._index import METRICS, _IndexBase

__all__ = ["ExactIndex", "knn"]


class ExactIndex(_IndexBase):
    """Exact (brute-force) nearest-neighbour index over float32 vectors.

    Search runs as blocked matrix products plus parallel top-k selection, with
    the GIL released; it is the ground truth for the approximate indexes.

    Thread safety: ``search``, ``get_vectors``, ``contains``, ``ids``,
    ``len``, ``save`` and pickling may run in any number of threads at once;
    ``add`` locks the index exclusively (it waits for running readers and they
    wait for it; two adds run one after the other). A search never sees half
    of an add, a snapshot is the index between two adds.

    Parameters
    ----------
    dim : int
        Vector dimension.
    metric : {"l2", "ip", "cosine"}
        Distance, see the module documentation.
    n_threads : int or None
        Threads for add and search; None uses all cores (OMP_NUM_THREADS).
    """

    def __init__(self, dim: int, metric: str = "l2", n_threads: Optional[int] = None) -> None:
        dim = check_int(dim, "dim", low=1, high=1 << 24)
        metric = check_choice(metric, "metric", METRICS)
        self.n_threads = None if n_threads is None else check_n_threads(n_threads)
        self._impl = _core.ExactIndex(dim, metric)

    def __repr__(self) -> str:
        return f"ExactIndex(dim={self.dim}, metric={self.metric!r}, size={len(self)})"

    def add(self, X: Any, ids: Any = None) -> "ExactIndex":
        """Add the rows of X (n, dim); ``ids`` are int64 labels (default consecutive)."""
        X = self._vectors(X, "X")
        if ids is not None:
            ids = check_ids(ids, "ids", n=X.shape[0])
            if ids.size and self.contains(ids).any():
                raise ValueError("ids contains ids that are already in the index")
        self._impl.add(X, ids, self._threads(None))
        return self

    def search(self, Q: Any, k: int = 10, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The k nearest stored vectors of each row of Q.

        Returns ``(ids, distances)``: int64 and float32 arrays of shape (nq, k),
        nearest first, padded with -1 / inf when fewer than k are stored.
        """
        k = self._k(k)
        Q = self._vectors(Q, "Q")
        return self._impl.search(Q, k, self._threads(n_threads))

    @classmethod
    def load(cls, path: Any, n_threads: Optional[int] = None) -> "ExactIndex":
        """Read an index written by :meth:`save`; corrupt files raise ValueError,
        a missing file FileNotFoundError (also a ValueError), a directory IsADirectoryError."""
        index = cls.__new__(cls)
        index.n_threads = None if n_threads is None else check_n_threads(n_threads)
        index._impl = _core.ExactIndex.load(check_index_file(path), check_n_threads(n_threads))
        return index

    def __getstate__(self) -> dict:
        return {"n_threads": self.n_threads, "data": self._impl.to_bytes()}

    def __setstate__(self, state: dict) -> None:
        self.n_threads = state["n_threads"]
        self._impl = _core.ExactIndex.from_bytes(state["data"], check_n_threads(self.n_threads))


def knn(X: Any, Q: Any, k: int = 10, metric: str = "l2",
        n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Exact k nearest rows of X for each row of Q, without building an index.

    float32 and float64 inputs keep their precision (both are cast to the wider
    one if they differ). Returns ``(ids, distances)`` of shape (nq, k); ids are
    row numbers of X, padded with -1 / inf when X has fewer than k rows.
    """
    metric = check_choice(metric, "metric", METRICS)
    k = check_int(k, "k", low=1, high=2**31 - 1)
    X = check_array(X, "X", min_rows=0)
    q_dtype = Q.dtype if hasattr(Q, "dtype") else np.asarray(Q).dtype
    dtype = np.dtype(np.float64) if np.result_type(X.dtype, q_dtype) == np.float64 else X.dtype
    X = X.astype(dtype, copy=False)
    Q = check_array(Q, "Q", dtype=dtype, n_cols=X.shape[1], min_rows=0)
    return _core.knn(X, Q, k, metric, check_n_threads(n_threads))
