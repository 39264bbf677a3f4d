"""rankfold.NMF research options: graph-regularized (GNMF / SS-NMF), correntropy, sum-to-one.

Each is checked against a short textbook NumPy implementation started from
the same W and H, and on the Samson hyperspectral scene against plain NMF.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold
from rankfold.nmf import _research as _nmf_research
from rankfold.nmf.graphs import grid_graph, knn_graph


def low_rank(rng, m=60, n=40, k=4, noise=0.01):
    return rng.random((m, k)) @ rng.random((k, n)) + noise * rng.random((m, n))


def random_graph(rng, m, density=0.1):
    S = sp.random(m, m, density=density, random_state=np.random.RandomState(1), format="csr")
    S = S + S.T
    S.setdiag(0)
    S.eliminate_zeros()
    return S.tocsr()


def start(rng, m, n, k):
    return rng.random((m, k)) + 0.1, rng.random((k, n)) + 0.1


def fit_custom(X, W0, H0, **kw):
    kw.setdefault("extrapolate", False)  # plain NMF references: the plain iterates
    model = rankfold.NMF(W0.shape[1], init="custom", tol=0.0, **kw)
    W = model.fit_transform(X, W=W0.copy(), H=H0.copy())
    return model, W


# ---------------------------------------------------------------- textbook references

def textbook_gnmf_mu(X, W, H, S, lam, l1=0.0, iters=10):
    D = np.asarray(S.sum(axis=1)).ravel()
    S = S.toarray()
    W, H = W.copy(), H.copy()
    for _ in range(iters):
        W *= (X @ H.T + lam * S @ W) / (W @ H @ H.T + l1 + lam * D[:, None] * W)
        H *= (W.T @ X) / (W.T @ W @ H)
    return W, H


def textbook_gnmf_hals(X, W, H, S, lam, l1=0.0, iters=10):
    """Column-wise HALS; column j sees its graph neighbours as they were before the column update."""
    D = np.asarray(S.sum(axis=1)).ravel()
    S = S.toarray()
    W, H = W.copy(), H.copy()
    k = W.shape[1]
    for _ in range(iters):
        A, G = X @ H.T, H @ H.T
        for j in range(k):
            p = S @ W[:, j]
            grad = W @ G[:, j] - A[:, j] + l1 + lam * (D * W[:, j] - p)
            W[:, j] = np.maximum(0.0, W[:, j] - grad / (G[j, j] + lam * D))
        B, GW = X.T @ W, W.T @ W
        Ht = H.T.copy()
        for j in range(k):
            Ht[:, j] = np.maximum(0.0, Ht[:, j] - (Ht @ GW[:, j] - B[:, j]) / GW[j, j])
        H = Ht.T.copy()
    return W, H


def textbook_correntropy(X, W, H, iters, solver, l1H=0.0):
    """Half-quadratic correntropy NMF with one weight per band (column of X)."""
    W, H = W.copy(), H.copy()
    k = W.shape[1]

    def weights():
        e = ((X - W @ H) ** 2).sum(axis=0)
        sigma2 = _nmf_research.SIGMA_SCALE * e.mean()
        return np.exp(-e / (2 * sigma2))

    w = weights()
    for _ in range(iters):
        A, G = (X * w) @ H.T, (H * w) @ H.T
        if solver == "mu":
            W *= A / (W @ G)
            H *= (W.T @ X) / (W.T @ W @ H)
        else:
            for j in range(k):
                W[:, j] = np.maximum(0.0, W[:, j] - (W @ G[:, j] - A[:, j]) / G[j, j])
            B, GW = X.T @ W, W.T @ W
            Ht = H.T.copy()
            for j in range(k):
                grad = w * (Ht @ GW[:, j] - B[:, j]) + l1H
                Ht[:, j] = np.maximum(0.0, Ht[:, j] - grad / (w * GW[j, j]))
            H = Ht.T.copy()
        w = weights()
    return W, H, w


# ---------------------------------------------------------------- graph regularization

@pytest.mark.parametrize("solver", ["mu", "hals"])
def test_graph_regularized_matches_textbook(rng, solver):
    X = low_rank(rng)
    m, n = X.shape
    S = random_graph(rng, m)
    W0, H0 = start(rng, m, n, 4)
    graph_reg, alpha_W = 0.02, 0.001
    model, W = fit_custom(X, W0, H0, solver=solver, max_iter=8, inner_sweeps=1, graph_reg=graph_reg, graph=S,
                          alpha_W=alpha_W, alpha_H=0.0, l1_ratio=1.0)
    ref = textbook_gnmf_mu if solver == "mu" else textbook_gnmf_hals
    # The documented scaling: both penalties are multiplied by n_features.
    Wr, Hr = ref(X, W0, H0, S, graph_reg * n, l1=alpha_W * n, iters=8)
    np.testing.assert_allclose(W, Wr, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-9, atol=1e-12)
    assert (model.graph_ != model.graph_.T).nnz == 0


@pytest.mark.parametrize("solver", ["mu", "hals"])
def test_graph_objective_decreases_monotonically(rng, solver):
    X = low_rank(rng, m=80, n=30)
    m, n = X.shape
    S = random_graph(rng, m, density=0.05)
    W0, H0 = start(rng, m, n, 4)
    model, W = fit_custom(X, W0, H0, solver=solver, max_iter=60, graph_reg=0.05, graph=S, alpha_W=0.002,
                          l1_ratio=0.5)
    losses = model.loss_history_
    assert np.all(np.diff(losses) <= 1e-10 * losses[:-1]), np.diff(losses).max()
    # The last entry is the full objective, Laplacian term included.
    H = model.components_
    L = sp.diags(np.asarray(S.sum(axis=1)).ravel()) - S
    l1W, l2W, l1H, l2H = model._penalties(m, n)
    obj = (0.5 * np.sum((X - W @ H) ** 2) + l1W * W.sum() + 0.5 * l2W * np.sum(W * W) + l1H * H.sum()
           + 0.5 * l2H * np.sum(H * H) + 0.5 * 0.05 * n * np.trace(W.T @ (L @ W)))
    np.testing.assert_allclose(losses[-1], obj, rtol=1e-9)


def test_graph_reg_zero_or_empty_graph_is_plain_nmf(rng):
    X = low_rank(rng)
    m, n = X.shape
    W0, H0 = start(rng, m, n, 4)
    plain, Wp = fit_custom(X, W0, H0, max_iter=10, inner_sweeps=2)
    zero, Wz = fit_custom(X, W0, H0, max_iter=10, inner_sweeps=2, graph_reg=0.0, graph=random_graph(rng, m))
    np.testing.assert_array_equal(Wz, Wp)
    # An empty graph runs the graph-regularized driver with L = 0: plain NMF's iterates.
    empty, We = fit_custom(X, W0, H0, max_iter=10, inner_sweeps=2, graph_reg=1.0, graph=sp.csr_matrix((m, m)))
    np.testing.assert_allclose(We, Wp, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(empty.components_, plain.components_, rtol=1e-9, atol=1e-12)


def test_knn_graph(rng):
    X = np.vstack([rng.random((20, 5)), rng.random((20, 5)) + 5.0])
    S = knn_graph(X, 4, "heat", 1)
    assert S.shape == (40, 40) and (S != S.T).nnz == 0 and S.diagonal().sum() == 0
    # Two well separated clusters: no edge between them, every sample has >= 4 neighbours.
    assert S[:20, 20:].nnz == 0
    assert np.all(np.diff(S.indptr) >= 4)
    d2 = ((X[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    i, j = S.nonzero()
    Sb = knn_graph(X, 4, "binary", 1)
    np.testing.assert_array_equal(Sb.data, 1.0)
    assert np.all(S.data <= 1.0) and np.all(S.data > 0)
    # Heat weights are monotone in the distance.
    order = np.argsort(d2[i, j])
    assert np.all(np.diff(np.asarray(S[i, j]).ravel()[order]) <= 1e-12)
    model = rankfold.NMF(3, graph_reg=0.1, graph="knn", graph_n_neighbors=4, max_iter=20, tol=0.0,
                         random_state=0).fit(X)
    assert (model.graph_ != S).nnz == 0


def test_graph_float32_and_sparse_X(rng):
    X = low_rank(rng)
    m, n = X.shape
    S = random_graph(rng, m)
    W0, H0 = start(rng, m, n, 4)
    m64, W64 = fit_custom(X, W0, H0, solver="hals", max_iter=10, inner_sweeps=1, graph_reg=0.01, graph=S)
    m32, W32 = fit_custom(X.astype(np.float32), W0.astype(np.float32), H0.astype(np.float32), solver="hals",
                          max_iter=10, inner_sweeps=1, graph_reg=0.01, graph=S)
    assert W32.dtype == np.float32 and m32.components_.dtype == np.float32
    np.testing.assert_allclose(W32, W64, rtol=2e-3, atol=1e-4)
    msp, Wsp = fit_custom(sp.csr_matrix(X), W0, H0, solver="hals", max_iter=10, inner_sweeps=1, graph_reg=0.01,
                          graph=S)
    np.testing.assert_allclose(Wsp, W64, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------- correntropy

@pytest.mark.parametrize("solver", ["mu", "hals"])
def test_correntropy_matches_textbook_reweighting(rng, solver):
    X = low_rank(rng)
    X[:, [3, 17]] += 20 * rng.random((X.shape[0], 2))  # two grossly corrupted bands
    m, n = X.shape
    W0, H0 = start(rng, m, n, 4)
    model, W = fit_custom(X, W0, H0, solver=solver, max_iter=12, inner_sweeps=1, robust="correntropy")
    Wr, Hr, w = textbook_correntropy(X, W0, H0, 12, solver)
    np.testing.assert_allclose(W, Wr, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(model.band_weights_, w, rtol=1e-8, atol=1e-12)
    assert model.band_weights_[[3, 17]].max() < 1e-3 * np.median(model.band_weights_)


def test_correntropy_with_penalty_on_H_matches_textbook(rng):
    """alpha_H > 0: the band weights scale each band's fit term but not its penalty."""
    X = low_rank(rng)
    X[:, 5] += 10 * rng.random(X.shape[0])
    m, n = X.shape
    W0, H0 = start(rng, m, n, 4)
    alpha_H = 0.002
    model, W = fit_custom(X, W0, H0, solver="hals", max_iter=6, inner_sweeps=1, robust="correntropy",
                          alpha_W=0.0, alpha_H=alpha_H, l1_ratio=1.0)
    Wr, Hr, _ = textbook_correntropy(X, W0, H0, 6, "hals", l1H=alpha_H * m)
    np.testing.assert_allclose(W, Wr, rtol=1e-8, atol=1e-11)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-8, atol=1e-11)


