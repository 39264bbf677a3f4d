"""Weighted NMF (missing values): textbook weighted HALS / MU iterates, NaN vs mask, recovery."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize

import rankfold


def problem(rng, m=40, n=30, k=4, missing=0.2):
    X = rng.random((m, k)) @ rng.random((k, n)) + 0.02 * rng.random((m, n))
    observed = rng.random((m, n)) > missing
    scale = np.sqrt(X.mean() / k)
    W0, H0 = scale * rng.random((m, k)), scale * rng.random((k, n))
    return X, observed, W0, H0


def textbook_weighted_hals(X, M, W, H, iters, sweeps):
    W, H = W.copy(), H.copy()
    X = np.where(M > 0, X, 0.0)
    for _ in range(iters):
        for _ in range(sweeps):
            for j in range(W.shape[1]):
                R = X - W @ H
                hess = (M * H[j] ** 2).sum(1)
                g = (M * R * H[j]).sum(1)
                ok = hess > 0
                W[ok, j] = np.maximum(0.0, W[ok, j] + g[ok] / hess[ok])
        for _ in range(sweeps):
            for j in range(H.shape[0]):
                R = X - W @ H
                hess = (M * W[:, j : j + 1] ** 2).sum(0)
                g = (M * R * W[:, j : j + 1]).sum(0)
                ok = hess > 0
                H[j, ok] = np.maximum(0.0, H[j, ok] + g[ok] / hess[ok])
    return W, H


def textbook_weighted_mu(X, M, W, H, iters):
    W, H = W.copy(), H.copy()
    X = np.where(M > 0, X, 0.0)
    eps = np.finfo(np.float32).eps
    for _ in range(iters):
        den = (M * (W @ H)) @ H.T
        W *= ((M * X) @ H.T) / np.where(den == 0, eps, den)
        den = W.T @ (M * (W @ H))
        H *= (W.T @ (M * X)) / np.where(den == 0, eps, den)
    return W, H


@pytest.mark.parametrize("sweeps", [1, 2])
def test_weighted_hals_matches_textbook(rng, sweeps):
    X, observed, W0, H0 = problem(rng)
    Xn = np.where(observed, X, np.nan)
    model = rankfold.NMF(4, init="custom", solver="hals", inner_sweeps=sweeps, max_iter=8, tol=0.0,
                         missing_values=np.nan)
    W = model.fit_transform(Xn, W=W0, H=H0)
    Wr, Hr = textbook_weighted_hals(X, observed.astype(float), W0, H0, 8, sweeps)
    np.testing.assert_allclose(W, Wr, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-6, atol=1e-10)
    M = observed.astype(float)
    np.testing.assert_allclose(model.reconstruction_err_, np.sqrt(np.sum(M * (X - Wr @ Hr) ** 2)), rtol=1e-8)
    np.testing.assert_allclose(model.loss_history_[-1], 0.5 * model.reconstruction_err_**2, rtol=1e-8)


def test_weighted_mu_matches_textbook_with_weights(rng):
    X, _, W0, H0 = problem(rng)
    weights = rng.random(X.shape) * (rng.random(X.shape) > 0.3)
    model = rankfold.NMF(4, init="custom", solver="mu", max_iter=15, tol=0.0)
    W = model.fit_transform(X, W=W0, H=H0, mask=weights)
    Wr, Hr = textbook_weighted_mu(X, weights, W0, H0, 15)
    np.testing.assert_allclose(W, Wr, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-6, atol=1e-10)


def test_nan_equals_boolean_mask(rng):
    X, observed, W0, H0 = problem(rng)
    a = rankfold.NMF(4, init="custom", max_iter=10, tol=0.0, missing_values="nan")
    Wa = a.fit_transform(np.where(observed, X, np.nan), W=W0, H=H0)
    b = rankfold.NMF(4, init="custom", max_iter=10, tol=0.0)
    Wb = b.fit_transform(np.where(observed, X, 123.0), W=W0, H=H0, mask=observed)
    np.testing.assert_allclose(Wa, Wb, rtol=1e-12)
    np.testing.assert_allclose(a.components_, b.components_, rtol=1e-12)


def test_weighted_anls_rows_are_exact(rng):
    X, observed, W0, H0 = problem(rng)
    model = rankfold.NMF(4, init="custom", solver="anls", max_iter=3, tol=0.0, missing_values=np.nan)
    Xn = np.where(observed, X, np.nan)
    model.fit(Xn, W=W0, H=H0)
    H = model.components_
    W = model.transform(Xn)  # exact weighted NNLS per row
    for i in range(X.shape[0]):
        obs = observed[i]
        ref, _ = scipy.optimize.nnls(H[:, obs].T, X[i, obs])
        np.testing.assert_allclose(W[i], ref, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("solver", ["hals", "mu", "anls"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_missing_entries_are_recovered(rng, solver, dtype):
    m, n, k = 80, 60, 3
    X = rng.random((m, k)) @ rng.random((k, n))
    observed = rng.random((m, n)) > 0.25
    Xn = np.where(observed, X, np.nan).astype(dtype)
    model = rankfold.NMF(k, solver=solver, max_iter=400 if solver == "mu" else 150, tol=0.0, random_state=0,
                         missing_values=np.nan)
    W = model.fit_transform(Xn)
    assert W.dtype == dtype and model.components_.dtype == dtype
    pred = W.astype(np.float64) @ model.components_.astype(np.float64)
    held_out = ~observed
    rel = np.linalg.norm((pred - X)[held_out]) / np.linalg.norm(X[held_out])
    assert rel < (0.08 if solver == "mu" else 0.02), rel


def test_missing_value_errors(rng):
    X, observed, W0, H0 = problem(rng)
    Xn = np.where(observed, X, np.nan)
    with pytest.raises(ValueError, match="missing_values"):
        rankfold.NMF(4).fit(Xn)
    with pytest.raises(ValueError, match="nndsvd"):
        rankfold.NMF(4, init="nndsvd", missing_values=np.nan).fit(Xn)
    with pytest.raises(ValueError, match="shape"):
        rankfold.NMF(4).fit(X, mask=observed[:, :5])
    with pytest.raises(ValueError, match="negative"):
        rankfold.NMF(4).fit(X, mask=-observed.astype(float))
    with pytest.raises(ValueError, match="missing"):
        rankfold.NMF(4).fit(X, mask=np.zeros_like(X))
    with pytest.raises(ValueError, match="nonzero weight"):
        rankfold.NMF(4).fit(Xn, mask=np.ones_like(X))
    with pytest.raises(ValueError, match="missing_values"):
        rankfold.NMF(4, missing_values=0).fit(X)
    with pytest.raises(ValueError, match="dense"):
        import scipy.sparse as sp

        rankfold.NMF(4).fit(sp.csr_matrix(X), mask=observed)
    bad = Xn.copy()
    bad[0, 0] = -1.0
    with pytest.raises(ValueError, match="negative"):
        rankfold.NMF(4, missing_values=np.nan).fit(bad)
