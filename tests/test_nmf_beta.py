"""rankfold.NMF with beta-divergence losses (solver="mu") against a textbook
NumPy implementation and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold

sklearn = pytest.importorskip("sklearn")
from sklearn.decomposition import NMF as SkNMF  # noqa: E402
from sklearn.decomposition._nmf import _beta_divergence, _initialize_nmf  # noqa: E402

EPS = np.finfo(np.float32).eps
BETAS = [("kullback-leibler", 1.0), ("itakura-saito", 0.0), (0.5, 0.5), (1.5, 1.5), (3.0, 3.0)]


# ---------------------------------------------------------------- textbook references

def textbook_mu(X, W, H, beta, iters, l1W=0.0, l2W=0.0, l1H=0.0, l2H=0.0, M=None, update_H=True):
    """Lee & Seung / Fevotte & Idier MU for the (weighted) beta-divergence, W then H."""
    W, H = W.astype(np.float64), H.astype(np.float64)
    X = X.astype(np.float64)
    M = np.ones_like(X) if M is None else M
    gamma = 1 / (2 - beta) if beta < 1 else (1 / (beta - 1) if beta > 2 else 1.0)
    tiny = np.finfo(np.float64).eps

    def terms(WH):
        num = np.maximum(WH, EPS) if beta < 2 else WH
        den = np.maximum(WH, EPS) if beta < 1 else WH
        return M * X * num ** (beta - 2), M * den ** (beta - 1)

    losses = []
    for _ in range(iters):
        Q, S = terms(W @ H)
        den = S @ H.T + l1W + l2W * W
        den[den == 0] = EPS
        W = W * (Q @ H.T / den) ** gamma
        if beta < 1:
            W[W < tiny] = 0
        if update_H:
            Q, S = terms(W @ H)
            den = W.T @ S + l1H + l2H * H
            den[den == 0] = EPS
            H = H * (W.T @ Q / den) ** gamma
            if beta <= 1:
                H[H < tiny] = 0
        losses.append(divergence(X, W, H, beta, M)
                      + l1W * W.sum() + 0.5 * l2W * (W ** 2).sum() + l1H * H.sum() + 0.5 * l2H * (H ** 2).sum())
    return W, H, np.array(losses)


def divergence(X, W, H, beta, M=None):
    """sum_ij M_ij d_beta(x_ij | (WH)_ij) with scikit-learn's safeguards (x <= eps drops the x-terms)."""
    Y = W @ H
    M = np.ones_like(X) if M is None else M
    big = X > EPS
    Yc = np.maximum(Y, EPS)
    Xs = np.where(big, X, 1.0)
    if beta == 1:
        d = np.where(big, X * np.log(Xs / Yc) - X, 0.0) + Y
    elif beta == 0:
        d = np.where(big, Xs / Yc - np.log(Xs / Yc), 0.0) - 1.0
    else:
        d = (np.where(big, Xs ** beta - beta * X * Yc ** (beta - 1), 0.0) + (beta - 1) * Y ** beta)
        d /= beta * (beta - 1)
    return float((M * d).sum())


def low_rank(rng, m=40, n=30, k=4, noise=0.05, dtype=np.float64):
    X = rng.random((m, k)) @ rng.random((k, n)) + noise * rng.random((m, n))
    return X.astype(dtype)


def start(rng, X, k):
    scale = np.sqrt(X.mean() / k)
    return scale * (0.5 + rng.random((X.shape[0], k))), scale * (0.5 + rng.random((k, X.shape[1])))


def rel(a, b):
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


@pytest.fixture
def rng():
    return np.random.default_rng(7)


# ---------------------------------------------------------------- iterates

