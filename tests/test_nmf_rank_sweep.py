"""No NaN, ever: NMF fits with k well above the data's rank (the everyday case
in rank selection) over every solver, loss, layout, dtype and extrapolation
setting, several seeds each, always return finite factors, a finite and
correct reconstruction error, and an objective history that does not rise.

The first failure this guards against: the extrapolated HALS default on a
rank-3 100 x 60 matrix with k = 14 shrank one component's W column to
||w||^2 ~ 1e229 and its H row to ||h||^2 ~ 1e-230 (the product of ordinary
size), and the final balancing divided by the underflowed ratio: 32 NaN in
components_, reconstruction_err_ = nan, no warning.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold
from rankfold.nmf._nmfk import perturb
from rankfold.nmf import ConvergenceWarning
from rankfold._validation import check_random_state

KS = [2, 3, 4, 6, 8, 10, 12, 14, 17, 20]
SEEDS = range(5)


def rank3(seed, m=100, n=60, sparsity=0.7, weak=0.08, noise=0.005):
    """A sparse rank-3 matrix with one weak component (as in the NMFk tests)."""
    rng = np.random.default_rng(seed)
    W = rng.random((m, 3))
    W[rng.random((m, 3)) < sparsity] = 0
    H = rng.random((3, n))
    H[rng.random((3, n)) < sparsity] = 0
    W[:, 2] *= weak
    X = W @ H
    X *= np.maximum(1 + noise * rng.standard_normal(X.shape), 0)
    return X


# (solver, beta_loss, extrapolate)
CONFIGS = [
    ("hals", "frobenius", True),
    ("hals", "frobenius", False),
    ("anls", "frobenius", True),
    ("anls", "frobenius", False),
    ("mu", "frobenius", False),
    ("mu", "kullback-leibler", False),
    ("mu", "itakura-saito", False),
]


def check_fit(model, W, X, dtype, what):
    H = model.components_
    assert W.dtype == dtype and H.dtype == dtype, what
    assert np.isfinite(W).all() and np.isfinite(H).all(), f"non-finite factors: {what}"
    assert (W >= 0).all() and (H >= 0).all(), what
    err = model.reconstruction_err_
    assert np.isfinite(err), what
    hist = np.asarray(model.loss_history_)
    assert np.isfinite(hist).all(), what
    # Non-increasing up to rounding: HALS, ANLS and MU (Frobenius, KL, IS with
    # its MM exponent) are descent methods, and the extrapolated history is the
    # best pair so far. The Frobenius objective comes from products,
    # 0.5 (||X||^2 - 2 <X^T W, H^T> + <W^T W, H H^T>), so its rounding error is a
    # fraction of 0.5 ||X||^2, not of the objective: in float32 (products in
    # float32) up to about 1e-6 of it was measured near convergence.
    scale = 0.5 * float(np.sum(np.asarray(X, dtype=np.float64) ** 2))
    rtol, atol = (1e-5, 1e-5) if dtype == np.float32 else (1e-9, 1e-12)
    rises = np.diff(hist) - rtol * np.abs(hist[:-1]) - atol * scale
    assert np.all(rises <= 0), f"objective rose by {np.diff(hist).max():.3g}: {what}"


def fit_quietly(model, X, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return model.fit_transform(X, **kw)


@pytest.mark.parametrize("solver, loss, extrapolate", CONFIGS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("layout", ["dense", "csr"])
def test_rank_sweep_stays_finite(solver, loss, extrapolate, dtype, layout):
    for seed in SEEDS:
        X = rank3(seed)
        if loss == "itakura-saito":  # IS needs X > 0 (as in scikit-learn)
            X = X + 1e-3
        Xin = X.astype(dtype)
        if layout == "csr":
            Xin = sp.csr_matrix(Xin)
        for k in KS:
            what = f"{solver}/{loss}/extrapolate={extrapolate}/{np.dtype(dtype).name}/{layout}, seed {seed}, k={k}"
            model = rankfold.NMF(k, solver=solver, beta_loss=loss, init="nndsvda", max_iter=300, tol=1e-8,
                                 extrapolate=extrapolate, random_state=seed, n_threads=1)
            W = fit_quietly(model, Xin)
            check_fit(model, W, X, dtype, what)
            if loss == "frobenius":
                # reconstruction_err_ is ||X - W H||_F of the returned pair
                ref = np.linalg.norm(X - W.astype(np.float64) @ model.components_.astype(np.float64))
                tol = 1e-3 if dtype == np.float32 else 1e-8
                assert abs(model.reconstruction_err_ - ref) <= tol * np.linalg.norm(X) + 1e-12, what


@pytest.mark.parametrize("init", ["nndsvda", "nndsvd", "nndsvdar", "random"])
def test_rank_sweep_every_init(init):
    """NNDSVD on rank-deficient data (k above the rank has zero singular
    triplets) and random starts."""
    for seed in SEEDS:
        X = rank3(seed)
        for k in (4, 10, 20):
            model = rankfold.NMF(k, init=init, max_iter=300, tol=1e-8, random_state=seed, n_threads=1)
            W = fit_quietly(model, X)
            check_fit(model, W, X, np.float64, f"init={init}, seed {seed}, k={k}")


@pytest.mark.parametrize("solver", ["hals", "mu", "anls"])
def test_rank_sweep_with_missing_values(solver):
    for seed in SEEDS:
        X = rank3(seed)
        mask = np.random.default_rng(seed).random(X.shape) > 0.1
        for k in (4, 10, 20):
            model = rankfold.NMF(k, solver=solver, init="random", max_iter=200, tol=1e-8, random_state=seed,
                                 n_threads=1)
            W = fit_quietly(model, X, mask=mask)
            check_fit(model, W, X, np.float64, f"{solver} with a mask, seed {seed}, k={k}")


@pytest.mark.parametrize("kw", [dict(graph_reg=0.1, graph="knn"), dict(robust="correntropy"), dict(abundance_sum_to_one=True)],
                         ids=["graph", "correntropy", "sum-to-one"])
def test_rank_sweep_research_models(kw):
    for seed in range(3):
        X = rank3(seed)
        for k in (4, 12):
            model = rankfold.NMF(k, init="nndsvda", max_iter=100, tol=1e-8, random_state=seed, n_threads=1, **kw)
            W = fit_quietly(model, X)
            H = model.components_
            assert np.isfinite(W).all() and np.isfinite(H).all() and np.isfinite(model.reconstruction_err_), (kw, k)


def test_the_nmfk_case_that_returned_nan():
    """The runs of tests/test_nmfk.py's rank-3 case (its two_tier_data(100, 60, 3, 0.08, seed=1) is
    rank3(1)) as NMFk makes them; run 2 at k = 14 returned NaN."""
    X = rank3(1)
    seed = check_random_state(0)
    for k in range(10, 15):
        for r in range(6):
            rng = np.random.default_rng(np.random.SeedSequence([seed, k, r]))
            Xp = perturb(X, rng, eps=0.03, method="uniform")
            model = rankfold.NMF(k, init="nndsvda", max_iter=1000, tol=1e-6, random_state=int(rng.integers(2**62)),
                                 n_threads=1)
            W = fit_quietly(model, Xp)
            check_fit(model, W, Xp, np.float64, f"k={k}, run {r}")


@pytest.mark.parametrize("solver, loss", [("hals", "frobenius"), ("anls", "frobenius"), ("mu", "frobenius"),
                                          ("mu", "kullback-leibler")])
def test_overflow_raises_instead_of_returning_nan(solver, loss):
    """Entries near the top of float32's range overflow the products; the fit
    must then raise FloatingPointError naming the solver, or return a finite
    fit: never non-finite factors."""
    X = (rank3(0) * 3e37).astype(np.float32)
    assert np.isfinite(X).all()
    model = rankfold.NMF(6, solver=solver, beta_loss=loss, init="nndsvda", max_iter=50, random_state=0)
    try:
        W = fit_quietly(model, X)
    except FloatingPointError as exc:
        assert f"solver='{solver}'" in str(exc)
    else:
        assert np.isfinite(W).all() and np.isfinite(model.components_).all()
        assert np.isfinite(model.reconstruction_err_)
