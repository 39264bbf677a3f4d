"""Automatic rank selection for NMF by the stability of its solutions (NMFk).

NMFk (Alexandrov, Vesselinov et al., Los Alamos) fits NMF at every candidate
rank k on many randomly perturbed copies of the data, aligns the factors of
those runs, and asks two questions per k:

* are the solutions stable? The k components of each run are matched to k
  clusters, one component of every run per cluster (an assignment problem per
  run), and the clusters are scored by their cosine silhouettes. A rank above
  the true one splits or mixes components differently from run to run, so its
  minimum silhouette collapses.
* does the fit still improve? The per-run relative errors at k are compared
  with those of the previously accepted rank by a one-sided Mann-Whitney rank
  test.

The chosen rank is the largest k whose minimum silhouette reaches
``silhouette_threshold`` and whose errors are significantly lower than those
of the previous accepted k (the first stable k is accepted without a test;
unstable ks in between are skipped). If no k is stable, NMFk warns and takes
the k with the highest minimum silhouette.

``method="cv"`` instead holds out a random fraction of the entries in every
run (the NMF engine's missing-value solvers fit the rest) and picks the k with
the lowest mean held-out error; silhouettes and errors are still reported.

Orientation: rankfold follows scikit-learn, X is samples x features and
``components_`` (k x features) holds the patterns (endmember spectra, topics).
The NMFk papers write X as features x samples and cluster the columns of
their W, which are the rows of ``components_`` here: ``cluster="components"``
(the default) does the same; ``cluster="W"`` clusters the per-sample
coefficients instead.

Runs are independent and run on a pool of ``n_threads`` threads, each run a
single-threaded fit (the C++ core releases the GIL). Every run draws its
perturbation and initialization from its own seed derived from
``random_state``, k and the run number, so results do not depend on the
scheduling.
"""

from __future__ import annotations

import numbers
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Dict, Optional, Tuple

import numpy as np
import scipy.sparse as sp

from .._base import ConvergenceWarning, NotFittedError, _Base
from .._operand import check_matrix
from .._validation import check_choice, check_float, check_int, check_n_threads, check_random_state, warn
from . import _engine
from ._nmfk import align_columns, cluster_silhouettes, perturb
from .nmf import NMF

__all__ = ["NMFk"]

_RESERVED = ("n_components", "random_state", "n_threads", "callback", "verbose", "missing_values")

SCORE_FIELDS = [
    ("k", np.int64),
    ("silhouette_min", np.float64),
    ("silhouette_mean", np.float64),
    ("relative_error", np.float64),
    ("relative_error_std", np.float64),
    ("heldout_error", np.float64),
    ("p_value", np.float64),
    ("converged", np.int64),
    ("stable", np.bool_),
    ("accepted", np.bool_),
]


def _check_k_range(k_range: Any) -> np.ndarray:
    if isinstance(k_range, (numbers.Integral, str, bytes)) or k_range is None:
        raise TypeError(f"k_range must be an iterable of integers (e.g. range(2, 13)), got {k_range!r}")
    try:
        ks = [check_int(k, "k_range values", low=1) for k in k_range]
    except TypeError as exc:
        if "k_range" in str(exc):
            raise
        raise TypeError(f"k_range must be an iterable of integers, got {k_range!r}") from None
    if not ks:
        raise ValueError("k_range is empty; give at least one rank, e.g. range(2, 13)")
    return np.unique(np.asarray(ks, dtype=np.int64))


