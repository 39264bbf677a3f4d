"""``ShardedIndex``: one rankfold index per row block of a ``dask.array`` of
vectors, kept on the workers; searches fan out and the client merges the
per-shard top-k lists."""

from __future__ import annotations

import errno
import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

import dask.array as da
from distributed import Client, get_client

from .. import ann as _ann
from .._validation import (
    IndexFileNotFoundError,
    check_array,
    check_choice,
    check_ids,
    check_int,
    check_n_threads,
    check_path,
)
from ..linalg import topk
from ._cluster import worker_threads


_KINDS = ("exact", "hnsw")


def _make_index(kind: str, dim: int, metric: str, params: Dict[str, Any], n_threads: Optional[int]):
    if kind == "exact":
        return _ann.ExactIndex(dim, metric=metric, n_threads=n_threads)
    cls = getattr(_ann, "HNSWIndex", None)
    if cls is None:  # pragma: no cover - HNSW ships with the ann module
        raise ValueError("index='hnsw' needs rankfold.HNSWIndex")
    return cls(dim, metric=metric, n_threads=n_threads, **params)


def _build_shard(block: np.ndarray, ids: np.ndarray, kind: str, dim: int, metric: str,
                 params: Dict[str, Any], n_threads: Optional[int]):
    index = _make_index(kind, dim, metric, params, worker_threads(n_threads))
    index.add(np.asarray(block), ids=ids)
    return index


