"""Bad input to every public entry point: a clear exception, never a crash."""

from __future__ import annotations

import numpy as np
import pytest

import rankfold
from rankfold import ExactIndex, knn


@pytest.fixture
def index(rng):
    return ExactIndex(4).add(rng.standard_normal((10, 4)))


@pytest.mark.parametrize("k", [0, -3])
def test_search_k_out_of_range(index, k):
    with pytest.raises(ValueError, match="k must be >= 1"):
        index.search(np.zeros((1, 4)), k=k)


@pytest.mark.parametrize("k", [1.5, "3", None])
def test_search_k_wrong_type(index, k):
    with pytest.raises(TypeError, match="k must be an integer"):
        index.search(np.zeros((1, 4)), k=k)


def test_wrong_dimension(index):
    with pytest.raises(ValueError, match="Q must have 4 columns"):
        index.search(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="X must have 4 columns"):
        index.add(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Q must be a 2-D array"):
        index.search(np.zeros(4))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_vectors(index, bad):
    Q = np.zeros((2, 4))
    Q[1, 2] = bad
    with pytest.raises(ValueError, match="Q contains"):
        index.search(Q)
    with pytest.raises(ValueError, match="X contains"):
        index.add(Q)
    with pytest.raises(ValueError, match="Q contains"):
        knn(np.zeros((3, 4)), Q)


def test_non_numeric_dtype(index):
    with pytest.raises(TypeError, match="Q"):
        index.search(np.array([["a", "b", "c", "d"]]))
    with pytest.raises(TypeError, match="X"):
        index.add([[1 + 2j, 0, 0, 0]])
    with pytest.raises(TypeError, match="X"):
        index.add(None)
    with pytest.raises(TypeError, match="X"):
        knn("abc", np.zeros((1, 3)))


def test_bad_ids(index, rng):
    with pytest.raises(ValueError, match="already in the index"):
        index.add(rng.standard_normal((1, 4)), ids=[3])
    with pytest.raises(ValueError, match="duplicate"):
        index.add(rng.standard_normal((2, 4)), ids=[50, 50])
    with pytest.raises(ValueError, match="ids must be >= 0"):
        index.add(rng.standard_normal((1, 4)), ids=[-1])
    with pytest.raises(ValueError, match="ids must have 2 entries"):
        index.add(rng.standard_normal((2, 4)), ids=[100])
    with pytest.raises(TypeError, match="ids must be integers"):
        index.add(rng.standard_normal((1, 4)), ids=[1.5])
    with pytest.raises(ValueError, match="not in the index"):
        index.get_vectors([999])
    assert len(index) == 10  # failed adds left the index unchanged


def test_cosine_zero_vector():
    index = ExactIndex(3, metric="cosine")
    with pytest.raises(ValueError, match="zero vector"):
        index.add(np.zeros((1, 3)))
    assert len(index) == 0
    index.add(np.ones((1, 3)))
    with pytest.raises(ValueError, match="zero vector"):
        index.search(np.zeros((1, 3)))


@pytest.mark.parametrize("kwargs,exc,match", [
    ({"dim": 0}, ValueError, "dim must be >= 1"),
    ({"dim": 2.5}, TypeError, "dim must be an integer"),
    ({"dim": 3, "metric": "hamming"}, ValueError, "metric must be one of"),
    ({"dim": 3, "n_threads": 0}, ValueError, "n_threads must be >= 1"),
])
def test_constructor_arguments(kwargs, exc, match):
    with pytest.raises(exc, match=match):
        ExactIndex(**kwargs)


def test_knn_arguments(rng):
    X = rng.standard_normal((5, 3))
    with pytest.raises(ValueError, match="metric"):
        knn(X, X, metric="manhattan")
    with pytest.raises(ValueError, match="k must be >= 1"):
        knn(X, X, k=0)
    with pytest.raises(ValueError, match="Q must have 3 columns"):
        knn(X, np.zeros((1, 2)))
    with pytest.raises(ValueError, match="n_threads"):
        knn(X, X, n_threads=-1)


def test_topk_arguments():
    with pytest.raises(ValueError, match="k must be >= 1"):
        rankfold.topk(np.zeros((2, 2)), 0)
    with pytest.raises(TypeError, match="largest"):
        rankfold.topk(np.zeros((2, 2)), 1, largest="yes")
    with pytest.raises(ValueError, match="scores must be a 2-D"):
        rankfold.topk(np.zeros(3), 1)


def _saved(tmp_path, rng):
    path = tmp_path / "ok.rf"
    ExactIndex(4).add(rng.standard_normal((50, 4))).save(path)
    return path, path.read_bytes()


def test_load_truncated_file(tmp_path, rng):
    path, data = _saved(tmp_path, rng)
    for cut in (0, 5, 24, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(ValueError, match="not a rankfold index|truncated"):
            ExactIndex.load(path)


def test_load_corrupted_file(tmp_path, rng):
    path, data = _saved(tmp_path, rng)
    for pos in (30, 60, len(data) - 20, len(data) - 3):
        bad = bytearray(data)
        bad[pos] ^= 0x40
        path.write_bytes(bytes(bad))
        with pytest.raises(ValueError, match="corrupted"):
            ExactIndex.load(path)


def test_load_foreign_or_future_file(tmp_path, rng):
    path, data = _saved(tmp_path, rng)
    path.write_bytes(b"\x93NUMPY" + b"\0" * 200)
    with pytest.raises(ValueError, match="not a rankfold index"):
        ExactIndex.load(path)
    bad = bytearray(data)
    bad[8] = 99  # format version
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="format version 99"):
        ExactIndex.load(path)
    bad = bytearray(data)
    bad[12] = 2  # another index type
    path.write_bytes(bytes(bad))
    with pytest.raises(ValueError, match="different index type"):
        ExactIndex.load(path)
    with pytest.raises(ValueError, match="cannot open"):
        ExactIndex.load(tmp_path / "missing.rf")
    with pytest.raises(TypeError, match="path"):
        ExactIndex.load(12)


def test_hypothesis_random_bytes_never_crash(tmp_path):
    hypothesis = pytest.importorskip("hypothesis")
    from hypothesis import given, settings
    from hypothesis import strategies as st

    path = tmp_path / "fuzz.rf"

    @settings(max_examples=200, deadline=None)
    @given(st.binary(max_size=300))
    def load_random(blob):
        path.write_bytes(b"RANKFOLD" + blob)
        with pytest.raises(ValueError):
            ExactIndex.load(path)

    load_random()
    assert hypothesis


# ---------------------------------------------------------------- NMF

def _nmf_data(rng):
    return np.abs(rng.standard_normal((20, 12)))


@pytest.mark.parametrize(
    "params,match",
    [
        ({"n_components": 0}, "n_components"),
        ({"n_components": 2.5}, "n_components"),
        ({"solver": "cd"}, "solver"),
        ({"beta_loss": "kullback-leibler"}, "beta_loss"),
        ({"init": "svd"}, "init"),
        ({"max_iter": -1}, "max_iter"),
        ({"tol": -1e-3}, "tol"),
        ({"tol": float("nan")}, "tol"),
        ({"alpha_W": -1.0}, "alpha_W"),
        ({"alpha_H": "other"}, "alpha_H"),
        ({"l1_ratio": 1.5}, "l1_ratio"),
        ({"n_threads": 0}, "n_threads"),
        ({"inner_sweeps": 0}, "inner_sweeps"),
        ({"random_state": -3}, "random_state"),
    ],
)
def test_nmf_bad_parameters(rng, params, match):
    from rankfold import NMF

    with pytest.raises((ValueError, TypeError), match=match):
        NMF(**{"n_components": 3, **params}).fit(_nmf_data(rng))


def test_nmf_bad_data(rng):
    import scipy.sparse as sp

    from rankfold import NMF

    X = _nmf_data(rng)
    model = NMF(3, max_iter=5, tol=0.0)
    bad = X.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(bad)
    bad[1, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        model.fit(bad)
    bad[1, 2] = -1.0
    with pytest.raises(ValueError, match="Negative"):
        model.fit(bad)
    with pytest.raises(ValueError, match="Negative"):
        model.fit(sp.csr_matrix(bad))
    S = sp.csr_matrix(X)
    S.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        model.fit(S)
    with pytest.raises(ValueError, match="all zeros"):
        model.fit(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="all zeros"):
        model.fit(sp.csr_matrix((5, 4)))
    with pytest.raises(ValueError, match="0 sample"):
        model.fit(np.zeros((0, 4)))
    with pytest.raises(ValueError, match="2-D"):
        model.fit(X[0])
    with pytest.raises(TypeError, match="real numbers"):
        model.fit(X.astype(complex))
    with pytest.raises(TypeError):
        model.fit("abc")
    with pytest.raises(ValueError, match="min\\(n_samples, n_features\\)"):
        NMF(13, init="nndsvd").fit(X)
    # more components than min(m, n) is fine with a random start
    assert NMF(13, init="random", max_iter=3, tol=0.0).fit(X).components_.shape == (13, 12)


def test_nmf_bad_custom_init(rng):
    from rankfold import NMF

    X = _nmf_data(rng)
    W, H = np.ones((20, 3)), np.ones((3, 12))
    with pytest.raises(ValueError, match="W must have shape"):
        NMF(3, init="custom").fit(X, W=np.ones((19, 3)), H=H)
    with pytest.raises(ValueError, match="H must have shape"):
        NMF(3, init="custom").fit(X, W=W, H=np.ones((3, 11)))
    with pytest.raises(ValueError, match="both W and H"):
        NMF(3, init="custom").fit(X, W=W)
    with pytest.raises(ValueError, match="both W and H"):
        NMF(3, init="random").fit(X, W=W, H=H)
    with pytest.raises(ValueError, match="negative"):
        NMF(3, init="custom").fit(X, W=-W, H=H)
    with pytest.raises(ValueError, match="NaN"):
        NMF(3, init="custom").fit(X, W=W, H=H * np.nan)


def test_nmf_bad_use_after_fit(rng):
    from rankfold import NMF
    from rankfold.nmf import NotFittedError

    X = _nmf_data(rng)
    with pytest.raises(NotFittedError):
        NMF(3).transform(X)
    with pytest.raises(NotFittedError):
        NMF(3).inverse_transform(np.ones((2, 3)))
    model = NMF(3, max_iter=5, tol=0.0).fit(X)
    with pytest.raises(ValueError, match="12 features"):
        model.transform(X[:, :5])
    with pytest.raises(ValueError, match="Negative"):
        model.transform(-X)
    with pytest.raises(ValueError, match="3 columns"):
        model.inverse_transform(np.ones((2, 4)))
    with pytest.raises(TypeError, match="callback"):
        NMF(3, callback=5).fit(X)


def test_nmf_bad_randomized_svd(rng):
    from rankfold import randomized_svd

    X = _nmf_data(rng)
    with pytest.raises(ValueError, match="n_components"):
        randomized_svd(X, 0)
    with pytest.raises(ValueError, match="n_components"):
        randomized_svd(X, 13)
    with pytest.raises(ValueError, match="n_iter"):
        randomized_svd(X, 2, n_iter=-1)
    with pytest.raises(ValueError, match="NaN"):
        randomized_svd(X * np.nan, 2)


def test_nmf_core_rejects_misuse(rng):
    """The compiled entry points check their own preconditions."""
    from rankfold import _core

    X = _nmf_data(rng)
    W, Ht = np.ones((20, 3)), np.ones((12, 3))
    args = (0, 0.0, 0.0, 0.0, 0.0, 0.0, 1, 0.1, True, True, 1, None)
    with pytest.raises(ValueError, match="H\\^T must have shape"):
        _core.nmf_fit(("dense", X), W, np.ones((11, 3)), "hals", *args)
    with pytest.raises(TypeError, match="dtype"):
        _core.nmf_fit(("dense", X.astype(np.float32)), W, Ht, "hals", *args)
    with pytest.raises(ValueError, match="solver"):
        _core.nmf_fit(("dense", X), W, Ht, "nope", *args)
    with pytest.raises(ValueError, match="indptr"):
        _core.nmf_fit(("csr", np.array([0, 1]), np.array([0]), np.array([1.0]), 20, 12), W, Ht, "hals", *args)
