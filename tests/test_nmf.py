"""rankfold.NMF against textbook NumPy solvers, scikit-learn and scipy."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

import rankfold
from rankfold.nmf import ConvergenceWarning, NotFittedError

sklearn = pytest.importorskip("sklearn")
from sklearn.decomposition import NMF as SkNMF  # noqa: E402
from sklearn.decomposition._nmf import _initialize_nmf  # noqa: E402


def low_rank(rng, m=60, n=40, k=5, noise=0.05, dtype=np.float64):
    X = rng.random((m, k)) @ rng.random((k, n)) + noise * rng.random((m, n))
    return X.astype(dtype)


def start(rng, X, k):
    scale = np.sqrt(X.mean() / k)
    return scale * rng.random((X.shape[0], k)), scale * rng.random((k, X.shape[1]))


# ---------------------------------------------------------------- textbook references

def textbook_hals(X, W, H, iters, sweeps=1, l1W=0.0, l2W=0.0, l1H=0.0, l2H=0.0):
    """Column-wise HALS (Cichocki & Phan), W then H, `sweeps` passes per half-step."""
    W, H = W.copy(), H.copy()
    for _ in range(iters):
        A, G = X @ H.T, H @ H.T
        for _ in range(sweeps):
            for j in range(W.shape[1]):
                grad = W @ G[:, j] - A[:, j] + l1W + l2W * W[:, j]
                hess = G[j, j] + l2W
                if hess > 0:
                    W[:, j] = np.maximum(0.0, W[:, j] - grad / hess)
        B, G = W.T @ X, W.T @ W
        for _ in range(sweeps):
            for j in range(H.shape[0]):
                grad = G[j] @ H - B[j] + l1H + l2H * H[j]
                hess = G[j, j] + l2H
                if hess > 0:
                    H[j] = np.maximum(0.0, H[j] - grad / hess)
    return W, H


def textbook_mu(X, W, H, iters):
    """Lee & Seung multiplicative updates for the Frobenius loss, W then H."""
    W, H = W.copy(), H.copy()
    eps = np.finfo(np.float32).eps
    for _ in range(iters):
        den = W @ (H @ H.T)
        W *= (X @ H.T) / np.where(den == 0, eps, den)
        den = (W.T @ W) @ H
        H *= (W.T @ X) / np.where(den == 0, eps, den)
    return W, H


def sk_fit(model, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit_transform(X, **kw)


def objective(X, W, H):
    return 0.5 * np.linalg.norm(X - W @ H) ** 2


def fit_custom(X, W0, H0, **params):
    params.setdefault("extrapolate", False)  # the plain iterates of the textbook methods
    model = rankfold.NMF(W0.shape[1], init="custom", tol=0.0, n_threads=2, **params)
    W = model.fit_transform(X, W=W0, H=H0)
    return model, W


# ---------------------------------------------------------------- same iterates as the references

@pytest.mark.parametrize("sweeps", [1, 3])
def test_hals_matches_textbook(rng, sweeps):
    X = low_rank(rng)
    W0, H0 = start(rng, X, 5)
    model, W = fit_custom(X, W0, H0, solver="hals", max_iter=15, inner_sweeps=sweeps)
    Wr, Hr = textbook_hals(X, W0, H0, 15, sweeps)
    np.testing.assert_allclose(W, Wr, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-6, atol=1e-10)
    assert model.n_iter_ == 15


def test_hals_penalties_match_textbook(rng):
    X = low_rank(rng)
    m, n = X.shape
    W0, H0 = start(rng, X, 5)
    alpha_W, alpha_H, l1_ratio = 0.01, 0.02, 0.3
    model, W = fit_custom(X, W0, H0, solver="hals", max_iter=10, inner_sweeps=1, alpha_W=alpha_W,
                          alpha_H=alpha_H, l1_ratio=l1_ratio)
    Wr, Hr = textbook_hals(X, W0, H0, 10, 1, l1W=n * alpha_W * l1_ratio, l2W=n * alpha_W * (1 - l1_ratio),
                           l1H=m * alpha_H * l1_ratio, l2H=m * alpha_H * (1 - l1_ratio))
    np.testing.assert_allclose(W, Wr, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-6, atol=1e-10)


def test_mu_matches_textbook(rng):
    X = low_rank(rng)
    W0, H0 = start(rng, X, 5)
    model, W = fit_custom(X, W0, H0, solver="mu", max_iter=25)
    Wr, Hr = textbook_mu(X, W0, H0, 25)
    np.testing.assert_allclose(W, Wr, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-6, atol=1e-10)


@pytest.mark.parametrize("alpha_W,l1_ratio", [(0.0, 0.0), (0.005, 0.5)])
def test_hals_one_sweep_equals_sklearn_cd(rng, alpha_W, l1_ratio):
    """inner_sweeps=1 is scikit-learn's cd (no shuffle): same iterates, same penalty scaling."""
    X = low_rank(rng)
    W0, H0 = start(rng, X, 5)
    sk = SkNMF(5, init="custom", solver="cd", max_iter=12, tol=0.0, alpha_W=alpha_W, l1_ratio=l1_ratio)
    Wsk = sk_fit(sk, X, W=W0.copy(), H=H0.copy())
    model, W = fit_custom(X, W0, H0, solver="hals", max_iter=12, inner_sweeps=1, alpha_W=alpha_W,
                          l1_ratio=l1_ratio)
    np.testing.assert_allclose(W, Wsk, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.components_, sk.components_, rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(model.reconstruction_err_, sk.reconstruction_err_, rtol=1e-8)


def test_anls_half_steps_are_exact(rng):
    """After an ANLS fit, H is the exact NNLS solution for the final W (checked with scipy)."""
    X = low_rank(rng, m=30, n=20, k=4)
    model = rankfold.NMF(4, solver="anls", init="random", random_state=0, max_iter=5, tol=0.0, extrapolate=False)
    W = model.fit_transform(X)
    H = model.components_
    for j in range(X.shape[1]):
        ref, _ = scipy.optimize.nnls(W, X[:, j])
        np.testing.assert_allclose(H[:, j], ref, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- quality against scikit-learn

@pytest.mark.parametrize("solver,sk_solver", [("hals", "cd"), ("anls", "cd"), ("mu", "mu"), ("hals", "mu")])
def test_objective_not_worse_than_sklearn(rng, solver, sk_solver):
    X = low_rank(rng, m=120, n=80, k=8, noise=0.1)
    budget = 60
    sk = SkNMF(8, init="nndsvda", solver=sk_solver, max_iter=budget, tol=0.0)
    Wsk = sk_fit(sk, X)
    model = rankfold.NMF(8, init="nndsvda", solver=solver, max_iter=budget, tol=0.0)
    W = model.fit_transform(X)
    ours, theirs = objective(X, W, model.components_), objective(X, Wsk, sk.components_)
    assert ours <= theirs * (1 + 1e-6), (ours, theirs)


def test_nndsvd_inits_match_sklearn(rng):
    X = low_rank(rng, m=80, n=50, k=4, noise=0.01)
    for init in ("nndsvd", "nndsvda"):
        model = rankfold.NMF(4, init=init, max_iter=0, random_state=0)
        W = model.fit_transform(X)
        Wsk, Hsk = _initialize_nmf(X, 4, init=init, random_state=0)
        np.testing.assert_allclose(W, Wsk, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(model.components_, Hsk, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("init", ["random", "nndsvd", "nndsvda", "nndsvdar"])
def test_every_init_converges(rng, init):
    X = low_rank(rng, m=50, n=30, k=3, noise=0.01)
    model = rankfold.NMF(3, init=init, random_state=3, max_iter=400, tol=1e-7)
    W = model.fit_transform(X)
    assert np.all(W >= 0) and np.all(model.components_ >= 0)
    assert model.reconstruction_err_ / np.linalg.norm(X) < 0.02


# ---------------------------------------------------------------- inputs: sparse, float32, order

@pytest.mark.parametrize("fmt,index_dtype", [("csr", np.int32), ("csc", np.int32), ("csr", np.int64),
                                             ("csc", np.int64)])
@pytest.mark.parametrize("solver", ["hals", "mu"])
def test_sparse_equals_dense(rng, fmt, index_dtype, solver):
    X = low_rank(rng, m=70, n=45, k=4)
    X[X < 0.8] = 0.0
    S = sp.csr_matrix(X).asformat(fmt)
    S.indices = S.indices.astype(index_dtype)
    S.indptr = S.indptr.astype(index_dtype)
    W0, H0 = start(rng, X, 4)
    # fixed sweeps: "auto" picks the count from the cost of a pass, which differs
    md, Wd = fit_custom(X, W0, H0, solver=solver, max_iter=20, inner_sweeps=3)
    ms, Ws = fit_custom(S, W0, H0, solver=solver, max_iter=20, inner_sweeps=3)
    np.testing.assert_allclose(Ws, Wd, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ms.components_, md.components_, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(ms.reconstruction_err_, md.reconstruction_err_, rtol=1e-8)
    np.testing.assert_allclose(ms.transform(S), md.transform(X), rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(ms.reconstruction_err_, np.linalg.norm(X - Ws @ ms.components_), rtol=1e-8)


def test_fortran_order_equals_c_order(rng):
    X = low_rank(rng)
    W0, H0 = start(rng, X, 5)
    mc, Wc = fit_custom(X, W0, H0, max_iter=10)
    mf, Wf = fit_custom(np.asfortranarray(X), W0, H0, max_iter=10)
    np.testing.assert_allclose(Wf, Wc, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(mf.components_, mc.components_, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("solver", ["hals", "mu", "anls"])
def test_float32_stays_float32(rng, solver):
    X = low_rank(rng)
    X32 = X.astype(np.float32)
    m64 = rankfold.NMF(5, solver=solver, random_state=0, max_iter=30, tol=0.0, inner_sweeps=2)
    m32 = rankfold.NMF(5, solver=solver, random_state=0, max_iter=30, tol=0.0, inner_sweeps=2)
    W64, W32 = m64.fit_transform(X), m32.fit_transform(X32)
    assert W32.dtype == np.float32 and m32.components_.dtype == np.float32
    assert m32.transform(X32).dtype == np.float32
    assert m32.inverse_transform(W32).dtype == np.float32
    np.testing.assert_allclose(m32.reconstruction_err_, m64.reconstruction_err_, rtol=1e-3)
    S32 = sp.csr_matrix(X32)
    assert rankfold.NMF(5, solver=solver, max_iter=3, tol=0.0).fit_transform(S32).dtype == np.float32


# ---------------------------------------------------------------- attributes and behaviour

def test_attributes_and_loss_history(rng):
    X = low_rank(rng)
    model = rankfold.NMF(5, max_iter=40, tol=0.0, random_state=1)
    W = model.fit_transform(X)
    H = model.components_
    assert W.shape == (60, 5) and H.shape == (5, 40) and model.n_features_in_ == 40
    assert model.n_iter_ == 40 and model.loss_history_.shape == (40,)
    assert np.all(np.diff(model.loss_history_) <= 1e-12 * model.loss_history_[0])  # HALS is monotone
    np.testing.assert_allclose(model.loss_history_[-1], objective(X, W, H), rtol=1e-9)
    np.testing.assert_allclose(model.reconstruction_err_, np.linalg.norm(X - W @ H), rtol=1e-10)
    np.testing.assert_allclose(model.inverse_transform(W), W @ H)


def test_transform_solves_nnls_exactly(rng):
    X = low_rank(rng, m=40, n=30, k=4)
    model = rankfold.NMF(4, max_iter=50, tol=0.0, random_state=0).fit(X)
    Xnew = low_rank(rng, m=15, n=30, k=4)
    W = model.transform(Xnew)
    for i in range(Xnew.shape[0]):
        ref, _ = scipy.optimize.nnls(model.components_.T, Xnew[i])
        np.testing.assert_allclose(W[i], ref, rtol=1e-7, atol=1e-10)


def test_transform_with_penalty_is_optimal(rng):
    """KKT conditions of the penalized row problems."""
    X = low_rank(rng, m=40, n=30, k=4)
    model = rankfold.NMF(4, max_iter=30, tol=0.0, random_state=0, alpha_W=0.01, l1_ratio=0.5).fit(X)
    W = model.transform(X)
    H = model.components_
    n = X.shape[1]
    grad = (W @ H - X) @ H.T + n * 0.01 * 0.5 + n * 0.01 * 0.5 * W
    scale = np.abs(X @ H.T).max()
    assert np.all(grad >= -1e-8 * scale)
    assert np.all(np.abs(grad[W > 0]) <= 1e-8 * scale)


def test_tol_stops_early_and_max_iter_warns(rng):
    X = low_rank(rng)
    model = rankfold.NMF(5, tol=1e-3, max_iter=500, random_state=0, extrapolate=False).fit(X)
    assert model.n_iter_ < 500
    rel = -np.diff(model.loss_history_)[-1] / model.loss_history_[-2]
    assert rel <= 1e-3
    # extrapolated (the default): stops on an accepted step that lowered the best objective by <= tol
    model = rankfold.NMF(5, tol=1e-3, max_iter=500, random_state=0).fit(X)
    assert model.n_iter_ < 500
    with pytest.warns(ConvergenceWarning, match="max_iter"):
        rankfold.NMF(5, tol=1e-12, max_iter=3, random_state=0).fit(X)


def test_callback_and_verbose(rng, capsys):
    X = low_rank(rng)
    seen = []
    rankfold.NMF(5, max_iter=7, tol=0.0, callback=lambda it, loss: seen.append((it, loss))).fit(X)
    assert [s[0] for s in seen] == list(range(1, 8))
    model = rankfold.NMF(5, max_iter=50, tol=0.0, callback=lambda it, loss: it < 4).fit(X)
    assert model.n_iter_ == 4
    rankfold.NMF(5, max_iter=2, tol=0.0, verbose=1).fit(X)
    assert "objective" in capsys.readouterr().out

    def boom(it, loss):
        raise KeyError("stop here")

    with pytest.raises(KeyError, match="stop here"):
        rankfold.NMF(5, max_iter=5, callback=boom).fit(X)


def test_random_state_reproducible(rng):
    X = low_rank(rng)
    for init in ("random", "nndsvdar", "nndsvda"):
        a = rankfold.NMF(5, init=init, random_state=7, max_iter=10, tol=0.0, n_threads=2).fit(X).components_
        b = rankfold.NMF(5, init=init, random_state=7, max_iter=10, tol=0.0, n_threads=2).fit(X).components_
        np.testing.assert_array_equal(a, b)


def test_all_zero_row_and_column_are_fine(rng):
    X = low_rank(rng)
    X[3] = 0.0
    X[:, 5] = 0.0
    model = rankfold.NMF(5, max_iter=30, tol=0.0, random_state=0)
    W = model.fit_transform(X)
    assert np.all(np.isfinite(W)) and np.all(np.isfinite(model.components_))
    assert np.allclose(W[3], 0.0) and np.allclose(model.components_[:, 5], 0.0)


def test_randomized_svd(rng):
    X = rng.random((200, 80)) @ np.diag(0.8 ** np.arange(80)) @ rng.random((80, 80))
    U, S, Vt = rankfold.randomized_svd(X, 6, random_state=0)
    ref = np.linalg.svd(X, compute_uv=False)[:6]
    np.testing.assert_allclose(S, ref, rtol=1e-6)
    np.testing.assert_allclose(U.T @ U, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(Vt @ Vt.T, np.eye(6), atol=1e-10)
    np.testing.assert_allclose(U.T @ X @ Vt.T, np.diag(S), atol=1e-8 * S[0])
    Us, Ss, _ = rankfold.randomized_svd(sp.csr_matrix(X), 6, random_state=0)
    np.testing.assert_allclose(Ss, S, rtol=1e-10)
    U32, S32, _ = rankfold.randomized_svd(X.astype(np.float32), 6, random_state=0)
    assert U32.dtype == np.float32
    np.testing.assert_allclose(S32, ref, rtol=1e-4)


def test_not_fitted_and_wrong_width(rng):
    X = low_rank(rng)
    with pytest.raises(NotFittedError):
        rankfold.NMF(3).transform(X)
    model = rankfold.NMF(3, max_iter=5, tol=0.0).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :10])


@pytest.mark.parametrize("solver", ["hals", "mu", "anls"])
@pytest.mark.parametrize("fmt", ["dense", "csr"])
def test_step_kernels_reproduce_the_fit_loop(rng, solver, fmt):
    """The step-level bindings (products, gram, update_rows) driven from Python give the fit loop's iterates."""
    from rankfold import _core
    from rankfold._operand import operand as _spec

    X = low_rank(rng, m=50, n=30, k=4)
    X[X < np.quantile(X, 0.3)] = 0.0
    Xin = sp.csr_matrix(X) if fmt == "csr" else X
    W0, H0 = start(rng, X, 4)
    model, Wfit = fit_custom(Xin, W0, H0, solver=solver, max_iter=6, inner_sweeps=3, alpha_W=0.01)
    l1W, l2W, l1H, l2H = model._penalties(*X.shape)
    spec = _spec(Xin)
    W, Ht = W0.copy(), np.ascontiguousarray(H0.T)
    for _ in range(6):
        _core.nmf_update_rows(W, _core.nmf_products(spec, Ht, False, 2), _core.nmf_gram(Ht, 2), solver,
                              l1W, l2W, 3, 0.0, 2)
        _core.nmf_update_rows(Ht, _core.nmf_products(spec, W, True, 2), _core.nmf_gram(W, 2), solver,
                              l1H, l2H, 3, 0.0, 2)
    np.testing.assert_allclose(W, Wfit, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(Ht.T, model.components_, rtol=1e-9, atol=1e-12)


def test_step_kernels_check_shapes(rng):
    from rankfold import _core

    Y = np.ones((5, 3))
    with pytest.raises(ValueError, match="A must have shape"):
        _core.nmf_update_rows(Y, np.ones((4, 3)), np.eye(3), "hals", 0.0, 0.0, 1, 0.0, 1)
    with pytest.raises(ValueError, match="solver"):
        _core.nmf_update_rows(Y, np.ones((5, 3)), np.eye(3), "bogus", 0.0, 0.0, 1, 0.0, 1)
    with pytest.raises(TypeError):
        _core.nmf_gram(np.ones((5, 3), np.float16), 1)


# ---------------------------------------------------------------- extrapolation (Ang & Gillis)

def textbook_extrapolated_hals(X, W, H, iters, sweeps):
    """Extrapolated HALS with restarts, written out with NumPy: each half-step solves against the other
    factor's point max(0, Y + beta (Y - Y_prev)); beta grows by 1.05 (capped) while the objective of the
    pair (extrapolated W, plain H) decreases and shrinks by 1.5 otherwise; a projection that would zero a
    whole column is undone. A last W half-step against the best H ends the fit, and the pairs are
    rescaled to equal norms. Returns that pair and the best-so-far objectives."""

    def hals_half(Y, A, G):  # rows of Y against A = X F, G = F^T F (column-wise HALS)
        Y = Y.copy()
        for _ in range(sweeps):
            for j in range(Y.shape[1]):
                if G[j, j] > 0:
                    Y[:, j] = np.maximum(0.0, Y[:, j] - (Y @ G[:, j] - A[:, j]) / G[j, j])
        return Y

    def extrapolate(Y, prev, beta):
        Z = np.maximum(0.0, Y + beta * (Y - prev))
        if ((Z.max(axis=0) <= 0) & (Y.max(axis=0) > 0)).any():
            return Y, False
        return Z, True

    W, Ht = W.copy(), H.T.copy()
    H_hat, W_prev, H_prev = Ht.copy(), None, None
    beta, cap, prev, best, best_pair, history = 0.5, 1.0, np.inf, np.inf, None, []
    for it in range(1, iters + 1):
        W_plain = hals_half(W, X @ H_hat, H_hat.T @ H_hat)
        kept = True
        if it == 1:
            W = W_plain
        else:
            W, kept = extrapolate(W_plain, W_prev, beta)
        W_prev = W_plain
        H_plain = hals_half(H_hat, X.T @ W, W.T @ W)
        loss = 0.5 * np.linalg.norm(X - W @ H_plain.T) ** 2
        if loss < best:
            best, best_pair = loss, (W.copy(), H_plain.T.copy())
        if it == 1 or loss > prev or not kept:
            if it > 1:
                cap, beta = beta, beta / 1.5
            H_hat = H_plain
        else:
            beta, cap = min(cap, 1.05 * beta), min(1.0, 1.01 * cap)
            H_hat, ok = extrapolate(H_plain, H_prev, beta)
            if not ok:
                cap, beta = beta, beta / 1.5
        H_prev = H_plain
        prev = loss
        history.append(best)
    W, Ht = best_pair[0], best_pair[1].T
    W = hals_half(W, X @ Ht, Ht.T @ Ht)  # the last W half-step against the returned H
    history[-1] = min(history[-1], 0.5 * np.linalg.norm(X - W @ Ht.T) ** 2)
    c = np.sqrt(np.linalg.norm(Ht, axis=0) / np.linalg.norm(W, axis=0))  # balanced pairs, ||w_j|| = ||h_j||
    return W * c, (Ht / c).T, np.array(history)


def test_extrapolated_hals_matches_textbook(rng):
    X = low_rank(rng, m=50, n=35, k=5, noise=0.2)
    W0, H0 = start(rng, X, 5)
    model, W = fit_custom(X, W0, H0, solver="hals", max_iter=30, inner_sweeps=2, extrapolate=True)
    Wr, Hr, hist = textbook_extrapolated_hals(X, W0, H0, 30, 2)
    np.testing.assert_allclose(W, Wr, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.loss_history_, hist, rtol=1e-8)


@pytest.mark.parametrize("solver", ["hals", "anls"])
def test_extrapolation_keeps_the_best_pair(rng, solver):
    """Default ("auto") extrapolation: the history never increases and its last value is the objective of
    the returned pair; with ANLS, W is the exact NNLS solution for the returned H."""
    X = low_rank(rng, m=120, n=60, k=6, noise=0.3)
    W0, H0 = start(rng, X, 6)
    fast, Wf = fit_custom(X, W0, H0, solver=solver, max_iter=40, extrapolate="auto")
    hist = fast.loss_history_
    assert fast.n_iter_ == 40 and np.all(np.diff(hist) <= 0)
    # (the history uses ||X||^2 - 2 <X^T W, H^T> + <W^T W, H H^T>: exact up to rounding relative to ||X||^2)
    assert hist[-1] == pytest.approx(objective(X, Wf, fast.components_), abs=1e-12 * np.sum(X * X))
    np.testing.assert_allclose(np.linalg.norm(Wf, axis=0), np.linalg.norm(fast.components_, axis=1), rtol=1e-9)
    if solver == "anls":  # the last half-step makes W the exact NNLS solution for the returned H
        for i in range(0, X.shape[0], 11):
            np.testing.assert_allclose(Wf[i], scipy.optimize.nnls(fast.components_.T, X[i])[0], rtol=1e-6,
                                       atol=1e-9)


def test_mu_is_never_extrapolated(rng):
    X = low_rank(rng)
    W0, H0 = start(rng, X, 5)
    auto, Wa = fit_custom(X, W0, H0, solver="mu", max_iter=10, extrapolate="auto")
    plain, Wp = fit_custom(X, W0, H0, solver="mu", max_iter=10, extrapolate=False)
    np.testing.assert_array_equal(Wa, Wp)
    with pytest.raises(ValueError, match="extrapolate"):
        rankfold.NMF(5, solver="mu", extrapolate=True).fit(X)


def test_warnings_name_the_callers_line():
    """A ConvergenceWarning points at the user's call, whatever the path inside rankfold."""
    rng = np.random.default_rng(0)
    X = rng.random((30, 20))
    for call in (lambda: rankfold.NMF(3, max_iter=1, random_state=0).fit(X),
                 lambda: rankfold.NMF(3, max_iter=1, random_state=0).fit_transform(X),
                 lambda: rankfold.NMF(3, max_iter=1, random_state=0).fit(X * 1e30)):  # the rescaled path
        with pytest.warns(ConvergenceWarning) as record:
            call()
        assert record[0].filename == __file__, record[0].filename
