"""Scale-out on Dask: indexes spread over the workers of a Dask cluster.

Install with ``pip install "rankfold[dask]"``. Everything runs on
``dask.distributed`` (a ``LocalCluster`` on one machine, or any cluster the
same code connects to); the C++ kernels run on the workers with the GIL
released, and only small arrays (queries, top-k lists) cross the network.

``ShardedIndex`` keeps one index per row block of a ``dask.array`` of vectors,
built and kept on the workers (the vectors are never gathered on the client);
``search`` sends the queries to every shard, each returns its top-k with
global ids, and the client merges them.

``NMF`` fits X (a ``dask.array`` chunked by rows, dense or scipy.sparse
chunks, in memory or on disk) with W's row blocks kept next to X's on the
workers; per iteration only k x n and k x k sums cross the network.

``ALS`` runs rankfold.ALS's half sweeps block by block on the workers, from a
scipy.sparse matrix or from a ``dask.array`` of ratings chunked by users.
"""

from __future__ import annotations

import os
import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from . import _core
from . import ann as _ann
from . import completion as _completion
from . import nmf as _nmf
from ._validation import (
    callback_stops,
    check_array,
    check_choice,
    check_ids,
    check_int,
    check_n_threads,
    check_path,
    check_random_state,
)

try:  # the dask extra
    import dask
    import dask.array as da
    from distributed import Client, Future, get_client, get_worker
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('rankfold.dask needs Dask: pip install "rankfold[dask]"') from exc

__all__ = ["ShardedIndex", "ALS", "NMF"]

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
                 p: Dict[str, Any], nonnegative: bool, n_threads: Optional[int]):
    """One half sweep over a block of rows: the same C++ row solver as
    rankfold.ALS, on copies (inputs held by Dask must not change in place)."""
    own = own.copy()
    own_bias = None if own_bias is None else own_bias.copy()
    _completion._half_sweep(parts, n_cols, other, other_bias, own, own_bias, mu, gram, p, nonnegative,
                            _worker_threads(n_threads))
    return own, own_bias