def _search_shard(index, Q: np.ndarray, k: int, search_params: Dict[str, Any],
                  n_threads: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    return index.search(Q, k, n_threads=worker_threads(n_threads), **search_params)


def _save_shard(index, path: str) -> str:
    index.save(path)
    return path


def _load_shard(path: str, kind: str, n_threads: Optional[int]):
    cls = _ann.ExactIndex if kind == "exact" else _ann.HNSWIndex
    return cls.load(path, n_threads=n_threads)


def merge_topk(ids: List[np.ndarray], dist: List[np.ndarray], k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top-k lists (each (nq, k), ascending) into one (nq, k)."""
    all_ids = np.concatenate(ids, axis=1)
    all_dist = np.concatenate(dist, axis=1)
    cols, best = topk(all_dist, k, largest=False)
    out_ids = np.take_along_axis(all_ids, np.maximum(cols, 0), axis=1)
    missing = cols < 0
    out_ids[missing] = -1
    best = best.astype(all_dist.dtype, copy=False)
    best[missing] = np.inf
    return out_ids, best


class ShardedIndex:
    """One index per row block of a Dask array of vectors, kept on the workers.

    Parameters
    ----------
    dim : int
        Vector dimension.
    metric : {"l2", "ip", "cosine"}
        As for every rankfold index.
    index : {"hnsw", "exact"}
        The index built for each shard (``HNSWIndex`` or ``ExactIndex``).
    client : distributed.Client or None
        The cluster to use; None takes the current client (``get_client()``).
    n_threads : int or None
        Threads per shard task; None uses each worker's own thread count.
    **index_params
        Passed to each shard's index (e.g. ``M``, ``ef_construction`` for HNSW).
    """

    def __init__(self, dim: int, metric: str = "l2", index: str = "hnsw", client: Optional[Client] = None,
                 n_threads: Optional[int] = None, **index_params: Any) -> None:
        self.dim = check_int(dim, "dim", low=1, high=1 << 24)
        self.metric = check_choice(metric, "metric", _ann.METRICS)
        self.kind = check_choice(index, "index", _KINDS)
        self.n_threads = None if n_threads is None else check_n_threads(n_threads)
        self.index_params = dict(index_params)
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client, got {type(client).__name__}")
        self._client = client
        self._shards: List[Any] = []  # futures of the per-shard index objects
        self._sizes: List[int] = []
        self._next_id = 0
        if self.kind == "hnsw":  # fail early on bad parameters, on the client
            _make_index(self.kind, self.dim, self.metric, self.index_params, 1)

    @property
    def client(self) -> Client:
        if self._client is None:
            try:
                self._client = get_client()
            except ValueError:
                raise ValueError("no Dask client: pass client= or create a distributed.Client first") from None
        return self._client

    @property
    def n_shards(self) -> int:
        return len(self._shards)

    def __len__(self) -> int:
        return int(sum(self._sizes))

    def __repr__(self) -> str:
        return (f"ShardedIndex(dim={self.dim}, metric={self.metric!r}, index={self.kind!r}, "
                f"shards={self.n_shards}, size={len(self)})")

    def add(self, X: Any, ids: Any = None) -> "ShardedIndex":
        """Add a ``dask.array`` of vectors chunked by rows: one new shard per row block.

        ``ids`` (int64 labels, numpy or dask, one per row) default to consecutive
        numbers continuing from earlier adds. Ids must be unique across shards;
        the caller is trusted for that across separate ``add`` calls.
        """
        if not isinstance(X, da.Array):
            raise TypeError("X must be a dask.array.Array chunked by rows; for in-memory data use "
                            "rankfold.HNSWIndex or rankfold.ExactIndex")
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise ValueError(f"X must have shape (n, {self.dim}), got {X.shape}")
        if len(X.chunks[1]) != 1:
            raise ValueError("X must be chunked along rows only (one chunk spanning all columns); "
                             "use X.rechunk({1: -1})")
        if any(np.isnan(c) for c in X.chunks[0]):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
        n = int(X.shape[0])
        if ids is None:
            id_array = np.arange(self._next_id, self._next_id + n, dtype=np.int64)
        else:
            id_array = check_ids(ids.compute() if isinstance(ids, da.Array) else ids, "ids", n=n)
        client = self.client
        blocks = X.to_delayed().ravel()
        offsets = np.concatenate([[0], np.cumsum(X.chunks[0])]).astype(np.int64)
        new_shards = []
        load = self._worker_load(client)
        for i, block in enumerate(blocks):
            if X.chunks[0][i] == 0:
                continue
            # Balance the vectors held per worker (an index cannot spill to disk):
            # each shard prefers the worker holding the fewest rows so far.
            where: Dict[str, Any] = {}
            if load:
                target = min(load, key=lambda w: load[w])
                load[target] += int(X.chunks[0][i])
                where = {"workers": [target], "allow_other_workers": True}
            block_future = client.compute(block, **where)
            new_shards.append(client.submit(
                _build_shard, block_future, id_array[offsets[i]:offsets[i + 1]], self.kind, self.dim,
                self.metric, self.index_params, self.n_threads, pure=False, **where))
            self._sizes.append(int(X.chunks[0][i]))
        # Surface build errors (bad values in a block) here, not at search time.
        errors = [f.exception() for f in new_shards]
        for err in errors:
            if err is not None:
                del self._sizes[len(self._sizes) - len(new_shards):]
                raise err
        self._shards.extend(new_shards)
        if id_array.size:
            self._next_id = max(self._next_id, int(id_array.max()) + 1)
        return self

    def search(self, Q: Any, k: int = 10, n_threads: Optional[int] = None,
               **search_params: Any) -> Tuple[np.ndarray, np.ndarray]:
        """The k nearest vectors of each row of Q over all shards.

        Q is an in-memory array (it is broadcast to the workers); extra keyword
        arguments (``ef`` for HNSW) go to every shard's search. Returns
        ``(ids, distances)`` of shape (nq, k), padded with -1 / inf.
        """
        k = check_int(k, "k", low=1, high=2**31 - 1)
        Q = check_array(Q, "Q", dtype=np.float32, n_cols=self.dim, min_rows=0)
        if not self._shards:
            return np.full((Q.shape[0], k), -1, np.int64), np.full((Q.shape[0], k), np.inf, np.float32)
        threads = self.n_threads if n_threads is None else check_n_threads(n_threads)
        client = self.client
        q_future = client.scatter(Q, broadcast=True, hash=False)
        futures = [client.submit(_search_shard, shard, q_future, k, search_params, threads, pure=False, **where)
                   for shard, where in zip(self._shards, self._placements())]
        results = client.gather(futures)
        return merge_topk([r[0] for r in results], [r[1] for r in results], k)

    def _worker_load(self, client: Client) -> Dict[str, int]:
        """Rows of the existing shards held by each live worker."""
        load = {w: 0 for w in client.scheduler_info().get("workers", {})}
        if self._shards and load:
            who = client.who_has(self._shards)
            for shard, size in zip(self._shards, self._sizes):
                for w in who.get(shard.key, ())[:1]:
                    if w in load:
                        load[w] += size
        return load

    def _placements(self) -> List[Dict[str, Any]]:
        """Where each shard's task should run: on the worker holding the shard
        (moving an index between workers would copy all its vectors over the
        network). One scheduler query for all shards."""
        who = self.client.who_has(self._shards)
        return [{"workers": list(who[s.key]), "allow_other_workers": True} if who.get(s.key) else {}
                for s in self._shards]

    def __reduce__(self):
        raise TypeError("a ShardedIndex holds its shards on a Dask cluster and cannot be pickled; "
                        "use save(folder) and ShardedIndex.load(folder, client)")

    def save(self, folder: Any) -> None:
        """Each worker writes its shards into ``folder`` (a path every worker and the
        client can reach, e.g. a shared file system), plus a small manifest."""
        folder = check_path(folder, "folder")
        os.makedirs(folder, exist_ok=True)
        paths = [os.path.join(folder, f"shard-{i:05d}.rfi") for i in range(self.n_shards)]
        self.client.gather([self.client.submit(_save_shard, s, p, pure=False, **where)
                            for s, p, where in zip(self._shards, paths, self._placements())])
        manifest = {"dim": self.dim, "metric": self.metric, "index": self.kind, "sizes": self._sizes,
                    "next_id": self._next_id}
        with open(os.path.join(folder, "manifest.txt"), "w") as f:
            for key, value in manifest.items():
                f.write(f"{key}={','.join(map(str, value)) if isinstance(value, list) else value}\n")

    @classmethod
    def load(cls, folder: Any, client: Optional[Client] = None, n_threads: Optional[int] = None) -> "ShardedIndex":
        """Load a folder written by :meth:`save`, one shard per task on the workers."""
        folder = check_path(folder, "folder")
        if not os.path.isdir(folder):
            raise IndexFileNotFoundError(errno.ENOENT, "cannot open index folder: no such directory", folder)
        try:
            with open(os.path.join(folder, "manifest.txt")) as f:
                fields = dict(line.rstrip("\n").split("=", 1) for line in f if "=" in line)
            sizes = [int(s) for s in fields["sizes"].split(",") if s]
            self = cls(int(fields["dim"]), metric=fields["metric"], index=fields["index"], client=client,
                       n_threads=n_threads)
            next_id = int(fields["next_id"])
        except (OSError, KeyError, ValueError) as exc:
            raise ValueError(f"folder {folder!r} does not hold a saved ShardedIndex: {exc}") from None
        paths = [os.path.join(folder, f"shard-{i:05d}.rfi") for i in range(len(sizes))]
        shards = [self.client.submit(_load_shard, p, self.kind, n_threads, pure=False) for p in paths]
        for f in shards:
            err = f.exception()
            if err is not None:
                raise err
        self._shards, self._sizes, self._next_id = shards, sizes, next_id
        return self
