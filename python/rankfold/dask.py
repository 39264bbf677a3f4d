"""Scale-out on Dask: indexes spread over the workers of a Dask cluster.

Install with ``pip install "rankfold[dask]"``. Everything runs on
``dask.distributed`` (a ``LocalCluster`` on one machine, or any cluster the
same code connects to); the C++ kernels run on the workers with the GIL
released, and only small arrays (queries, top-k lists) cross the network.

``ShardedIndex`` keeps one index per row block of a ``dask.array`` of vectors,
built and kept on the workers (the vectors are never gathered on the client);
``search`` sends the queries to every shard, each returns its top-k with
global ids, and the client merges them.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional, Tuple

import numpy as np

import time

import scipy.sparse as sp

from . import _core
from . import ann as _ann
from . import completion as _completion
from ._validation import check_array, check_choice, check_ids, check_int, check_n_threads, check_path

try:  # the dask extra
    import dask.array as da
    from distributed import Client, get_client, get_worker
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('rankfold.dask needs Dask: pip install "rankfold[dask]"') from exc

__all__ = ["ShardedIndex", "ALS"]

_KINDS = ("exact", "hnsw")


def _worker_threads(n_threads: Optional[int]) -> int:
    """Threads for a task on a worker: the caller's choice, else the worker's own thread count."""
    if n_threads is not None:
        return n_threads
    try:
        worker = get_worker()
        return int(getattr(worker.state, "nthreads", None) or worker.nthreads)
    except (ValueError, AttributeError):
        return check_n_threads(None)


def _make_index(kind: str, dim: int, metric: str, params: Dict[str, Any], n_threads: Optional[int]):
    if kind == "exact":
        return _ann.ExactIndex(dim, metric=metric, n_threads=n_threads)
    cls = getattr(_ann, "HNSWIndex", None)
    if cls is None:  # pragma: no cover - HNSW ships with the ann module
        raise ValueError("index='hnsw' needs rankfold.HNSWIndex")
    return cls(dim, metric=metric, n_threads=n_threads, **params)


def _build_shard(block: np.ndarray, ids: np.ndarray, kind: str, dim: int, metric: str,
                 params: Dict[str, Any], n_threads: Optional[int]):
    index = _make_index(kind, dim, metric, params, _worker_threads(n_threads))
    index.add(np.asarray(block), ids=ids)
    return index


def _search_shard(index, Q: np.ndarray, k: int, search_params: Dict[str, Any],
                  n_threads: Optional[int]) -> Tuple[np.ndarray, np.ndarray]:
    return index.search(Q, k, n_threads=_worker_threads(n_threads), **search_params)


def _save_shard(index, path: str) -> str:
    index.save(path)
    return path


def _load_shard(path: str, kind: str, n_threads: Optional[int]):
    cls = _ann.ExactIndex if kind == "exact" else _ann.HNSWIndex
    return cls.load(path, n_threads=n_threads)


def merge_topk(ids: List[np.ndarray], dist: List[np.ndarray], k: int) -> Tuple[np.ndarray, np.ndarray]:
    """Merge per-shard top-k lists (each (nq, k), ascending) into one (nq, k)."""
    from .utils import topk

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
        for i, block in enumerate(blocks):
            if X.chunks[0][i] == 0:
                continue
            block_future = client.compute(block)
            new_shards.append(client.submit(
                _build_shard, block_future, id_array[offsets[i]:offsets[i + 1]], self.kind, self.dim,
                self.metric, self.index_params, self.n_threads, pure=False))
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

    def _placements(self) -> List[Dict[str, Any]]:
        """Where each shard's task should run: on the worker holding the shard
        (moving an index between workers would copy all its vectors over the
        network). One scheduler query for all shards."""
        who = self.client.who_has(self._shards)
        return [{"workers": list(who[s.key]), "allow_other_workers": True} if who.get(s.key) else {}
                for s in self._shards]

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


# ---------------------------------------------------------------------------- ALS
def _block_sweep(parts: tuple, n_cols: int, other: np.ndarray, other_bias: Optional[np.ndarray],
                 own: np.ndarray, own_bias: Optional[np.ndarray], mu: float, gram: Optional[np.ndarray],
                 implicit: bool, alpha: float, common: Dict[str, Any], n_threads: Optional[int]):
    """One half sweep over a block of rows: the same C++ row solver as
    rankfold.ALS, on copies (inputs held by Dask must not change in place)."""
    own = own.copy()
    own_bias = None if own_bias is None else own_bias.copy()
    kw = dict(common, n_threads=_worker_threads(n_threads))
    if implicit:
        _core.als_implicit_half_sweep(*parts, n_cols, other, own, alpha=alpha, YtY=gram, **kw)
    else:
        _core.als_explicit_half_sweep(*parts, n_cols, other, other_bias, own, own_bias, mu, **kw)
    return own, own_bias


def _row_blocks(n: int, n_blocks: int) -> np.ndarray:
    return np.linspace(0, n, n_blocks + 1).round().astype(np.int64)


class ALS(_completion.ALS):
    """rankfold.ALS with its half sweeps run on the workers of a Dask cluster.

    The ratings matrix is cut once into ``n_blocks`` blocks of users and,
    transposed, ``n_blocks`` blocks of items (as Spark MLlib's in/out blocks);
    the blocks stay on the workers. Each iteration solves the user blocks
    against the broadcast item factors (and the reduced ``Y^T Y``), then the
    item blocks against the broadcast user factors: per iteration only the
    factors, O((users + items) k), cross the network. The row solves are those
    of ``rankfold.ALS``, so with the same parameters and seed the factors equal
    the single-machine ones. The client keeps the factors (and computes the
    loss) after every iteration; all prediction methods are rankfold.ALS's.

    Parameters are those of :class:`rankfold.ALS`, plus ``client`` (None: the
    current client) and ``n_blocks`` (None: two per worker). ``n_threads``
    None means each worker's own thread count.
    """

    _PARAM_NAMES = _completion.ALS._PARAM_NAMES + ("client", "n_blocks")

    def __init__(self, factors: int = 64, regularization: Optional[float] = None, alpha: float = 1.0,
                 iterations: int = 15, feedback: str = "implicit", solver: str = "cg", cg_steps: int = 3,
                 biases: bool = False, nonnegative: bool = False, random_state: Any = None,
                 n_threads: Optional[int] = None, dtype: Any = np.float32, verbose: bool = False,
                 callback: Any = None, client: Optional[Client] = None, n_blocks: Optional[int] = None) -> None:
        super().__init__(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
                         feedback=feedback, solver=solver, cg_steps=cg_steps, biases=biases,
                         nonnegative=nonnegative, random_state=random_state, n_threads=n_threads, dtype=dtype,
                         verbose=verbose, callback=callback)
        self.client = client
        self.n_blocks = n_blocks

    def _fit_csr(self, X: sp.csr_matrix, p: dict) -> "_completion.ALS":
        if self.client is not None and not isinstance(self.client, Client):
            raise TypeError(f"client must be a distributed.Client, got {type(self.client).__name__}")
        try:
            client = self.client or get_client()
        except ValueError:
            raise ValueError("no Dask client: pass client= or create a distributed.Client first") from None
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        n_blocks = 2 * n_workers if self.n_blocks is None else check_int(self.n_blocks, "n_blocks", low=1)
        worker_threads = None if self.n_threads is None else p["n_threads"]
        n_users, n_items = X.shape
        idt = _completion._index_dtype(X)
        XT = X.T.tocsr()
        XT.sort_indices()
        user_cuts = _row_blocks(n_users, min(n_blocks, n_users))
        item_cuts = _row_blocks(n_items, min(n_blocks, n_items))
        # In/out blocks, built once and kept on the workers.
        user_parts = [client.scatter(_completion._csr_parts(X[a:b], idt), hash=False)
                      for a, b in zip(user_cuts[:-1], user_cuts[1:])]
        item_parts = [client.scatter(_completion._csr_parts(XT[a:b], idt), hash=False)
                      for a, b in zip(item_cuts[:-1], item_cuts[1:])]
        R = _completion._csr_parts(X, idt)
        Xf, Yf = self._initial_factors(n_users, n_items, p)
        nt = p["n_threads"]
        implicit = p["feedback"] == "implicit"
        common = dict(solver=p["solver"], cg_steps=p["cg_steps"], regularization=p["reg"],
                      nonnegative=bool(self.nonnegative))
        mu, ub, ib = self._start(X, p)
        n_per_item = np.diff(XT.indptr).astype(np.float64)

        def half(parts, cuts, n_cols, other, other_bias, own, own_bias, gram):
            other_f = client.scatter(other, broadcast=True, hash=False)
            ob_f = None if other_bias is None else client.scatter(other_bias, broadcast=True, hash=False)
            futures = [client.submit(_block_sweep, part, n_cols, other_f, ob_f, own[a:b],
                                     None if own_bias is None else own_bias[a:b], mu, gram, implicit,
                                     p["alpha"], common, worker_threads, pure=False)
                       for part, a, b in zip(parts, cuts[:-1], cuts[1:])]
            results = client.gather(futures)
            new_own = np.concatenate([r[0] for r in results])
            new_bias = None if own_bias is None else np.concatenate([r[1] for r in results])
            return new_own, new_bias

        YtY = _core.als_gram(Yf, nt) if implicit else None
        for it in range(p["iterations"]):
            t0 = time.perf_counter()
            Xf, ub = half(user_parts, user_cuts, n_items, Yf, ib, Xf, ub, YtY)
            XtX = _core.als_gram(Xf, nt) if implicit else None
            Yf, ib = half(item_parts, item_cuts, n_users, Xf, ub, Yf, ib, XtX)
            YtY = _core.als_gram(Yf, nt) if implicit else None
            loss = self._loss(R, X.shape, X.nnz, Xf, Yf, ub, ib, mu, p, XtX, YtY, n_per_item)
            if self.verbose:
                print(f"dask ALS sweep {it + 1}: {time.perf_counter() - t0:.3f} s on {len(user_parts)} + "
                      f"{len(item_parts)} blocks")
            if self._record(it, loss, Xf, Yf, p):
                break
        return self._finish(X, Xf, Yf, mu, ub, ib, p)
