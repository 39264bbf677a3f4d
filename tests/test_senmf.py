"""SeNMF: NMF of TF-IDF documents coupled with word co-occurrence, against a
textbook NumPy implementation of the joint objective, and on the BBC corpus."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import data_path

from rankfold import NMF, NMFk, SeNMF, text
from rankfold.nmf import semantic_stack


def textbook_joint_mu(X, M, W, T, C, lam, iters):
    """Lee-Seung multiplicative updates of
    0.5 ||X - W T||^2 + 0.5 lam ||M - C T||^2 (W, then C, then the shared T)."""
    W, T, C = W.copy(), T.copy(), C.copy()
    tiny = np.finfo(np.float32).eps
    for _ in range(iters):
        TTt = T @ T.T
        W *= (X @ T.T) / np.maximum(W @ TTt, tiny)
        C *= (M @ T.T) / np.maximum(C @ TTt, tiny)
        T *= (W.T @ X + lam * C.T @ M) / np.maximum(W.T @ W @ T + lam * C.T @ C @ T, tiny)
    return W, T, C


def joint_objective(X, M, W, T, C, lam):
    return 0.5 * np.sum((X - W @ T) ** 2) + 0.5 * lam * np.sum((M - C @ T) ** 2)


def corpus(rng, docs=60, words=30, topics=3):
    """Small TF-IDF-like matrix with planted topics."""
    W = rng.gamma(0.3, 1.0, (docs, topics))
    T = rng.gamma(0.3, 1.0, (topics, words))
    X = W @ T * (rng.random((docs, words)) < 0.6)
    X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return X


def test_mu_matches_textbook_joint_updates(rng):
    X = corpus(rng)
    M = text.ppmi_cooccurrence(sp.csr_matrix(X)).toarray()
    k, lam = 3, 0.7
    W0, T0, C0 = rng.random((60, k)), rng.random((k, 30)), rng.random((30, k))
    model = SeNMF(k, semantic_weight=lam, scale_cooccurrence=False, solver="mu", init="custom", tol=0,
                  max_iter=40)
    W = model.fit_transform(X, W=W0, H=T0, context=C0)
    Wr, Tr, Cr = textbook_joint_mu(X, M, W0, T0, C0, lam, 40)
    np.testing.assert_allclose(W, Wr, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.components_, Tr, rtol=1e-7, atol=1e-10)
    np.testing.assert_allclose(model.context_, Cr, rtol=1e-7, atol=1e-10)
    # The reported objective is the joint one.
    assert model.loss_history_[-1] == pytest.approx(joint_objective(X, M, Wr, Tr, Cr, lam), rel=1e-9)
    assert model.reconstruction_err_ == pytest.approx(np.linalg.norm(X - Wr @ Tr), rel=1e-9)
    assert model.semantic_err_ == pytest.approx(np.linalg.norm(M - Cr @ Tr), rel=1e-9)


def test_scaled_objective_and_hals(rng):
    """HALS (default) with the default scaling minimises the joint objective with
    M scaled to ||X||_F; it ends lower than long textbook MU from the same start."""
    X = corpus(rng)
    M = text.ppmi_cooccurrence(sp.csr_matrix(X)).toarray()
    s = np.linalg.norm(X) / np.linalg.norm(M)
    k, lam = 3, 1.0
    W0, T0, C0 = rng.random((60, k)), rng.random((k, 30)), rng.random((30, k))
    model = SeNMF(k, semantic_weight=lam, init="custom", tol=1e-10, max_iter=500)
    W = model.fit_transform(X, W=W0, H=T0, context=C0 / s)
    assert model.cooccurrence_scale_ == pytest.approx(s)
    C = model.context_
    obj = joint_objective(X, s * M, W, model.components_, s * C, lam)
    assert model.loss_history_[-1] == pytest.approx(obj, rel=1e-8)
    Wr, Tr, Cr = textbook_joint_mu(X, s * M, W0, T0, C0, lam, 2000)
    assert obj <= joint_objective(X, s * M, Wr, Tr, Cr, lam) * (1 + 1e-6)
    assert np.all(np.diff(model.loss_history_) <= 1e-12 * model.loss_history_[0])


def test_default_cooccurrence_is_ppmi_and_sparse_equals_dense(rng):
    X = corpus(rng)
    Xs = sp.csr_matrix(X)
    a = SeNMF(3, random_state=0, max_iter=100, tol=0).fit(Xs)
    b = SeNMF(3, random_state=0, max_iter=100, tol=0).fit(Xs, cooccurrence=text.ppmi_cooccurrence(Xs))
    np.testing.assert_array_equal(a.components_, b.components_)
    c = SeNMF(3, random_state=0, max_iter=100, tol=0, init="random").fit(X)
    d = SeNMF(3, random_state=0, max_iter=100, tol=0, init="random").fit(Xs)
    np.testing.assert_allclose(c.components_, d.components_, rtol=1e-8, atol=1e-10)


def topic_corpus(rng, docs=150, words=45, topics=3, length=40):
    """Word counts of documents mixing a few topics with mostly separate words, row-normalised."""
    T = 0.02 + np.kron(np.eye(topics), np.ones(words // topics)) * rng.random((topics, words))
    T /= T.sum(axis=1, keepdims=True)
    theta = rng.dirichlet(0.2 * np.ones(topics), size=docs)
    counts = rng.poisson(length * theta @ T).astype(float)
    return sp.csr_matrix(counts / np.maximum(np.linalg.norm(counts, axis=1, keepdims=True), 1e-12))


def test_semantic_stack_and_senmfk():
    X = topic_corpus(np.random.default_rng(1))
    Z = semantic_stack(X, semantic_weight=0.5)
    M = text.ppmi_cooccurrence(X)
    s = sp.linalg.norm(X) / sp.linalg.norm(M)
    np.testing.assert_allclose(Z[:150].toarray(), X.toarray())
    np.testing.assert_allclose(Z[150:].toarray(), np.sqrt(0.5) * s * M.toarray(), rtol=1e-12)
    a = SeNMF(3, semantic_weight=0.5, random_state=0, max_iter=60, tol=0).fit(X)
    b = NMF(3, random_state=0, max_iter=60, tol=0).fit(Z)
    np.testing.assert_array_equal(a.components_, b.components_)
    # SeNMFk: NMFk on the stacked matrix chooses the number of topics.
    model = NMFk(range(2, 6), n_perturbations=4, max_iter=300, random_state=0, n_threads=2).fit(Z)
    assert model.n_components_ == 3
    assert model.scores_["silhouette_min"][1] > 0.95 and (model.scores_["silhouette_min"][2:] < 0.5).all()
    with pytest.raises(ValueError, match="semantic_weight"):
        semantic_stack(X, semantic_weight=0)


def test_zero_weight_is_plain_nmf(rng):
    X = corpus(rng)
    a = SeNMF(3, semantic_weight=0.0, random_state=1, max_iter=50, tol=0).fit(X)
    b = NMF(3, random_state=1, max_iter=50, tol=0).fit(X)
    np.testing.assert_array_equal(a.components_, b.components_)
    assert not a.context_.any()


def test_float32_transform_and_topics(rng):
    X = corpus(rng).astype(np.float32)
    model = SeNMF(3, random_state=0, max_iter=200)
    W = model.fit_transform(X)
    assert W.dtype == np.float32 and model.components_.dtype == np.float32 and model.context_.dtype == np.float32
    Wt = model.transform(X)
    assert Wt.shape == (60, 3) and (Wt >= 0).all()
    assert np.linalg.norm(X - Wt @ model.components_) <= model.reconstruction_err_ * (1 + 1e-3)
    vocab = [f"w{i}" for i in range(30)]
    top = model.top_words(vocab, n=4)
    assert len(top) == 3 and all(len(t) == 4 for t in top)
    assert top[0][0] == vocab[int(np.argmax(model.components_[0]))]
    np.testing.assert_allclose(model.coherence(X, n=4), text.npmi_coherence(model.components_.astype(float), X, 4))
    assert model.inverse_transform(W).shape == X.shape


def test_sklearn_clone_and_params():
    pytest.importorskip("sklearn")
    from sklearn.base import clone

    model = clone(SeNMF(4, semantic_weight=0.5))
    assert model.get_params()["semantic_weight"] == 0.5


@pytest.mark.realdata
def test_bbc_senmf_topics_more_coherent_than_nmf():
    folder = data_path("bbc-news", "bbc")
    docs = [p.read_text(encoding="latin-1") for p in sorted(folder.glob("*/*.txt"))]
    X, vocab = text.tfidf(docs, max_features=2000)
    k = 10
    nmf = NMF(k, random_state=0, max_iter=300, tol=1e-4).fit(X)
    se = SeNMF(k, random_state=0, max_iter=300, tol=1e-4).fit(X)
    c_nmf = text.npmi_coherence(nmf.components_, X).mean()
    c_se = se.coherence(X).mean()
    print(f"BBC k={k}: mean NPMI coherence NMF {c_nmf:.4f}, SeNMF {c_se:.4f}")
    assert c_se >= c_nmf
    # The topics stay topics of the documents: relative error close to NMF's.
    rel_nmf = nmf.reconstruction_err_ / np.sqrt((X.data ** 2).sum())
    rel_se = se.reconstruction_err_ / np.sqrt((X.data ** 2).sum())
    assert rel_se < rel_nmf * 1.05
    assert len(se.top_words(vocab)) == k
