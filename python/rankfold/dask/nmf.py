"""``rankfold.dask.NMF``: X as a ``dask.array`` chunked by rows (dense or
scipy.sparse chunks, in memory or on disk), W's row blocks kept next to X's
on the workers; per iteration only k x n and k x k sums cross the network."""

from __future__ import annotations

import time
from typing import Any, Dict, List, Optional, Tuple

import numpy as np
import scipy.sparse as sp

import dask
import dask.array as da
from distributed import Client, Future, get_client

from .. import nmf as _nmf
from .._operand import check_matrix
from .._validation import callback_stops, check_array, check_int, check_n_threads, check_random_state
from ..nmf import _engine as _nmf_engine
from ._cluster import LOST_STATES, first, placements, second, tree_sum, tsqr, worker_lost, worker_threads


# ---------------------------------------------------------------------------- NMF
def _prepare_block(block: Any, index: int, start: int, rows: int, n_cols: int, dtype: Any) -> Any:
    """A row block of X checked on the worker that holds it: shape as declared,
    finite, nonnegative, float `dtype`; sparse blocks become CSR."""
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
    return check_matrix(block, name=name, dtype=dtype)


def _block_sums(block: Any, n_threads: Optional[int]) -> Tuple[float, float, float]:
    """(sum, squared norm, entries stored) of one block of X."""
    stored = float(block.nnz if sp.issparse(block) else block.size)
    if block.shape[0] == 0:
        return 0.0, 0.0, 0.0
    total, sqnorm = _nmf_engine.sums(block, worker_threads(n_threads))
    return float(total), float(sqnorm), stored


def _block_partials(block: Any, W: np.ndarray, nt: int) -> Tuple[np.ndarray, np.ndarray, float, float]:
    """W_b^T W_b (k x k), X_b^T W_b (n x k), sum(W_b), ||W_b||^2 (the last two in double)."""
    k = W.shape[1]
    if block.shape[0] == 0:
        return np.zeros((k, k), W.dtype), np.zeros((block.shape[1], k), W.dtype), 0.0, 0.0
    B = _nmf_engine.products(block, W, True, nt)
    G = _nmf_engine.gram(W, nt)
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
    nt = worker_threads(n_threads)
    k = Ht.shape[1]
    if W is None:
        W = np.zeros((block.shape[0], k), dtype=Ht.dtype)
        if block.shape[0]:
            _nmf_engine.solve_rows(block, W, Ht, step["l1"], step["l2"], nt)
    else:
        W = W.copy()  # inputs held by Dask must not change in place
    if block.shape[0]:
        A = _nmf_engine.products(block, Ht, False, nt)
        _nmf_engine.update_rows(W, A, GH, step["solver"], step["l1"], step["l2"], step["sweeps"], step["stop"], nt)
    return W, _block_partials(block, W, nt)


def _nmf_partials_task(block: Any, W: np.ndarray, n_threads: Optional[int]) -> tuple:
    return _block_partials(block, W, worker_threads(n_threads))


def _transform_block(block: Any, Ht: np.ndarray, l1: float, l2: float, n_threads: Optional[int]) -> np.ndarray:
    block = check_matrix(block.tocsr() if sp.issparse(block) else np.asarray(block), dtype=Ht.dtype)
    W = np.zeros((block.shape[0], Ht.shape[1]), dtype=Ht.dtype)
    if block.shape[0]:
        _nmf_engine.solve_rows(block, W, Ht, l1, l2, worker_threads(n_threads))
    return W


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
        GH = _nmf_engine.gram(Ht, threads)
        losses: List[float] = []
        prev = np.inf
        converged = False
        n_iter = 0
        residual = None
        for it in range(1, int(self.max_iter) + 1):
            t0 = time.perf_counter()
            Wb, (GW, B, s1, s2) = self._sweep(client, blocks, Wb, Ht, GH, step, wt)
            _nmf_engine.update_rows(Ht, np.ascontiguousarray(B, dtype=dtype), np.ascontiguousarray(GW, dtype=dtype),
                                  self.solver, l1H, l2H, sweeps_H, float(step["stop"]), threads)
            GH = _nmf_engine.gram(Ht, threads)
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
            parts = client.gather(tree_sum(client, self._map(client, _nmf_partials_task, blocks,
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
            where = placements(client, [b if isinstance(b, Future) else None for b in blocks])
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
                where = placements(client, [b if isinstance(b, Future) else w for b, w in zip(blocks, Wb)])
                results = self._map(client, _nmf_sweep_block, blocks, [(w, ht, GH, step, wt) for w in Wb], where)
                new_W = [client.submit(first, r, pure=False, **h) for r, h in zip(results, where)]
                total = tree_sum(client, [client.submit(second, r, pure=False, **h) for r, h in zip(results, where)],
                                  where)
                return new_W, client.gather(total)
            except Exception as exc:
                from distributed.scheduler import KilledWorker

                lost = [i for i, w in enumerate(Wb) if w is not None and w.status in LOST_STATES]
                if isinstance(exc, KilledWorker):
                    raise RuntimeError(f"a task of the NMF fit killed {exc.args[1] if len(exc.args) > 1 else 'a'} "
                                       f"Dask worker(s) repeatedly ({exc}); the fit was stopped") from exc
                if not lost and not worker_lost(exc):
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
            return client.gather(tree_sum(client, self._map(client, fn, blocks, per_block)))

        Y = self._map(client, _svd_times, blocks, [(F, wt)] * len(blocks))
        for _ in range(power + 1):
            Q = tsqr(client, Y)
            Z = reduce(_svd_times_transposed, [(q, wt) for q in Q])[0]  # X^T Q, n x ell
            if _ == power:
                break
            F = np.linalg.qr(Z)[0]
            Y = self._map(client, _svd_times, blocks, [(F, wt)] * len(blocks))
        Ub, S, Vt = np.linalg.svd(Z.T, full_matrices=False)  # Q^T X = Ub S Vt
        S, Vt = S[:k], Vt[:k]
        U = [client.submit(np.matmul, q, Ub[:, :k], pure=False) for q in Q]
        norms = client.gather(tree_sum(client, [client.submit(_pos_neg_norms, u, pure=False) for u in U]))
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
    if block.shape[0] == 0:
        return np.zeros((0, F.shape[1]))
    return _nmf_engine.products(block, np.ascontiguousarray(F, dtype=block.dtype), False,
                              worker_threads(n_threads)).astype(np.float64)


def _svd_times_transposed(block: Any, Q: np.ndarray, n_threads: Optional[int]) -> tuple:
    if block.shape[0] == 0:
        return (np.zeros((block.shape[1], Q.shape[1])),)
    return (_nmf_engine.products(block, np.ascontiguousarray(Q, dtype=block.dtype), True,
                               worker_threads(n_threads)).astype(np.float64),)


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
