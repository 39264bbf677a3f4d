"""Matrix completion by alternating least squares (``ALS``).

Two models share one estimator:

* ``feedback="implicit"`` (Hu, Koren & Volinsky, 2008): every cell of the
  users x items matrix is a preference ``p = 1`` where ``r > 0`` else ``0``,
  weighted by the confidence ``c = 1 + alpha * r``. The objective is
  ``sum_ui c_ui (p_ui - x_u . y_i)^2 + regularization (|X|^2 + |Y|^2)``;
  the shared ``Y^T Y`` makes one row cost ``O(nnz_u k^2 + k^3)`` exactly or
  ``O(k^2 + nnz_u k)`` per conjugate-gradient step.
* ``feedback="explicit"``: squared error over the observed ratings only, with
  weighted-lambda regularisation (Zhou et al., 2008: each row's penalty is
  ``regularization * n_observations * |x_u|^2``) and, with ``biases=True``, a
  global mean plus user and item biases learnt jointly.

``solver="cholesky"`` solves every row exactly; ``solver="cg"`` takes
``cg_steps`` warm-started conjugate-gradient steps per row (inexact updates
keep alternating minimisation converging at ``O(|Omega| k)`` per sweep);
``solver="ials++"`` (Rendle et al., 2021) is subspace descent: the ``k``
coordinates are split into blocks of ``block_size`` and each block is solved
exactly with the others fixed, one pass per sweep, at ``O(nnz_u k b + k b^2)``
per row plus the Gramian term as one matrix product per block. It keeps large
factor sizes (256-2048) affordable; ``block_size >= factors`` is exactly
``solver="cholesky"``.

Rows (users or items) without any observation get zero factors (and zero
biases), so their predictions are ``0`` (implicit) or the bias-only
``global_mean_ + bias`` (explicit).
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, List, Optional, Tuple, Union

import numpy as np
import scipy.sparse as sp

from .._validation import (
    callback_stops,
    check_array,
    check_choice,
    check_float,
    check_ids,
    check_int,
    check_n_threads,
    check_random_state,
    check_sparse,
)
from . import _engine

__all__ = ["ALS"]

FEEDBACKS = ("implicit", "explicit")
SOLVERS = ("cg", "cholesky", "ials++")


class ALS:
    """Alternating least squares for explicit ratings or implicit feedback.

    Parameters
    ----------
    factors : int
        Rank of the model (length of each user and item vector).
    regularization : float or None
        L2 penalty. None: 0.01 for implicit feedback, 0.1 for explicit
        (weighted-lambda: scaled by each row's number of ratings). With 0,
        rows with fewer observations than factors make the exact (Cholesky)
        row systems singular: fit raises RuntimeError.
    alpha : float
        Implicit feedback: confidence ``c = 1 + alpha * r``. Must be > 0.
    iterations : int
        Alternating sweeps (users, then items).
    feedback : {"implicit", "explicit"}
    solver : {"cg", "cholesky", "ials++"}
        Row solver (see the module docstring): inexact conjugate gradients,
        exact Cholesky, or iALS++ subspace descent (the fastest for large
        ``factors``).
    cg_steps : int
        Conjugate-gradient steps per row and sweep (solver="cg").
    block_size : int
        Coordinates per block of solver="ials++" (>= 1; clipped to
        ``factors``, plus one with biases, where it equals Cholesky ALS).
    biases : bool
        Explicit feedback: learn a global mean and user and item biases.
    nonnegative : bool
        Projected updates: each solved row is clipped at zero, so all factors
        are nonnegative (an approximation of nonnegative least squares).
    random_state : int, numpy.random.Generator or None
        Seeds the initial factors. Same seed and data give the same model for
        any thread count.
    n_threads : int or None
        Threads; None uses all cores (OMP_NUM_THREADS honoured).
    dtype : float32 or float64
        Precision of the factors and of the arithmetic.
    verbose : bool
        Print the loss after each iteration.
    callback : callable or None
        ``callback(iteration, loss)`` after each iteration, ``iteration`` counting from 1 (as NMF's
        callback does). A false return value (``False``, ``0``,
        ``numpy.False_``) stops the fit; ``None`` or a true value continues; an exception it
        raises propagates unchanged.

    Attributes
    ----------
    user_factors_, item_factors_ : ndarray (n_users, factors), (n_items, factors)
    user_biases_, item_biases_, global_mean_ : explicit feedback with biases
    loss_history_ : list of float
        Training objective (data term plus penalty) after each iteration,
        divided by the number of observed entries.
    n_iter_ : int
    """

    def __init__(self, factors: int = 64, regularization: Optional[float] = None, alpha: float = 1.0,
                 iterations: int = 15, feedback: str = "implicit", solver: str = "cg", cg_steps: int = 3,
                 biases: bool = False, nonnegative: bool = False, random_state: Any = None,
                 n_threads: Optional[int] = None, dtype: Any = np.float32, verbose: bool = False,
                 callback: Optional[Callable[[int, float], Any]] = None, block_size: int = 64) -> None:
        self.factors = factors
        self.regularization = regularization
        self.alpha = alpha
        self.iterations = iterations
        self.feedback = feedback
        self.solver = solver
        self.cg_steps = cg_steps
        self.biases = biases
        self.nonnegative = nonnegative
        self.random_state = random_state
        self.n_threads = n_threads
        self.dtype = dtype
        self.verbose = verbose
        self.callback = callback
        self.block_size = block_size

    _PARAM_NAMES = ("factors", "regularization", "alpha", "iterations", "feedback", "solver", "cg_steps", "biases",
                    "nonnegative", "random_state", "n_threads", "dtype", "verbose", "callback", "block_size")

    def get_params(self, deep: bool = True) -> dict:
        """Constructor parameters (scikit-learn convention, so ``sklearn.base.clone`` works)."""
        return {name: getattr(self, name) for name in self._PARAM_NAMES}

    def set_params(self, **params: Any) -> "ALS":
        for name, value in params.items():
            if name not in self._PARAM_NAMES:
                raise ValueError(f"invalid parameter {name!r} for ALS; valid: {', '.join(self._PARAM_NAMES)}")
            setattr(self, name, value)
        return self

    def __repr__(self) -> str:
        return (f"ALS(factors={self.factors}, feedback={self.feedback!r}, solver={self.solver!r}, "
                f"regularization={self.regularization}, alpha={self.alpha}, iterations={self.iterations})")

    # ------------------------------------------------------------------ parameters
    def _params(self) -> dict:
        k = check_int(self.factors, "factors", low=1, high=1 << 16)
        feedback = check_choice(self.feedback, "feedback", FEEDBACKS)
        solver = check_choice(self.solver, "solver", SOLVERS)
        reg = self.regularization
        if reg is None:
            reg = 0.01 if feedback == "implicit" else 0.1
        reg = check_float(reg, "regularization", low=0.0)
        alpha = check_float(self.alpha, "alpha", low=0.0, low_inclusive=False)
        iterations = check_int(self.iterations, "iterations", low=1, high=1 << 20)
        cg_steps = check_int(self.cg_steps, "cg_steps", low=1, high=1 << 16)
        block_size = check_int(self.block_size, "block_size", low=1, high=1 << 16)
        for name in ("biases", "nonnegative", "verbose"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")
        if self.biases and feedback == "implicit":
            raise ValueError("biases=True is only available with feedback='explicit'")
        try:
            dtype = np.dtype(self.dtype)
        except TypeError:
            raise TypeError(f"dtype must be float32 or float64, got {self.dtype!r}") from None
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"dtype must be float32 or float64, got {dtype}")
        if self.callback is not None and not callable(self.callback):
            raise TypeError("callback must be callable or None")
        return dict(k=k, feedback=feedback, solver=solver, reg=reg, alpha=alpha, iterations=iterations,
                    cg_steps=cg_steps, block_size=block_size, dtype=dtype, n_threads=check_n_threads(self.n_threads),
                    seed=check_random_state(self.random_state))

    # ------------------------------------------------------------------ fitting
    def fit(self, user_items: Any) -> "ALS":
        """Learn the factors from a scipy.sparse users x items matrix.

        Any sparse format is accepted; duplicate entries are summed. Implicit
        feedback: values are interaction strengths ``r >= 0`` (explicit zeros
        are ignored). Explicit feedback: every stored entry is a rating.
        """
        p = self._params()
        if not sp.issparse(user_items):
            raise TypeError(
                f"user_items must be a scipy.sparse matrix (users x items), got {type(user_items).__name__}; "
                "for a dense array use scipy.sparse.csr_matrix(array), or fit_triplets for (user, item, value) lists"
            )
        X = check_sparse(user_items, "user_items", formats=("csr",), dtype=p["dtype"],
                         nonnegative=p["feedback"] == "implicit")
        if p["feedback"] == "implicit":
            if X is user_items:
                X = X.copy()
            X.eliminate_zeros()
        if X.nnz == 0:
            raise ValueError("user_items has no observed (nonzero) entries; nothing to learn from")
        if p["feedback"] == "implicit":
            with np.errstate(over="ignore"):
                top = np.asarray(p["alpha"], dtype=p["dtype"]) * np.abs(X.data).max() + 1
            if not np.isfinite(top):
                raise ValueError(f"alpha * user_items overflows {p['dtype']}: the largest confidence is not finite; "
                                 "scale the values down or use dtype=float64")
        X.sort_indices()
        return self._fit_csr(X, p)

    def fit_triplets(self, users: Any, items: Any, values: Any, shape: Optional[Tuple[int, int]] = None) -> "ALS":
        """Learn from (user, item, value) triplets; duplicates are summed.

        ``shape`` defaults to ``(max(users) + 1, max(items) + 1)``.
        """
        u = check_ids(users, "users", unique=False)
        i = check_ids(items, "items", unique=False)
        v = check_array(values, "values", ndim=1, min_rows=0)
        if not (u.shape[0] == i.shape[0] == v.shape[0]):
            raise ValueError(f"users, items and values must have the same length, got "
                             f"{u.shape[0]}, {i.shape[0]} and {v.shape[0]}")
        if u.shape[0] == 0:
            raise ValueError("no triplets given; nothing to learn from")
        if shape is None:
            shape = (int(u.max()) + 1, int(i.max()) + 1)
        else:
            if not (isinstance(shape, tuple) and len(shape) == 2):
                raise TypeError(f"shape must be a (n_users, n_items) tuple, got {shape!r}")
            shape = (check_int(shape[0], "shape[0]", low=1), check_int(shape[1], "shape[1]", low=1))
            if u.max() >= shape[0]:
                raise ValueError(f"users contains id {u.max()} >= shape[0] = {shape[0]}")
            if i.max() >= shape[1]:
                raise ValueError(f"items contains id {i.max()} >= shape[1] = {shape[1]}")
        return self.fit(sp.coo_matrix((v, (u, i)), shape=shape).tocsr())

    def _initial_factors(self, n_users: int, n_items: int, p: dict) -> Tuple[np.ndarray, np.ndarray]:
        # implicit: uniform in [0, 0.01) (a shared positive direction starts the
        # first sweep from item popularity); explicit: N(0, 0.1^2)
        implicit = p["feedback"] == "implicit"
        scale = 0.01 if implicit else 0.1
        nonneg = bool(self.nonnegative)
        # distinct streams for users and items from one seed
        Xf = _engine.init_factors(p["dtype"], n_users, p["k"], p["seed"], scale, nonneg, implicit, p["n_threads"])
        Yf = _engine.init_factors(p["dtype"], n_items, p["k"], (p["seed"] ^ 0x5DEECE66D) & (2**63 - 1), scale, nonneg, implicit, p["n_threads"])
        return Xf, Yf

    def _fit_csr(self, X: sp.csr_matrix, p: dict) -> "ALS":
        n_users, n_items = X.shape
        idt = _engine.index_dtype(X)
        XT = X.T.tocsr()
        XT.sort_indices()
        R = _engine.csr_parts(X, idt)
        RT = _engine.csr_parts(XT, idt)
        Xf, Yf = self._initial_factors(n_users, n_items, p)
        nt = p["n_threads"]
        nonneg = bool(self.nonnegative)
        implicit = p["feedback"] == "implicit"
        mu, ub, ib = self._start(X, p)
        n_per_item = np.diff(XT.indptr).astype(np.float64)
        YtY = _engine.gram(Yf, nt) if implicit else None
        for it in range(p["iterations"]):
            if implicit:
                # Each Gram matrix is formed once and shared by a sweep and the loss.
                _engine.half_sweep(R, n_items, Yf, None, Xf, None, mu, YtY, p, nonneg, nt)
                XtX = _engine.gram(Xf, nt)
                _engine.half_sweep(RT, n_users, Xf, None, Yf, None, mu, XtX, p, nonneg, nt)
                YtY = _engine.gram(Yf, nt)
            else:
                XtX = None
                _engine.half_sweep(R, n_items, Yf, ib, Xf, ub, mu, None, p, nonneg, nt)
                _engine.half_sweep(RT, n_users, Xf, ub, Yf, ib, mu, None, p, nonneg, nt)
            loss = self._loss(R, X.shape, X.nnz, Xf, Yf, ub, ib, mu, p, XtX, YtY, n_per_item)
            if self._record(it, loss, Xf, Yf, p):
                break
        return self._finish(X, Xf, Yf, mu, ub, ib, p)

    def _start(self, X: sp.csr_matrix, p: dict) -> Tuple[float, Optional[np.ndarray], Optional[np.ndarray]]:
        """Reset the history; the global mean and zero user/item biases when biases are fitted."""
        self.loss_history_: List[float] = []
        self.n_iter_ = 0
        if p["feedback"] == "implicit" or not self.biases:
            return 0.0, None, None
        return (float(np.mean(X.data, dtype=np.float64)), np.zeros(X.shape[0], dtype=p["dtype"]),
                np.zeros(X.shape[1], dtype=p["dtype"]))

    def _loss(self, R: tuple, shape: Tuple[int, int], nnz: int, Xf: np.ndarray, Yf: np.ndarray,
              ub: Optional[np.ndarray], ib: Optional[np.ndarray], mu: float, p: dict,
              XtX: Optional[np.ndarray], YtY: Optional[np.ndarray], n_per_item: np.ndarray) -> float:
        """The objective per observed entry after an iteration."""
        nt = p["n_threads"]
        if p["feedback"] == "implicit":
            return _engine.implicit_loss(*R, shape[1], Xf, Yf, p["alpha"], p["reg"], nt, XtX, YtY) / nnz
        sse, pen_users = _engine.explicit_loss(*R, shape[1], Xf, Yf, ub, ib, mu, p["reg"], nt)
        sq = np.einsum("ij,ij->i", Yf, Yf, dtype=np.float64)
        if ib is not None:
            sq += ib.astype(np.float64) ** 2
        return (sse + pen_users + p["reg"] * float(n_per_item @ sq)) / nnz

    def _record(self, it: int, loss: float, Xf: np.ndarray, Yf: np.ndarray, p: dict) -> bool:
        """Book-keeping after iteration ``it``; True asks to stop (callback)."""
        self.loss_history_.append(float(loss))
        self.n_iter_ = it + 1
        if not (np.isfinite(loss) and np.isfinite(Xf).all() and np.isfinite(Yf).all()):
            raise FloatingPointError(
                f"ALS diverged at iteration {it + 1} (loss {loss}); increase regularization or use float64")
        if self.verbose:
            print(f"ALS iteration {it + 1}/{p['iterations']}: loss {loss:.6g}")
        # The callback gets the number of completed iterations (1, 2, ...), as NMF's does.
        return self.callback is not None and callback_stops(self.callback(it + 1, float(loss)))

    def _finish(self, X: sp.csr_matrix, Xf: np.ndarray, Yf: np.ndarray, mu: float, ub: Optional[np.ndarray],
                ib: Optional[np.ndarray], p: dict) -> "ALS":
        self.user_factors_ = Xf
        self.item_factors_ = Yf
        self.global_mean_ = mu
        self.user_biases_ = ub
        self.item_biases_ = ib
        self._train = X
        self._seen: Optional[Tuple[np.ndarray, np.ndarray]] = None
        self._fit_params = p
        return self

    # ------------------------------------------------------------------ inference
    def _check_fitted(self) -> None:
        if not hasattr(self, "item_factors_"):
            raise ValueError("this ALS model is not fitted yet; call fit first")

    def _ids(self, ids: Any, name: str, n: int, unique: bool = False) -> Tuple[np.ndarray, bool]:
        scalar = isinstance(ids, numbers.Integral) and not isinstance(ids, bool)
        arr = check_ids(np.atleast_1d(ids) if scalar else ids, name, unique=unique)
        if arr.size and arr.max() >= n:
            raise ValueError(f"{name} contains id {arr.max()}, out of range [0, {n})")
        return arr, scalar

    def _threads(self, n_threads: Any) -> int:
        return check_n_threads(self.n_threads if n_threads is None else n_threads)

    def predict(self, users: Any, items: Any) -> np.ndarray:
        """Predicted scores for pairs ``(users[j], items[j])``."""
        self._check_fitted()
        u, _ = self._ids(users, "users", self.user_factors_.shape[0])
        i, _ = self._ids(items, "items", self.item_factors_.shape[0])
        if u.shape != i.shape:
            raise ValueError(f"users and items must have the same length, got {u.shape[0]} and {i.shape[0]}")
        out = np.einsum("ij,ij->i", self.user_factors_[u], self.item_factors_[i])
        if self.user_biases_ is not None:
            out = out + self.user_biases_[u] + self.item_biases_[i] + self.global_mean_
        return out.astype(self.item_factors_.dtype, copy=False)

    def _scoring_vectors(self, users: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        Q = self.user_factors_[users]
        Y = self.item_factors_
        if self.user_biases_ is not None:
            dt = Y.dtype
            Q = np.hstack([Q, np.ones((Q.shape[0], 1), dt),
                           (self.user_biases_[users] + self.global_mean_).astype(dt)[:, None]])
            Y = np.hstack([Y, self.item_biases_[:, None], np.ones((Y.shape[0], 1), dt)])
        return np.ascontiguousarray(Q), np.ascontiguousarray(Y)

    def recommend(self, users: Any, n: int = 10, filter_seen: bool = True, items: Any = None,
                  user_items: Any = None, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The ``n`` best items for each user: ``(ids, scores)``, best first.

        ``filter_seen`` skips the items in the user's row of the training
        matrix, or of ``user_items`` when given (one row per entry of
        ``users``). ``items`` restricts the ranking to those item ids. Places
        that cannot be filled hold id -1 and score -inf. A scalar user gives
        1-D arrays.
        """
        self._check_fitted()
        n_users, n_items = self.user_factors_.shape[0], self.item_factors_.shape[0]
        u, scalar = self._ids(users, "users", n_users)
        n = check_int(n, "n", low=1, high=2**31 - 1)
        if not isinstance(filter_seen, (bool, np.bool_)):
            raise TypeError(f"filter_seen must be a bool, got {filter_seen!r}")
        cand = None
        if items is not None:
            cand, _ = self._ids(items, "items", n_items, unique=True)
        n = min(n, n_items if cand is None else max(1, cand.shape[0]))
        seen_indptr = seen_indices = seen_rows = None
        if filter_seen:
            if user_items is not None:
                S = check_sparse(user_items, "user_items", formats=("csr",), min_rows=0)
                if S.shape != (u.shape[0], n_items):
                    raise ValueError(f"user_items must have shape ({u.shape[0]}, {n_items}) (one row per user), "
                                     f"got {S.shape}")
                seen_indptr = S.indptr.astype(np.int64)
                seen_indices = S.indices.astype(np.int64)
                seen_rows = np.arange(u.shape[0], dtype=np.int64)
            else:
                if self._seen is None:
                    self._seen = (self._train.indptr.astype(np.int64), self._train.indices.astype(np.int64))
                seen_indptr, seen_indices = self._seen
                seen_rows = u
        elif user_items is not None:
            raise ValueError("user_items is only used with filter_seen=True")
        Q, Y = self._scoring_vectors(u)
        if cand is not None and cand.shape[0] == 0:
            ids = np.full((u.shape[0], n), -1, dtype=np.int64)
            scores = np.full((u.shape[0], n), -np.inf, dtype=Y.dtype)
        else:
            ids, scores = _engine.topk_dot(Q, Y, n, seen_indptr, seen_indices, seen_rows, cand,
                                             self._threads(n_threads))
        if scalar:
            return ids[0], scores[0]
        return ids, scores

    def _similar(self, F: np.ndarray, ids: Any, name: str, n: int, n_threads: Any) -> Tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        q, scalar = self._ids(ids, name, F.shape[0])
        n = min(check_int(n, "n", low=1, high=2**31 - 1), F.shape[0])
        norms = np.linalg.norm(F, axis=1)
        Fn = np.ascontiguousarray(F / np.where(norms > 0, norms, 1)[:, None], dtype=F.dtype)
        ids_out, scores = _engine.topk_dot(np.ascontiguousarray(Fn[q]), Fn, n, None, None, None, None,
                                             self._threads(n_threads))
        return (ids_out[0], scores[0]) if scalar else (ids_out, scores)

    def similar_items(self, items: Any, n: int = 10, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The ``n`` items most similar to each given item by cosine of their
        factors: ``(ids, cosines)``, the item itself first. Items with zero
        factors have cosine 0 to everything."""
        return self._similar(self.item_factors_, items, "items", n, n_threads)

    def similar_users(self, users: Any, n: int = 10, n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
        """The ``n`` users most similar to each given user (cosine of factors)."""
        return self._similar(self.user_factors_, users, "users", n, n_threads)

    def recalculate_user(self, user_items_row: Any) -> Union[np.ndarray, Tuple[np.ndarray, np.ndarray]]:
        """Factors of new or changed user(s) from their interactions, with the
        item factors fixed (an exact row solve, no refit).

        ``user_items_row``: a scipy.sparse matrix with one row per user (or a
        1-D dense array of length n_items for one user). Returns an array
        (rows, factors), or (factors,) for a 1-D input; with explicit biases,
        ``(factors, user_biases)``.
        """
        self._check_fitted()
        p = self._fit_params
        n_items = self.item_factors_.shape[0]
        one = False
        if not sp.issparse(user_items_row):
            arr = check_array(user_items_row, "user_items_row", ndim=1, dtype=p["dtype"], min_rows=0)
            if arr.shape[0] != n_items:
                raise ValueError(f"user_items_row must have {n_items} entries (one per item), got {arr.shape[0]}")
            user_items_row = sp.csr_matrix(arr[None, :])
            one = True
        S = check_sparse(user_items_row, "user_items_row", formats=("csr",), dtype=p["dtype"],
                         nonnegative=p["feedback"] == "implicit")
        if S.shape[1] != n_items:
            raise ValueError(f"user_items_row must have {n_items} columns, got {S.shape[1]}")
        if p["feedback"] == "implicit":
            S = S.copy()
            S.eliminate_zeros()
        S.sort_indices()
        parts = _engine.csr_parts(S)
        Xf = np.zeros((S.shape[0], p["k"]), dtype=p["dtype"])
        common = dict(solver="cholesky", cg_steps=p["cg_steps"], regularization=p["reg"],
                      nonnegative=bool(self.nonnegative), n_threads=p["n_threads"])
        bias = None
        if p["feedback"] == "implicit":
            _engine.implicit_half_sweep(*parts, n_items, self.item_factors_, Xf, alpha=p["alpha"], **common)
        else:
            if self.user_biases_ is not None:
                bias = np.zeros(S.shape[0], dtype=p["dtype"])
            _engine.explicit_half_sweep(*parts, n_items, self.item_factors_, self.item_biases_, Xf, bias,
                                         self.global_mean_, **common)
        if one:
            Xf = Xf[0]
            bias = None if bias is None else bias[0]
        return Xf if bias is None else (Xf, bias)