def test_correntropy_fixed_sigma_and_entry_weights(rng):
    X = low_rank(rng)
    m, n = X.shape
    W0, H0 = start(rng, m, n, 4)
    # A huge kernel width: every weight is ~1 and the fit is plain NMF.
    wide, Ww = fit_custom(X, W0, H0, solver="mu", max_iter=10, robust="correntropy", sigma=1e6)
    plain, Wp = fit_custom(X, W0, H0, solver="mu", max_iter=10)
    np.testing.assert_allclose(Ww, Wp, rtol=1e-6)
    assert wide.sigma_ == pytest.approx(1e6)

    # Entry weights: corrupted entries get weights near 0 and the clean ones are fitted.
    truth = low_rank(rng, noise=0.0)
    Xc = truth.copy()
    bad = rng.random(Xc.shape) < 0.03
    Xc[bad] += 30.0
    W0, H0 = start(rng, m, n, 4)
    robust, Wr = fit_custom(Xc, W0, H0, solver="hals", max_iter=300, robust="correntropy", robust_weights="entry")
    frob, Wf = fit_custom(Xc, W0, H0, solver="hals", max_iter=300)
    err_robust = np.linalg.norm((Wr @ robust.components_ - truth)[~bad]) / np.linalg.norm(truth[~bad])
    err_frob = np.linalg.norm((Wf @ frob.components_ - truth)[~bad]) / np.linalg.norm(truth[~bad])
    assert err_robust < 0.2 * err_frob, (err_robust, err_frob)
    assert robust.entry_weights_[bad].max() < 1e-3