class NMFk(_Base):
    """NMF with the rank chosen automatically (NMFk).

    Parameters
    ----------
    k_range : iterable of int
        Candidate ranks (each between 1 and ``min(n_samples, n_features)``).
    n_perturbations : int
        Runs per k (>= 2); each fits a perturbed copy of X from its own random start.
    eps : float
        Size of the uniform perturbation: ``X * (1 + U(eps, 3 eps))`` entrywise.
    perturbation : {"uniform", "poisson"}
        "poisson" resamples count data, ``X' ~ Poisson(X)``.
    method : {"silhouette", "cv"}
        How k is chosen (see the module documentation).
    silhouette_threshold : float
        Minimum cluster silhouette for a k to count as stable.
    significance : float
        Level of the one-sided Mann-Whitney test of the per-run errors of a k
        against those of the previously accepted k. With fewer than 4 runs per
        k the test cannot reach 0.05.
    holdout_fraction : float
        Share of the entries held out per run with ``method="cv"``.
    cluster : {"components", "W"}
        Which factor's columns are aligned and scored.
    solver, init, max_iter, tol, alpha_W, alpha_H, l1_ratio, inner_sweeps :
        Passed to every :class:`rankfold.NMF` fit. ``init=None`` means
        "random": each run starts from its own random point, so the
        silhouettes measure the stability under both the perturbation and
        the start (on text, an SVD start makes nearly every k look stable).
        "nndsvda" (an SVD start from each run's perturbed X; not with
        ``method="cv"``) probes the perturbation only and avoids bad local
        minima on data of exact low rank with weak components.
    nmf_params : dict or None
        Further :class:`rankfold.NMF` parameters for every fit.
    random_state : int, numpy.random.Generator or None
    n_threads : int or None
        Worker threads (None: all cores); each run is a single-threaded fit.

    Attributes
    ----------
    scores_ : numpy structured array, one row per k, fields ``k``,
        ``silhouette_min``, ``silhouette_mean``, ``relative_error`` (mean over
        runs of ``||X' - W H||_F / ||X'||_F`` on the run's perturbed X'),
        ``relative_error_std``, ``heldout_error`` (``method="cv"``, else NaN),
        ``p_value`` (rank test against the previous accepted k, NaN if not
        tested), ``converged`` (runs that reached ``tol`` before ``max_iter``),
        ``stable``, ``accepted``.
    k_values_ : the candidate ranks, sorted (the rows of ``scores_``).
    errors_ : (n_k, n_perturbations) per-run relative errors.
    silhouettes_ : dict k -> per-cluster silhouettes.
    n_components_ : the chosen rank.
    components_ : (n_components_, n_features) robust components: the
        element-wise median over runs of each cluster's unit-norm components.
    W_ : (n_samples, n_components_) coefficients of X on ``components_``
        (nonnegative least squares).
    centroids_ : dict k -> (k, n_features) the robust components of every k.
    reconstruction_err_ : ``||X - W_ components_||_F``.
    n_features_in_ : int
    """

    def __init__(
        self,
        k_range: Any = range(2, 13),
        *,
        n_perturbations: int = 20,
        eps: float = 0.03,
        perturbation: str = "uniform",
        method: str = "silhouette",
        silhouette_threshold: float = 0.9,
        significance: float = 0.05,
        holdout_fraction: float = 0.1,
        cluster: str = "components",
        solver: str = "hals",
        init: Optional[str] = None,
        max_iter: int = 200,
        tol: float = 1e-4,
        alpha_W: float = 0.0,
        alpha_H: Any = "same",
        l1_ratio: float = 0.0,
        inner_sweeps: Any = "auto",
        nmf_params: Optional[Dict[str, Any]] = None,
        random_state: Any = None,
        n_threads: Optional[int] = None,
    ) -> None:
        self.k_range = k_range
        self.n_perturbations = n_perturbations
        self.eps = eps
        self.perturbation = perturbation
        self.method = method
        self.silhouette_threshold = silhouette_threshold
        self.significance = significance
        self.holdout_fraction = holdout_fraction
        self.cluster = cluster
        self.solver = solver
        self.init = init
        self.max_iter = max_iter
        self.tol = tol
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.inner_sweeps = inner_sweeps
        self.nmf_params = nmf_params
        self.random_state = random_state
        self.n_threads = n_threads

    # ------------------------------------------------------------ validation
    def _check_params(self) -> Dict[str, Any]:
        p: Dict[str, Any] = {}
        p["ks"] = _check_k_range(self.k_range)
        p["runs"] = check_int(self.n_perturbations, "n_perturbations", low=2)
        p["eps"] = check_float(self.eps, "eps", low=0.0)
        p["perturbation"] = check_choice(self.perturbation, "perturbation", ("uniform", "poisson"))
        p["method"] = check_choice(self.method, "method", ("silhouette", "cv"))
        p["threshold"] = check_float(self.silhouette_threshold, "silhouette_threshold", low=-1.0, high=1.0)
        p["alpha"] = check_float(self.significance, "significance", low=0.0, high=1.0, low_inclusive=False)
        if p["alpha"] >= 1.0:
            raise ValueError(f"significance must be < 1, got {p['alpha']}")
        p["holdout"] = check_float(self.holdout_fraction, "holdout_fraction", low=0.0, high=0.5,
                                   low_inclusive=False)
        p["cluster"] = check_choice(self.cluster, "cluster", ("components", "W"))
        extra = {} if self.nmf_params is None else self.nmf_params
        if not isinstance(extra, dict):
            raise TypeError(f"nmf_params must be a dict or None, got {type(extra).__name__}")
        bad = [key for key in extra if key in _RESERVED]
        if bad:
            raise ValueError(f"nmf_params must not set {', '.join(bad)}; NMFk sets them per run")
        init = "random" if self.init is None else self.init
        nmf_kw = dict(solver=self.solver, init=init, max_iter=self.max_iter, tol=self.tol,
                      alpha_W=self.alpha_W, alpha_H=self.alpha_H, l1_ratio=self.l1_ratio,
                      inner_sweeps=self.inner_sweeps)
        nmf_kw.update(extra)
        if nmf_kw.get("init") == "custom":
            raise ValueError("init='custom' is not possible in NMFk: every run starts from its own random point")
        if p["method"] == "cv" and nmf_kw.get("init") != "random":
            raise ValueError(f"method='cv' fits with held-out entries, which needs init='random' (or None), "
                             f"got init={nmf_kw.get('init')!r}")
        probe = NMF(n_components=1, **nmf_kw)
        try:
            probe._check_params()  # the NMF estimator's own checks of the passed-through parameters
        except TypeError as exc:
            raise TypeError(f"{exc} (passed to NMF)") from None
        p["nmf_kw"] = nmf_kw
        p["max_iter"] = check_int(nmf_kw["max_iter"], "max_iter", low=1)
        p["tol"] = check_float(nmf_kw["tol"], "tol", low=0.0)
        p["threads"] = check_n_threads(self.n_threads)
        return p

    # ------------------------------------------------------------ fitting
    def fit(self, X: Any, y: Any = None) -> "NMFk":
        """Fit NMF over the k range on perturbed copies of X and choose the rank; returns self."""
        p = self._check_params()
        X = check_matrix(X)
        m, n = X.shape
        ks = p["ks"]
        if ks[-1] > min(m, n):
            raise ValueError(
                f"k_range goes up to {int(ks[-1])}, above min(n_samples, n_features) = {min(m, n)}")
        if p["method"] == "cv" and sp.issparse(X):
            raise ValueError(
                "method='cv' holds out entries and fits the rest with the dense missing-value solvers; "
                "pass X as a dense array (X.toarray()) or use method='silhouette'")
        _, sqnorm = _engine.sums(X, p["threads"])
        if sqnorm == 0.0:
            raise ValueError("X is all zeros; there is nothing to factorize")
        seed = check_random_state(self.random_state)
        p = {**p, "cancel": threading.Event()}  # set when the fit is interrupted
        runs = p["runs"]
        tasks = [(int(k), r) for k in ks[::-1] for r in range(runs)]  # large k first: better load balance
        workers = min(p["threads"], len(tasks))
        fit_threads = max(1, p["threads"] // len(tasks))
        results: Dict[Tuple[int, int], Tuple[np.ndarray, np.ndarray, float, float, bool]] = {}

        def work(task: Tuple[int, int]) -> None:
            k, r = task
            results[task] = self._one_run(X, k, r, seed, p, fit_threads)

        with _single_threaded_blas():
            if workers == 1:
                for t in tasks:
                    work(t)
            else:
                pool = ThreadPoolExecutor(max_workers=workers)
                try:
                    for fut in [pool.submit(work, t) for t in tasks]:
                        fut.result()
                except BaseException:  # Ctrl-C (seen only by this thread) or a failed run
                    p["cancel"].set()  # running fits stop at their next iteration
                    raise
                finally:  # on an error, runs not yet started are dropped
                    pool.shutdown(wait=True, cancel_futures=True)

        self._score(X, ks, runs, results, p)
        # Runs above the true rank often crawl to max_iter; only the chosen rank's runs matter.
        late = runs - int(self.scores_["converged"][self.k_values_ == self.n_components_][0])
        if p["tol"] > 0 and late:
            warn(
                f"{late} of {runs} NMF runs at the chosen k={self.n_components_} stopped at "
                f"max_iter={p['max_iter']} before the objective settled to tol={p['tol']}; increase max_iter "
                f"or tol", ConvergenceWarning)
        return self

    def fit_transform(self, X: Any, y: Any = None) -> np.ndarray:
        """Fit and return ``W_`` (n_samples, n_components_)."""
        return self.fit(X).W_

    def _one_run(self, X: Any, k: int, r: int, seed: int, p: Dict[str, Any], threads: int
                 ) -> Tuple[np.ndarray, np.ndarray, float, float, bool]:
        """One perturbed fit: (W, H, relative error, held-out error, converged)."""
        rng = np.random.default_rng(np.random.SeedSequence([seed, k, r]))
        Xp = perturb(X, rng, eps=p["eps"], method=p["perturbation"])
        max_iter, tol = p["max_iter"], p["tol"]
        state = {"prev": np.inf, "converged": False}

        # NMFk's own stopping rule (the engine's, reproduced) keeps the per-run
        # ConvergenceWarnings out of the worker threads; one summary is issued.
        def stop_rule(it: int, loss: float) -> bool:
            if p["cancel"].is_set():
                return False
            # (with extrapolation the reported loss is the best so far: an iteration that found
            # nothing better is not convergence, as in rankfold.NMF's own rule)
            if (tol > 0 and np.isfinite(state["prev"]) and loss < state["prev"]
                    and state["prev"] - loss <= tol * state["prev"]):
                state["converged"] = True
                return False
            state["prev"] = loss
            return it < max_iter

        kw = dict(p["nmf_kw"])
        kw["max_iter"] = max_iter + 1
        kw["tol"] = 0.0
        model = NMF(n_components=k, random_state=int(rng.integers(2**62)), n_threads=threads, callback=stop_rule,
                    **kw)
        heldout = np.nan
        if p["method"] == "cv":
            held = rng.random(X.shape) < p["holdout"]
            W = model.fit_transform(Xp, mask=~held)
            H = model.components_
            if held.any():
                truth = X[held].astype(np.float64)
                pred = np.einsum("ij,ji->i", W[np.nonzero(held)[0]].astype(np.float64),
                                 H[:, np.nonzero(held)[1]].astype(np.float64))
                denom = float(np.sum(truth * truth))
                heldout = float(np.sqrt(np.sum((truth - pred) ** 2) / denom)) if denom > 0 else np.nan
            observed = np.where(held, 0.0, Xp)
            norm = float(np.linalg.norm(observed))
        else:
            W = model.fit_transform(Xp)
            H = model.components_
            norm = float(sp.linalg.norm(Xp)) if sp.issparse(Xp) else float(np.linalg.norm(Xp))
        rel = model.reconstruction_err_ / norm if norm > 0 else np.nan
        converged = state["converged"] or tol == 0
        return W, H, float(rel), heldout, converged

    # ------------------------------------------------------------ model choice
    def _score(self, X: Any, ks: np.ndarray, runs: int, results: Dict, p: Dict[str, Any]) -> None:
        from scipy.stats import mannwhitneyu

        scores = np.zeros(len(ks), dtype=SCORE_FIELDS)
        errors = np.zeros((len(ks), runs))
        self.silhouettes_: Dict[int, np.ndarray] = {}
        self.centroids_: Dict[int, np.ndarray] = {}
        for i, k in enumerate(ks):
            k = int(k)
            Ws = [results[(k, r)][0] for r in range(runs)]
            Hs = [results[(k, r)][1] for r in range(runs)]
            errors[i] = [results[(k, r)][2] for r in range(runs)]
            held = np.array([results[(k, r)][3] for r in range(runs)])
            # Unit-norm components: the scale of a component lives in W.
            norms = [np.linalg.norm(H.astype(np.float64), axis=1) for H in Hs]
            Hn = [H.astype(np.float64) / np.where(nm > 0, nm, 1.0)[:, None] for H, nm in zip(Hs, norms)]
            side = [H.T for H in Hn] if p["cluster"] == "components" else [W.astype(np.float64) for W in Ws]
            labels, _ = align_columns(side)
            sil = cluster_silhouettes(side, labels)
            self.silhouettes_[k] = sil
            aligned = np.empty((runs, k, Hn[0].shape[1]))
            for r in range(runs):
                aligned[r, labels[r]] = Hn[r]
            self.centroids_[k] = np.median(aligned, axis=0).astype(X.dtype)
            scores[i]["k"] = k
            scores[i]["silhouette_min"] = float(sil.min())
            scores[i]["silhouette_mean"] = float(sil.mean())
            scores[i]["relative_error"] = float(errors[i].mean())
            scores[i]["relative_error_std"] = float(errors[i].std(ddof=1))
            scores[i]["heldout_error"] = float(np.nanmean(held)) if np.isfinite(held).any() else np.nan
            scores[i]["p_value"] = np.nan
            scores[i]["converged"] = sum(bool(results[(k, r)][4]) for r in range(runs))
            scores[i]["stable"] = sil.min() >= p["threshold"]

        previous: Optional[int] = None
        for i in range(len(ks)):
            if not scores[i]["stable"]:
                continue
            if previous is None:
                scores[i]["accepted"] = True
                previous = i
                continue
            test = mannwhitneyu(errors[i], errors[previous], alternative="less")
            scores[i]["p_value"] = float(test.pvalue)
            if test.pvalue < p["alpha"]:
                scores[i]["accepted"] = True
                previous = i

        if p["method"] == "cv":
            best = int(np.nanargmin(scores["heldout_error"]))
        elif scores["accepted"].any():
            best = int(np.flatnonzero(scores["accepted"])[-1])
        else:
            best = int(np.argmax(scores["silhouette_min"]))
            warn(
                f"no k in k_range reached silhouette_threshold={p['threshold']} (best minimum silhouette "
                f"{scores['silhouette_min'][best]:.3f} at k={int(ks[best])}); NMFk chose that k. Lower the "
                f"threshold, or check the k range and the noise level", UserWarning)
        self.scores_ = scores
        self.errors_ = errors
        self.k_values_ = ks.copy()
        k = int(ks[best])
        self.n_components_ = k
        self.components_ = self.centroids_[k]
        self.n_features_in_ = X.shape[1]
        self.W_ = self._coefficients(X, p["threads"])
        self.reconstruction_err_ = float(np.sqrt(max(
            _engine.residual(X, self.W_, np.ascontiguousarray(self.components_.T), p["threads"]), 0.0)))

    def _coefficients(self, X: Any, threads: int) -> np.ndarray:
        W = np.zeros((X.shape[0], self.components_.shape[0]), dtype=X.dtype)
        Ht = np.ascontiguousarray(self.components_.T)
        _engine.solve_rows(X, W, Ht, 0.0, 0.0, threads)
        return W

    # ------------------------------------------------------------ using the model
    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("This NMFk instance is not fitted yet; call fit before using it")

    def transform(self, X: Any) -> np.ndarray:
        """Coefficients of new samples on ``components_`` (nonnegative least squares)."""
        self._check_fitted()
        X = check_matrix(X, dtype=self.components_.dtype)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but NMFk is expecting {self.n_features_in_}")
        return self._coefficients(X, check_n_threads(self.n_threads))

    def plot(self, ax: Any = None) -> Any:
        """Silhouettes (left axis) and relative error (right axis) against k.

        Needs matplotlib (``pip install rankfold[plot]``). Returns the axes.
        """
        self._check_fitted()
        try:
            import matplotlib.pyplot as plt
        except ImportError as exc:
            raise ImportError("NMFk.plot needs matplotlib: pip install 'rankfold[plot]'") from exc
        if ax is None:
            _, ax = plt.subplots(figsize=(6, 4))
        s = self.scores_
        ax.plot(s["k"], s["silhouette_min"], "o-", label="min silhouette")
        ax.plot(s["k"], s["silhouette_mean"], "s--", label="mean silhouette")
        ax.axhline(self.silhouette_threshold, color="grey", lw=0.8, ls=":")
        ax.axvline(self.n_components_, color="red", lw=0.8, ls=":")
        ax.set_xlabel("k")
        ax.set_ylabel("silhouette")
        ax.set_ylim(min(-0.05, float(np.nanmin(s["silhouette_min"])) - 0.05), 1.05)
        right = ax.twinx()
        right.plot(s["k"], s["relative_error"], "^-", color="black", label="relative error")
        if np.isfinite(s["heldout_error"]).any():
            right.plot(s["k"], s["heldout_error"], "v-", color="purple", label="held-out error")
        right.set_ylabel("relative error")
        handles = ax.get_legend_handles_labels()
        more = right.get_legend_handles_labels()
        ax.legend(handles[0] + more[0], handles[1] + more[1], loc="best", fontsize="small")
        ax.set_title(f"NMFk: k = {self.n_components_}")
        return ax


class _single_threaded_blas:
    """Keeps NumPy's BLAS at one thread while the worker pool runs (threadpoolctl, when installed)."""

    def __enter__(self) -> "_single_threaded_blas":
        self._limits = None
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl ships with the test extra
            return self
        self._limits = threadpool_limits(limits=1, user_api="blas")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