@pytest.mark.parametrize("loss,beta", BETAS)
@pytest.mark.parametrize("order", ["C", "F"])
def test_iterates_match_textbook(rng, loss, beta, order):
    X = np.asarray(low_rank(rng), order=order)
    W0, H0 = start(rng, X, 4)
    model = rankfold.NMF(4, solver="mu", beta_loss=loss, init="custom", max_iter=6, tol=0.0, n_threads=2)
    W = model.fit_transform(X, W=W0, H=H0)
    Wt, Ht, losses = textbook_mu(X, W0, H0, beta, 6)
    assert rel(W, Wt) < 1e-6
    assert rel(model.components_, Ht) < 1e-6
    assert model.n_iter_ == 6
    np.testing.assert_allclose(model.loss_history_, losses, rtol=1e-6)
    np.testing.assert_allclose(model.reconstruction_err_, _beta_divergence(X, Wt, Ht, beta, square_root=True),
                               rtol=1e-6)


def test_numeric_aliases_equal_names(rng):
    X = low_rank(rng)
    W0, H0 = start(rng, X, 4)
    for name, number in [("kullback-leibler", 1), ("itakura-saito", 0), ("frobenius", 2)]:
        a = rankfold.NMF(4, solver="mu", beta_loss=name, init="custom", max_iter=4, tol=0.0)
        b = rankfold.NMF(4, solver="mu", beta_loss=number, init="custom", max_iter=4, tol=0.0)
        np.testing.assert_array_equal(a.fit_transform(X, W=W0, H=H0), b.fit_transform(X, W=W0, H=H0))


@pytest.mark.parametrize("loss,beta", [("kullback-leibler", 1.0), (0.5, 0.5), (1.5, 1.5)])
def test_penalties_match_textbook(rng, loss, beta):
    X = low_rank(rng)
    m, n = X.shape
    W0, H0 = start(rng, X, 4)
    alpha_W, alpha_H, l1_ratio = 0.01, 0.02, 0.3
    model = rankfold.NMF(4, solver="mu", beta_loss=loss, init="custom", max_iter=5, tol=0.0,
                         alpha_W=alpha_W, alpha_H=alpha_H, l1_ratio=l1_ratio)
    W = model.fit_transform(X, W=W0, H=H0)
    Wt, Ht, losses = textbook_mu(X, W0, H0, beta, 5, l1W=n * alpha_W * l1_ratio, l2W=n * alpha_W * (1 - l1_ratio),
                                 l1H=m * alpha_H * l1_ratio, l2H=m * alpha_H * (1 - l1_ratio))
    assert rel(W, Wt) < 1e-6 and rel(model.components_, Ht) < 1e-6
    np.testing.assert_allclose(model.loss_history_, losses, rtol=1e-6)
    # the same penalised iterates as scikit-learn's mu
    sk = SkNMF(4, solver="mu", beta_loss=loss, init="custom", max_iter=5, tol=0.0, alpha_W=alpha_W,
               alpha_H=alpha_H, l1_ratio=l1_ratio)
    Wsk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    assert rel(W, Wsk) < 1e-6 and rel(model.components_, sk.components_) < 1e-6


# ---------------------------------------------------------------- sparse input

@pytest.mark.parametrize("loss", ["kullback-leibler", 0.5, 1.5])
@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
def test_sparse_equals_dense(rng, loss, fmt, index_dtype):
    X = low_rank(rng, 50, 35)
    X[X < np.quantile(X, 0.6)] = 0.0  # 60% zeros
    Xs = sp.csr_matrix(X).asformat(fmt)
    Xs.indices = Xs.indices.astype(index_dtype)
    Xs.indptr = Xs.indptr.astype(index_dtype)
    W0, H0 = start(rng, X, 5)
    kw = dict(solver="mu", beta_loss=loss, init="custom", max_iter=8, tol=0.0, n_threads=2)
    dense = rankfold.NMF(5, **kw)
    Wd = dense.fit_transform(X, W=W0, H=H0)
    sparse = rankfold.NMF(5, **kw)
    Ws = sparse.fit_transform(Xs, W=W0, H=H0)
    assert rel(Ws, Wd) < 1e-9
    assert rel(sparse.components_, dense.components_) < 1e-9
    np.testing.assert_allclose(sparse.loss_history_, dense.loss_history_, rtol=1e-9)
    np.testing.assert_allclose(sparse.reconstruction_err_, dense.reconstruction_err_, rtol=1e-9)
    assert Xs.format == fmt  # used in place


