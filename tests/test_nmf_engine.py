"""The one NMF fit loop (nmf/fit.hpp): every model through the engine against a
short dense NumPy reference of its iteration, extrapolation for every
least-squares model, one stopping rule, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import scipy.optimize
import scipy.sparse as sp

import rankfold
from rankfold import _core

ITERS = 4


def problem(seed, m=30, n=20, k=3, noise=0.05):
    rng = np.random.default_rng(seed)
    X = rng.random((m, k)) @ rng.random((k, n)) + noise * rng.random((m, n))
    W0 = rng.random((m, k)) + 0.1
    H0 = rng.random((k, n)) + 0.1
    return X, W0, H0


def affinity(seed, m):
    rng = np.random.default_rng(seed + 100)
    S = sp.random(m, m, density=0.15, random_state=rng).toarray()
    S = (S + S.T) / 2
    np.fill_diagonal(S, 0.0)
    return S


def engine(X, W0, H0, iters=ITERS, mask=None, **kw):
    params = dict(init="custom", max_iter=iters, tol=0.0, inner_sweeps=1, extrapolate=False, n_threads=1)
    params.update(kw)
    model = rankfold.NMF(W0.shape[1], **params)
    W = model.fit_transform(X, W=W0, H=H0, mask=mask)
    return model, W


# ---------------------------------------------------------------- references

def hals_cols(Y, A, G, lam=0.0, degree=None, P=None):
    """One column-wise HALS sweep on rows of Y (Y G - A the gradient), optionally with a graph term."""
    Y = Y.copy()
    for j in range(Y.shape[1]):
        grad = Y @ G[:, j] - A[:, j]
        hess = G[j, j]
        if lam:
            grad = grad + lam * (degree * Y[:, j] - P[:, j])
            hess = hess + lam * degree
        Y[:, j] = np.maximum(0.0, Y[:, j] - grad / hess)
    return Y


def ref_hals(X, W, H, iters):
    for _ in range(iters):
        W = hals_cols(W, X @ H.T, H @ H.T)
        H = hals_cols(H.T, X.T @ W, W.T @ W).T
    return W, H


def weighted_hals_cols(Y, X, M, F):
    """One HALS sweep for min 0.5 sum M (X - Y F)^2 over Y >= 0 (rows of X, F: k x cols)."""
    Y = Y.copy()
    for j in range(Y.shape[1]):
        R = X - Y @ F
        g = (M * R) @ F[j]
        h = M @ (F[j] ** 2)
        Y[:, j] = np.maximum(0.0, Y[:, j] + g / h)
    return Y


def ref_weighted(X, M, W, H, iters):
    for _ in range(iters):
        W = weighted_hals_cols(W, X, M, H)
        H = weighted_hals_cols(H.T, X.T, M.T, W.T).T
    return W, H


def ref_graph(X, S, lam, W, H, iters):
    degree = S.sum(axis=1)
    for _ in range(iters):
        W = hals_cols(W, X @ H.T, H @ H.T, lam, degree, S @ W)
        H = hals_cols(H.T, X.T @ W, W.T @ W).T
    return W, H


def ref_simplex(X, W, H, iters, steps):
    W = W / W.sum(axis=1, keepdims=True)
    for _ in range(iters):
        A, G = X @ H.T, H @ H.T
        step = 1.0 / np.linalg.eigvalsh(G).max()
        for _ in range(steps):
            W = rankfold.nmf._research.project_simplex(W - step * (W @ G - A))
        Ht = H.T
        for _ in range(steps):  # inner_sweeps HALS sweeps for H too
            Ht = hals_cols(Ht, X.T @ W, W.T @ W)
        H = Ht.T
    return W, H


def band_weights(X, W, H, sigma2=None):
    e = ((X - W @ H) ** 2).sum(axis=0)
    s2 = 0.5 * e.mean() if sigma2 is None else sigma2
    return np.exp(-e / (2 * s2)), s2


def ref_band(X, W, H, iters):
    om, _ = band_weights(X, W, H)
    for _ in range(iters):
        W = hals_cols(W, X @ (H.T * om[:, None]), (H * om) @ H.T)
        H = hals_cols(H.T, X.T @ W, W.T @ W).T
        om, s2 = band_weights(X, W, H)
    return W, H, om, s2


def entry_weights(X, W, H):
    R = X - W @ H
    s2 = 0.5 * (R ** 2).mean()
    return np.exp(-R ** 2 / (2 * s2)), s2


def ref_entry(X, W, H, iters):
    M, _ = entry_weights(X, W, H)
    for _ in range(iters):
        W = weighted_hals_cols(W, X, M, H)
        H = weighted_hals_cols(H.T, X.T, M.T, W.T).T
        M, s2 = entry_weights(X, W, H)
    return W, H, M, s2


def ref_mu_kl(X, W, H, iters):
    eps = np.finfo(np.float32).eps
    for _ in range(iters):
        W = W * ((X / np.maximum(W @ H, eps)) @ H.T) / H.sum(axis=1)[None, :]
        H = H * (W.T @ (X / np.maximum(W @ H, eps))) / W.sum(axis=0)[:, None]
    return W, H


def ref_anls(X, W, H, iters):
    for _ in range(iters):
        W = np.array([scipy.optimize.nnls(H.T, x)[0] for x in X])
        H = np.array([scipy.optimize.nnls(W, x)[0] for x in X.T]).T
    return W, H


# ---------------------------------------------------------------- each model equals its reference

TOL = dict(rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hals_plain(seed):
    X, W0, H0 = problem(seed)
    model, W = engine(X, W0, H0)
    Wr, Hr = ref_hals(X, W0, H0, ITERS)
    np.testing.assert_allclose(W, Wr, **TOL)
    np.testing.assert_allclose(model.components_, Hr, **TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hals_weighted(seed):
    X, W0, H0 = problem(seed)
    M = (np.random.default_rng(seed).random(X.shape) > 0.25).astype(float)
    model, W = engine(X, W0, H0, mask=M)
    Wr, Hr = ref_weighted(X, M, W0, H0, ITERS)
    np.testing.assert_allclose(W, Wr, **TOL)
    np.testing.assert_allclose(model.components_, Hr, **TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hals_graph(seed):
    X, W0, H0 = problem(seed)
    S = affinity(seed, X.shape[0])
    model, W = engine(X, W0, H0, graph=sp.csr_matrix(S), graph_reg=0.05)
    Wr, Hr = ref_graph(X, S, 0.05 * X.shape[1], W0, H0, ITERS)
    np.testing.assert_allclose(W, Wr, **TOL)
    np.testing.assert_allclose(model.components_, Hr, **TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hals_sum_to_one(seed):
    X, W0, H0 = problem(seed)
    model, W = engine(X, W0, H0, abundance_sum_to_one=True, inner_sweeps=3)
    Wr, Hr = ref_simplex(X, W0, H0, ITERS, steps=3)
    np.testing.assert_allclose(W, Wr, **TOL)
    np.testing.assert_allclose(model.components_, Hr, **TOL)
    np.testing.assert_allclose(W.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hals_correntropy_bands(seed):
    X, W0, H0 = problem(seed)
    X[:, 3] += 2.0  # an outlier band
    model, W = engine(X, W0, H0, robust="correntropy")
    Wr, Hr, om, s2 = ref_band(X, W0, H0, ITERS)
    np.testing.assert_allclose(W, Wr, **TOL)
    np.testing.assert_allclose(model.components_, Hr, **TOL)
    np.testing.assert_allclose(model.band_weights_, om, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(model.sigma_ ** 2, s2, rtol=1e-9)
    assert model.band_weights_[3] < np.median(model.band_weights_)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hals_correntropy_entries(seed):
    X, W0, H0 = problem(seed)
    X[2, 5] += 3.0  # an outlier entry
    model, W = engine(X, W0, H0, robust="correntropy", robust_weights="entry")
    Wr, Hr, M, s2 = ref_entry(X, W0, H0, ITERS)
    np.testing.assert_allclose(W, Wr, **TOL)
    np.testing.assert_allclose(model.components_, Hr, **TOL)
    np.testing.assert_allclose(model.entry_weights_, M, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(model.sigma_ ** 2, s2, rtol=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mu_kullback_leibler(seed):
    X, W0, H0 = problem(seed)
    model, W = engine(X, W0, H0, solver="mu", beta_loss="kullback-leibler")
    Wr, Hr = ref_mu_kl(X, W0, H0, ITERS)
    np.testing.assert_allclose(W, Wr, **TOL)
    np.testing.assert_allclose(model.components_, Hr, **TOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_anls(seed):
    X, W0, H0 = problem(seed)
    model, W = engine(X, W0, H0, solver="anls")
    Wr, Hr = ref_anls(X, W0, H0, ITERS)
    np.testing.assert_allclose(W, Wr, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(model.components_, Hr, rtol=1e-6, atol=1e-9)


# ---------------------------------------------------------------- extrapolation

def _model_kw(name, X, seed):
    if name == "plain":
        return {}, None
    if name == "weighted":
        return {}, (np.random.default_rng(seed).random(X.shape) > 0.2).astype(float)
    if name == "graph":
        return dict(graph=sp.csr_matrix(affinity(seed, X.shape[0])), graph_reg=0.01), None
    if name == "sum-to-one":
        return dict(abundance_sum_to_one=True), None
    if name == "correntropy":  # a fixed kernel width: one objective for every iterate
        return dict(robust="correntropy", sigma=1.0), None
    raise AssertionError(name)


EXTRAPOLATED = ["plain", "weighted", "graph"]


@pytest.mark.parametrize("name", EXTRAPOLATED)
def test_extrapolation_applies_and_does_not_hurt(name):
    iters = 60
    gains = []
    for seed in range(4):
        X, W0, H0 = problem(seed, m=80, n=60, k=6, noise=0.01)
        X[:, : X.shape[1] // 2] *= 5.0  # ill-conditioned: where extrapolation pays
        kw, mask = _model_kw(name, X, seed)
        plain, _ = engine(X, W0, H0, iters=iters, mask=mask, inner_sweeps="auto", extrapolate=False, **kw)
        fast, _ = engine(X, W0, H0, iters=iters, mask=mask, inner_sweeps="auto", extrapolate=True, **kw)
        assert fast.n_iter_ == iters
        # extrapolation changed the iterates (it is not silently ignored) ...
        assert not np.allclose(fast.loss_history_, plain.loss_history_, rtol=1e-12, atol=0)
        # ... and the objective of the best pair never increases
        assert np.all(np.diff(fast.loss_history_) <= 1e-12 * fast.loss_history_[0])
        gains.append(fast.loss_history_[-1] / plain.loss_history_[-1])
        assert fast.loss_history_[-1] <= plain.loss_history_[-1] * (1 + 1e-9), (seed, gains)


@pytest.mark.parametrize("beta", ["frobenius", "kullback-leibler"])
def test_extrapolation_with_mu_raises(beta):
    X, W0, H0 = problem(0)
    with pytest.raises(ValueError, match="extrapolate"):
        rankfold.NMF(3, solver="mu", beta_loss=beta, extrapolate=True).fit(X)
    with pytest.raises(ValueError, match="extrapolation"):
        _core.nmf_fit(("dense", X), W0.copy(), np.ascontiguousarray(H0.T), "mu", 5, 0.0, 0.0, 0.0, 0.0, 0.0,
                      1, 0.1, True, True, 1, None, True)


def test_extrapolation_with_sum_to_one_or_correntropy_raises():
    X, W0, H0 = problem(0)
    with pytest.raises(ValueError, match="abundance_sum_to_one"):
        rankfold.NMF(3, abundance_sum_to_one=True, extrapolate=True).fit(X)
    with pytest.raises(ValueError, match="correntropy"):
        rankfold.NMF(3, robust="correntropy", extrapolate=True).fit(X)


def test_auto_extrapolation_stays_off_for_the_research_models():
    X, W0, H0 = problem(0)
    for kw in (dict(robust="correntropy"), dict(abundance_sum_to_one=True)):
        auto, _ = engine(X, W0, H0, iters=10, extrapolate="auto", inner_sweeps="auto", **kw)
        off, _ = engine(X, W0, H0, iters=10, extrapolate=False, inner_sweeps="auto", **kw)
        np.testing.assert_array_equal(auto.loss_history_, off.loss_history_)


# ---------------------------------------------------------------- one stopping rule

STOPPING = {
    "plain": dict(extrapolate=False),
    "missing": dict(extrapolate=False),
    "graph": dict(graph="knn", graph_reg=0.05),
    "correntropy": dict(robust="correntropy"),
    "sum-to-one": dict(abundance_sum_to_one=True),
    "mu-kl": dict(solver="mu", beta_loss="kullback-leibler"),
    "anls": dict(solver="anls", extrapolate=False),
}


@pytest.mark.parametrize("name", sorted(STOPPING))
def test_one_stopping_rule(name):
    """Every model stops at the first iteration whose objective changed by at most tol relative."""
    tol = 1e-3
    for seed in range(3):
        X, W0, H0 = problem(seed, m=60, n=40, k=4)
        mask = None
        if name == "missing":
            mask = (np.random.default_rng(seed).random(X.shape) > 0.2).astype(float)
        model, _ = engine(X, W0, H0, iters=2000, mask=mask, tol=tol, inner_sweeps="auto", **STOPPING[name])
        f = model.loss_history_
        settled = [i for i in range(1, len(f)) if abs(f[i - 1] - f[i]) <= tol * f[i - 1]]
        assert settled, (name, seed)
        assert model.n_iter_ == settled[0] + 1 == len(f), (name, seed, model.n_iter_, settled[:3])


def test_extrapolated_loop_stops_on_an_improvement_only():
    """With extrapolation the history is the best objective so far: the same rule, tested on improvements."""
    tol = 1e-3
    for seed in range(3):
        X, W0, H0 = problem(seed, m=60, n=40, k=4)
        model, _ = engine(X, W0, H0, iters=2000, tol=tol, inner_sweeps="auto", extrapolate=True)
        f = model.loss_history_
        assert model.n_iter_ == len(f) < 2000
        for i in range(1, len(f) - 1):  # no earlier iteration met the rule
            assert not (f[i] < f[i - 1] and f[i - 1] - f[i] <= tol * f[i - 1]), (seed, i)


# ---------------------------------------------------------------- Ctrl-C and callbacks through the engine

INTERRUPTED = {
    "correntropy-entry": "rankfold.NMF(20, robust='correntropy', robust_weights='entry', max_iter=10**6, tol=0.0, "
                         "n_threads=2)",
    "sum-to-one": "rankfold.NMF(20, abundance_sum_to_one=True, max_iter=10**6, tol=0.0, n_threads=2)",
    "weighted-extrapolated": "rankfold.NMF(10, missing_values=np.nan, init='random', extrapolate=True, "
                             "max_iter=10**6, tol=0.0, n_threads=2)",
}


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("case", sorted(INTERRUPTED))
def test_sigint_stops_engine_fits(case):
    script = textwrap.dedent(f"""
        import sys
        import numpy as np
        import rankfold
        X = np.random.default_rng(0).random((1500, 800))
        X[::7, ::5] = np.nan if {case == 'weighted-extrapolated'} else X[::7, ::5]
        model = {INTERRUPTED[case]}
        print("ready", flush=True)
        try:
            model.fit(X)
        except KeyboardInterrupt:
            assert not hasattr(model, "components_")
            print("interrupted", flush=True)
            sys.exit(3)
        print("finished", flush=True)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3 and "interrupted" in out, (proc.returncode, out, err[-2000:])


