"""``rankfold.dask.ALS``: rankfold.ALS's half sweeps run block by block on the
workers, from a scipy.sparse matrix or a ``dask.array`` of ratings chunked by
users."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

import dask
import dask.array as da
from distributed import Client, get_client

from .. import completion as _completion
from .._validation import check_array, check_int, check_sparse
from ..completion import _engine as _als_engine
from ._cluster import placements, row_blocks, tree_sum, worker_threads


# ---------------------------------------------------------------------------- ALS
def _block_sweep(parts: tuple, n_cols: int, other: np.ndarray, other_bias: Optional[np.ndarray],
                 own: np.ndarray, own_bias: Optional[np.ndarray], mu: float, gram: Optional[np.ndarray],
                 p: Dict[str, Any], nonnegative: bool, n_threads: Optional[int]):
    """One half sweep over a block of rows: the same C++ row solver as
    rankfold.ALS, on copies (inputs held by Dask must not change in place)."""
    own = own.copy()
    own_bias = None if own_bias is None else own_bias.copy()
    _als_engine.half_sweep(parts, n_cols, other, other_bias, own, own_bias, mu, gram, p, nonnegative,
                            worker_threads(n_threads))
    return own, own_bias


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
        idt = _als_engine.index_dtype(X)
        XT = X.T.tocsr()
        XT.sort_indices()
        user_cuts = row_blocks(n_users, min(n_blocks, n_users))
        item_cuts = row_blocks(n_items, min(n_blocks, n_items))
        # In/out blocks, built once and kept on the workers.
        user_parts = [client.scatter(_als_engine.csr_parts(X[a:b], idt), hash=False)
                      for a, b in zip(user_cuts[:-1], user_cuts[1:])]
        item_parts = [client.scatter(_als_engine.csr_parts(XT[a:b], idt), hash=False)
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
        item_cuts = row_blocks(n_items, min(n_blocks, n_items))
        # The out blocks by a shuffle: each user block cut by item ranges and
        # transposed on its worker, the pieces of each item range stacked on one.
        pieces = [client.submit(_als_split_items, f, item_cuts, pure=False) for f in blocks]
        item_parts = [client.submit(_als_stack_items, [client.submit(_pick, pc, j, pure=False) for pc in pieces], idt,
                                    pure=False) for j in range(len(item_cuts) - 1)]
        user_parts = [client.submit(_als_engine.csr_parts, f, idt, pure=False) for f in blocks]
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
                       for part, a, b, w in zip(parts, cuts[:-1], cuts[1:], placements(client, parts))]
            results = client.gather(futures)
            new_own = np.concatenate([r[0] for r in results])
            new_bias = None if own_bias is None else np.concatenate([r[1] for r in results])
            return new_own, new_bias, futures

        YtY = _als_engine.gram(Yf, nt) if implicit else None
        Y_sent = send(Yf, ib)
        for it in range(p["iterations"]):
            t0 = time.perf_counter()
            Xf, ub, user_results = half(user_parts, user_cuts, n_items, Y_sent, Xf, ub, YtY)
            XtX = _als_engine.gram(Xf, nt) if implicit else None
            Yf, ib, _ = half(item_parts, item_cuts, n_users, send(Xf, ub), Yf, ib, XtX)
            YtY = _als_engine.gram(Yf, nt) if implicit else None
            Y_sent = send(Yf, ib)  # for the loss now and the next user half sweep
            where = placements(client, user_parts)
            partial = client.gather(tree_sum(client, [
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
    return _als_engine.csr_parts(M, idt)


def _als_block_loss(parts: tuple, n_cols: int, own: tuple, other: np.ndarray, other_bias: Optional[np.ndarray],
                    mu: float, implicit: bool, alpha: float, reg: float,
                    n_threads: Optional[int]) -> Tuple[float, float]:
    """One user block's share of the ALS objective (the Gram and item terms are added on the client)."""
    X, own_bias = own
    nt = worker_threads(n_threads)
    if X.shape[0] == 0:
        return 0.0, 0.0
    if implicit:
        zero = np.zeros((X.shape[1], X.shape[1]), dtype=X.dtype)
        return float(_als_engine.implicit_loss(*parts, n_cols, X, other, alpha, 0.0, nt, zero, zero)), 0.0
    sse, pen = _als_engine.explicit_loss(*parts, n_cols, X, other, own_bias, other_bias, mu, reg, nt)
    return float(sse), float(pen)