def test_sparse_itakura_saito_fully_stored(rng):
    X = low_rank(rng) + 0.01
    W0, H0 = start(rng, X, 4)
    kw = dict(solver="mu", beta_loss="itakura-saito", init="custom", max_iter=5, tol=0.0)
    Wd = rankfold.NMF(4, **kw).fit_transform(X, W=W0, H=H0)
    for fmt in ("csr", "csc"):
        Ws = rankfold.NMF(4, **kw).fit_transform(sp.csr_matrix(X).asformat(fmt), W=W0, H=H0)
        assert rel(Ws, Wd) < 1e-9


# ---------------------------------------------------------------- against scikit-learn

def _objective(X, W, H, beta):
    return float(_beta_divergence(X, W, H, beta))


@pytest.mark.parametrize("loss,beta", [("kullback-leibler", 1.0), ("itakura-saito", 0.0)])
@pytest.mark.parametrize("sparse", [False, True])
def test_objective_not_above_sklearn(rng, loss, beta, sparse):
    X = low_rank(rng, 80, 60, 6, noise=0.1)
    if sparse and beta != 0.0:  # Itakura-Saito needs X without zeros: a fully stored sparse X
        X[X < np.quantile(X, 0.5)] = 0.0
    Xin = sp.csr_matrix(X) if sparse else X
    W0, H0 = _initialize_nmf(X, 6, init="nndsvda", random_state=0)
    for iters in (20, 100):
        sk = SkNMF(6, solver="mu", beta_loss=loss, init="custom", max_iter=iters, tol=0.0)
        Wsk = sk.fit_transform(Xin, W=W0.copy(), H=H0.copy())
        ours = rankfold.NMF(6, solver="mu", beta_loss=loss, init="custom", max_iter=iters, tol=0.0, n_threads=2)
        W = ours.fit_transform(Xin, W=W0, H=H0)
        mine = _objective(X, W, ours.components_, beta)
        theirs = _objective(X, Wsk, sk.components_, beta)
        assert mine <= theirs * (1 + 1e-9)
        np.testing.assert_allclose(ours.loss_history_[-1], mine, rtol=1e-8)
        np.testing.assert_allclose(ours.reconstruction_err_, sk.reconstruction_err_, rtol=1e-6)


def test_default_init_fit_close_to_sklearn(rng):
    X = low_rank(rng, 80, 60, 6, noise=0.1)
    ours = rankfold.NMF(6, solver="mu", beta_loss="kullback-leibler", max_iter=200, tol=0.0, random_state=0).fit(X)
    sk = SkNMF(6, solver="mu", beta_loss="kullback-leibler", max_iter=200, tol=0.0, random_state=0).fit(X)
    assert ours.reconstruction_err_ <= sk.reconstruction_err_ * 1.01


# ---------------------------------------------------------------- dtypes, missing values, stopping

@pytest.mark.parametrize("loss", ["kullback-leibler", "itakura-saito", 1.5])
@pytest.mark.parametrize("sparse", [False, True])
def test_float32_stays_float32(rng, loss, sparse):
    X = low_rank(rng) + 0.01
    W0, H0 = start(rng, X, 4)
    X32 = sp.csr_matrix(X.astype(np.float32)) if sparse else X.astype(np.float32)
    kw = dict(solver="mu", beta_loss=loss, init="custom", max_iter=30, tol=0.0)
    m32 = rankfold.NMF(4, **kw)
    W32 = m32.fit_transform(X32, W=W0.astype(np.float32), H=H0.astype(np.float32))
    m64 = rankfold.NMF(4, **kw)
    W64 = m64.fit_transform(X, W=W0, H=H0)
    assert W32.dtype == np.float32 and m32.components_.dtype == np.float32
    assert rel(W32, W64) < 1e-3
    np.testing.assert_allclose(m32.loss_history_, m64.loss_history_, rtol=1e-4)


