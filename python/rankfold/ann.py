"""Nearest-neighbour search: exact search (``ExactIndex``, ``knn``).

Every rankfold index shares one interface: ``add(X, ids=None)``,
``search(Q, k) -> (ids, distances)``, ``len(index)``, ``save(path)`` and
``load(path)``, and pickling. Distances are ascending:

* ``"l2"``: squared Euclidean distance;
* ``"ip"``: ``1 - <q, x>`` (maximum inner product search; as hnswlib);
* ``"cosine"``: ``1 - cos(q, x)``; vectors are normalised when added.

When fewer than ``k`` vectors are stored the missing places hold id ``-1``
and distance ``inf``.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._validation import check_array, check_choice, check_ids, check_int, check_n_threads, check_path

METRICS = ("l2", "ip", "cosine")

__all__ = ["ExactIndex", "knn", "METRICS"]


class _IndexBase:
    """Shared validation of the index interface."""

    _impl: Any
    n_threads: Optional[int]

    @property
    def dim(self) -> int:
        return int(self._impl.dim)

    @property
    def metric(self) -> str:
        return str(self._impl.metric)

    def __len__(self) -> int:
        return len(self._impl)

    def _vectors(self, X: Any, name: str) -> np.ndarray:
        return check_array(X, name, dtype=np.float32, n_cols=self.dim, min_rows=0)

    def _k(self, k: Any) -> int:
        return check_int(k, "k", low=1, high=2**31 - 1)

    def _threads(self, n_threads: Any) -> int:
        return check_n_threads(self.n_threads if n_threads is None else n_threads)


class ExactIndex(_IndexBase):
    """Exact (brute-force) nearest-neighbour index over float32 vectors.

    Search runs as blocked matrix products plus parallel top-k selection, with
    the GIL released; it is the ground truth for the approximate indexes.

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

    def contains(self, ids: Any) -> np.ndarray:
        """Boolean array: which of ``ids`` are stored."""
        return self._impl.contains(check_ids(ids, "ids", unique=False))

    def get_vectors(self, ids: Any) -> np.ndarray:
        """The stored vectors of ``ids`` (normalised ones for cosine)."""
        return self._impl.get_vectors(check_ids(ids, "ids", unique=False))

    @property
    def ids(self) -> np.ndarray:
        """The stored ids, in insertion order."""
        return self._impl.ids()

    def save(self, path: Any) -> None:
        """Write the index to ``path`` (versioned, checksummed format)."""
        self._impl.save(check_path(path))

    @classmethod
    def load(cls, path: Any, n_threads: Optional[int] = None) -> "ExactIndex":
        """Read an index written by :meth:`save`; corrupt files raise ValueError."""
        index = cls.__new__(cls)
        index.n_threads = None if n_threads is None else check_n_threads(n_threads)
        index._impl = _core.ExactIndex.load(check_path(path), check_n_threads(n_threads))
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
