"""The interface every rankfold index shares (see the package documentation)."""

from __future__ import annotations

from typing import Any, Optional

import numpy as np

from .._validation import check_array, check_ids, check_int, check_n_threads, check_path

METRICS = ("l2", "ip", "cosine")


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

    def contains(self, ids: Any) -> np.ndarray:
        """Boolean array: which of ``ids`` are live in the index."""
        return self._impl.contains(check_ids(ids, "ids", unique=False))

    def get_vectors(self, ids: Any) -> np.ndarray:
        """The stored vectors of ``ids`` (normalised ones for cosine); unknown ids raise ValueError."""
        return self._impl.get_vectors(check_ids(ids, "ids", unique=False))

    @property
    def ids(self) -> np.ndarray:
        """The live ids (ExactIndex: insertion order; HNSWIndex: slot order)."""
        return self._impl.ids()

    def save(self, path: Any) -> None:
        """Write the index to ``path`` (versioned little-endian format with a
        checksum, shared by rankfold's indexes)."""
        self._impl.save(check_path(path))