@pytest.mark.parametrize("loss,beta", [("kullback-leibler", 1.0), ("itakura-saito", 0.0), (1.5, 1.5)])
def test_weighted_matches_textbook(rng, loss, beta):
    X = low_rank(rng)
    M = (rng.random(X.shape) < 0.8).astype(np.float64) * rng.uniform(0.5, 2.0, X.shape)
    W0, H0 = start(rng, X, 4)
    model = rankfold.NMF(4, solver="mu", beta_loss=loss, init="custom", max_iter=6, tol=0.0)
    W = model.fit_transform(X, W=W0, H=H0, mask=M)
    Wt, Ht, losses = textbook_mu(X, W0, H0, beta, 6, M=M)
    assert rel(W, Wt) < 1e-6 and rel(model.components_, Ht) < 1e-6
    np.testing.assert_allclose(model.loss_history_, losses, rtol=1e-6)
    np.testing.assert_allclose(model.reconstruction_err_, np.sqrt(2 * divergence(X, Wt, Ht, beta, M)), rtol=1e-6)


def test_nan_missing_values_are_left_out(rng):
    X = low_rank(rng)
    Xn = X.copy()
    holes = rng.random(X.shape) < 0.15
    Xn[holes] = np.nan
    W0, H0 = start(rng, X, 4)
    model = rankfold.NMF(4, solver="mu", beta_loss="kullback-leibler", init="custom", max_iter=5, tol=0.0,
                         missing_values=np.nan)
    W = model.fit_transform(Xn, W=W0, H=H0)
    Wt, _, _ = textbook_mu(np.where(holes, 0, X), W0, H0, 1.0, 5, M=(~holes).astype(float))
    assert rel(W, Wt) < 1e-6
    # the missing entries do not influence the fit: change them and nothing moves
    X2 = X.copy()
    X2[holes] = 0
    W2 = rankfold.NMF(4, solver="mu", beta_loss="kullback-leibler", init="custom", max_iter=5, tol=0.0).fit_transform(
        X2, W=W0, H=H0, mask=~holes)
    np.testing.assert_allclose(W2, W, rtol=1e-12)


@pytest.mark.parametrize("layout", ["C", "F", "csr", "csc"])
def test_tol_and_callback_stop_at_the_right_iterate(rng, layout):
    X = low_rank(rng)
    Xin = {"C": X, "F": np.asfortranarray(X), "csr": sp.csr_matrix(X), "csc": sp.csc_matrix(X)}[layout]
    W0, H0 = start(rng, X, 4)
    kw = dict(solver="mu", beta_loss="kullback-leibler", init="custom")
    stopped = rankfold.NMF(4, max_iter=100, tol=0.0, callback=lambda it, loss: it < 7, **kw)
    W = stopped.fit_transform(Xin, W=W0, H=H0)
    assert stopped.n_iter_ == 7 and len(stopped.loss_history_) == 7
    ref = rankfold.NMF(4, max_iter=7, tol=0.0, **kw)
    np.testing.assert_array_equal(W, ref.fit_transform(Xin, W=W0, H=H0))
    np.testing.assert_array_equal(stopped.components_, ref.components_)
    np.testing.assert_array_equal(stopped.loss_history_, ref.loss_history_)

    conv = rankfold.NMF(4, max_iter=2000, tol=1e-3, **kw)
    conv.fit(Xin, W=W0, H=H0)
    hist = conv.loss_history_
    assert conv.n_iter_ < 2000 and len(hist) == conv.n_iter_
    assert np.all(np.diff(hist) <= 1e-9 * hist[:-1])  # MU never increases the divergence
    assert (hist[-2] - hist[-1]) <= 1e-3 * hist[-2]
    assert np.all((hist[:-2] - hist[1:-1]) > 1e-3 * hist[:-2])


