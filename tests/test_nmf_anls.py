"""The exact NNLS row solver of solver="anls" and NMF.transform (block principal
pivoting with grouped right-hand sides) against scipy.optimize.nnls."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

import rankfold
from rankfold import _core


def solve_rows(X, H, l1=0.0, l2=0.0, W0=None, threads=2):
    """argmin_{W >= 0} 0.5 ||X - W H||^2 + l1 sum(W) + 0.5 l2 ||W||^2 row by row (the C++ kernel)."""
    m, k = X.shape[0], H.shape[0]
    W = np.zeros((m, k), dtype=X.dtype) if W0 is None else np.ascontiguousarray(W0, dtype=X.dtype).copy()
    spec = ("dense", X) if not sp.issparse(X) else (X.format, X.indptr, X.indices, X.data, *X.shape)
    _core.nmf_solve_rows(spec, W, np.ascontiguousarray(H.T, dtype=X.dtype), l1, l2, threads)
    return W


def objective(X, W, H):
    return 0.5 * np.sum((X - W @ H) ** 2, axis=1)


def check_kkt(X, W, H, rtol):
    """x >= 0, gradient >= 0, complementary slackness, up to rtol of the problem's scale."""
    G, B = H @ H.T, X @ H.T
    grad = W @ G - B
    scale = np.abs(B).max(axis=1, keepdims=True) + np.abs(G).max() * np.abs(W).max(axis=1, keepdims=True)
    assert (W >= 0).all()
    assert (grad >= -rtol * scale).all()
    assert (np.abs(grad * W) <= rtol * scale * (np.abs(W).max(axis=1, keepdims=True) + 1e-300)).all()


@pytest.fixture
def rng():
    return np.random.default_rng(11)


@pytest.mark.parametrize("k", [1, 3, 8, 20, 40])
def test_rows_match_scipy_nnls_on_nmf_like_data(rng, k):
    n, m = 120, 90
    H = rng.random((k, n))
    W_true = rng.random((m, k)) * (rng.random((m, k)) < 0.6)
    X = W_true @ H + 0.05 * rng.standard_normal((m, n))
    W = solve_rows(X, H)
    for i in range(m):
        ref, _ = scipy.optimize.nnls(H.T, X[i])
        np.testing.assert_allclose(W[i], ref, rtol=1e-7, atol=1e-9 * np.abs(ref).max())
    check_kkt(X, W, H, 1e-9)


def test_rows_match_scipy_nnls_mostly_inactive(rng):
    # unstructured right-hand sides: most coordinates at zero, supports all different
    k, n, m = 15, 60, 200
    H = rng.random((k, n))
    X = rng.standard_normal((m, n))
    W = solve_rows(X, H)
    for i in range(m):
        ref, _ = scipy.optimize.nnls(H.T, X[i])
        np.testing.assert_allclose(W[i], ref, rtol=1e-7, atol=1e-9 * max(np.abs(ref).max(), 1e-12))


@pytest.mark.parametrize("eps", [1e-3, 1e-5])
def test_ill_conditioned_rows_reach_scipy_objective(rng, eps):
    # nearly collinear components: cond(H H^T) ~ 1 / eps^2
    k, n, m = 10, 80, 60
    base = rng.random(n)
    H = base + eps * rng.random((k, n))
    H[k // 2:] = rng.random((k - k // 2, n))  # half of them well separated
    X = rng.random((m, k)) @ H + 0.01 * rng.random((m, n))
    W = solve_rows(X, H)
    ours = objective(X, W, H)
    for i in range(m):
        ref, _ = scipy.optimize.nnls(H.T, X[i])
        theirs = 0.5 * np.sum((X[i] - ref @ H) ** 2)
        assert ours[i] <= theirs + 1e-9 * (np.sum(X[i] ** 2))
    assert (W >= 0).all()


def test_zero_component_and_zero_rows(rng):
    k, n = 6, 40
    H = rng.random((k, n))
    H[2] = 0.0  # a dead component: G_jj = 0, its coefficient stays 0
    X = rng.random((30, k)) @ H
    X[5] = 0.0
    W = solve_rows(X, H)
    assert (W[:, 2] == 0).all() and (W[5] == 0).all()
    for i in range(30):
        ref, _ = scipy.optimize.nnls(np.delete(H, 2, axis=0).T, X[i])
        np.testing.assert_allclose(np.delete(W[i], 2), ref, rtol=1e-7, atol=1e-10)


def test_warm_start_gives_the_same_solution(rng):
    k, n, m = 12, 50, 300
    H = rng.random((k, n))
    X = (rng.random((m, k)) * (rng.random((m, k)) < 0.5)) @ H + 0.02 * rng.random((m, n))
    cold = solve_rows(X, H)
    for start in (cold, rng.random((m, k)), np.ones((m, k)), cold[::-1]):
        np.testing.assert_allclose(solve_rows(X, H, W0=start), cold, rtol=1e-9, atol=1e-12)


def test_penalties_and_float32_and_sparse(rng):
    k, n, m = 8, 70, 40
    H = rng.random((k, n))
    X = rng.random((m, k)) @ H + 0.05 * rng.random((m, n))
    l1, l2 = 0.3, 0.7
    W = solve_rows(X, H, l1=l1, l2=l2)
    G = H @ H.T + l2 * np.eye(k)
    L = np.linalg.cholesky(G)
    for i in range(m):
        b = X[i] @ H.T - l1
        # min 0.5 w^T G w - b^T w  ==  min 0.5 ||L^T w - L^{-1} b||^2
        ref, _ = scipy.optimize.nnls(L.T, np.linalg.solve(L, b))
        np.testing.assert_allclose(W[i], ref, rtol=1e-7, atol=1e-10)
    W32 = solve_rows(X.astype(np.float32), H.astype(np.float32), l1=l1, l2=l2)
    assert W32.dtype == np.float32
    np.testing.assert_allclose(W32, W, rtol=2e-3, atol=2e-4)
    Xs = X.copy()
    Xs[Xs < np.median(Xs)] = 0
    np.testing.assert_allclose(solve_rows(sp.csr_matrix(Xs), H), solve_rows(Xs, H), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(solve_rows(sp.csc_matrix(Xs), H), solve_rows(Xs, H), rtol=1e-10, atol=1e-12)


def test_anls_fit_decreases_and_transform_is_exact(rng):
    X = rng.random((80, 6)) @ rng.random((6, 50)) + 0.05 * rng.random((80, 50))
    model = rankfold.NMF(6, solver="anls", max_iter=30, tol=0.0, random_state=0).fit(X)
    hist = model.loss_history_
    assert np.all(np.diff(hist) <= 1e-10 * hist[:-1])  # every half-step is an exact minimisation
    Xnew = rng.random((10, 50))
    W = model.transform(Xnew)
    for i in range(10):
        ref, _ = scipy.optimize.nnls(model.components_.T, Xnew[i])
        np.testing.assert_allclose(W[i], ref, rtol=1e-7, atol=1e-10)
