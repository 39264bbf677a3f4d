"""NMF methods from the hyperspectral unmixing literature: what is Python by nature.

Used by ``rankfold.NMF`` when ``graph_reg > 0``, ``robust="correntropy"``
or ``abundance_sum_to_one=True``: the parameter checks, the graphs (k-NN,
grid), and the description of these terms for the C++ fit loop
(``nmf/fit.hpp``, one loop for every model), which runs the iterations. Orientation is scikit-learn's: X is samples x features,
so for a hyperspectral scene the rows are pixels, W holds the abundances and
``components_`` the endmember spectra.

Objective (with ``l1W, l2W, l1H, l2H`` scikit-learn's scaled elastic-net terms)::

    fit(X, W H) + l1W |W|_1 + l2W/2 |W|^2 + l1H |H|_1 + l2H/2 |H|^2
      + (graph_reg * n_features / 2) tr(W^T L W)

* Graph regularization (GNMF, Cai et al. 2011; with the lasso on W the
  structured sparse NMF of Zhu et al. 2014). ``L = D - S`` for the symmetric
  sample affinity ``S``; ``tr(W^T L W) = 1/2 sum_ij S_ij |w_i - w_j|^2``. A
  nonsymmetric S is replaced by ``(S + S^T) / 2`` (the penalty is the same)
  and its diagonal is dropped (self-loops do not change L). The weight is
  ``graph_reg * n_features``: the same scaling as ``alpha_W``, so a value
  tuned on one band subset keeps its meaning on another, and ``graph_reg``
  compares directly with ``alpha_W``.
* Correntropy (Wang, Pan, Xiang & Zhu): the fit term is
  ``sum_b sigma^2 (1 - exp(-|x_b - W h_b|^2 / (2 sigma^2)))`` over bands
  (``robust_weights="band"``, columns of X) or the same over single entries
  (``"entry"``), minimised by half-quadratic optimisation: every iteration
  sets the weights ``exp(-r^2 / (2 sigma^2))`` from the current residuals and
  runs one weighted NMF iteration. ``sigma=None`` takes
  ``sigma^2 = mean(r^2) / 2`` of the current residuals at every iteration
  (r = band residual norms, or entries), so a typical band has weight
  ``exp(-1)`` and one whose residual is 10 times the mean ``exp(-10)``.
* Sum-to-one abundances: every row of W on the probability simplex, held
  exactly (the W half-step is projected gradient with the exact Euclidean
  projection onto the simplex), not by the augmented-row trick, whose weight
  trades a loose constraint against an ill-conditioned problem that slows
  HALS down. Rows sum to 1 to rounding (1e-12 in float64, 1e-5 in float32).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from .._validation import check_array, check_choice, check_float, check_int
from . import _engine
from .graphs import GRAPH_WEIGHTS, knn_graph

_ROBUST = ("correntropy",)
_ROBUST_WEIGHTS = ("band", "entry")
# sigma=None: sigma^2 = SIGMA_SCALE * mean(r^2) of the current residuals (r: band residual
# norms or entries), so a typical band has weight exp(-1). The engine's rule (nmf::kSigmaScale in
# nmf/fit.hpp); the value here is for tests and documentation.
SIGMA_SCALE = 0.5


def active(est: Any) -> bool:
    """Whether the estimator's parameters ask for one of the methods here."""
    return bool(est.graph_reg) or est.robust is not None or bool(est.abundance_sum_to_one)