def test_correntropy_entry_weights_match_textbook(rng):
    """One weight per entry: one weighted MU iteration per reweighting."""
    X = low_rank(rng, m=30, n=20, k=3)
    X[rng.random(X.shape) < 0.05] += 5.0
    W0, H0 = start(rng, 30, 20, 3)
    model, W = fit_custom(X, W0, H0, solver="mu", max_iter=5, robust="correntropy", robust_weights="entry")
    Wr, Hr = W0.copy(), H0.copy()

    def weights():
        R = X - Wr @ Hr
        sigma2 = 0.5 * np.mean(R * R)
        return np.exp(-R * R / (2 * sigma2))

    M = weights()
    for _ in range(5):
        Wr *= ((M * X) @ Hr.T) / ((M * (Wr @ Hr)) @ Hr.T)
        Hr *= (Wr.T @ (M * X)) / (Wr.T @ (M * (Wr @ Hr)))
        M = weights()
    np.testing.assert_allclose(W, Wr, rtol=1e-8)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-8)
    np.testing.assert_allclose(model.entry_weights_, M, rtol=1e-8, atol=1e-14)


# ---------------------------------------------------------------- sum-to-one

def test_project_simplex(rng):
    V = rng.standard_normal((200, 5)) * 3
    P = _nmf_research.project_simplex(V)
    np.testing.assert_allclose(P.sum(axis=1), 1.0, atol=1e-12)
    assert P.min() >= 0
    # Optimality: against random feasible points, the projection is the closest.
    for _ in range(20):
        Q = rng.dirichlet(np.ones(5), size=200)
        assert np.all(((V - P) ** 2).sum(1) <= ((V - Q) ** 2).sum(1) + 1e-12)


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-10), (np.float32, 1e-5)])
def test_sum_to_one(rng, dtype, tol):
    k = 4
    A = rng.dirichlet(np.full(k, 0.5), size=300)
    E = rng.random((k, 50)) + 0.2
    X = (A @ E + 0.01 * rng.random((300, 50))).astype(dtype)
    model = rankfold.NMF(k, abundance_sum_to_one=True, max_iter=400, tol=0.0, random_state=0)
    W = model.fit_transform(X)
    assert W.dtype == dtype and W.min() >= 0
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=tol)
    losses = model.loss_history_
    if dtype == np.float64:  # in float32 the objective from Gram products is exact only to ~1e-7 |X|^2
        assert np.all(np.diff(losses) <= 1e-9 * losses[:-1])
    Wt = model.transform(X[:20])
    np.testing.assert_allclose(Wt.sum(axis=1), 1.0, atol=tol)
    assert model.reconstruction_err_ / np.linalg.norm(X) < 0.05
    # With graph regularization and band weights as well.
    both = rankfold.NMF(k, abundance_sum_to_one=True, graph_reg=0.01, graph="knn", robust="correntropy",
                        max_iter=50, tol=0.0, random_state=0)
    Wb = both.fit_transform(X)
    np.testing.assert_allclose(Wb.sum(axis=1), 1.0, atol=tol)


