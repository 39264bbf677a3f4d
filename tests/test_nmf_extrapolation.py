"""HALS/ANLS with extrapolation (NMF(extrapolate=...), Ang & Gillis 2019); see also tests/test_nmf.py."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold


def correlated(rng, m=300, n=80, k=4, noise=0.01):
    """Ill-conditioned NMF: strongly correlated components, where plain HALS zig-zags."""
    base = rng.random(n)
    H = 0.7 * base + 0.3 * rng.random((k, n))
    W = rng.dirichlet(np.full(k, 0.5), size=m)
    return W @ H + noise * rng.random((m, n))


def objective(X, W, H):
    X = X.toarray() if sp.issparse(X) else X
    return 0.5 * float(np.sum((X - W @ H) ** 2))


@pytest.fixture
def rng():
    return np.random.default_rng(5)


def fit(X, iters, extrapolate, W0=None, H0=None, **kw):
    model = rankfold.NMF(W0.shape[1], init="custom", max_iter=iters, tol=0.0, extrapolate=extrapolate, **kw)
    W = model.fit_transform(X, W=W0, H=H0)
    return model, W


def test_fewer_passes_on_ill_conditioned_data(rng):
    X = correlated(rng)
    W0, H0 = rng.random((X.shape[0], 4)), rng.random((4, X.shape[1]))
    plain, Wp = fit(X, 300, False, W0, H0)
    fast, Wf = fit(X, 100, True, W0, H0)
    # 100 extrapolated iterations beat 300 plain ones
    assert objective(X, Wf, fast.components_) < objective(X, Wp, plain.components_)
    hist = fast.loss_history_
    assert len(hist) == 100 and np.all(np.diff(hist) <= 0)
    np.testing.assert_allclose(hist[-1], objective(X, Wf, fast.components_), rtol=1e-8)
    assert (Wf >= 0).all() and (fast.components_ >= 0).all()


@pytest.mark.parametrize("fmt", ["csr", "csc", "F"])
def test_same_iterates_for_every_layout(rng, fmt):
    X = correlated(rng, 120, 60)
    X[X < np.quantile(X, 0.3)] = 0
    W0, H0 = rng.random((X.shape[0], 4)), rng.random((4, X.shape[1]))
    ref, Wr = fit(X, 25, True, W0, H0, inner_sweeps=2)
    Xin = np.asfortranarray(X) if fmt == "F" else sp.csr_matrix(X).asformat(fmt)
    other, Wo = fit(Xin, 25, True, W0, H0, inner_sweeps=2)
    np.testing.assert_allclose(Wo, Wr, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(other.loss_history_, ref.loss_history_, rtol=1e-9)


def test_stopping_transform_and_float32(rng):
    X = correlated(rng)
    model = rankfold.NMF(4, tol=1e-6, max_iter=2000, extrapolate=True, random_state=0)
    W = model.fit_transform(X)
    assert model.n_iter_ < 2000
    # W is the best response to H: transform (exact NNLS rows) reproduces it closely
    np.testing.assert_allclose(model.transform(X), W, atol=1e-3 * np.abs(W).max())
    model = rankfold.NMF(4, max_iter=40, tol=0.0, extrapolate=True, random_state=0,
                         callback=lambda it, loss: it < 9).fit(X)
    assert model.n_iter_ == 9
    W32 = rankfold.NMF(4, max_iter=50, tol=0.0, extrapolate=True, random_state=0).fit_transform(
        X.astype(np.float32))
    assert W32.dtype == np.float32 and np.isfinite(W32).all()


def test_penalties_are_part_of_the_objective(rng):
    X = correlated(rng)
    W0, H0 = rng.random((X.shape[0], 4)), rng.random((4, X.shape[1]))
    model, W = fit(X, 30, True, W0, H0, alpha_W=1e-3, alpha_H=2e-3, l1_ratio=0.5)
    m, n = X.shape
    H = model.components_
    pen = (n * 1e-3 * 0.5 * W.sum() + 0.5 * n * 1e-3 * 0.5 * (W ** 2).sum()
           + m * 2e-3 * 0.5 * H.sum() + 0.5 * m * 2e-3 * 0.5 * (H ** 2).sum())
    np.testing.assert_allclose(model.loss_history_[-1], objective(X, W, H) + pen, rtol=1e-8)


@pytest.mark.realdata
def test_samson_reaches_plain_hals_error_in_fewer_iterations():
    from conftest import data_path

    from rankfold.datasets import load_samson

    X = load_samson(data_path("samson"))[0]
    plain = rankfold.NMF(3, init="nndsvda", max_iter=400, tol=0.0, extrapolate=False).fit(X)
    fast = rankfold.NMF(3, init="nndsvda", max_iter=100, tol=0.0, extrapolate=True).fit(X)
    assert fast.reconstruction_err_ <= plain.reconstruction_err_
