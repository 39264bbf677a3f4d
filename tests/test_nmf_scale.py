"""NMF at the ends of the float range: data near 1e30 in float32 (or 1e-30) is
fitted on X scaled by a power of two, with the scale-dependent parameters mapped,
so the result is the fit of the same problem (never non-finite, never collapsed);
beyond what float64 can hold of the objective, a clear ValueError."""

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold

MODELS = {
    "hals": dict(),
    "hals-plain": dict(extrapolate=False),
    "mu": dict(solver="mu"),
    "mu-kl": dict(solver="mu", beta_loss="kullback-leibler"),
    "mu-beta0.5": dict(solver="mu", beta_loss=0.5),
    "anls": dict(solver="anls"),
    "missing": dict(missing_values=np.nan),
    "penalised-l1": dict(alpha_W=0.01, l1_ratio=1.0),
    "penalised-l2": dict(alpha_W=0.01, alpha_H=0.03, l1_ratio=0.0),
    "graph": dict(graph="knn", graph_reg=0.1),
    "correntropy": dict(robust="correntropy"),
    "sum-to-one": dict(abundance_sum_to_one=True),
}


def _data(seed, dtype=np.float64, m=80, n=30, k=4):
    rng = np.random.default_rng(seed)
    X = rng.random((m, k)) @ rng.random((k, n)) + 0.05 * rng.random((m, n))
    X = X / X.max() * 1.5  # largest entry in [1, 2): the scaled path sees this exact X
    return X.astype(dtype)


def _fit(X, name, seed=0, **extra):
    kw = dict(MODELS[name])
    kw.update(extra)
    if name == "missing":
        X = X.copy()
        X[::7, ::3] = np.nan
    model = rankfold.NMF(4, max_iter=60, tol=0.0, random_state=seed, n_threads=1, **kw)
    W = model.fit_transform(X)
    return model, W


def _same_problem_on_X(name, e):
    """The parameters that make the problem on X the problem on X 2^e, written out
    for the Frobenius objective 0.5 |X - WH|^2 + penalties with W, H = 2^(e/2) W', H':
    an l1 term scales by 2^(e/2), an l2 term (and the graph term) by 2^e, the loss
    by 2^(2e); sigma of the correntropy loss by 2^e."""
    kw = {}
    if name == "penalised-l1":
        kw["alpha_W"] = 0.01 * 2.0 ** (e / 2 - 2 * e)
    if name == "penalised-l2":
        kw["alpha_W"] = 0.01 * 2.0 ** (e - 2 * e)
        kw["alpha_H"] = 0.03 * 2.0 ** (e - 2 * e)
    if name == "graph":
        kw["graph_reg"] = 0.1 * 2.0 ** (e - 2 * e)
    return kw


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("dtype,exponents", [(np.float32, [-100, -60, 40, 100]),
                                             (np.float64, [-400, -100, 60, 400])])
def test_same_problem_at_every_scale(name, dtype, exponents):
    """X 2^e gives 2^(e/2) times the W and H of the same problem on X (W and 2^e H on
    the simplex); scale-free models give exactly the fit on X."""
    import warnings
    warnings.simplefilter("ignore", category=Warning)
    for seed in (0, 1):
        X = _data(seed, dtype)
        for e in exponents:
            ref, W0 = _fit(X, name, seed, **_same_problem_on_X(name, e))
            Xs = np.ldexp(X, e).astype(dtype)
            model, W = _fit(Xs, name, seed)
            ea = 0 if name == "sum-to-one" else e // 2
            assert np.isfinite(W).all() and np.isfinite(model.components_).all()
            assert np.isfinite(model.loss_history_).all() and np.isfinite(model.reconstruction_err_)
            tol = dict(rtol=2e-3 if dtype == np.float32 else 1e-7, atol=0)
            np.testing.assert_allclose(np.ldexp(W.astype(np.float64), -ea), W0, **tol, err_msg=f"W at 2^{e}")
            np.testing.assert_allclose(np.ldexp(model.components_.astype(np.float64), -(e - ea)),
                                       ref.components_, **tol, err_msg=f"H at 2^{e}")
            beta = {"mu-kl": 1.0, "mu-beta0.5": 0.5}.get(name, 2.0)
            np.testing.assert_allclose(model.loss_history_, ref.loss_history_ * 2.0 ** (e * beta), **tol)
            # transform of the scaled data: the scaled rows
            if name != "missing":
                np.testing.assert_allclose(np.ldexp(model.transform(Xs).astype(np.float64), -ea),
                                           ref.transform(X), rtol=tol["rtol"] * 10, atol=1e-6 * np.abs(W0).max())


@pytest.mark.parametrize("scale", [1e30, 3e37, 1e-30, 1e-37])
def test_float32_extremes_fit_well(scale):
    X = _data(3, np.float64) / 1.5
    base = rankfold.NMF(4, max_iter=200, random_state=0).fit(X.astype(np.float32))
    model = rankfold.NMF(4, max_iter=200, random_state=0)
    W = model.fit_transform((X * scale).astype(np.float32))
    rel = np.linalg.norm(X - (W.astype(np.float64) / np.sqrt(scale)) @ (model.components_ / np.sqrt(scale)))
    rel /= np.linalg.norm(X)
    rel0 = base.reconstruction_err_ / np.linalg.norm(X)
    assert np.isfinite(W).all() and rel < 1.05 * rel0 + 1e-3, (rel, rel0)


def test_sparse_large_entries():
    X = sp.random(200, 100, density=0.1, random_state=0, format="csr", dtype=np.float32)
    base = rankfold.NMF(5, max_iter=50, random_state=0).fit(X)
    Xb = X.copy()
    Xb.data *= np.float32(1e35)
    model = rankfold.NMF(5, max_iter=50, random_state=0)
    W = model.fit_transform(Xb)
    assert np.isfinite(W).all() and np.isfinite(model.components_).all()
    root = np.sqrt(1e35)
    Xd = X.toarray().astype(np.float64)
    rel = np.linalg.norm(Xd - (W / root) @ (model.components_ / root)) / np.linalg.norm(Xd)
    rel0 = base.reconstruction_err_ / np.linalg.norm(Xd)
    assert rel < 1.02 * rel0, (rel, rel0)
    assert model.reconstruction_err_ / 1e35 / np.linalg.norm(Xd) == pytest.approx(rel0, rel=0.02)


def test_beyond_float64_objective_is_value_error():
    X = _data(0) * 1e300
    with pytest.raises(ValueError, match="divide X by its largest entry"):
        rankfold.NMF(3, max_iter=10).fit(X)
    with pytest.raises(ValueError, match="divide X by its largest entry"):
        rankfold.NMF(3, max_iter=10).fit(_data(0) * 1e-300)