def check_params(est: Any) -> None:
    """Parameter checks that need no data (called from NMF._check_params)."""
    graph_reg = check_float(est.graph_reg, "graph_reg", low=0.0)
    if isinstance(est.graph, str):
        check_choice(est.graph, "graph", ("knn",))
    elif est.graph is not None and not (sp.issparse(est.graph) or hasattr(est.graph, "shape")):
        raise TypeError(f"graph must be None, 'knn' or a sparse/dense n_samples x n_samples matrix, "
                        f"got {type(est.graph).__name__}")
    check_int(est.graph_n_neighbors, "graph_n_neighbors", low=1)
    check_choice(est.graph_weights, "graph_weights", GRAPH_WEIGHTS)
    if est.robust is not None:
        check_choice(est.robust, "robust", _ROBUST)
    if est.sigma is not None:
        check_float(est.sigma, "sigma", low=0.0)
        if not est.sigma > 0:
            raise ValueError(f"sigma must be > 0 (or None to set it from the residuals), got {est.sigma!r}")
    check_choice(est.robust_weights, "robust_weights", _ROBUST_WEIGHTS)
    if not isinstance(est.abundance_sum_to_one, (bool, np.bool_)):
        raise TypeError(f"abundance_sum_to_one must be a bool, got {type(est.abundance_sum_to_one).__name__}")
    if not active(est):
        return
    if graph_reg > 0 and est.graph is None:
        raise ValueError("graph_reg > 0 needs graph= (a sparse n_samples x n_samples affinity or 'knn')")
    if graph_reg > 0 and est.solver == "anls":
        raise ValueError("graph_reg > 0 works with solver='hals' or 'mu' (the graph couples the rows of W, "
                         "which ANLS solves one by one)")
    entry = est.robust is not None and est.robust_weights == "entry"
    if entry and (graph_reg > 0 or est.abundance_sum_to_one):
        raise ValueError("robust_weights='entry' cannot be combined with graph_reg > 0 or "
                         "abundance_sum_to_one=True in this version; use robust_weights='band'")
    if est.abundance_sum_to_one:
        alpha_W = check_float(est.alpha_W, "alpha_W", low=0.0)
        l1_ratio = check_float(est.l1_ratio, "l1_ratio", low=0.0, high=1.0)
        if alpha_W * l1_ratio > 0:
            raise ValueError("abundance_sum_to_one=True is incompatible with an L1 penalty on W "
                             "(alpha_W > 0 with l1_ratio > 0): on the simplex |w|_1 = 1, the penalty does nothing")
    if est.missing_values is not None:
        raise ValueError("graph_reg, robust and abundance_sum_to_one do not support missing values "
                         "(missing_values must be None)")


def affinity(est: Any, X: Any, threads: int) -> sp.csr_matrix:
    """The validated affinity: CSR float64, symmetric, zero diagonal, nonnegative."""
    m = X.shape[0]
    g = est.graph
    if isinstance(g, str):
        if sp.issparse(X):
            raise ValueError("graph='knn' needs a dense X; pass a precomputed sparse affinity as graph= instead")
        return knn_graph(X, int(est.graph_n_neighbors), est.graph_weights, threads)
    if sp.issparse(g):
        S = g.tocsr().astype(np.float64)
        data = S.data
    else:
        S = None
        data = check_array(g, "graph", dtype=np.float64, order=None)
    if (S.shape if S is not None else data.shape) != (m, m):
        shape = S.shape if S is not None else data.shape
        raise ValueError(f"graph must be n_samples x n_samples = {(m, m)}, got {tuple(shape)}")
    if not np.all(np.isfinite(data)):
        raise ValueError("graph contains NaN or infinity")
    if (data < 0).any():
        raise ValueError("graph contains negative weights; an affinity must be nonnegative")
    if S is None:
        S = sp.csr_matrix(data)
    S = ((S + S.T) * 0.5).tocsr()
    S.setdiag(0)
    S.eliminate_zeros()
    S.sort_indices()
    return S


# ---------------------------------------------------------------- the engine's terms

def project_simplex(V: np.ndarray) -> np.ndarray:
    """Euclidean projection of every row of V onto {w >= 0, sum(w) = 1} (sort-based, exact)."""
    k = V.shape[1]
    U = -np.sort(-V, axis=1)
    css = np.cumsum(U, axis=1) - 1.0
    ind = np.arange(1, k + 1, dtype=V.dtype)
    cond = U - css / ind > 0
    rho = k - 1 - np.argmax(cond[:, ::-1], axis=1)
    theta = css[np.arange(V.shape[0]), rho] / (rho + 1)
    return np.maximum(V - theta[:, None], 0).astype(V.dtype, copy=False)