def _placements(client: Client, anchors: List[Any]) -> List[Dict[str, Any]]:
    """Run each block's task where its data (a future; None: anywhere) lives:
    the scheduler might otherwise move a block to where a small broadcast
    array is. Loose (allow_other_workers), so a lost worker's tasks still run
    elsewhere. One scheduler query for all blocks."""
    keyed = [a for a in anchors if isinstance(a, Future)]
    who = client.who_has(keyed) if keyed else {}
    out = []
    for a in anchors:
        holders = list(who.get(a.key, ())) if isinstance(a, Future) else []
        out.append({"workers": holders[:1], "allow_other_workers": True} if holders else {})
    return out


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

    ``fit`` also takes a ``dask.array`` of ratings (users x items) chunked by
    users, with scipy.sparse or dense chunks: its chunks are the user blocks,
    checked and converted on their workers, and the item blocks are built from
    them by a shuffle on the workers, so the matrix never sits on the client.

    Parameters are those of :class:`rankfold.ALS`, plus ``client`` (None: the
    current client) and ``n_blocks`` (None: two per worker; the number of item
    blocks, and of user blocks for a scipy.sparse input). ``n_threads`` None
    means each worker's own thread count.
    """

    _PARAM_NAMES = _completion.ALS._PARAM_NAMES + ("client", "n_blocks")

    def __init__(self, factors: int = 64, regularization: Optional[float] = None, alpha: float = 1.0,
                 iterations: int = 15, feedback: str = "implicit", solver: str = "cg", cg_steps: int = 3,
                 biases: bool = False, nonnegative: bool = False, random_state: Any = None,
                 n_threads: Optional[int] = None, dtype: Any = np.float32, verbose: bool = False,
                 callback: Any = None, block_size: int = 64, client: Optional[Client] = None,
                 n_blocks: Optional[int] = None) -> None:
        super().__init__(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations,
                         feedback=feedback, solver=solver, cg_steps=cg_steps, biases=biases,
                         nonnegative=nonnegative, random_state=random_state, n_threads=n_threads, dtype=dtype,
                         verbose=verbose, callback=callback, block_size=block_size)
        self.client = client
        self.n_blocks = n_blocks

    def _client(self) -> Client:
        if self.client is not None and not isinstance(self.client, Client):
            raise TypeError(f"client must be a distributed.Client, got {type(self.client).__name__}")
        try:
            return self.client or get_client()
        except ValueError:
            raise ValueError("no Dask client: pass client= or create a distributed.Client first") from None

    def _n_blocks(self, client: Client) -> int:
        n_workers = max(1, len(client.scheduler_info()["workers"]))
        return 2 * n_workers if self.n_blocks is None else check_int(self.n_blocks, "n_blocks", low=1)

    def fit(self, user_items: Any) -> "ALS":
        """Learn the factors from a scipy.sparse matrix (cut into blocks on the
        client and scattered) or from a ``dask.array`` of users x items chunked
        by users with scipy.sparse (or dense) chunks, whose blocks are built on
        the workers: the full matrix never sits on the client."""
        if isinstance(user_items, da.Array):
            return self._fit_dask_array(user_items)
        if not sp.issparse(user_items):
            raise TypeError(f"user_items must be a scipy.sparse matrix or a dask.array chunked by users (rows), got "
                            f"{type(user_items).__name__}; for a dense array use scipy.sparse.csr_matrix(array)")
        return super().fit(user_items)

    def _fit_csr(self, X: sp.csr_matrix, p: dict) -> "_completion.ALS":
        client = self._client()
        n_blocks = self._n_blocks(client)
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
        mu, ub, ib = self._start(X, p)
        n_per_item = np.diff(XT.indptr).astype(np.float64)
        return self._iterate(client, X, user_parts, user_cuts, item_parts, item_cuts, X.nnz, mu, ub, ib,
                             n_per_item, p)

    def _fit_dask_array(self, X: Any) -> "ALS":
        p = self._params()
        if X.ndim != 2:
            raise ValueError(f"user_items must be 2-D, got shape {X.shape}")
        if len(X.chunks[1]) != 1:
            raise ValueError(f"user_items must be chunked by users only (one chunk spanning all {X.shape[1]} items), "
                             f"got item chunks {X.chunks[1]}; use user_items.rechunk({{1: -1}})")
        if any(np.isnan(c) for c in X.chunks[0]) or any(np.isnan(s) for s in X.shape):
            raise ValueError("user_items has unknown chunk sizes; call user_items.compute_chunk_sizes() first")
        if 0 in X.shape:
            raise ValueError(f"user_items has shape {X.shape}; it must be at least 1 x 1")
        client = self._client()
        n_blocks = self._n_blocks(client)
        n_users, n_items = (int(v) for v in X.shape)
        implicit = p["feedback"] == "implicit"
        rows = [int(c) for c in X.chunks[0]]
        user_cuts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        prepared = [dask.delayed(_als_prepare_block, pure=True)(b, i, int(user_cuts[i]), rows[i], n_items, p["dtype"],
                                                                implicit)
                    for i, b in enumerate(X.to_delayed().ravel().tolist())]
        blocks = client.compute(prepared)
        stats = client.gather([client.submit(_als_block_stats, f, pure=False) for f in blocks])
        nnz = int(sum(s[0] for s in stats))
        if nnz == 0:
            raise ValueError("user_items has no observed (nonzero) entries; nothing to learn from")
        if implicit:
            with np.errstate(over="ignore"):
                top = np.asarray(p["alpha"], dtype=p["dtype"]) * max(s[2] for s in stats) + 1
            if not np.isfinite(top):
                raise ValueError(f"alpha * user_items overflows {p['dtype']}: the largest confidence is not finite; "
                                 "scale the values down or use dtype=float64")
        n_per_item = np.sum([s[3] for s in stats], axis=0).astype(np.float64)
        limit = np.iinfo(np.int32).max
        idt = np.dtype(np.int32) if max(nnz, n_users, n_items) < limit else np.dtype(np.int64)
        item_cuts = _row_blocks(n_items, min(n_blocks, n_items))
        # The out blocks by a shuffle: each user block cut by item ranges and
        # transposed on its worker, the pieces of each item range stacked on one.
        pieces = [client.submit(_als_split_items, f, item_cuts, pure=False) for f in blocks]
        item_parts = [client.submit(_als_stack_items, [client.submit(_pick, pc, j, pure=False) for pc in pieces], idt,
                                    pure=False) for j in range(len(item_cuts) - 1)]
        user_parts = [client.submit(_completion._csr_parts, f, idt, pure=False) for f in blocks]
        for f in item_parts + user_parts:  # surface errors here
            err = f.exception()
            if err is not None:
                raise err
        del pieces, blocks
        self.loss_history_ = []
        self.n_iter_ = 0
        if implicit or not self.biases:
            mu, ub, ib = 0.0, None, None
        else:
            mu = float(sum(s[1] for s in stats)) / nnz
            ub, ib = np.zeros(n_users, dtype=p["dtype"]), np.zeros(n_items, dtype=p["dtype"])
        return self._iterate(client, X, user_parts, user_cuts, item_parts, item_cuts, nnz, mu, ub, ib, n_per_item, p)

    def _iterate(self, client: Client, X: Any, user_parts: List[Any], user_cuts: np.ndarray, item_parts: List[Any],
                 item_cuts: np.ndarray, nnz: int, mu: float, ub: Optional[np.ndarray], ib: Optional[np.ndarray],
                 n_per_item: np.ndarray, p: dict) -> "ALS":
        """Half sweeps on the workers; the loss from per-user-block partial sums."""
        n_users, n_items = int(user_cuts[-1]), int(item_cuts[-1])
        worker_threads = None if self.n_threads is None else p["n_threads"]
        Xf, Yf = self._initial_factors(n_users, n_items, p)
        nt = p["n_threads"]
        implicit = p["feedback"] == "implicit"
        sweep = {name: p[name] for name in ("feedback", "solver", "cg_steps", "block_size", "reg", "alpha")}
        nonneg = bool(self.nonnegative)

        def send(F, bias):
            return (client.scatter(F, broadcast=True, hash=False),
                    None if bias is None else client.scatter(bias, broadcast=True, hash=False))

        def half(parts, cuts, n_cols, other, own, own_bias, gram):
            other_f, ob_f = other
            futures = [client.submit(_block_sweep, part, n_cols, other_f, ob_f, own[a:b],
                                     None if own_bias is None else own_bias[a:b], mu, gram, sweep, nonneg,
                                     worker_threads, pure=False, **w)
                       for part, a, b, w in zip(parts, cuts[:-1], cuts[1:], _placements(client, parts))]
            results = client.gather(futures)
            new_own = np.concatenate([r[0] for r in results])
            new_bias = None if own_bias is None else np.concatenate([r[1] for r in results])
            return new_own, new_bias, futures

        YtY = _core.als_gram(Yf, nt) if implicit else None
        Y_sent = send(Yf, ib)
        for it in range(p["iterations"]):
            t0 = time.perf_counter()
            Xf, ub, user_results = half(user_parts, user_cuts, n_items, Y_sent, Xf, ub, YtY)
            XtX = _core.als_gram(Xf, nt) if implicit else None
            Yf, ib, _ = half(item_parts, item_cuts, n_users, send(Xf, ub), Yf, ib, XtX)
            YtY = _core.als_gram(Yf, nt) if implicit else None
            Y_sent = send(Yf, ib)  # for the loss now and the next user half sweep
            where = _placements(client, user_parts)
            partial = client.gather(_tree_sum(client, [
                client.submit(_als_block_loss, part, n_items, res, Y_sent[0], Y_sent[1], mu, implicit, p["alpha"],
                              p["reg"], worker_threads, pure=False, **w)
                for part, res, w in zip(user_parts, user_results, where)], where))
            if implicit:
                loss = (partial[0] + float(np.sum(XtX.astype(np.float64) * YtY.astype(np.float64)))
                        + p["reg"] * (float(np.trace(XtX)) + float(np.trace(YtY)))) / nnz
            else:
                sq = np.einsum("ij,ij->i", Yf, Yf, dtype=np.float64)
                if ib is not None:
                    sq += ib.astype(np.float64) ** 2
                loss = (partial[0] + partial[1] + p["reg"] * float(n_per_item @ sq)) / nnz
            if self.verbose:
                print(f"dask ALS sweep {it + 1}: {time.perf_counter() - t0:.3f} s on {len(user_parts)} + "
                      f"{len(item_parts)} blocks", flush=True)
            if self._record(it, loss, Xf, Yf, p):
                break
        return self._finish(X, Xf, Yf, mu, ub, ib, p)

    def recommend(self, users: Any, n: int = 10, filter_seen: bool = True, items: Any = None,
                  user_items: Any = None, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """As rankfold.ALS.recommend; after a fit on a dask array, the rows of
        the users asked for are fetched from it to filter their seen items."""
        train = getattr(self, "_train", None)
        if filter_seen is True and user_items is None and isinstance(train, da.Array):
            self._check_fitted()
            u, scalar = self._ids(users, "users", self.user_factors_.shape[0])
            rows = sp.csr_matrix(train[u].compute(), dtype=self.item_factors_.dtype)
            if self._fit_params["feedback"] == "implicit":
                rows.eliminate_zeros()
            ids, scores = super().recommend(u, n=n, filter_seen=True, items=items, user_items=rows,
                                            n_threads=n_threads)
            return (ids[0], scores[0]) if scalar else (ids, scores)
        return super().recommend(users, n=n, filter_seen=filter_seen, items=items, user_items=user_items,
                                 n_threads=n_threads)


def _als_prepare_block(block: Any, index: int, start: int, rows: int, n_cols: int, dtype: Any,
                       implicit: bool) -> sp.csr_matrix:
    """A block of users checked and converted on its worker (rankfold.ALS.fit's rules)."""
    from ._validation import check_sparse

    name = f"user_items (block {index}, rows {start}:{start + rows})"
    if not sp.issparse(block):
        block = np.asarray(block)
        if block.ndim == 2 and block.shape == (rows, n_cols):
            block = sp.csr_matrix(check_array(block, name, dtype=dtype, min_rows=0, nonnegative=implicit))
    if block.shape != (rows, n_cols):
        raise ValueError(f"{name} holds a matrix of shape {block.shape}, but the chunks of user_items say "
                         f"({rows}, {n_cols})")
    if rows == 0:
        return sp.csr_matrix((0, n_cols), dtype=dtype)
    X = check_sparse(block, name, formats=("csr",), dtype=dtype, nonnegative=implicit)
    if implicit:
        if X is block:
            X = X.copy()
        X.eliminate_zeros()
    X.sort_indices()
    return X


def _als_block_stats(X: sp.csr_matrix) -> tuple:
    """(nnz, sum of values, largest |value|, ratings per item) of one user block."""
    top = float(np.abs(X.data).max()) if X.nnz else 0.0
    return (int(X.nnz), float(np.sum(X.data, dtype=np.float64)), top,
            np.bincount(X.indices, minlength=X.shape[1]).astype(np.int64))


def _als_split_items(X: sp.csr_matrix, item_cuts: np.ndarray) -> List[sp.csr_matrix]:
    Xc = X.tocsc()
    return [Xc[:, a:b].T.tocsr() for a, b in zip(item_cuts[:-1], item_cuts[1:])]


def _pick(pieces: List[Any], j: int) -> Any:
    return pieces[j]


def _als_stack_items(pieces: List[sp.csr_matrix], idt: Any) -> tuple:
    M = sp.hstack(pieces, format="csr")
    M.sort_indices()
    return _completion._csr_parts(M, idt)


def _als_block_loss(parts: tuple, n_cols: int, own: tuple, other: np.ndarray, other_bias: Optional[np.ndarray],
                    mu: float, implicit: bool, alpha: float, reg: float,
                    n_threads: Optional[int]) -> Tuple[float, float]:
    """One user block's share of the ALS objective (the Gram and item terms are added on the client)."""
    X, own_bias = own
    nt = _worker_threads(n_threads)
    if X.shape[0] == 0:
        return 0.0, 0.0
    if implicit:
        zero = np.zeros((X.shape[1], X.shape[1]), dtype=X.dtype)
        return float(_core.als_implicit_loss(*parts, n_cols, X, other, alpha, 0.0, nt, zero, zero)), 0.0
    sse, pen = _core.als_explicit_loss(*parts, n_cols, X, other, own_bias, other_bias, mu, reg, nt)
    return float(sse), float(pen)


# ---------------------------------------------------------------------------- NMF
def _prepare_block(block: Any, index: int, start: int, rows: int, n_cols: int, dtype: Any) -> Any:
    """A row block of X checked on the worker that holds it: shape as declared,
    finite, nonnegative, float `dtype`; sparse blocks become CSR."""
    from .nmf import _check_X

    name = f"X (block {index}, rows {start}:{start + rows})"
    if sp.issparse(block):
        block = block.tocsr()
    elif not isinstance(block, np.ndarray):
        block = np.asarray(block)
    if block.ndim != 2 or block.shape != (rows, n_cols):
        raise ValueError(f"{name} holds an array of shape {block.shape}, but X.chunks says ({rows}, {n_cols}); "
                         "the chunk sizes of X do not match its blocks (fix the array's chunks, e.g. with "
                         "X.compute_chunk_sizes())")
    if rows == 0:
        return block.astype(dtype)
    return _check_X(block, name=name, dtype=dtype)


def _block_sums(block: Any, n_threads: Optional[int]) -> Tuple[float, float, float]:
    """(sum, squared norm, entries stored) of one block of X."""
    from .nmf import _spec

    stored = float(block.nnz if sp.issparse(block) else block.size)
    if block.shape[0] == 0:
        return 0.0, 0.0, 0.0
    total, sqnorm = _core.nmf_sums(_spec(block), np.empty((1, 1), block.dtype), _worker_threads(n_threads))
    return float(total), float(sqnorm), stored


def _block_partials(block: Any, W: np.ndarray, nt: int) -> Tuple[np.ndarray, np.ndarray, float, float]:
    """W_b^T W_b (k x k), X_b^T W_b (n x k), sum(W_b), ||W_b||^2 (the last two in double)."""
    from .nmf import _spec

    k = W.shape[1]
    if block.shape[0] == 0:
        return np.zeros((k, k), W.dtype), np.zeros((block.shape[1], k), W.dtype), 0.0, 0.0
    B = _core.nmf_products(_spec(block), W, True, nt)
    G = _core.nmf_gram(W, nt)
    W64 = W.astype(np.float64, copy=False)
    return G, B, float(W64.sum()), float(np.einsum("ij,ij->", W64, W64))


def _auto_sweeps(pass_cost: float, rows: int, k: int) -> int:
    """The automatic HALS sweep count of rankfold.NMF's fit loop (solver.hpp auto_sweeps)."""
    rho = 1.0 + pass_cost / (float(rows) * float(k + 1))
    return int(min(max(1.0 + 0.5 * rho, 1.0), 100.0))


def _random_block(rows: int, k: int, scale: float, seed: Any, dtype: Any) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (scale * np.abs(rng.standard_normal((rows, k)))).astype(dtype)


def _nmf_sweep_block(block: Any, W: Optional[np.ndarray], Ht: np.ndarray, GH: np.ndarray, step: Dict[str, Any],
                     n_threads: Optional[int]) -> Tuple[np.ndarray, Tuple[np.ndarray, np.ndarray, float, float]]:
    """One row block's share of an NMF iteration: W_b updated against the
    broadcast H (the same C++ row kernel as rankfold.NMF), then the block's
    partial sums for H's update and the loss: W_b^T W_b (k x k), X_b^T W_b
    (n x k), sum(W_b) and ||W_b||^2. A W of None (its block was lost with a
    worker) is re-solved exactly against H first."""
    from .nmf import _spec

    nt = _worker_threads(n_threads)
    spec = _spec(block)
    k = Ht.shape[1]
    if W is None:
        W = np.zeros((block.shape[0], k), dtype=Ht.dtype)
        if block.shape[0]:
            _core.nmf_solve_rows(spec, W, Ht, step["l1"], step["l2"], nt)
    else:
        W = W.copy()  # inputs held by Dask must not change in place
    if block.shape[0]:
        A = _core.nmf_products(spec, Ht, False, nt)
        _core.nmf_update_rows(W, A, GH, step["solver"], step["l1"], step["l2"], step["sweeps"], step["stop"], nt)
    return W, _block_partials(block, W, nt)


def _nmf_partials_task(block: Any, W: np.ndarray, n_threads: Optional[int]) -> tuple:
    return _block_partials(block, W, _worker_threads(n_threads))


def _add_partials(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def _first(pair: tuple) -> Any:
    return pair[0]


def _second(pair: tuple) -> Any:
    return pair[1]


def _tree_sum(client: Client, futures: List[Any], hosts: Optional[List[Dict[str, Any]]] = None) -> Any:
    """Pairwise sums on the workers, one small result. With ``hosts`` (the
    placement of each future's task), the futures of each worker are summed
    there first, so only one partial per worker crosses the network."""
    def pairwise(level: List[Any], where: Dict[str, Any]) -> Any:
        while len(level) > 1:
            level = [level[i] if i + 1 >= len(level) else
                     client.submit(_add_partials, level[i], level[i + 1], pure=False, **where)
                     for i in range(0, len(level), 2)]
        return level[0]

    if not hosts:
        return pairwise(list(futures), {})
    groups: Dict[str, List[Any]] = {}
    for f, h in zip(futures, hosts):
        groups.setdefault(h["workers"][0] if h.get("workers") else "", []).append(f)
    per_worker = [pairwise(fs, {"workers": [w], "allow_other_workers": True} if w else {})
                  for w, fs in groups.items()]
    return pairwise(per_worker, {})


def _transform_block(block: Any, Ht: np.ndarray, l1: float, l2: float, n_threads: Optional[int]) -> np.ndarray:
    from .nmf import _check_X, _spec

    block = _check_X(block.tocsr() if sp.issparse(block) else np.asarray(block), dtype=Ht.dtype)
    W = np.zeros((block.shape[0], Ht.shape[1]), dtype=Ht.dtype)
    if block.shape[0]:
        _core.nmf_solve_rows(_spec(block), W, Ht, l1, l2, _worker_threads(n_threads))
    return W


_LOST = ("lost", "cancelled", "error")


class NMF(_nmf.NMF):
    """rankfold.NMF with X a ``dask.array`` chunked by rows, fitted on a Dask cluster.

    Each iteration, every worker updates the rows of W it holds (W stays on
    the workers, one block per row block of X) against the broadcast H with
    the C++ row kernels of ``rankfold.NMF``, then returns its partial sums
    ``W_b^T W_b`` (k x k) and ``X_b^T W_b`` (n x k). A tree reduction adds
    them up on the workers, and the client updates H (k x n) from the sums.
    Per iteration only O(n k) numbers per block cross the network, never X
    or W. The loss comes from the same sums
    (``||X - WH||^2 = ||X||^2 - 2 <X^T W, H^T> + <W^T W, H H^T>``).

    It runs the plain iterations (rankfold.NMF with ``extrapolate=False``):
    with the same starting point, solver ("hals" with an integer
    ``inner_sweeps``, "mu", "anls") and iteration count, W and H equal
    rankfold.NMF(extrapolate=False)'s up to rounding (the sums are added in
    another order). The graph, robust and sum-to-one models of rankfold.NMF
    are not available here.

    Parameters are those of :class:`rankfold.NMF`, plus ``client`` (None:
    the current client) and ``persist``: True loads each block of X once and
    keeps it on the workers (as rankfold.dask.ALS keeps its blocks); False
    reads every block from its source at every iteration (out of core: X
    larger than the cluster's memory, e.g. ``dask.array.from_zarr``).
    ``n_threads`` None means each worker's own thread count for the block
    tasks (and all cores for the client's H update).

    Init: "custom" takes ``W`` (numpy or a dask array of X's row chunks) and
    ``H`` passed to fit; "random" draws H exactly as rankfold.NMF does with
    the same seed, and each block of W on its worker from a seed spawned from
    it (same distribution, not the same numbers as the single-machine W);
    "nndsvd"/"nndsvda"/"nndsvdar" use a randomized SVD computed on the
    workers. ``missing_values`` and ``mask`` are not supported here.

    ``fit_transform`` returns W as a dask array whose blocks live on the
    workers; ``transform`` of a dask array is lazy, of a numpy array as
    rankfold.NMF.
    """

    def __init__(
        self,
        n_components: Optional[int] = None,
        *,
        init: Optional[str] = None,
        solver: str = "hals",
        beta_loss: str = "frobenius",
        tol: float = 1e-4,
        max_iter: int = 200,
        random_state: Any = None,
        alpha_W: float = 0.0,
        alpha_H: Any = "same",
        l1_ratio: float = 0.0,
        verbose: int = 0,
        n_threads: Optional[int] = None,
        callback: Any = None,
        inner_sweeps: Any = "auto",
        missing_values: Any = None,
        client: Optional[Client] = None,
        persist: bool = True,
    ) -> None:
        super().__init__(n_components=n_components, init=init, solver=solver, beta_loss=beta_loss, tol=tol,
                         max_iter=max_iter, random_state=random_state, alpha_W=alpha_W, alpha_H=alpha_H,
                         l1_ratio=l1_ratio, verbose=verbose, n_threads=n_threads, callback=callback,
                         inner_sweeps=inner_sweeps, missing_values=missing_values, extrapolate=False)
        self.client = client
        self.persist = persist

    def _get_client(self) -> Client:
        if self.client is not None and not isinstance(self.client, Client):
            raise TypeError(f"client must be a distributed.Client, got {type(self.client).__name__}")
        try:
            return self.client or get_client()
        except ValueError:
            raise ValueError("no Dask client: pass client= or create a distributed.Client first") from None

    def _check_dask_X(self, X: Any) -> Any:
        if not isinstance(X, da.Array):
            raise TypeError(f"X must be a dask.array.Array chunked by rows, got {type(X).__name__}; for "
                            "in-memory data use rankfold.NMF (or rankfold.ALS for ratings)")
        if X.ndim != 2:
            raise ValueError(f"X must be 2-D, got {X.ndim} dimension(s) with shape {X.shape}")
        if len(X.chunks[1]) != 1:
            raise ValueError(f"X must be chunked along rows only (one chunk spanning all {X.shape[1]} columns), "
                             f"got column chunks {X.chunks[1]}; use X.rechunk({{1: -1}})")
        if any(np.isnan(c) for c in X.chunks[0]) or any(np.isnan(s) for s in X.shape):
            raise ValueError("X has unknown chunk sizes; call X.compute_chunk_sizes() first")
        if 0 in X.shape:
            raise ValueError(f"X has 0 {'sample(s)' if X.shape[0] == 0 else 'feature(s)'} (shape={X.shape}) "
                             "while a minimum of 1 is required.")
        return X

    def _check_params(self) -> None:
        super()._check_params()
        if self.beta_loss != "frobenius":
            raise ValueError(f"rankfold.dask.NMF supports beta_loss='frobenius' only, got {self.beta_loss!r}")
        if self._nan_is_missing():
            raise ValueError("rankfold.dask.NMF does not support missing_values; use rankfold.NMF")
        if not isinstance(self.persist, (bool, np.bool_)):
            raise TypeError(f"persist must be True or False, got {self.persist!r}")

    def fit(self, X: Any, y: Any = None, W: Any = None, H: Any = None) -> "NMF":  # type: ignore[override]
        """Learn W and H from a dask array X; returns self."""
        self.fit_transform(X, y, W=W, H=H)
        return self


    def fit_transform(self, X: Any, y: Any = None, W: Any = None, H: Any = None):  # type: ignore[override]
        """Learn W and H from a dask array X chunked by rows; returns W as a dask array on the workers."""
        self._check_params()
        X = self._check_dask_X(X)
        client = self._get_client()
        m, n = (int(s) for s in X.shape)
        dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        threads = check_n_threads(self.n_threads)
        wt = None if self.n_threads is None else threads
        seed = check_random_state(self.random_state)
        init = self.init
        if init == "custom" or (W is not None or H is not None):
            if init not in ("custom", None) or W is None or H is None:
                raise ValueError("pass both W and H to fit with init='custom' (and only then)")
            init = "custom"
        if self.n_components is None:
            k = np.asarray(H).shape[0] if init == "custom" and np.ndim(H) == 2 else n
        else:
            k = check_int(self.n_components, "n_components", low=1)
        if init is None:
            init = "nndsvda" if k <= min(m, n) else "random"
        if init in ("nndsvd", "nndsvda", "nndsvdar") and k > min(m, n):
            raise ValueError(f"init={init!r} needs n_components <= min(n_samples, n_features) = {min(m, n)}, "
                             f"got {k}; use init='random'")
        rows = [int(c) for c in X.chunks[0]]
        starts = np.concatenate([[0], np.cumsum(rows)]).astype(np.int64)
        prepared = [dask.delayed(_prepare_block, pure=True)(b, i, int(starts[i]), rows[i], n, dtype)
                    for i, b in enumerate(X.to_delayed().ravel().tolist())]
        # persist: each block is read and checked once and stays on its worker;
        # otherwise every iteration reads it from its source (out of core).
        blocks: List[Any] = client.compute(prepared) if self.persist else prepared
        sums = client.gather(self._map(client, _block_sums, blocks, [(wt,)] * len(blocks)))
        total, xx, stored = (float(sum(s[j] for s in sums)) for j in range(3))
        if xx == 0.0:
            raise ValueError("X is all zeros; there is nothing to factorize")
        Wb, Ht = self._start(client, blocks, rows, n, init, k, W, H, seed, total / (m * n), dtype, threads, wt)
        l1W, l2W, l1H, l2H = self._penalties(m, n)
        auto = isinstance(self.inner_sweeps, str)
        pass_cost = stored
        step = dict(solver=self.solver, l1=l1W, l2=l2W, stop=0.1 if auto else 0.0,
                    sweeps=_auto_sweeps(pass_cost, m, k) if auto else int(self.inner_sweeps))
        sweeps_H = _auto_sweeps(pass_cost, n, k) if auto else int(self.inner_sweeps)
        GH = _core.nmf_gram(Ht, threads)
        losses: List[float] = []
        prev = np.inf
        converged = False
        n_iter = 0
        residual = None
        for it in range(1, int(self.max_iter) + 1):
            t0 = time.perf_counter()
            Wb, (GW, B, s1, s2) = self._sweep(client, blocks, Wb, Ht, GH, step, wt)
            _core.nmf_update_rows(Ht, np.ascontiguousarray(B, dtype=dtype), np.ascontiguousarray(GW, dtype=dtype),
                                  self.solver, l1H, l2H, sweeps_H, float(step["stop"]), threads)
            GH = _core.nmf_gram(Ht, threads)
            residual = self._residual(xx, B, GW, Ht, GH)
            H64 = Ht.astype(np.float64)
            loss = (0.5 * residual + l1W * s1 + 0.5 * l2W * s2 + l1H * float(H64.sum())
                    + 0.5 * l2H * float(np.einsum("ij,ij->", H64, H64)))
            losses.append(loss)
            n_iter = it
            if self.verbose:
                print(f"dask NMF[{self.solver}] iteration {it:4d}  objective {loss:.6g}  "
                      f"{time.perf_counter() - t0:.3f} s  ({len(blocks)} blocks)", flush=True)
            if self.callback is not None:
                if callback_stops(self.callback(it, loss)):
                    break
            if self.tol > 0 and np.isfinite(prev) and (prev - loss) <= self.tol * prev:
                converged = True
                break
            prev = loss
        if residual is None:  # max_iter=0: the error of the starting point
            parts = client.gather(_tree_sum(client, self._map(client, _nmf_partials_task, blocks,
                                                              [(w, wt) for w in Wb])))
            residual = self._residual(xx, parts[1], parts[0], Ht, GH)
        self._finish(n_iter, converged, losses, None, Ht, n)  # type: ignore[arg-type]  # W stays distributed
        self.reconstruction_err_ = float(np.sqrt(residual))
        self.n_blocks_ = len(blocks)
        return da.concatenate([da.from_delayed(f, shape=(r, k), dtype=dtype) for f, r in zip(Wb, rows)], axis=0)

    @staticmethod
    def _residual(xx: float, B: np.ndarray, GW: np.ndarray, Ht: np.ndarray, GH: np.ndarray) -> float:
        cross = float(np.einsum("ij,ij->", B.astype(np.float64), Ht.astype(np.float64)))
        quad = float(np.einsum("ij,ij->", GW.astype(np.float64), GH.astype(np.float64)))
        return max(0.0, xx - 2.0 * cross + quad)

    @staticmethod
    def _map(client: Client, fn: Any, blocks: List[Any], args: List[tuple],
             where: Optional[List[Dict[str, Any]]] = None) -> List[Any]:
        """fn(block, *args) per block as futures: submitted next to a persisted
        block, or fused into the block's graph when blocks are read from source;
        ``where``: placements (default: where each persisted block lives)."""
        if where is None:
            where = _placements(client, [b if isinstance(b, Future) else None for b in blocks])
        out = []
        for b, a, w in zip(blocks, args, where):
            if isinstance(b, Future):
                out.append(client.submit(fn, b, *a, pure=False, **w))
            else:
                out.append(client.compute(dask.delayed(fn, pure=False)(b, *a), **w))
        return out

    def _sweep(self, client: Client, blocks: List[Any], Wb: List[Any], Ht: np.ndarray, GH: np.ndarray,
               step: Dict[str, Any], wt: Optional[int]) -> Tuple[List[Any], tuple]:
        """One W half-step on the workers and the reduced partial sums. A block
        of W lost with a worker is re-solved against the current H."""
        attempts = 4
        for attempt in range(attempts):
            try:
                ht = client.scatter(Ht.copy(), hash=False)  # fetched by the other workers on demand
                # each block's task where its X block (persisted) or else its W block lives
                where = _placements(client, [b if isinstance(b, Future) else w for b, w in zip(blocks, Wb)])
                results = self._map(client, _nmf_sweep_block, blocks, [(w, ht, GH, step, wt) for w in Wb], where)
                new_W = [client.submit(_first, r, pure=False, **h) for r, h in zip(results, where)]
                total = _tree_sum(client, [client.submit(_second, r, pure=False, **h) for r, h in zip(results, where)],
                                  where)
                return new_W, client.gather(total)
            except Exception as exc:
                from distributed.scheduler import KilledWorker

                lost = [i for i, w in enumerate(Wb) if w is not None and w.status in _LOST]
                if isinstance(exc, KilledWorker):
                    raise RuntimeError(f"a task of the NMF fit killed {exc.args[1] if len(exc.args) > 1 else 'a'} "
                                       f"Dask worker(s) repeatedly ({exc}); the fit was stopped") from exc
                if not lost and not _worker_lost(exc):
                    raise  # an error of the data or the kernels: not retried
                if attempt == attempts - 1:
                    raise RuntimeError(f"Dask workers kept failing during the NMF fit ({attempts} attempts at one "
                                       f"iteration): {type(exc).__name__}: {exc}") from exc
                Wb = [None if i in lost else w for i, w in enumerate(Wb)]
                if self.verbose:
                    print(f"dask NMF: a worker was lost ({type(exc).__name__}); {len(lost)} block(s) of W re-solved "
                          f"against H, iteration retried", flush=True)
                time.sleep(0.5 * (attempt + 1))  # let the scheduler notice the lost worker
        raise AssertionError("unreachable")  # pragma: no cover

    def _start(self, client: Client, blocks: List[Any], rows: List[int], n: int, init: str, k: int, W: Any, H: Any,
               seed: int, mean: float, dtype: Any, threads: int, wt: Optional[int]) -> Tuple[List[Any], np.ndarray]:
        if init == "custom":
            return self._custom_blocks(client, rows, n, k, W, H, dtype)
        if init == "random":
            rng = np.random.default_rng(seed)  # rankfold.NMF's draws for H, then one stream per block of W
            avg = np.sqrt(mean / k)
            Ht = (avg * np.abs(rng.standard_normal((n, k)))).astype(dtype)
            children = np.random.SeedSequence(seed).spawn(len(rows))
            Wb = [client.submit(_random_block, r, k, avg, c, dtype, pure=False) for r, c in zip(rows, children)]
            return Wb, Ht
        return self._nndsvd(client, blocks, rows, n, init, k, seed, mean, dtype, wt)

    def _custom_blocks(self, client: Client, rows: List[int], n: int, k: int, W: Any, H: Any,
                       dtype: Any) -> Tuple[List[Any], np.ndarray]:
        m = int(sum(rows))
        H0 = check_array(H, "H", dtype=dtype, nonnegative=True)
        if H0.shape != (k, n):
            raise ValueError(f"H must have shape (n_components, n_features) = {(k, n)}, got {H0.shape}")
        Ht = np.array(H0.T, dtype=dtype, order="C")
        if isinstance(W, da.Array):
            if W.shape != (m, k):
                raise ValueError(f"W must have shape (n_samples, n_components) = {(m, k)}, got {W.shape}")
            W = W.rechunk((tuple(rows), (k,)))
            checked = [dask.delayed(_check_W_block, pure=True)(b, dtype)
                       for b in W.to_delayed().ravel().tolist()]
            Wb = client.compute(checked)
            for f in Wb:  # surface bad values here
                err = f.exception()
                if err is not None:
                    raise err
            return Wb, Ht
        W0 = check_array(W, "W", dtype=dtype, nonnegative=True)
        if W0.shape != (m, k):
            raise ValueError(f"W must have shape (n_samples, n_components) = {(m, k)}, got {W0.shape}")
        cuts = np.concatenate([[0], np.cumsum(rows)])
        return client.scatter([np.ascontiguousarray(W0[a:b]) for a, b in zip(cuts[:-1], cuts[1:])],
                              hash=False), Ht

    def _nndsvd(self, client: Client, blocks: List[Any], rows: List[int], n: int, init: str, k: int, seed: int,
                mean: float, dtype: Any, wt: Optional[int]) -> Tuple[List[Any], np.ndarray]:
        """NNDSVD from a randomized SVD computed on the workers: the range
        finder's tall factor Y = X Omega stays in row blocks (orthonormalized by
        a two-level QR of the blocks' R factors); only n x l and l x l
        matrices reach the client (l = k + 10)."""
        m = int(sum(rows))
        ell = min(k + 10, m, n)
        power = 7 if k < 0.1 * min(m, n) else 4  # rankfold.NMF's (and scikit-learn's) rule
        rng = np.random.default_rng(seed)
        F = rng.standard_normal((n, ell))

        def reduce(fn, per_block):
            return client.gather(_tree_sum(client, self._map(client, fn, blocks, per_block)))

        Y = self._map(client, _svd_times, blocks, [(F, wt)] * len(blocks))
        for _ in range(power + 1):
            Q = _tsqr(client, Y)
            Z = reduce(_svd_times_transposed, [(q, wt) for q in Q])[0]  # X^T Q, n x ell
            if _ == power:
                break
            F = np.linalg.qr(Z)[0]
            Y = self._map(client, _svd_times, blocks, [(F, wt)] * len(blocks))
        Ub, S, Vt = np.linalg.svd(Z.T, full_matrices=False)  # Q^T X = Ub S Vt
        S, Vt = S[:k], Vt[:k]
        U = [client.submit(np.matmul, q, Ub[:, :k], pure=False) for q in Q]
        norms = client.gather(_tree_sum(client, [client.submit(_pos_neg_norms, u, pure=False) for u in U]))
        xpn, xnn = np.sqrt(norms[0]), np.sqrt(norms[1])
        coef_pos, coef_neg = np.zeros(k), np.zeros(k)
        Ht = np.zeros((n, k), dtype=dtype)
        coef_pos[0] = coef_neg[0] = np.sqrt(S[0])  # sqrt(S0) |u0|
        Ht[:, 0] = np.sqrt(S[0]) * np.abs(Vt[0])
        for j in range(1, k):
            y = Vt[j]
            yp, yn = np.maximum(y, 0), np.abs(np.minimum(y, 0))
            ypn, ynn = float(np.linalg.norm(yp)), float(np.linalg.norm(yn))
            mp, mn = xpn[j] * ypn, xnn[j] * ynn
            if mp > mn:
                lbd = np.sqrt(S[j] * mp)
                coef_pos[j] = lbd / max(xpn[j], 1e-300)
                Ht[:, j] = lbd * yp / max(ypn, 1e-300)
            else:
                lbd = np.sqrt(S[j] * mn)
                coef_neg[j] = lbd / max(xnn[j], 1e-300)
                Ht[:, j] = lbd * yn / max(ynn, 1e-300)
        eps = 1e-6
        Ht[Ht < eps] = 0
        fill = {"nndsvd": None, "nndsvda": "mean", "nndsvdar": "random"}[init]
        if fill == "mean":
            Ht[Ht == 0] = mean
        elif fill == "random":
            Ht[Ht == 0] = np.abs(mean * rng.standard_normal(int((Ht == 0).sum())) / 100)
        children = np.random.SeedSequence(seed).spawn(len(rows))
        Wb = [client.submit(_nndsvd_W_block, u, coef_pos, coef_neg, eps, fill, mean, c, dtype, pure=False)
              for u, c in zip(U, children)]
        return Wb, Ht

    def transform(self, X: Any):  # type: ignore[override]
        """W for new data with H fixed (exact NNLS per row): lazy for a dask array X."""
        if not isinstance(X, da.Array):
            return super().transform(X)
        self._check_fitted()
        X = self._check_dask_X(X)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input")
        l1W, l2W, _, _ = self._penalties(*X.shape)
        Ht = np.ascontiguousarray(self.components_.T)
        wt = None if self.n_threads is None else check_n_threads(self.n_threads)
        return X.map_blocks(_transform_block, Ht, l1W, l2W, wt, dtype=Ht.dtype,
                            chunks=(X.chunks[0], (Ht.shape[1],)), meta=np.empty((0, 0), Ht.dtype))


def _svd_times(block: Any, F: np.ndarray, n_threads: Optional[int]) -> np.ndarray:
    from .nmf import _spec

    if block.shape[0] == 0:
        return np.zeros((0, F.shape[1]))
    return _core.nmf_products(_spec(block), np.ascontiguousarray(F, dtype=block.dtype), False,
                              _worker_threads(n_threads)).astype(np.float64)


def _svd_times_transposed(block: Any, Q: np.ndarray, n_threads: Optional[int]) -> tuple:
    from .nmf import _spec

    if block.shape[0] == 0:
        return (np.zeros((block.shape[1], Q.shape[1])),)
    return (_core.nmf_products(_spec(block), np.ascontiguousarray(Q, dtype=block.dtype), True,
                               _worker_threads(n_threads)).astype(np.float64),)


def _local_qr(Y: np.ndarray) -> tuple:
    return np.linalg.qr(Y) if Y.shape[0] else (np.zeros((0, 0)), np.zeros((0, Y.shape[1])))


def _tsqr(client: Client, Y: List[Any]) -> List[Any]:
    """Orthonormal basis of the tall matrix whose row blocks are Y (TSQR): each
    block's QR on its worker, one QR of the stacked R factors (l x l each) on
    the client, then Q_b times its slice of that small Q, on the worker."""
    local = [client.submit(_local_qr, y, pure=False) for y in Y]
    Rs = client.gather([client.submit(_second, f, pure=False) for f in local])
    Q2 = np.linalg.qr(np.vstack(Rs))[0]
    cuts = np.concatenate([[0], np.cumsum([r.shape[0] for r in Rs])])
    return [client.submit(_q_times, f, Q2[a:b], pure=False) for f, a, b in zip(local, cuts[:-1], cuts[1:])]


def _q_times(qr: tuple, Q2: np.ndarray) -> np.ndarray:
    return qr[0] @ Q2


def _pos_neg_norms(U: np.ndarray) -> tuple:
    return (np.square(np.maximum(U, 0)).sum(axis=0), np.square(np.minimum(U, 0)).sum(axis=0))


def _nndsvd_W_block(U: np.ndarray, coef_pos: np.ndarray, coef_neg: np.ndarray, eps: float, fill: Optional[str],
                    mean: float, seed: Any, dtype: Any) -> np.ndarray:
    W = np.maximum(U, 0) * coef_pos + np.maximum(-U, 0) * coef_neg
    W[W < eps] = 0
    if fill == "mean":
        W[W == 0] = mean
    elif fill == "random":
        rng = np.random.default_rng(seed)
        W[W == 0] = np.abs(mean * rng.standard_normal(int((W == 0).sum())) / 100)
    return np.ascontiguousarray(W, dtype=dtype)


def _check_W_block(block: Any, dtype: Any) -> np.ndarray:
    return check_array(np.asarray(block), "W", dtype=dtype, nonnegative=True, copy=True)


def _worker_lost(exc: BaseException) -> bool:
    from concurrent.futures import CancelledError

    from distributed.scheduler import KilledWorker

    return isinstance(exc, (KilledWorker, CancelledError, OSError)) or "lost" in str(exc).lower()
