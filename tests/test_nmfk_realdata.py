"""NMFk on real data: the Samson hyperspectral scene and the BBC news corpus."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import data_path
from scipy.optimize import linear_sum_assignment

from rankfold import NMFk, text
from rankfold.datasets import load_samson


def spectral_angles(A, B):
    """Spectral angle (radians) of each row of B to its matched row of A."""
    An = A / np.linalg.norm(A, axis=1, keepdims=True)
    Bn = B / np.linalg.norm(B, axis=1, keepdims=True)
    ang = np.arccos(np.clip(An @ Bn.T, -1, 1))
    r, c = linear_sum_assignment(ang)
    return ang[r, c]


@pytest.mark.realdata
def test_samson_three_endmembers():
    """Samson has 3 endmembers (soil, tree, water). Plain NMF is not unique on
    this scene (its k = 3 runs disagree: random starts give min silhouette
    about -0.1), so the runs use the L1 prior on the abundances W that sparse
    unmixing models use; then k = 3 is stable and k = 4, 5 are not."""
    X, GT, _ = load_samson(data_path("samson"))
    # alpha_H = 0: the scale drifts from H to W and the objective never settles
    # to a tol, so a fixed number of iterations is run (tol = 0).
    model = NMFk(range(2, 6), n_perturbations=5, alpha_W=0.002, alpha_H=0.0, l1_ratio=1.0, max_iter=400, tol=0,
                 random_state=0, n_threads=2).fit(X)
    s = model.scores_
    print("Samson NMFk:", [(int(r["k"]), round(float(r["silhouette_min"]), 3), round(float(r["relative_error"]), 4))
                           for r in s])
    assert model.n_components_ == 3
    assert s["silhouette_min"][1] > 0.9 and (s["silhouette_min"][2:] < 0.5).all()
    sad = spectral_angles(GT, model.components_)
    print("Samson SAD (rad):", np.round(sad, 3))
    assert sad.mean() < 0.2


@pytest.mark.realdata
def test_bbc_stable_number_of_topics(tmp_path):
    """News text is not of low rank: NMF from random starts settles in
    different optima from k = 5 on, and the stable k depends on the vocabulary
    and the number of runs (3 to 5 in the settings tried, see bench/README.md).
    What holds throughout: a small k is stable, and no k >= 6 comes close."""
    folder = data_path("bbc-news", "bbc")
    paths = sorted(folder.glob("*/*.txt"))
    docs = [p.read_text(encoding="latin-1") for p in paths]
    labels = np.unique([p.parent.name for p in paths], return_inverse=True)[1]
    X, vocab = text.tfidf(docs)  # all 17473 words in at least 2 documents
    model = NMFk(range(2, 13), n_perturbations=10, max_iter=300, random_state=0, n_threads=2).fit(X)
    s = model.scores_
    print("BBC NMFk:", [(int(r["k"]), round(float(r["silhouette_min"]), 3)) for r in s])
    assert 3 <= model.n_components_ <= 5
    assert s["stable"].any() and s["silhouette_min"][model.k_values_ == model.n_components_][0] >= 0.9
    assert (s["silhouette_min"][s["k"] >= 6] < 0.5).all()
    sklearn = pytest.importorskip("sklearn.metrics")
    ari = sklearn.adjusted_rand_score(labels, model.W_.argmax(axis=1))
    print(f"BBC NMFk: k = {model.n_components_}, topics vs the 5 sections: adjusted Rand index {ari:.3f}")
    assert ari > 0.3
    coherence = text.npmi_coherence(model.components_, X)
    print("BBC NMFk topics:", text.top_words(model.components_, vocab, 6), "NPMI", np.round(coherence, 3))
    assert coherence.mean() > 0.15  # random word sets score about 0 or below
    try:
        import matplotlib
    except ImportError:
        return
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ax = model.plot()
    ax.figure.savefig(tmp_path / "bbc_nmfk.png")
    plt.close("all")
    assert (tmp_path / "bbc_nmfk.png").stat().st_size > 0
