"""The HNSW graph index for approximate search: ``HNSWIndex``."""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import numpy as np

from .. import _core
from .._validation import (
    check_choice,
    check_ids,
    check_index_file,
    check_int,
    check_n_threads,
    check_random_state,
)
from ._index import METRICS, _IndexBase

__all__ = ["HNSWIndex"]


class HNSWIndex(_IndexBase):
    """Approximate nearest-neighbour index: a hierarchical navigable small-world
    graph (HNSW, Malkov & Yashunin 2018) over float32 vectors.

    Parameters
    ----------
    dim : int
        Vector dimension.
    metric : {"l2", "ip", "cosine"}
        Distance, see the module documentation. ``"ip"`` serves maximum inner
        product search (e.g. recommendations from ``ALS`` item factors).
    M : int, default 16
        Neighbours per node on the upper levels (2 M on level 0). Larger M:
        better recall at high ef, more memory, slower build.
    ef_construction : int, default 200
        Size of the candidate list while inserting. Larger: better graph,
        slower build.
    capacity : int or None
        Slots to reserve up front; the index grows as needed anyway.
    random_state : int, numpy.random.Generator or None
        Seeds the level draws. With ``n_threads=1`` the same seed gives the
        same graph; parallel insertion depends on thread timing (as in every
        parallel HNSW build), search results on a given graph never do.
    n_threads : int or None
        Default threads for add and search; None uses all cores.

    Notes
    -----
    * ``search`` pads with id -1 and distance inf when fewer than ``k`` live
      vectors are admissible (k larger than ``len(index)`` is allowed).
    * ``ef`` (default 50, settable) is the search-time candidate list size;
      the effective value is ``max(ef, k)``. Passing ``ef < k`` to ``search``
      explicitly raises ValueError.
    * ``filter`` restricts results to an allowed set: an array of allowed ids
      (ids not in the index are ignored) or a boolean mask over ids (length at
      least ``next_id``, the largest id ever added + 1). The graph search walks
      through disallowed nodes until it has ``ef`` allowed results. When the
      allowed live items are fewer than ``sqrt(30 * ef * len(index))`` (for
      example about 17,000 of 200,000 items at ef=50, i.e. 8.7 % selectivity),
      the search instead scans them exactly, so recall is 1 there.
    * ``remove(ids)`` unlinks the items from the graph: every neighbour list
      that pointed to a removed item is rebuilt from the surviving neighbours
      and those of the removed item, so recall after many rounds of removals
      and additions stays close to that of a fresh build. Later ``add`` calls
      reuse the freed slots; ``compact()`` drops them and returns their memory.
      Each ``remove`` call scans all neighbour lists once: remove in batches
      rather than one id per call on large indexes.
    * Thread safety: one reader-writer lock per index, held for the whole
      call. ``search`` (with or without ``filter``: the filter is resolved
      inside the same locked call), ``get_vectors``, ``contains``, ``ids``,
      ``len``, ``stats``, ``save`` and pickling may run in any number of
      threads at once; ``add``, ``remove``, ``compact`` and ``reserve`` (``capacity``)
      lock the index exclusively: they wait for running readers, readers wait for
      them, and two writers run one after the other. A filtered search returns
      only ids of its filter that were live during the call; a pickle or a
      saved file is the index between two writes.
    * Ctrl-C during ``add`` stops between insertion batches (a few tens of
      milliseconds each): the vectors of the finished batches stay in the
      index, in order, and it takes searches and adds as usual.
    """

    def __init__(self, dim: int, metric: str = "l2", M: int = 16, ef_construction: int = 200,
                 capacity: Optional[int] = None, random_state: Any = None,
                 n_threads: Optional[int] = None) -> None:
        dim = check_int(dim, "dim", low=1, high=1 << 24)
        metric = check_choice(metric, "metric", METRICS)
        M = check_int(M, "M", low=2, high=1024)
        ef_construction = check_int(ef_construction, "ef_construction", low=1, high=1 << 20)
        if capacity is not None:
            capacity = check_int(capacity, "capacity", low=0, high=2**31 - 1)
        seed = check_random_state(random_state)
        self.n_threads = None if n_threads is None else check_n_threads(n_threads)
        self._impl = _core.HnswIndex(dim, metric, M, ef_construction, seed)
        if capacity:
            self._impl.reserve(capacity)

    def __repr__(self) -> str:
        return (f"HNSWIndex(dim={self.dim}, metric={self.metric!r}, M={self.M}, "
                f"ef_construction={self.ef_construction}, size={len(self)})")

    @property
    def M(self) -> int:
        return int(self._impl.M)

    @property
    def ef_construction(self) -> int:
        return int(self._impl.ef_construction)

    @property
    def ef(self) -> int:
        """Default search-time candidate list size (effective value max(ef, k))."""
        return int(self._impl.ef)

    @ef.setter
    def ef(self, value: int) -> None:
        self._impl.ef = check_int(value, "ef", low=1, high=1 << 30)

    def exact_scan_threshold(self, ef: Optional[int] = None) -> float:
        """Filtered searches (and searches of an index with removed items)
        scan the admissible items exactly when there are fewer than this many:
        ``sqrt(30 * ef * len(index))`` for the given ef (default: ``self.ef``)."""
        ef = self.ef if ef is None else check_int(ef, "ef", low=1, high=1 << 30)
        return float(self._impl.exact_filter_threshold(ef))

    @property
    def next_id(self) -> int:
        """The largest id ever added + 1 (the default id of the next vector)."""
        return int(self._impl.next_label)

    @property
    def capacity(self) -> int:
        return int(self._impl.capacity)

    def add(self, X: Any, ids: Any = None, n_threads: Optional[int] = None) -> "HNSWIndex":
        """Insert the rows of X (n, dim), in parallel; ``ids`` are int64 labels
        (default consecutive from ``next_id``). Slots of removed items are reused."""
        X = self._vectors(X, "X")
        if ids is not None:
            ids = check_ids(ids, "ids", n=X.shape[0])
            if ids.size and self.contains(ids).any():
                raise ValueError("ids contains ids that are already in the index")
        self._impl.add(X, ids, self._threads(n_threads))
        return self

    def search(self, Q: Any, k: int = 10, ef: Optional[int] = None, filter: Any = None,
               n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The (approximately) k nearest live vectors of each row of Q.

        Returns ``(ids, distances)``: int64 and float32 arrays of shape (nq, k),
        nearest first, padded with -1 / inf. ``ef`` overrides the index's
        ``ef`` for this call (must be >= k); ``filter`` restricts the results
        (array of allowed ids, or a boolean mask over ids; see the class notes).
        Queries run in parallel with the GIL released.
        """
        k = self._k(k)
        if ef is None:
            ef_value = 0
        else:
            ef_value = check_int(ef, "ef", low=1, high=1 << 30)
            if ef_value < k:
                raise ValueError(f"ef must be >= k ({k}), got {ef_value}")
        Q = self._vectors(Q, "Q")
        filter_ids = filter_mask = None
        if filter is not None:
            filter_ids, filter_mask = self._filter(filter)
        return self._impl.search(Q, k, ef_value, filter_ids, filter_mask, self._threads(n_threads))

    def _filter(self, filter: Any) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
        if isinstance(filter, (str, bytes)) or not hasattr(filter, "__len__"):
            raise TypeError(
                f"filter must be an array of allowed ids or a boolean mask over ids, got {type(filter).__name__}")
        arr = np.asarray(filter)
        if arr.ndim != 1:
            raise ValueError(f"filter must be 1-D, got shape {arr.shape}")
        if arr.dtype == np.bool_:
            if arr.shape[0] < self.next_id:
                raise ValueError(
                    f"filter: a boolean mask must have one entry per id, i.e. length >= {self.next_id} "
                    f"(largest id + 1), got {arr.shape[0]}")
            return None, np.ascontiguousarray(arr.view(np.uint8))
        if arr.dtype.kind not in "iu" and not (arr.size == 0 and arr.dtype.kind == "f"):
            raise TypeError(
                f"filter must be an array of allowed ids (integers) or a boolean mask, got dtype {arr.dtype}")
        return check_ids(arr, "filter", unique=False), None

    def remove(self, ids: Any, n_threads: Optional[int] = None) -> "HNSWIndex":
        """Remove items: they are never returned again, the neighbour lists that
        pointed to them are repaired (in parallel, GIL released), and their slots
        are reused by later adds. Unknown or repeated ids raise ValueError, and
        Ctrl-C raises KeyboardInterrupt; nothing is removed then."""
        self._impl.remove(check_ids(ids, "ids"), self._threads(n_threads))
        return self

    def compact(self) -> "HNSWIndex":
        """Drop the slots of removed items: the live items are renumbered
        internally (ids, vectors and search results unchanged) into storage
        sized for them, and the memory of the removed ones is released (see
        ``stats()["memory_bytes"]`` before and after). Takes the index's lock
        exclusively, like ``add`` and ``remove``."""
        self._impl.compact()
        return self

    def stats(self) -> dict:
        """Graph facts: size, removed (freed slots, reused by ``add`` or dropped
        by ``compact``), slots, capacity, max_level, nodes_per_level,
        mean_degree0 (mean level-0 degree), memory_bytes and bytes_per_vector."""
        return dict(self._impl.stats())

    @classmethod
    def load(cls, path: Any, mmap: bool = False, n_threads: Optional[int] = None) -> "HNSWIndex":
        """Read an index written by :meth:`save`. A truncated, corrupted or
        foreign file raises ValueError; a missing file FileNotFoundError (which
        is also a ValueError), a directory IsADirectoryError.

        ``mmap=True`` reads the file through a memory map instead of a
        temporary in-memory copy (lower peak memory for large files); the index
        still holds its own copy of the graph.
        """
        if not isinstance(mmap, (bool, np.bool_)):
            raise TypeError(f"mmap must be a bool, got {type(mmap).__name__}")
        path = check_index_file(path)
        index = cls.__new__(cls)
        index.n_threads = None if n_threads is None else check_n_threads(n_threads)
        if mmap:
            import mmap as _mmap

            try:
                with open(path, "rb") as f:
                    size = os.fstat(f.fileno()).st_size
                    if size == 0:
                        raise ValueError(f"'{path}' is not a rankfold index file (bad magic or too short)")
                    with _mmap.mmap(f.fileno(), 0, access=_mmap.ACCESS_READ) as mapped:
                        view = memoryview(mapped)
                        try:
                            index._impl = _core.HnswIndex.from_buffer(view, f"'{path}'")
                        finally:
                            view.release()
            except FileNotFoundError:
                raise ValueError(f"cannot open index file '{path}'") from None
        else:
            index._impl = _core.HnswIndex.load(path)
        return index

    def __getstate__(self) -> dict:
        return {"n_threads": self.n_threads, "data": self._impl.to_bytes()}

    def __setstate__(self, state: dict) -> None:
        self.n_threads = state["n_threads"]
        self._impl = _core.HnswIndex.from_buffer(state["data"], "the pickled index")