def test_research_options_keep_sklearn_behaviour(rng):
    from sklearn.base import clone

    X = low_rank(rng)
    S = random_graph(rng, X.shape[0])
    model = rankfold.NMF(3, graph_reg=0.1, graph=S, robust="correntropy", max_iter=20, tol=0.0, random_state=0)
    twin = clone(model)
    np.testing.assert_array_equal(model.fit_transform(X), twin.fit_transform(X))
    assert model.transform(X).shape == (X.shape[0], 3)


@pytest.mark.parametrize("order", ["F", "C"])
def test_grid_graph(rng, order):
    lines, cols = 4, 5
    X = rng.random((lines * cols, 3))
    S = grid_graph(X, (lines, cols), order).toarray()
    idx = np.arange(lines * cols).reshape(lines, cols, order=order)
    expected = np.zeros_like(S, dtype=bool)
    for i in range(lines):
        for j in range(cols):
            for di in (-1, 0, 1):
                for dj in (-1, 0, 1):
                    if (di or dj) and 0 <= i + di < lines and 0 <= j + dj < cols:
                        expected[idx[i, j], idx[i + di, j + dj]] = True
    np.testing.assert_array_equal(S > 0, expected)
    np.testing.assert_allclose(S, S.T)
    a, b = np.nonzero(S)
    d2 = ((X[a] - X[b]) ** 2).sum(1)
    np.testing.assert_allclose(S[a, b], np.exp(-d2 / d2.mean()))