def simplex_rows(W: np.ndarray, A: np.ndarray, G: np.ndarray, l2: float, steps: int) -> None:
    """W half-step on the simplex, in place (transform of new rows): projected gradient, step 1/Lipschitz.

    Minimises 0.5 w'Gw - a'w + 0.5 l2 |w|^2 per row, every iterate exactly feasible.
    """
    lip = float(np.linalg.eigvalsh(G.astype(np.float64)).max()) + l2
    if not lip > 0:
        return
    step = W.dtype.type(1.0 / lip)
    for _ in range(steps):
        grad = W @ G - A
        if l2:
            grad += W.dtype.type(l2) * W
        W[...] = project_simplex(W - step * grad)


def terms(est: Any, X: Any, weights: Any, threads: int) -> dict:
    """The research terms of the fit as keyword arguments of ``_engine.fit`` (the engine runs the loop).

    Builds the affinity (``est.graph_``) for the graph term; the graph weight
    is ``graph_reg * n_features``.
    """
    if not active(est):
        return {}
    if weights is not None:
        raise ValueError("graph_reg, robust and abundance_sum_to_one do not support missing values or mask=")
    n = X.shape[1]
    kw: dict = {"simplex": bool(est.abundance_sum_to_one)}
    if est.graph_reg > 0:
        S = affinity(est, X, threads)
        est.graph_ = S
        kw["graph"] = (np.ascontiguousarray(S.indptr, dtype=np.int64), np.ascontiguousarray(S.indices, dtype=np.int64),
                       np.ascontiguousarray(S.data, dtype=X.dtype),
                       np.ascontiguousarray(np.asarray(S.sum(axis=1)).ravel(), dtype=X.dtype),
                       float(est.graph_reg) * n)
    if est.robust is not None:
        if est.robust_weights == "entry" and sp.issparse(X):
            raise ValueError("robust_weights='entry' needs a dense X (a weight for every entry); "
                             "use robust_weights='band' for sparse X")
        kw["robust"] = est.robust_weights
        kw["sigma2"] = 0.0 if est.sigma is None else float(est.sigma) ** 2
    return kw


def set_attributes(est: Any, result: dict) -> None:
    """The fitted attributes of the correntropy models from the engine's result."""
    if est.robust is None:
        return
    est.sigma_ = float(np.sqrt(result["sigma2"]))
    if est.robust_weights == "entry":
        est.entry_weights_ = result["weights"]
        est.band_weights_ = None
    else:
        est.band_weights_ = np.asarray(result["weights"], dtype=np.float64)


# ---------------------------------------------------------------- transform

def needs_transform(est: Any) -> bool:
    # est.robust is checked too: band_weights_ of an earlier robust fit outlive a refit without it.
    band = est.robust is not None and getattr(est, "band_weights_", None) is not None
    return bool(est.abundance_sum_to_one) or band


def transform(est: Any, X: Any, threads: int) -> np.ndarray:
    """W for new data with H fixed, under the fitted model's constraints and band weights.

    The graph term is left out (new samples are not in the graph); with
    sum-to-one each row is solved on the simplex, else by exact NNLS.
    """
    m, n = X.shape
    Ht = np.ascontiguousarray(est.components_.T)
    omega = getattr(est, "band_weights_", None) if est.robust is not None else None
    if omega is not None:
        om = omega.astype(X.dtype)
        Hs = np.ascontiguousarray(Ht * om[:, None])
        A = _engine.products(X, Hs, False, threads)
        G = _engine.gram(np.ascontiguousarray(Ht * np.sqrt(om)[:, None]), threads)
    else:
        A = _engine.products(X, Ht, False, threads)
        G = _engine.gram(Ht, threads)
    l1W, l2W, _, _ = est._penalties(m, n)
    k = Ht.shape[1]
    if est.abundance_sum_to_one:
        W = np.full((m, k), 1.0 / k, dtype=X.dtype)
        simplex_rows(W, A, G, l2W, 500)
        return W
    W = np.zeros((m, k), dtype=X.dtype)
    _engine.update_rows(W, A, G, "anls", l1W, l2W, 1, 0.0, threads)
    return W