@pytest.mark.parametrize("kw", [dict(), dict(missing_values=np.nan), dict(robust="correntropy", robust_weights="entry"),
                                dict(solver="mu", beta_loss="kullback-leibler")], ids=repr)
def test_callback_exception_propagates_unchanged(kw):
    X, _, _ = problem(0)

    class Stop(Exception):
        pass

    def cb(it, loss):
        if it == 2:
            raise Stop("from the callback")

    model = rankfold.NMF(3, max_iter=20, tol=0.0, callback=cb, random_state=0, init="random", **kw)
    with pytest.raises(Stop, match="from the callback"):
        model.fit(X)
    assert not hasattr(model, "components_")


def test_engine_result_object():
    X, W0, H0 = problem(0)
    W, Ht = W0.copy(), np.ascontiguousarray(H0.T)
    res = _core.nmf_fit(("dense", X), W, Ht, "hals", 7, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 0.1, True, True, 1, None,
                        robust="band", sigma2=0.0)
    assert res["n_iter"] == 7 and res["converged"] is False and len(res["losses"]) == 7
    assert res["weights"].shape == (X.shape[1],) and res["sigma2"] > 0
    with pytest.raises(ValueError, match="robust"):
        _core.nmf_fit(("dense", X), W, Ht, "hals", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 0.1, True, True, 1, None,
                      robust="nope")
    with pytest.raises(ValueError, match="mask needs a dense X"):
        _core.nmf_fit(("csr", *[np.asarray(a) for a in (sp.csr_matrix(X).indptr, sp.csr_matrix(X).indices,
                                                         sp.csr_matrix(X).data)], *X.shape),
                      W, Ht, "hals", 1, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 0.1, True, True, 1, None, mask=np.ones_like(X))