# ---------------------------------------------------------------- Samson scene (real data)

def samson_corrupted(X, fraction=0.05, seed=0):
    """X with 5% of its bands replaced by heavy uniform noise (up to 5x the scene's maximum)."""
    gen = np.random.default_rng(seed)
    bad = np.sort(gen.choice(X.shape[1], int(round(fraction * X.shape[1])), replace=False))
    Xc = X.copy()
    Xc[:, bad] = gen.uniform(0.0, 5.0 * X.max(), (X.shape[0], bad.size))
    return Xc, np.setdiff1d(np.arange(X.shape[1]), bad)


def _samson_scores(X, good, endmembers, abundances, **params):
    from test_nmf_realdata import unmixing_scores

    # Same algorithm with and without the robust loss: plain NMF without extrapolation.
    model = rankfold.NMF(3, init="random", random_state=0, max_iter=300, tol=1e-6, extrapolate=False, **params)
    with _no_convergence_warning():
        W = model.fit_transform(X)
    # Endmembers are compared on the uncorrupted bands (the reference says nothing about the others).
    return unmixing_scores(W, model.components_[:, good], endmembers[:, good], abundances)


class _no_convergence_warning:
    """Fits that stop at max_iter warn (ConvergenceWarning); the scores are what is tested here."""

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings()
        self._ctx.__enter__()
        from rankfold.nmf import ConvergenceWarning

        warnings.simplefilter("ignore", ConvergenceWarning)

    def __exit__(self, *exc):
        return self._ctx.__exit__(*exc)


@pytest.mark.realdata
def test_samson_correntropy_and_graph_against_plain_nmf():
    """Same init for all; the multiplicative rule is the papers' solver (GNMF, correntropy NMF)."""
    from test_nmf_realdata import load_samson

    X, endmembers, abundances = load_samson()
    every = np.arange(X.shape[1])
    plain = _samson_scores(X, every, endmembers, abundances, solver="mu")
    robust = _samson_scores(X, every, endmembers, abundances, solver="mu", robust="correntropy")
    graph = grid_graph(X, (95, 95), "F")
    ss = _samson_scores(X, every, endmembers, abundances, solver="mu", graph=graph, graph_reg=1e-3)
    # Correntropy: better endmembers and abundances than plain NMF.
    assert robust[0] < 0.8 * plain[0], (robust, plain)
    assert robust[1] < plain[1], (robust, plain)
    # Graph-regularized (spatial graph): smoother, better abundances; its endmembers are
    # not better on this scene (see bench/README.md), so only the abundance error is asserted.
    assert ss[1] < plain[1], (ss, plain)


