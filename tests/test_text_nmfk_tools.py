"""Topic-model text helpers and the NMFk clustering building blocks."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import data_path

from rankfold import text
from rankfold.nmf._nmfk import align_columns, cluster_silhouettes, perturb


def test_ppmi_matches_dense_formula(rng):
    X = sp.random(40, 12, density=0.3, format="csr", random_state=3)
    P = text.ppmi_cooccurrence(X).toarray()
    B = (X.toarray() > 0).astype(float)
    D = B.shape[0]
    C = B.T @ B
    df = B.sum(0)
    with np.errstate(divide="ignore"):
        ref = np.log(C * D / np.outer(df, df))
    ref[~np.isfinite(ref)] = 0
    ref = np.maximum(ref, 0)
    np.fill_diagonal(ref, 0)
    np.testing.assert_allclose(P, ref, atol=1e-12)
    np.testing.assert_allclose(P, P.T)


def test_npmi_coherence_reference():
    # 4 documents; words 0 and 1 always together, word 2 never with 0.
    B = sp.csr_matrix(np.array([[1, 1, 0], [1, 1, 0], [0, 0, 1], [0, 1, 1]], dtype=float))
    p0, p1, p01 = 0.5, 0.75, 0.5
    npmi01 = np.log(p01 / (p0 * p1)) / -np.log(p01)
    got = text.npmi_coherence([[0, 1], [0, 2]], B)
    np.testing.assert_allclose(got, [npmi01, -1.0])
    W = np.array([[5.0, 4.0, 0.0]])
    np.testing.assert_allclose(text.npmi_coherence(W, B, n=2), [npmi01])


def test_top_words():
    H = np.array([[0.1, 3.0, 2.0], [1.0, 0.0, 0.5]])
    assert text.top_words(H, ["a", "b", "c"], n=2) == [["b", "c"], ["a", "c"]]
    with pytest.raises(ValueError, match="components"):
        text.top_words(H, ["a", "b"])


def test_align_columns_recovers_permutations(rng):
    base = rng.random((50, 6))
    runs, perms = [], []
    for _ in range(8):
        p = rng.permutation(6)
        perms.append(p)
        runs.append(base[:, p] * (1 + 0.01 * rng.random((50, 6))))
    labels, centroids = align_columns(runs)
    # Column j of run r is base column perms[r][j]: same base column -> same cluster.
    cluster_of_base = {}
    for r, p in enumerate(perms):
        for j in range(6):
            cluster_of_base.setdefault(p[j], labels[r, j])
            assert labels[r, j] == cluster_of_base[p[j]]
    sil = cluster_silhouettes(runs, labels)
    assert sil.min() > 0.95


def test_unstable_runs_have_low_silhouette(rng):
    runs = [rng.random((30, 5)) for _ in range(10)]
    labels, _ = align_columns(runs)
    assert cluster_silhouettes(runs, labels).mean() < 0.5


def test_silhouette_matches_sklearn_cosine(rng):
    pytest.importorskip("sklearn")
    from sklearn.metrics import silhouette_samples

    runs = [rng.random((20, 4)) for _ in range(6)]
    labels, _ = align_columns(runs)
    P = np.concatenate(runs, axis=1).T
    ref = silhouette_samples(P, labels.ravel(), metric="cosine")
    expected = [ref[labels.ravel() == c].mean() for c in range(4)]
    np.testing.assert_allclose(cluster_silhouettes(runs, labels), expected, atol=1e-10)


def test_perturb(rng):
    X = rng.random((20, 10))
    Xp = perturb(X, rng, eps=0.03)
    ratio = Xp / X
    assert ratio.min() >= 1.03 - 1e-12 and ratio.max() <= 1.09 + 1e-12
    S = sp.random(20, 10, density=0.2, format="csr", random_state=1) * 10
    Sp = perturb(S, rng, method="poisson")
    assert sp.issparse(Sp) and set(np.unique(Sp.data)) <= set(range(0, 100))
    with pytest.raises(ValueError, match="perturbation"):
        perturb(X, rng, method="gauss")


@pytest.mark.realdata
def test_bbc_tfidf_and_coherence():
    folder = data_path("bbc-news", "bbc")
    docs = [p.read_text(encoding="latin-1") for p in sorted(folder.glob("*/*.txt"))]
    assert len(docs) == 2225
    X, vocab = text.tfidf(docs)
    assert X.shape[0] == 2225 and X.shape[1] == len(vocab) > 5000
    # Topics made of words that go together must score higher than random ones.
    words = {w: i for i, w in enumerate(vocab)}
    good = [[words[w] for w in ("film", "actor", "oscar", "award", "star")],
            [words[w] for w in ("match", "england", "cup", "win", "team")]]
    random_topics = np.random.default_rng(0).choice(len(vocab), size=(2, 5), replace=False).tolist()
    assert text.npmi_coherence(good, X).mean() > text.npmi_coherence(random_topics, X).mean() + 0.2
