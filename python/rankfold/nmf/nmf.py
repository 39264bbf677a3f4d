"""Nonnegative matrix factorization: X ~ W H with W, H >= 0.

``NMF`` is a drop-in for ``sklearn.decomposition.NMF`` (same parameters where
they exist, same attributes, same penalty scaling) with a C++ core:

* ``solver="hals"`` (default): accelerated HALS. Each outer iteration forms
  ``X H^T`` and ``W^T X`` once (the only passes over X) and then runs several
  cheap coordinate sweeps over W and H with the k x k Gram matrices
  (Gillis & Glineur 2012). With ``inner_sweeps=1`` the iterates are those of
  textbook HALS (scikit-learn's ``cd`` without shuffling).
* ``solver="mu"``: Lee & Seung multiplicative updates; the only solver for
  ``beta_loss`` other than "frobenius" ("kullback-leibler", "itakura-saito"
  or any float beta; Fevotte & Idier's MM exponent for beta outside [1, 2]),
  on dense, weighted and sparse X (the KL update needs W H only at the
  stored entries; other betas form it a block of rows at a time).
* ``solver="anls"``: alternating nonnegative least squares, every half-step
  solved exactly row by row (NNLS by block principal pivoting, Kim & Park
  2011, rows sharing a passive set sharing one factorization); ``transform``
  uses the same solver.

The objective is scikit-learn's::

    0.5 ||X - W H||_F^2
      + alpha_W * l1_ratio * n_features * ||W||_1
      + 0.5 * alpha_W * (1 - l1_ratio) * n_features * ||W||_F^2
      + alpha_H * l1_ratio * n_samples * ||H||_1
      + 0.5 * alpha_H * (1 - l1_ratio) * n_samples * ||H||_F^2

For the beta losses the objective is the beta-divergence D_beta(X | W H)
(scikit-learn's ``_beta_divergence``) plus the same penalties, and
``reconstruction_err_`` is ``sqrt(2 * D_beta)``. For beta <= 0, X may not
contain zeros (a ``ValueError``, as in scikit-learn).

``tol`` is a bound on the relative decrease of that objective between two
consecutive iterations. ``loss_history_`` holds the objective after every
iteration. Dense input may be float32 or float64 (kept as is, C or F order);
``scipy.sparse`` CSR/CSC input is used in place, never densified.

Missing values (weighted NMF, dense X): the loss runs over observed entries
only, ``0.5 sum_ij M_ij (X_ij - (WH)_ij)^2``. The rule for NaN: by default a
NaN in X is an error (``ValueError``); with ``missing_values=np.nan`` (or
``"nan"``) NaN entries are missing. ``fit(X, mask=M)`` takes nonnegative
weights or a boolean mask (True/1 = observed) of X's shape; entries with zero
weight may hold NaN. HALS, MU and ANLS all support it; NNDSVD inits do not
(they need a complete X), so the default init becomes "random". The weighted
solvers work row by row on X, the weights and their transposes (four dense
m x n arrays) and cost about 2-3 times an unweighted iteration.
"""

from __future__ import annotations

import copy
import numbers
from typing import Any, Callable, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from .._base import (
    ConvergenceWarning,
    NotFittedError,
    _Base,
    _NamesMixin,
    _Transformer,
    check_feature_names,
    set_feature_names,
)
from .._operand import check_matrix
from .._validation import (
    callback_stops,
    check_array,
    check_choice,
    check_float,
    check_int,
    check_n_threads,
    check_random_state,
    warn,
)
from . import _engine, _research
from ._init import initialize, scale_exponent, scaled

__all__ = ["NMF"]

_SOLVERS = ("hals", "mu", "anls")
_INITS = ("random", "nndsvd", "nndsvda", "nndsvdar", "custom")
_LOSSES = {"frobenius": 2.0, "kullback-leibler": 1.0, "itakura-saito": 0.0}


# ---------------------------------------------------------------- input handling