@pytest.mark.realdata
@pytest.mark.parametrize("solver", ["hals", "mu"])
def test_samson_corrupted_bands(solver):
    from test_nmf_realdata import load_samson

    X, endmembers, abundances = load_samson()
    Xc, good = samson_corrupted(X)
    every = np.arange(X.shape[1])
    plain_clean = _samson_scores(X, every, endmembers, abundances, solver=solver)
    plain_bad = _samson_scores(Xc, good, endmembers, abundances, solver=solver)
    robust_bad = _samson_scores(Xc, good, endmembers, abundances, solver=solver, robust="correntropy")
    # Accuracy lost on the corrupted scene, against plain NMF on the clean one (SAD and
    # abundance RMSE): plain NMF breaks down, correntropy NMF loses far less (or nothing).
    plain_loss = np.subtract(plain_bad, plain_clean)
    robust_loss = np.subtract(robust_bad, plain_clean)
    assert plain_loss[1] > 0.1, (plain_clean, plain_bad)
    assert np.all(robust_loss < 0.25 * plain_loss), (plain_clean, plain_bad, robust_bad)
    assert robust_bad[0] < plain_bad[0] and robust_bad[1] < plain_bad[1]


def test_correntropy_sparse_X_and_float32(rng):
    X = low_rank(rng)
    X[X < 0.4] = 0.0
    X[:, 7] += 15 * rng.random(X.shape[0])
    m, n = X.shape
    W0, H0 = start(rng, m, n, 4)
    dense, Wd = fit_custom(X, W0, H0, solver="hals", max_iter=15, inner_sweeps=1, robust="correntropy",
                           alpha_W=0.001, l1_ratio=0.5)
    sparse, Ws = fit_custom(sp.csc_matrix(X), W0, H0, solver="hals", max_iter=15, inner_sweeps=1,
                            robust="correntropy", alpha_W=0.001, l1_ratio=0.5)
    np.testing.assert_allclose(Ws, Wd, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(sparse.band_weights_, dense.band_weights_, rtol=1e-9, atol=1e-14)
    f32, W32 = fit_custom(X.astype(np.float32), W0.astype(np.float32), H0.astype(np.float32), solver="hals",
                          max_iter=15, inner_sweeps=1, robust="correntropy", alpha_W=0.001, l1_ratio=0.5)
    assert W32.dtype == np.float32 and f32.components_.dtype == np.float32
    np.testing.assert_allclose(W32, Wd, rtol=1e-2, atol=1e-3)


def test_robust_transform_uses_the_band_weights(rng):
    """transform solves the weighted row problems: on the training data it gives the fitted W."""
    X = low_rank(rng, k=3, noise=0.0)
    X[:, [2, 9]] = 50 * rng.random((X.shape[0], 2))
    model = rankfold.NMF(3, solver="anls", robust="correntropy", max_iter=200, tol=0.0, random_state=0)
    W = model.fit_transform(X)
    assert model.band_weights_[[2, 9]].max() < 1e-6, model.band_weights_[[2, 9]]
    Wt = model.transform(X)  # the fit's last W used the weights of the iteration before: close, not equal
    np.testing.assert_allclose(Wt, W, rtol=1e-2, atol=1e-3)
    # The plain NNLS transform is thrown off by the two corrupted bands.
    plain = np.zeros_like(W)
    from rankfold import _core
    from rankfold._operand import operand as _spec

    _core.nmf_solve_rows(_spec(X), plain, np.ascontiguousarray(model.components_.T), 0.0, 0.0, 1)
    assert np.abs(plain - W).max() > 50 * np.abs(Wt - W).max(), (np.abs(plain - W).max(), np.abs(Wt - W).max())
    # Refitted without robust=, transform is the plain one again.
    model.set_params(robust=None).fit(X)
    refit = np.zeros_like(W)
    _core.nmf_solve_rows(_spec(X), refit, np.ascontiguousarray(model.components_.T), 0.0, 0.0, 1)
    np.testing.assert_allclose(model.transform(X), refit, rtol=1e-10, atol=1e-12)