@pytest.mark.parametrize("loss,beta", [("kullback-leibler", 1.0), ("itakura-saito", 0.0)])
def test_transform_solves_W_with_H_fixed(rng, loss, beta):
    X = low_rank(rng) + 0.01
    model = rankfold.NMF(4, solver="mu", beta_loss=loss, max_iter=50, tol=0.0, random_state=0).fit(X)
    Xnew = low_rank(rng, 12, X.shape[1]) + 0.01
    W = model.transform(Xnew)
    W0 = np.full((12, 4), np.sqrt(Xnew.mean() / 4))
    Wt, _, _ = textbook_mu(Xnew, W0, model.components_, beta, 50, update_H=False)
    assert rel(W, Wt) < 1e-6
    Ws = model.transform(sp.csr_matrix(Xnew))
    assert rel(Ws, Wt) < 1e-6


def test_kl_topic_model_sparse_counts(rng):
    # a Poisson topic model: KL-NMF recovers the topics better than it starts
    k, docs, words = 4, 300, 200
    topics = rng.dirichlet(np.full(words, 0.05), size=k)
    mix = rng.dirichlet(np.full(k, 0.3), size=docs)
    counts = rng.poisson(mix @ topics * 80)
    X = sp.csr_matrix(counts.astype(np.float64))
    model = rankfold.NMF(k, solver="mu", beta_loss="kullback-leibler", max_iter=300, tol=0.0, random_state=0)
    model.fit(X)
    H = model.components_ / model.components_.sum(axis=1, keepdims=True)
    sim = np.corrcoef(np.vstack([H, topics]))[:k, k:]
    assert np.all(sim.max(axis=0) > 0.9)
    sk = SkNMF(k, solver="mu", beta_loss="kullback-leibler", max_iter=300, tol=0.0, random_state=0).fit(X)
    assert model.reconstruction_err_ <= sk.reconstruction_err_ * 1.01


# ---------------------------------------------------------------- real data

def load_bbc_counts():
    from sklearn.feature_extraction.text import CountVectorizer

    from conftest import data_path

    root = data_path("bbc-news", "bbc")
    docs, labels = [], []
    for label, topic in enumerate(sorted(p.name for p in root.iterdir() if p.is_dir())):
        for path in sorted((root / topic).glob("*.txt")):
            docs.append(path.read_bytes().decode("latin-1"))
            labels.append(label)
    counts = CountVectorizer(max_df=0.95, min_df=2, stop_words="english").fit_transform(docs)
    return counts.astype(np.float64).tocsr(), np.array(labels)


@pytest.mark.realdata
def test_bbc_word_counts_kl_topics():
    """KL-NMF (the Poisson topic model) on the BBC word counts, sparse: the five topics found
    match the five news sections (cluster purity), and the divergence is scikit-learn's or lower."""
    X, labels = load_bbc_counts()
    model = rankfold.NMF(5, solver="mu", beta_loss="kullback-leibler", max_iter=100, tol=0.0, random_state=0)
    W = model.fit_transform(X)
    cluster = W.argmax(axis=1)
    purity = sum(np.bincount(labels[cluster == c]).max() for c in range(5) if (cluster == c).any()) / len(labels)
    assert purity > 0.85, purity
    W0, H0 = _initialize_nmf(X, 5, init="nndsvda", random_state=0)
    sk = SkNMF(5, solver="mu", beta_loss="kullback-leibler", init="custom", max_iter=10, tol=0.0)
    Wsk = sk.fit_transform(X, W=W0.copy(), H=H0.copy())
    ours = rankfold.NMF(5, solver="mu", beta_loss="kullback-leibler", init="custom", max_iter=10, tol=0.0)
    Wr = ours.fit_transform(X, W=W0, H=H0)
    assert _objective(X, Wr, ours.components_, 1) <= _objective(X, Wsk, sk.components_, 1) * (1 + 1e-9)
