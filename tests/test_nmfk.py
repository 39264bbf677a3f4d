"""NMFk: rank selection by the stability of NMF solutions under perturbation."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment
from scipy.stats import mannwhitneyu

import rankfold
from rankfold import NMFk


def two_tier_data(m, n, k0, weak, seed, sparsity=0.7, noise=0.005):
    """X = W H with sparse random factors; the last k0 // 2 components are
    `weak` times weaker than the others (a common case: a few dominant and
    several minor sources), plus 0.5% multiplicative noise (no offset: an
    additive positive noise would be one more nonnegative component)."""
    rng = np.random.default_rng(seed)
    W = rng.random((m, k0))
    W[rng.random((m, k0)) < sparsity] = 0
    H = rng.random((k0, n))
    H[rng.random((k0, n)) < sparsity] = 0
    W[:, (k0 + 1) // 2:] *= weak
    X = W @ H
    X *= np.maximum(1 + noise * rng.standard_normal(X.shape), 0)
    return X, W, H


def elbow(ks, errors):
    """The plain error-elbow rule (Kneedle): the k farthest below the chord
    from the first to the last point of the normalised error curve."""
    x = (ks - ks[0]) / (ks[-1] - ks[0])
    y = (errors - errors.min()) / (errors.max() - errors.min())
    return int(ks[np.argmax((1 - x) - y)])


def matched_cosines(A, B):
    """Cosines of the rows of A and B after the best one-to-one matching."""
    An = A / np.linalg.norm(A, axis=1, keepdims=True)
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    C = An @ Bn.T
    r, c = linear_sum_assignment(-C)
    return C[r, c]


# The weak tier is set so that its drop in the error curve is too small for
# the elbow rule, while the NMF solutions still resolve it. NMF's local minima
# make this a statement over data sets, not about one: each case runs data
# seeds 1-5 (fixed before measuring). Measured on an AVX2 machine: NMFk picks
# k0 in 17 of the 20 (5, 4, 4, 4 per case; the misses are runs whose NMF fits
# at k0 miss a weak component, silhouette 0.49-0.72), the elbow rule in 3 of
# 20 (2, 0, 0, 0). The thresholds (NMFk >= 16 and >= 4 per case, elbow <= 5)
# leave one or two misses of margin.
CASES = [(3, 0.08), (5, 0.1), (8, 0.15), (12, 0.2)]
DATA_SEEDS = range(1, 6)


@pytest.mark.slow
def test_recovers_true_rank_where_elbow_fails():
    nmfk_right = {case: 0 for case in CASES}
    elbow_right = 0
    for k0, weak in CASES:
        for seed in DATA_SEEDS:
            X, _, H = two_tier_data(100, 60, k0, weak, seed=seed)
            # SVD starts: random ones often end in a local minimum that misses a weak component.
            model = NMFk(range(1, 15), n_perturbations=6, init="nndsvda", max_iter=1000, tol=1e-6,
                         random_state=seed - 1, n_threads=2).fit(X)
            s = model.scores_
            assert np.isfinite(s["relative_error"]).all() and np.isfinite(model.components_).all()
            elbow_right += elbow(s["k"], s["relative_error"]) == k0
            if model.n_components_ != k0:
                continue
            nmfk_right[(k0, weak)] += 1
            # Stable at k0, unstable just above it (measured: >= 0.994 and <= 0.05).
            at = {int(k): row for k, row in zip(s["k"], s)}
            assert at[k0]["silhouette_min"] >= 0.9 and at[k0 + 1]["silhouette_min"] < 0.9, (k0, seed)
            # The robust components are the true ones (measured >= 0.9985).
            assert matched_cosines(model.components_, H).min() > 0.98, (k0, seed)
            assert model.W_.shape == (100, k0) and model.components_.shape == (k0, 60)
            assert model.reconstruction_err_ / np.linalg.norm(X) < 0.02, (k0, seed)
    assert all(right >= 4 for right in nmfk_right.values()), nmfk_right
    assert sum(nmfk_right.values()) >= 16, nmfk_right
    # The plain elbow rule on the same error curves mostly misses the weak components.
    assert elbow_right <= 5, elbow_right


def test_choice_follows_the_rule_from_the_table():
    """The accepted ks are recomputed from scores_/errors_ with scipy's Mann-Whitney test."""
    X, _, _ = two_tier_data(60, 40, 4, 0.5, seed=2)
    model = NMFk(range(2, 8), n_perturbations=5, max_iter=500, tol=1e-6, random_state=3, n_threads=2).fit(X)
    s, E = model.scores_, model.errors_
    assert E.shape == (6, 5)
    np.testing.assert_allclose(s["relative_error"], E.mean(axis=1))
    np.testing.assert_array_equal(s["stable"], s["silhouette_min"] >= 0.9)
    previous = None
    for i in range(len(s)):
        if not s["stable"][i]:
            assert not s["accepted"][i]
            continue
        if previous is None:
            assert s["accepted"][i]
            previous = i
            continue
        p = mannwhitneyu(E[i], E[previous], alternative="less").pvalue
        assert s["p_value"][i] == pytest.approx(p)
        assert s["accepted"][i] == (p < 0.05)
        if s["accepted"][i]:
            previous = i
    assert model.n_components_ == s["k"][np.flatnonzero(s["accepted"])[-1]] == 4
    for k in s["k"]:
        assert model.silhouettes_[int(k)].shape == (k,)
        assert model.centroids_[int(k)].shape == (k, 40)
    assert np.isnan(s["heldout_error"]).all()