class NMF(_NamesMixin, _Transformer, _Base):
    """Nonnegative matrix factorization ``X ~ W H`` (scikit-learn compatible).

    Parameters
    ----------
    n_components : int or None
        Rank k. None: ``n_features`` (or the width of custom W/H).
    init : {"random", "nndsvd", "nndsvda", "nndsvdar", "custom"} or None
        None: "nndsvda" when ``n_components <= min(n_samples, n_features)``,
        else "random". The NNDSVD variants use a randomized SVD.
        "custom" takes ``W`` and ``H`` passed to ``fit``/``fit_transform``.
    solver : {"hals", "mu", "anls"}
    beta_loss : {"frobenius", "kullback-leibler", "itakura-saito"} or float
        The beta-divergence minimised (2, 1, 0 are the same as the names).
        Other losses than "frobenius" need ``solver="mu"``; for beta <= 0 X
        may not contain zeros. ``reconstruction_err_`` is then
        ``sqrt(2 * divergence)`` as in scikit-learn.
    tol : float
        Stop when the objective decreases by less than ``tol`` (relative)
        between two iterations; 0 runs all ``max_iter`` iterations.
    max_iter : int
    random_state : int, numpy.random.Generator or None
    alpha_W, alpha_H, l1_ratio : elastic-net penalties, scikit-learn's meaning
        (scaled by n_features for W and n_samples for H); ``alpha_H="same"``
        uses ``alpha_W``.
    verbose : int
        Print the objective every iteration when > 0.
    n_threads : int or None
        Threads of the C++ kernels (None: all cores, OMP_NUM_THREADS honoured).
    callback : callable or None
        ``callback(iteration, loss)`` after every iteration. A false return
        value (``False``, ``0``, ``numpy.False_``) stops the fit; ``None`` or a
        true value continues; an exception it raises propagates unchanged.
    missing_values : None, np.nan or "nan"
        None: NaN in X is an error. np.nan: NaN entries are missing values and
        the loss runs over the observed entries only (dense X).
    inner_sweeps : "auto" or int
        HALS coordinate sweeps per half-iteration. "auto" picks the count
        from the cost of a pass over X relative to a sweep and stops each row
        early once its updates become small; an int runs exactly that many.
    extrapolate : "auto" or bool
        Solve each half-step against the other factor's extrapolated point
        ``max(0, Y + beta (Y - Y_prev))`` with an adaptive ``beta`` and
        restarts (Ang & Gillis 2019): the same cost per iteration, often
        several times fewer iterations to a given error (most on
        ill-conditioned data). The best pair seen is returned, and
        ``loss_history_`` then holds the objective of the best pair so far;
        without penalties the pairs come back balanced (``||w_j|| = ||h_j||``).
        "auto": on for "hals" and "anls" without penalties on complete data;
        off with ``alpha_W``/``alpha_H`` (a penalty on one factor only lets the
        scale drift between W and H, and extrapolation follows the drift:
        runs from different starts then disagree more), off for "mu" (a
        multiplicative update cannot leave the zeros that the projection
        creates; True raises), with missing values and with the graph model
        (True applies it there: one fit loop serves every model), and with
        the correntropy and sum-to-one models (True raises: measured, the
        re-weighting and the projected-gradient simplex step stall under
        extrapolation). False gives the plain iterates of
        textbook HALS / ANLS.
    graph_reg : float >= 0
        Graph (Laplacian) regularization of W, GNMF / structured sparse NMF:
        adds ``0.5 * graph_reg * n_features * tr(W^T L W)``
        ``= graph_reg * n_features / 4 * sum_ij S_ij |w_i - w_j|^2`` to the
        objective; scaled by n_features like ``alpha_W``, so the two compare
        directly. With ``alpha_W`` and ``l1_ratio > 0`` this is SS-NMF
        (graph + lasso on the abundances). Solvers "hals" and "mu".
    graph : None, "knn" or (n_samples, n_samples) array / sparse matrix
        The sample affinity S (nonnegative; symmetrised as (S + S^T)/2, its
        diagonal ignored). "knn": a symmetric k-NN graph over the rows of X
        by exact search (``rankfold.knn``), dense X only.
    graph_n_neighbors : int
        Neighbours per sample for ``graph="knn"``.
    graph_weights : {"heat", "binary"}
        k-NN edge weights: ``exp(-|x_i - x_j|^2 / t)`` with t the mean
        squared distance over the k-NN pairs, or 1.
    robust : None or "correntropy"
        Correntropy loss fitted by half-quadratic optimisation (iteratively
        re-weighted NMF): bands (or entries) with large residuals get weights
        near 0. ``band_weights_`` and ``sigma_`` hold the final weights and
        kernel width.
    sigma : float > 0 or None
        Kernel width (in units of a band's residual norm, or of an entry's
        residual with ``robust_weights="entry"``). None: from the current
        residuals at every iteration, ``sigma^2 = mean(r^2) / 2``.
    robust_weights : {"band", "entry"}
        One weight per feature (band, the paper's model; dense or sparse X)
        or per entry (dense X).
    abundance_sum_to_one : bool
        Every row of W on the probability simplex, held exactly (projected
        gradient W half-step with an exact simplex projection; see
        ``rankfold.nmf._research``). Incompatible with an L1 penalty on W.
        ``transform`` solves new rows on the simplex too.

    Notes
    -----
    Ctrl-C stops a fit within about a second (KeyboardInterrupt;
    ``components_`` is set only when a fit completes). With ``n_components`` above the rank of X, a
    component can collapse: its term ``w_j h_j`` shrinks below ``eps^2 ||X||_F``
    (eps of X's dtype). It is then set to exactly zero in both factors and
    stays zero (a zero row of ``components_``); the fit and
    ``reconstruction_err_`` stay finite and correct. A fit whose arithmetic
    overflows (X near the top of its dtype's range) raises
    ``FloatingPointError`` naming the solver instead of returning non-finite
    factors.

    Attributes
    ----------
    components_ : (n_components, n_features) H.
    n_components_, n_iter_, reconstruction_err_ (``||X - W H||_F``),
    loss_history_ (objective after each iteration), n_features_in_,
    feature_names_in_ (fitted on a data frame with string column names; transform then
    checks the names: different names raise ValueError, names on one side only warn).
    graph_ (the affinity used, with graph_reg > 0), band_weights_ and sigma_
    (robust="correntropy"; entry_weights_ with robust_weights="entry").
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
        callback: Optional[Callable[[int, float], Any]] = None,
        inner_sweeps: Any = "auto",
        missing_values: Any = None,
        extrapolate: Any = "auto",
        graph_reg: float = 0.0,
        graph: Any = None,
        graph_n_neighbors: int = 10,
        graph_weights: str = "heat",
        robust: Optional[str] = None,
        sigma: Optional[float] = None,
        robust_weights: str = "band",
        abundance_sum_to_one: bool = False,
    ) -> None:
        self.n_components = n_components
        self.init = init
        self.solver = solver
        self.beta_loss = beta_loss
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.n_threads = n_threads
        self.callback = callback
        self.inner_sweeps = inner_sweeps
        self.missing_values = missing_values
        self.extrapolate = extrapolate
        self.graph_reg = graph_reg
        self.graph = graph
        self.graph_n_neighbors = graph_n_neighbors
        self.graph_weights = graph_weights
        self.robust = robust
        self.sigma = sigma
        self.robust_weights = robust_weights
        self.abundance_sum_to_one = abundance_sum_to_one

    # -- scikit-learn tags
    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        tags.input_tags.allow_nan = self._nan_is_missing()
        return tags

    def _nan_is_missing(self) -> bool:
        mv = self.missing_values
        if mv is None:
            return False
        if isinstance(mv, str) and mv == "nan":
            return True
        if isinstance(mv, float) and np.isnan(mv):
            return True
        raise ValueError(f"missing_values must be None, np.nan or 'nan'; got {mv!r}")

    def _more_tags(self) -> dict:  # scikit-learn < 1.6
        return {"requires_positive_X": True, "preserves_dtype": [np.float64, np.float32]}

    # -- parameter checks
    def _penalties(self, m: int, n: int) -> Tuple[float, float, float, float]:
        alpha_W = check_float(self.alpha_W, "alpha_W", low=0.0)
        if isinstance(self.alpha_H, str):
            if self.alpha_H != "same":
                raise ValueError(f"alpha_H must be a float >= 0 or 'same', got {self.alpha_H!r}")
            alpha_H = alpha_W
        else:
            alpha_H = check_float(self.alpha_H, "alpha_H", low=0.0)
        l1_ratio = check_float(self.l1_ratio, "l1_ratio", low=0.0, high=1.0)
        return (n * alpha_W * l1_ratio, n * alpha_W * (1 - l1_ratio),
                m * alpha_H * l1_ratio, m * alpha_H * (1 - l1_ratio))

    def _check_params(self) -> None:
        check_choice(self.solver, "solver", _SOLVERS)
        beta = self._beta()
        if beta != 2.0 and self.solver != "mu":
            raise ValueError(
                f"beta_loss={self.beta_loss!r} needs solver='mu': solver={self.solver!r} minimises the "
                f"Frobenius loss only (as scikit-learn's 'cd')")
        if self.init is not None:
            check_choice(self.init, "init", _INITS)
        check_int(self.max_iter, "max_iter", low=0)
        check_float(self.tol, "tol", low=0.0)
        check_int(self.verbose, "verbose", low=0)
        if self.callback is not None and not callable(self.callback):
            raise TypeError(f"callback must be callable or None, got {type(self.callback).__name__}")
        self._nan_is_missing()
        if not (isinstance(self.inner_sweeps, str) and self.inner_sweeps == "auto"):
            check_int(self.inner_sweeps, "inner_sweeps", low=1, high=10000)
        self._extrapolate()
        _research.check_params(self)
        if beta != 2.0 and _research.active(self):
            raise ValueError(f"graph_reg, robust and abundance_sum_to_one work with beta_loss='frobenius' only; "
                             f"got beta_loss={self.beta_loss!r}")

    def _extrapolate(self, plain: bool = True) -> bool:
        """Whether the fit extrapolates; ``plain``: complete data without research terms ("auto" is on only there)."""
        ex = self.extrapolate
        if isinstance(ex, str):
            if ex != "auto":
                raise ValueError(f"extrapolate must be 'auto', True or False; got {ex!r}")
            penalised = bool(self.alpha_W) or (self.alpha_H != "same" and bool(self.alpha_H))
            return self.solver != "mu" and not penalised and plain
        if not isinstance(ex, (bool, np.bool_)):
            raise TypeError(f"extrapolate must be 'auto', True or False; got {type(ex).__name__}")
        if ex and self.solver == "mu":
            raise ValueError("extrapolate=True does not work with solver='mu'; use 'hals' or 'anls'")
        if ex and self.robust is not None:
            # measured: re-weighting every iteration moves the objective under the extrapolated
            # points (8% above the plain loop after 60 iterations on a test problem, sigma fixed)
            raise ValueError("extrapolate=True does not work with robust='correntropy' (its weights change "
                             "every iteration); use extrapolate=False or 'auto'")
        if ex and self.abundance_sum_to_one:
            # measured: the inexact projected-gradient W step on the simplex stalls under extrapolation
            # (twice the objective of the plain loop after 60 iterations on a test problem)
            raise ValueError("extrapolate=True does not work with abundance_sum_to_one=True (the simplex W step "
                             "stalls under extrapolation); use extrapolate=False or 'auto'")
        return bool(ex)

    def _beta(self) -> float:
        """beta_loss as a number: 'frobenius' 2, 'kullback-leibler' 1, 'itakura-saito' 0, or a float."""
        loss = self.beta_loss
        if isinstance(loss, str) and loss in _LOSSES:
            return _LOSSES[loss]
        if isinstance(loss, numbers.Real) and not isinstance(loss, bool) and np.isfinite(loss):
            return float(loss)
        raise ValueError(
            f"beta_loss must be 'frobenius', 'kullback-leibler', 'itakura-saito' or a finite float; got {loss!r}")

    # -- fitting
    def fit(self, X: Any, y: Any = None, W: Any = None, H: Any = None, mask: Any = None) -> "NMF":
        """Learn W and H from X; returns self. ``mask``: weights of the entries (see module doc)."""
        self.fit_transform(X, y, W=W, H=H, mask=mask)
        return self

    def fit_transform(self, X: Any, y: Any = None, W: Any = None, H: Any = None, mask: Any = None) -> np.ndarray:
        """Learn W and H from X and return W (n_samples, n_components)."""
        self._check_params()
        nan_missing = self._nan_is_missing()
        set_feature_names(self, X)
        X = check_matrix(X, allow_nan=nan_missing or mask is not None)
        e = scale_exponent(X)
        if e != 0:
            return self._fit_scaled(X, e, W, H, mask)
        return self._fit_checked(X, W, H, mask)

    # Entries beyond 2**+-_SAFE_EXPONENT (1.5e-5 to 6.6e4) are fitted on X scaled
    # by a power of two (exact in floating point), with every scale-dependent
    # parameter mapped so that the problem solved is the same one: near the ends
    # of the float range (1e30 in float32) squares overflow or underflow, and the
    # solvers' absolute safeguards (the MU denominators' epsilon) stop being small.
    _loss_scale = 1.0

    def _scaled_copy(self, ea: int, eb: int, es: int, fit: bool = True) -> "NMF":
        """A copy solving the problem on X 2^-es, W 2^-ea, H 2^-eb (ea + eb = es when fitting)."""
        beta = self._beta()
        log_obj = es * beta  # D_beta(X | WH) = 2^log_obj D_beta(X' | W'H')
        if abs(log_obj) > 1000:  # the objective itself is beyond the float64 range
            raise ValueError(
                f"X's largest entry is about 2^{es}: the objective of beta_loss={self.beta_loss!r} at that scale "
                f"is beyond the float64 range; divide X by its largest entry")
        obj = float(np.ldexp(1.0, int(round(log_obj)))) if float(log_obj).is_integer() else 2.0 ** log_obj
        sub = copy.copy(self)
        sub.__dict__ = {k: v for k, v in self.__dict__.items() if not k.endswith("_")}
        sub._loss_scale = self._loss_scale * obj
        alpha_W = check_float(self.alpha_W, "alpha_W", low=0.0)
        alpha_H = alpha_W if isinstance(self.alpha_H, str) else check_float(self.alpha_H, "alpha_H", low=0.0)
        r = check_float(self.l1_ratio, "l1_ratio", low=0.0, high=1.0)

        def mapped(alpha: float, e: int) -> Tuple[float, float]:
            # alpha (r |F|_1 + (1 - r)/2 |F|^2) at F = 2^e F', divided by obj
            f1, f2 = 2.0 ** (e - log_obj), 2.0 ** (2 * e - log_obj)
            a1, a2 = alpha * r * f1, alpha * (1 - r) * f2
            total = a1 + a2
            return total, (a1 / total if total > 0 else r)

        sub.alpha_W, rW = mapped(alpha_W, ea)
        aH, rH = mapped(alpha_H, eb)
        if fit and alpha_W > 0 and alpha_H > 0 and 0 < r < 1 and not np.isclose(rW, rH, rtol=1e-12, atol=0):
            raise ValueError(
                "X's entries are too large or too small for this model with a mixed l1_ratio and "
                "abundance_sum_to_one (its scale cannot be moved into H alone): divide X by its largest entry")
        sub.l1_ratio = rW if (alpha_W > 0 or not fit) else rH
        sub.alpha_H = "same" if isinstance(self.alpha_H, str) else aH
        if self.graph_reg:
            sub.graph_reg = float(self.graph_reg) * 2.0 ** (2 * ea - log_obj)
        if self.sigma is not None:
            sub.sigma = float(self.sigma) * 2.0 ** -es
        return sub

    def _fit_scaled(self, X: Any, e: int, W: Any, H: Any, mask: Any) -> np.ndarray:
        # W and H share the scale, except on the simplex, where W's scale is fixed.
        es = e if self.abundance_sum_to_one else 2 * (e // 2)
        ea = 0 if self.abundance_sum_to_one else es // 2
        eb = es - ea
        sub = self._scaled_copy(ea, eb, es)
        Xs = scaled(X, -es)
        Ws = None if W is None else scaled(check_matrix(W, "W"), -ea)
        Hs = None if H is None else scaled(check_matrix(H, "H"), -eb)
        Wout = sub._fit_checked(Xs, Ws, Hs, mask)
        fitted = {k: v for k, v in sub.__dict__.items() if k.endswith("_") and not k.startswith("_")}
        self.__dict__.update(fitted)
        self.components_ = scaled(self.components_, eb)
        self.loss_history_ = self.loss_history_ * sub._loss_scale
        self.reconstruction_err_ = float(self.reconstruction_err_) * float(np.sqrt(sub._loss_scale))
        if hasattr(self, "sigma_"):
            self.sigma_ = float(self.sigma_) * 2.0 ** es
        return scaled(Wout, ea)

    def _fit_checked(self, X: Any, W: Any, H: Any, mask: Any) -> np.ndarray:
        nan_missing = self._nan_is_missing()
        m, n = X.shape
        weights = self._weights(X, mask, nan_missing)
        threads = check_n_threads(self.n_threads)
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
            init = "nndsvda" if k <= min(m, n) and weights is None else "random"
        if weights is not None and init in ("nndsvd", "nndsvda", "nndsvdar"):
            raise ValueError(f"init={init!r} needs a complete X; with missing values use init='random' or 'custom'")
        if init in ("nndsvd", "nndsvda", "nndsvdar") and k > min(m, n):
            raise ValueError(
                f"init={init!r} needs n_components <= min(n_samples, n_features) = {min(m, n)}, got {k}; "
                f"use init='random'"
            )
        return self._fit_engine(X, weights, init, k, W, H, threads, seed)

    def _fit_engine(self, X: Any, weights: Optional[np.ndarray], init: str, k: int, W: Any, H: Any,
                    threads: int, seed: int) -> np.ndarray:
        """One call of the C++ fit loop for every model: the problem is described, not driven."""
        m, n = X.shape
        beta = self._beta()
        terms = _research.terms(self, X, weights, threads)  # graph, simplex, correntropy
        if weights is not None:
            # missing entries (weight 0) hold 0 in the X the engine sees
            X = np.ascontiguousarray(np.where(weights > 0, np.nan_to_num(X, nan=0.0), 0), dtype=X.dtype)
            observed = weights > 0
            total, count = float((weights * X).sum()), float(weights.sum())
            if beta != 2.0:
                total, count = float(X[observed].sum(dtype=np.float64)), float(observed.sum())
            low = float(X[observed].min()) if beta <= 0 else 1.0
        else:
            if terms.get("robust") == "entry":
                X = np.ascontiguousarray(X)
            total, sqnorm = _engine.sums(X, threads)
            count = float(m) * n
            if beta <= 0:
                low = float(X.min()) if not sp.issparse(X) else (0.0 if X.nnz < m * n else float(X.data.min()))
            if sqnorm == 0.0:
                total = 0.0
        if total == 0.0:
            if weights is not None and beta == 2.0:
                raise ValueError("every observed entry of X is zero; there is nothing to factorize")
            raise ValueError("X is all zeros; there is nothing to factorize")
        if beta <= 0 and low == 0.0:
            raise ValueError(
                "When beta_loss <= 0 (e.g. 'itakura-saito') and X contains zeros, the multiplicative updates "
                "divide by zero; add a small value to X or use a positive beta_loss (e.g. 'kullback-leibler')")
        if init == "custom":
            Wf, Ht = self._custom_start(X, W, H, k)
        else:  # with missing values fit_transform allows only "random" (the NNDSVDs need a complete X)
            Wf, Ht = initialize(X, k, init, seed, threads, total / count)
        l1W, l2W, l1H, l2H = self._penalties(m, n)
        sweeps = 0 if self.inner_sweeps == "auto" else int(self.inner_sweeps)
        result = _engine.fit(
            X, Wf, Ht, self.solver, int(self.max_iter), float(self.tol), l1W, l2W, l1H, l2H,
            sweeps, 0.1, True, True, threads, self._hook(), self._extrapolate(weights is None and not terms),
            beta=beta, mask=weights, **terms)
        self._finish(result["n_iter"], result["converged"], result["losses"], Wf, Ht, n)
        _research.set_attributes(self, result)
        if beta != 2.0:
            div = _engine.beta_divergence(X, weights, Wf, Ht, beta, threads)
            self.reconstruction_err_ = float(np.sqrt(2.0 * max(div, 0.0)))
        elif weights is not None:
            R = X.astype(np.float64) - Wf.astype(np.float64) @ Ht.T.astype(np.float64)
            self.reconstruction_err_ = float(np.sqrt(np.sum(weights * R * R)))
        else:
            self.reconstruction_err_ = float(np.sqrt(max(_engine.residual(X, Wf, Ht, threads), 0.0)))
        return Wf

    def _weights(self, X: Any, mask: Any, nan_missing: bool) -> Optional[np.ndarray]:
        """Entry weights (C-ordered, X's dtype) or None for a complete, unweighted X."""
        if mask is None and not nan_missing:
            return None
        if sp.issparse(X):
            if mask is not None:
                raise ValueError("mask= needs a dense X in this version; pass X as a dense array")
            return None  # sparse X has no NaN (validated): nothing is missing
        nan = np.isnan(X)
        if mask is None:
            if not nan.any():
                return None
            weights = np.ascontiguousarray(~nan, dtype=X.dtype)
        else:
            if sp.issparse(mask):
                mask = mask.toarray()
            Mw = np.asarray(mask)
            if Mw.dtype == bool:
                Mw = Mw.astype(X.dtype)
            Mw = check_array(Mw, "mask", dtype=X.dtype, nonnegative=True)
            if Mw.shape != X.shape:
                raise ValueError(f"mask must have the shape of X {X.shape}, got {Mw.shape}")
            if nan.any():
                if not nan_missing and (Mw[nan] != 0).any():
                    raise ValueError(
                        "X contains NaN where mask gives a nonzero weight; set missing_values=np.nan "
                        "or give those entries weight 0")
                Mw = np.where(nan, 0, Mw).astype(X.dtype)
            weights = np.ascontiguousarray(Mw)
        if not (weights > 0).any():
            raise ValueError("every entry of X is missing (all weights are 0)")
        return weights

    def _custom_start(self, X: Any, W: Any, H: Any, k: int) -> Tuple[np.ndarray, np.ndarray]:
        m, n = X.shape
        W0 = check_array(W, "W", dtype=X.dtype, nonnegative=True, copy=True)
        H0 = check_array(H, "H", dtype=X.dtype, nonnegative=True)
        if W0.shape != (m, k):
            raise ValueError(f"W must have shape (n_samples, n_components) = {(m, k)}, got {W0.shape}")
        if H0.shape != (k, n):
            raise ValueError(f"H must have shape (n_components, n_features) = {(k, n)}, got {H0.shape}")
        return W0, np.ascontiguousarray(H0.T)

    def _hook(self) -> Optional[Callable[[int, float], bool]]:
        if not (self.verbose or self.callback is not None):
            return None
        verbose, callback, solver = self.verbose, self.callback, self.solver
        loss_scale = self._loss_scale  # the objective of the unscaled problem (see _fit_scaled)

        def hook(it: int, loss: float) -> bool:
            loss = loss * loss_scale
            if verbose:
                print(f"NMF[{solver}] iteration {it:4d}  objective {loss:.6g}")
            if callback is not None:
                if callback_stops(callback(it, loss)):
                    return False
            return True

        return hook

    def _finish(self, n_iter: int, converged: bool, losses: list, Wf: np.ndarray, Ht: np.ndarray, n: int) -> None:
        # The boundary guard (the C++ loops have their own): a fit given finite
        # input never hands back a non-finite factor; the estimator stays unfitted.
        # (Wf is None when W stays distributed in rankfold.dask: only H and the losses are checked here)
        if not ((Wf is None or np.isfinite(Wf).all()) and np.isfinite(Ht).all()
                and np.isfinite(np.asarray(losses, dtype=np.float64)).all()):
            raise FloatingPointError(
                f"NMF (solver={self.solver!r}): the fit produced non-finite values (an overflow: rescale X, "
                f"e.g. divide it by its largest entry)")
        stopped_early = n_iter < self.max_iter and not converged  # by the callback
        if self.tol > 0 and not converged and not stopped_early and self.max_iter > 0:
            warn(
                f"NMF stopped at max_iter={self.max_iter} before the objective settled to tol={self.tol}; "
                f"increase max_iter or tol", ConvergenceWarning)
        self.components_ = np.ascontiguousarray(Ht.T)
        self.n_components_ = Ht.shape[1]
        self.n_iter_ = int(n_iter)
        self.loss_history_ = np.asarray(losses, dtype=np.float64)
        self.n_features_in_ = n

    # -- using a fitted model
    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet; call fit before using it")

    def transform(self, X: Any) -> np.ndarray:
        """W for new data with H fixed: each row solved exactly (nonnegative least squares).

        With ``missing_values=np.nan``, NaN entries of X are left out of each row's problem.
        """
        self._check_fitted()
        nan_missing = self._nan_is_missing()
        check_feature_names(self, X)
        X = check_matrix(X, dtype=self.components_.dtype, allow_nan=nan_missing)
        m, n = X.shape
        if n != self.n_features_in_:
            raise ValueError(
                f"X has {n} features, but {type(self).__name__} is expecting {self.n_features_in_} "
                f"features as input")
        ex, eh = scale_exponent(X), scale_exponent(self.components_)
        if ex != 0 or eh != 0:
            # X 2^-ex against H 2^-eh; W = W' 2^(ex - eh); W on the simplex keeps its scale
            if self.abundance_sum_to_one:
                eh = ex
            sub = self._scaled_copy(ex - eh, eh, ex, fit=False)
            sub.__dict__.update({k: v for k, v in self.__dict__.items() if k.endswith("_")})
            sub.components_ = scaled(self.components_, -eh)
            return scaled(sub.transform(scaled(X, -ex)), ex - eh)
        threads = check_n_threads(self.n_threads)
        if _research.needs_transform(self):
            return _research.transform(self, X, threads)
        l1W, l2W, _, _ = self._penalties(m, n)
        Ht = np.ascontiguousarray(self.components_.T)
        if self._beta() != 2.0:
            return self._transform_beta(X, Ht, l1W, l2W, threads)
        W = np.zeros((m, self.components_.shape[0]), dtype=X.dtype)
        if nan_missing and not sp.issparse(X) and np.isnan(X).any():
            observed = ~np.isnan(X)
            X0 = np.ascontiguousarray(np.where(observed, X, 0), dtype=X.dtype)
            _engine.masked_solve_rows(X0, np.ascontiguousarray(observed, dtype=X.dtype), W, Ht, l1W, l2W, threads)
            return W
        _engine.solve_rows(X, W, Ht, l1W, l2W, threads)
        return W

    def _transform_beta(self, X: Any, Ht: np.ndarray, l1W: float, l2W: float, threads: int) -> np.ndarray:
        """W for new data with H fixed by MU on the beta-divergence (scikit-learn's transform for 'mu')."""
        m, n = X.shape
        k = Ht.shape[1]
        mask = None
        if not sp.issparse(X) and np.isnan(X).any():
            mask = np.ascontiguousarray(~np.isnan(X), dtype=X.dtype)
            X = np.ascontiguousarray(np.where(mask > 0, X, 0), dtype=X.dtype)
            mean = float(X.sum(dtype=np.float64)) / max(float(mask.sum()), 1.0)
        else:
            mean = _engine.sums(X, threads)[0] / (m * n)
        if self._beta() <= 0:
            observed = X.data if sp.issparse(X) else (X[mask > 0] if mask is not None else X)
            if observed.size == 0 or observed.min() == 0 or (sp.issparse(X) and X.nnz < m * n):
                raise ValueError("When beta_loss <= 0 and X contains zeros, the multiplicative updates divide by "
                                 "zero; add a small value to X or use a positive beta_loss")
        W = np.full((m, k), np.sqrt(max(mean, 0.0) / k), dtype=X.dtype)
        Hc = Ht.copy()
        _engine.fit(X, W, Hc, "mu", int(self.max_iter), float(self.tol), l1W, l2W, 0.0, 0.0, 0, 0.1,
                    True, False, threads, None, False, beta=self._beta(), mask=mask)
        return W

    def inverse_transform(self, X: Any = None, *, Xt: Any = None) -> np.ndarray:
        """W H: data back in feature space."""
        self._check_fitted()
        if X is None:
            X = Xt
        W = check_array(X, "X", dtype=self.components_.dtype, n_cols=self.components_.shape[0])
        return W @ self.components_

    @property
    def _n_features_out(self) -> int:
        return int(self.components_.shape[0])