@pytest.mark.parametrize("k0", [3, 5])
def test_cv_picks_true_rank(k0):
    rng = np.random.default_rng(3)
    X = rng.random((120, k0)) @ rng.random((k0, 80))
    X = np.maximum(X + 0.2 * X.std() * rng.standard_normal(X.shape), 0)
    model = NMFk(range(1, 10), n_perturbations=4, method="cv", holdout_fraction=0.2, max_iter=1000, tol=1e-5,
                 random_state=0, n_threads=2).fit(X)
    held = model.scores_["heldout_error"]
    assert np.isfinite(held).all()
    assert model.n_components_ == k0 == model.scores_["k"][np.argmin(held)]
    # Training error keeps falling past k0 while the held-out error turns up.
    assert np.all(np.diff(model.scores_["relative_error"]) < 0)
    assert held[-1] > held[k0 - 1]


def test_reproducible_and_independent_of_thread_count():
    X, _, _ = two_tier_data(50, 30, 3, 0.5, seed=4)
    kw = dict(k_range=range(2, 6), n_perturbations=4, max_iter=300, random_state=11)
    a = NMFk(n_threads=1, **kw).fit(X)
    b = NMFk(n_threads=2, **kw).fit(X)
    c = NMFk(n_threads=2, **kw).fit(X)
    for other in (b, c):
        np.testing.assert_array_equal(a.errors_, other.errors_)
        np.testing.assert_array_equal(a.components_, other.components_)
        assert a.scores_.tobytes() == other.scores_.tobytes()
    d = NMFk(n_threads=2, **{**kw, "random_state": 12}).fit(X)
    assert not np.array_equal(a.errors_, d.errors_)


def test_sparse_input_and_poisson_counts():
    rng = np.random.default_rng(5)
    W = rng.gamma(0.3, 1.0, (200, 3))
    H = rng.gamma(0.3, 1.0, (3, 80))
    counts = rng.poisson(20 * W @ H).astype(np.float64)
    X = sp.csr_matrix(counts)
    model = NMFk(range(1, 7), n_perturbations=5, perturbation="poisson", max_iter=400, random_state=0,
                 n_threads=2).fit(X)
    assert model.n_components_ == 3
    assert matched_cosines(model.components_, H).min() > 0.95
    np.testing.assert_allclose(model.transform(X), model.W_, rtol=1e-6, atol=1e-8)
    assert model.W_.dtype == np.float64


def test_float32_and_fit_transform():
    X, _, _ = two_tier_data(60, 40, 3, 0.5, seed=6)
    model = NMFk(range(2, 5), n_perturbations=3, max_iter=200, random_state=0)
    W = model.fit_transform(X.astype(np.float32))
    assert W.dtype == np.float32 and model.components_.dtype == np.float32
    assert W is model.W_


def test_cluster_on_coefficients():
    X, _, H = two_tier_data(80, 50, 4, 0.5, seed=7)
    model = NMFk(range(2, 7), n_perturbations=5, cluster="W", max_iter=500, tol=1e-6, random_state=0,
                 n_threads=2).fit(X)
    assert model.n_components_ == 4
    assert matched_cosines(model.components_, H).min() > 0.98


def test_no_stable_rank_warns():
    rng = np.random.default_rng(8)
    X = rng.random((30, 20))  # noise: no rank above 1 is stable
    with pytest.warns(UserWarning, match="silhouette_threshold"):
        model = NMFk(range(3, 6), n_perturbations=4, silhouette_threshold=0.99, max_iter=100, tol=1e-3,
                     random_state=0).fit(X)
    assert model.n_components_ in (3, 4, 5)
    assert not model.scores_["accepted"].any()


def test_plot():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    X, _, _ = two_tier_data(40, 30, 3, 0.5, seed=9)
    model = NMFk(range(2, 5), n_perturbations=3, max_iter=200, random_state=0).fit(X)
    ax = model.plot()
    assert ax.get_xlabel() == "k" and len(ax.lines) >= 2
    np.testing.assert_array_equal(ax.lines[0].get_xdata(), [2, 3, 4])
    plt.close("all")


def test_plot_without_matplotlib(monkeypatch):
    X, _, _ = two_tier_data(40, 30, 3, 0.5, seed=9)
    model = NMFk(range(2, 4), n_perturbations=2, max_iter=100, random_state=0).fit(X)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match="rankfold\\[plot\\]"):
        model.plot()


def test_params_roundtrip():
    model = NMFk(range(2, 4), n_perturbations=3)
    params = model.get_params()
    assert params["n_perturbations"] == 3 and params["k_range"] == range(2, 4)
    model.set_params(eps=0.05)
    assert model.eps == 0.05
    assert isinstance(rankfold.NMFk(), NMFk)
    sklearn_base = pytest.importorskip("sklearn.base")
    copy = sklearn_base.clone(model)
    assert copy.get_params() == model.get_params() and "NMFk(" in repr(copy)
