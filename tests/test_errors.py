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


# ---------------------------------------------------------------- HNSWIndex
@pytest.fixture
def hnsw(rng):
    from rankfold import HNSWIndex

    return HNSWIndex(4, M=4, ef_construction=20, random_state=0).add(rng.standard_normal((30, 4)))


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"dim": 0}, ValueError, "dim must be >= 1"),
        ({"dim": 4, "metric": "hamming"}, ValueError, "metric must be one of"),
        ({"dim": 4, "M": 1}, ValueError, "M must be >= 2"),
        ({"dim": 4, "M": 2.5}, TypeError, "M must be an integer"),
        ({"dim": 4, "ef_construction": 0}, ValueError, "ef_construction must be >= 1"),
        ({"dim": 4, "capacity": -1}, ValueError, "capacity must be >= 0"),
        ({"dim": 4, "random_state": "x"}, TypeError, "random_state"),
        ({"dim": 4, "n_threads": 0}, ValueError, "n_threads must be >= 1"),
    ],
)
def test_hnsw_bad_constructor_arguments(kwargs, exc, match):
    from rankfold import HNSWIndex

    with pytest.raises(exc, match=match):
        HNSWIndex(**kwargs)


def test_hnsw_bad_vectors_and_ids(hnsw, rng):
    with pytest.raises(ValueError, match="X must have 4 columns"):
        hnsw.add(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="Q must have 4 columns"):
        hnsw.search(np.zeros((2, 5)))
    for bad in (np.nan, np.inf):
        Q = np.zeros((2, 4))
        Q[1, 1] = bad
        with pytest.raises(ValueError, match="X contains"):
            hnsw.add(Q)
        with pytest.raises(ValueError, match="Q contains"):
            hnsw.search(Q)
    with pytest.raises(ValueError, match="duplicate"):
        hnsw.add(rng.standard_normal((2, 4)), ids=[100, 100])
    with pytest.raises(ValueError, match="already in the index"):
        hnsw.add(rng.standard_normal((1, 4)), ids=[5])
    with pytest.raises(ValueError, match="ids must be >= 0"):
        hnsw.add(rng.standard_normal((1, 4)), ids=[-2])
    with pytest.raises(ValueError, match="ids must be >= 0 and < 2"):
        hnsw.add(rng.standard_normal((1, 4)), ids=[2**63 - 1])
    with pytest.raises(TypeError, match="X"):
        hnsw.add("abc")
    with pytest.raises(ValueError, match="zero vector"):
        type(hnsw)(3, metric="cosine").add(np.zeros((1, 3)))
    assert len(hnsw) == 30  # failed adds changed nothing


def test_hnsw_bad_search_arguments(hnsw):
    Q = np.zeros((1, 4))
    for k in (0, -1):
        with pytest.raises(ValueError, match="k must be >= 1"):
            hnsw.search(Q, k=k)
    with pytest.raises(TypeError, match="k must be an integer"):
        hnsw.search(Q, k=2.0)
    with pytest.raises(ValueError, match="ef must be >= k"):
        hnsw.search(Q, k=10, ef=5)
    with pytest.raises(ValueError, match="ef must be >= 1"):
        hnsw.search(Q, k=1, ef=0)
    with pytest.raises(ValueError, match="ef must be >= 1"):
        hnsw.ef = 0
    # k above the number of stored vectors pads (documented), no error.
    ids, dist = hnsw.search(Q, k=40)
    assert np.all(ids[:, 30:] == -1) and np.all(np.isinf(dist[:, 30:]))


def test_hnsw_bad_filters(hnsw):
    Q = np.zeros((1, 4))
    with pytest.raises(ValueError, match="length >= 30"):
        hnsw.search(Q, filter=np.ones(10, dtype=bool))
    with pytest.raises(TypeError, match="filter must be an array of allowed ids"):
        hnsw.search(Q, filter=np.array([0.5, 1.5]))
    with pytest.raises(TypeError, match="filter must be an array"):
        hnsw.search(Q, filter=3)
    with pytest.raises(TypeError, match="filter must be an array"):
        hnsw.search(Q, filter="abc")
    with pytest.raises(ValueError, match="filter must be 1-D"):
        hnsw.search(Q, filter=np.ones((2, 30), dtype=bool))
    with pytest.raises(ValueError, match="filter must be >= 0"):
        hnsw.search(Q, filter=[-1, 2])


def test_hnsw_bad_remove_and_lookups(hnsw):
    with pytest.raises(ValueError, match="not in the index"):
        hnsw.remove([3, 999])
    assert len(hnsw) == 30 and hnsw.contains([3]).all()  # nothing was removed
    with pytest.raises(ValueError, match="duplicate"):
        hnsw.remove([4, 4])
    hnsw.remove([4])
    with pytest.raises(ValueError, match="not in the index"):
        hnsw.remove([4])
    with pytest.raises(ValueError, match="not in the index"):
        hnsw.get_vectors([4])
    with pytest.raises(TypeError, match="ids must be integers"):
        hnsw.remove([1.5])


def test_hnsw_bad_files(hnsw, tmp_path):
    from rankfold import HNSWIndex

    with pytest.raises(TypeError, match="path"):
        hnsw.save(3)
    with pytest.raises(ValueError, match="cannot open"):
        HNSWIndex.load(tmp_path / "nothing.here")
    with pytest.raises(TypeError, match="mmap must be a bool"):
        HNSWIndex.load(tmp_path / "nothing.here", mmap="yes")
    path = tmp_path / "x.rfh"
    path.write_bytes(b"RANKFOLD" + b"\0" * 40)
    with pytest.raises(ValueError):
        HNSWIndex.load(path)

# ---------------------------------------------------------------- completion (ALS)

import scipy.sparse as sp  # noqa: E402

from rankfold import ALS  # noqa: E402


@pytest.fixture
def ratings():
    rng = np.random.default_rng(0)
    R = sp.random(20, 15, density=0.3, random_state=np.random.RandomState(0), format="csr")
    R.data = np.ceil(R.data * 5)
    return R


@pytest.fixture
def als(ratings):
    return ALS(factors=3, iterations=2, random_state=0).fit(ratings)


@pytest.mark.parametrize("params, exc, match", [
    (dict(factors=0), ValueError, "factors must be >= 1"),
    (dict(factors=2.5), TypeError, "factors must be an integer"),
    (dict(alpha=0), ValueError, "alpha must be > 0"),
    (dict(alpha=-1.0), ValueError, "alpha must be > 0"),
    (dict(alpha=np.nan), ValueError, "alpha must be finite"),
    (dict(regularization=-0.1), ValueError, "regularization must be >= 0"),
    (dict(iterations=0), ValueError, "iterations must be >= 1"),
    (dict(cg_steps=0), ValueError, "cg_steps must be >= 1"),
    (dict(solver="lu"), ValueError, "solver must be one of"),
    (dict(feedback="ratings"), ValueError, "feedback must be one of"),
    (dict(dtype=np.int32), TypeError, "dtype must be float32 or float64"),
    (dict(biases=True), ValueError, "biases=True is only available"),
    (dict(nonnegative="yes"), TypeError, "nonnegative must be a bool"),
    (dict(n_threads=0), ValueError, "n_threads must be >= 1"),
    (dict(random_state="seed"), TypeError, "random_state must be"),
    (dict(callback=3), TypeError, "callback must be callable"),
])
def test_als_bad_parameters(ratings, params, exc, match):
    with pytest.raises(exc, match=match):
        ALS(**params).fit(ratings)


def test_als_bad_matrices(ratings):
    with pytest.raises(TypeError, match="user_items must be a scipy.sparse matrix"):
        ALS().fit(ratings.toarray())
    with pytest.raises(TypeError, match="user_items must be a scipy.sparse matrix"):
        ALS().fit([[1, 0], [0, 1]])
    with pytest.raises(ValueError, match="no observed"):
        ALS().fit(sp.csr_matrix((5, 4)))
    with pytest.raises(ValueError, match="at least 1 x 1"):
        ALS().fit(sp.csr_matrix((0, 4)))
    bad = ratings.copy()
    bad.data[0] = np.nan
    for feedback in ("implicit", "explicit"):
        with pytest.raises(ValueError, match="user_items contains NaN"):
            ALS(feedback=feedback).fit(bad)
    bad.data[0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        ALS(feedback="explicit").fit(bad)
    neg = ratings.copy()
    neg.data[0] = -1
    with pytest.raises(ValueError, match="user_items contains negative values"):
        ALS().fit(neg)
    ALS(feedback="explicit", iterations=1, factors=2).fit(neg)  # negative ratings are fine when explicit
    with pytest.raises(TypeError, match="real numbers"):
        ALS().fit(sp.csr_matrix(np.array([[1 + 1j]])))


def test_als_bad_triplets():
    with pytest.raises(ValueError, match="same length"):
        ALS().fit_triplets([0, 1], [0], [1.0, 2.0])
    with pytest.raises(ValueError, match="users must be >= 0"):
        ALS().fit_triplets([-1], [0], [1.0])
    with pytest.raises(ValueError, match=r"items contains id 5 >= shape\[1\]"):
        ALS().fit_triplets([0], [5], [1.0], shape=(2, 3))
    with pytest.raises(ValueError, match="no triplets"):
        ALS().fit_triplets([], [], [])
    with pytest.raises(TypeError, match="items must be integers"):
        ALS().fit_triplets([0], [0.5], [1.0])
    with pytest.raises(ValueError, match="values contains NaN"):
        ALS().fit_triplets([0], [0], [np.nan])


def test_als_not_fitted():
    with pytest.raises(ValueError, match="not fitted"):
        ALS().recommend([0])
    with pytest.raises(ValueError, match="not fitted"):
        ALS().predict([0], [0])


def test_als_ids_out_of_range(als):
    with pytest.raises(ValueError, match=r"users contains id 20, out of range \[0, 20\)"):
        als.recommend([0, 20])
    with pytest.raises(ValueError, match="users must be >= 0"):
        als.recommend([-1])
    with pytest.raises(ValueError, match="items contains id 15"):
        als.predict([0], [15])
    with pytest.raises(ValueError, match="same length"):
        als.predict([0, 1], [0])
    with pytest.raises(ValueError, match="items contains id 99"):
        als.recommend([0], items=[1, 99])
    with pytest.raises(ValueError, match="items contains duplicate"):
        als.recommend([0], items=[1, 1])
    with pytest.raises(ValueError, match="n must be >= 1"):
        als.recommend([0], n=0)
    with pytest.raises(TypeError, match="users must be integers"):
        als.recommend([0.5])
    with pytest.raises(ValueError, match="items contains id 15"):
        als.similar_items([15])
    with pytest.raises(ValueError, match="users contains id 20"):
        als.similar_users(20)


def test_als_bad_recommend_and_fold_in(als):
    with pytest.raises(ValueError, match=r"user_items must have shape \(2, 15\)"):
        als.recommend([0, 1], user_items=sp.csr_matrix((3, 15)))
    with pytest.raises(TypeError, match="filter_seen must be a bool"):
        als.recommend([0], filter_seen="no")
    with pytest.raises(ValueError, match="user_items_row must have 15 columns"):
        als.recalculate_user(sp.csr_matrix((1, 14)))
    with pytest.raises(ValueError, match="user_items_row must have 15 entries"):
        als.recalculate_user(np.ones(3))
    with pytest.raises(ValueError, match="user_items_row contains negative"):
        als.recalculate_user(-np.ones(15))

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
    # finite but overflowing (found by tests/fuzz/fuzz_arrays.py): an error, not NaN factors
    big = np.array([[2.6, 2.3, 4.5], [4.5, 2.8, 1.6], [5.1, 1e300, 2.9], [-10.0, -10.0, -10.0]])
    for A in (big, sp.csr_matrix(big), big * 1e8):
        with pytest.raises(FloatingPointError, match="randomized_svd: the products overflowed"):
            randomized_svd(A, 1, n_iter=0, random_state=0)


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


def test_als_singular_rows_without_regularization():
    # a user with 1 rating and 3 factors, no regularisation: the exact row system is singular
    R = sp.csr_matrix(([4.0, 3.0, 5.0, 1.0], ([0, 1, 1, 1], [0, 0, 1, 2])), shape=(2, 3))
    with pytest.raises(RuntimeError, match="Cholesky factorisation failed for row 0; increase regularization"):
        ALS(factors=3, feedback="explicit", regularization=0.0, solver="cholesky", random_state=0).fit(R)
    m = ALS(factors=3, feedback="explicit", regularization=0.0, solver="cg", random_state=0).fit(R)
    assert np.isfinite(m.user_factors_).all()


def test_als_overflowing_confidence():
    R = sp.csr_matrix(np.array([[3e38, 1.0], [1.0, 0.0]], dtype=np.float32))
    with pytest.raises(ValueError, match="alpha \\* user_items overflows float32"):
        ALS(factors=2, alpha=10.0, random_state=0).fit(R)
    # float64 holds it; huge confidences make the factors blow up: a clear error, not NaN factors
    try:
        m = ALS(factors=2, alpha=10.0, random_state=0, dtype=np.float64).fit(R)
    except FloatingPointError as exc:
        assert "diverged" in str(exc)
    else:
        assert np.isfinite(m.user_factors_).all() and np.isfinite(m.item_factors_).all()


# ---------------------------------------------------------------- rankfold.text
def test_text_bad_input():
    import scipy.sparse as sp

    from rankfold import text

    with pytest.raises(ValueError, match="documents"):
        text.tfidf([])
    with pytest.raises(ValueError, match="documents"):
        text.tfidf(["ok", 3])
    X = sp.csr_matrix(np.array([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]]))
    with pytest.raises(ValueError, match="shift"):
        text.ppmi_cooccurrence(X, shift=0)
    with pytest.raises(ValueError, match="negative"):
        text.ppmi_cooccurrence(-X)
    with pytest.raises(ValueError, match="out of range"):
        text.npmi_coherence([[0, 7]], X)
    with pytest.raises(ValueError, match="at least 2 words"):
        text.npmi_coherence([[1]], X)
    with pytest.raises(ValueError, match="columns"):
        text.npmi_coherence(np.ones((2, 5)), X)
    with pytest.raises(ValueError, match="n must be"):
        text.top_words(np.ones((1, 3)), ["a", "b", "c"], n=0)


# ---------------------------------------------------------------- NMF research options
@pytest.mark.parametrize(
    "params,exc,match",
    [
        ({"graph_reg": -0.1, "graph": "knn"}, ValueError, "graph_reg"),
        ({"graph_reg": float("nan"), "graph": "knn"}, ValueError, "graph_reg"),
        ({"graph_reg": 0.1}, ValueError, "graph="),
        ({"graph_reg": 0.1, "graph": "grid"}, ValueError, "graph"),
        ({"graph_reg": 0.1, "graph": [1, 2]}, TypeError, "graph"),
        ({"graph_reg": 0.1, "graph": "knn", "solver": "anls"}, ValueError, "solver"),
        ({"graph_reg": 0.1, "graph": "knn", "graph_n_neighbors": 0}, ValueError, "graph_n_neighbors"),
        ({"graph_reg": 0.1, "graph": "knn", "graph_weights": "gauss"}, ValueError, "graph_weights"),
        ({"robust": "huber"}, ValueError, "robust"),
        ({"robust": "correntropy", "sigma": 0.0}, ValueError, "sigma"),
        ({"robust": "correntropy", "sigma": -1.0}, ValueError, "sigma"),
        ({"robust": "correntropy", "sigma": float("inf")}, ValueError, "sigma"),
        ({"robust": "correntropy", "robust_weights": "pixel"}, ValueError, "robust_weights"),
        ({"robust": "correntropy", "robust_weights": "entry", "abundance_sum_to_one": True}, ValueError, "entry"),
        ({"robust": "correntropy", "robust_weights": "entry", "graph_reg": 0.1, "graph": "knn"}, ValueError,
         "entry"),
        ({"abundance_sum_to_one": "yes"}, TypeError, "abundance_sum_to_one"),
        ({"abundance_sum_to_one": True, "alpha_W": 0.1, "l1_ratio": 1.0}, ValueError, "L1"),
        ({"abundance_sum_to_one": True, "missing_values": np.nan}, ValueError, "missing"),
    ],
)
def test_nmf_research_bad_parameters(rng, params, exc, match):
    from rankfold import NMF

    with pytest.raises(exc, match=match):
        NMF(**{"n_components": 3, "max_iter": 5, **params}).fit(_nmf_data(rng))


def test_nmf_research_bad_graph(rng):
    import scipy.sparse as sp

    from rankfold import NMF

    X = _nmf_data(rng)
    m = X.shape[0]
    for bad in (sp.random(m + 1, m + 1, density=0.2, format="csr"), np.ones((m, m - 1)), np.ones(m)):
        with pytest.raises(ValueError, match="n_samples x n_samples|2-D|graph"):
            NMF(3, graph_reg=0.1, graph=bad, max_iter=5).fit(X)
    negative = sp.csr_matrix(-np.eye(m)[::-1])
    with pytest.raises(ValueError, match="negative"):
        NMF(3, graph_reg=0.1, graph=negative, max_iter=5).fit(X)
    nan = np.zeros((m, m))
    nan[0, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        NMF(3, graph_reg=0.1, graph=nan, max_iter=5).fit(X)
    with pytest.raises(ValueError, match="dense X"):
        NMF(3, graph_reg=0.1, graph="knn", max_iter=5).fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="dense X"):
        NMF(3, robust="correntropy", robust_weights="entry", max_iter=5).fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="missing"):
        NMF(3, robust="correntropy", max_iter=5).fit(X, mask=np.ones_like(X))


def test_nmf_research_core_rejects_misuse(rng):
    from rankfold import _core

    W = np.ones((5, 2))
    empty = (np.zeros(6, np.int64), np.zeros(0, np.int64), np.zeros(0), np.zeros(5))
    with pytest.raises(ValueError, match="n_samples"):
        _core.nmf_graph_update_rows(W, np.ones((5, 2)), np.eye(2), np.zeros(4, np.int64), *empty[1:3],
                                    np.zeros(3), "hals", 0.0, 0.0, 1.0, 1, 1)
    with pytest.raises(ValueError, match="solver"):
        _core.nmf_graph_update_rows(W, np.ones((5, 2)), np.eye(2), *empty, "anls", 0.0, 0.0, 1.0, 1, 1)
    bad_indices = (np.array([0, 1, 1, 1, 1, 1], np.int64), np.array([9], np.int64), np.ones(1), np.ones(5))
    with pytest.raises(ValueError, match="out of range"):
        _core.nmf_graph_update_rows(W, np.ones((5, 2)), np.eye(2), *bad_indices, "mu", 0.0, 0.0, 1.0, 1, 1)
    with pytest.raises(ValueError, match="sigma"):
        _core.nmf_correntropy_entry_weights(np.ones((5, 3)), W, np.ones((3, 2)), 0.0, np.ones((5, 3)), 1)
    with pytest.raises(ValueError, match="scale"):
        _core.nmf_update_rows_scaled(W, np.ones((5, 2)), np.eye(2), np.ones(4), "hals", 0.0, 0.0, 1, 1)
# ---------------------------------------------------------------- NMFk
@pytest.mark.parametrize("params, exc, match", [
    ({"k_range": []}, ValueError, "k_range is empty"),
    ({"k_range": range(5, 2)}, ValueError, "k_range is empty"),
    ({"k_range": 5}, TypeError, "k_range must be an iterable"),
    ({"k_range": [2, "3"]}, TypeError, "k_range"),
    ({"k_range": [0, 2]}, ValueError, "k_range values must be >= 1"),
    ({"k_range": [2, 2.5]}, TypeError, "k_range"),
    ({"n_perturbations": 1}, ValueError, "n_perturbations must be >= 2"),
    ({"n_perturbations": 2.0}, TypeError, "n_perturbations"),
    ({"eps": -0.1}, ValueError, "eps"),
    ({"eps": float("nan")}, ValueError, "eps"),
    ({"perturbation": "gauss"}, ValueError, "perturbation"),
    ({"method": "elbow"}, ValueError, "method"),
    ({"silhouette_threshold": 1.5}, ValueError, "silhouette_threshold"),
    ({"significance": 0.0}, ValueError, "significance"),
    ({"significance": 1.0}, ValueError, "significance"),
    ({"holdout_fraction": 0.0}, ValueError, "holdout_fraction"),
    ({"holdout_fraction": 0.7}, ValueError, "holdout_fraction"),
    ({"cluster": "H"}, ValueError, "cluster"),
    ({"solver": "lbfgs"}, ValueError, "solver"),
    ({"init": "custom"}, ValueError, "custom"),
    ({"method": "cv", "init": "nndsvda"}, ValueError, "init='random'"),
    ({"max_iter": 0}, ValueError, "max_iter"),
    ({"tol": -1.0}, ValueError, "tol"),
    ({"nmf_params": {"random_state": 3}}, ValueError, "nmf_params must not set random_state"),
    ({"nmf_params": [("tol", 1)]}, TypeError, "nmf_params"),
    ({"n_threads": 0}, ValueError, "n_threads"),
    ({"random_state": "seed"}, TypeError, "random_state"),
])
def test_nmfk_bad_parameters(params, exc, match):
    X = np.random.default_rng(0).random((20, 10))
    kw = {"k_range": range(2, 4), "n_perturbations": 2, "max_iter": 20}
    kw.update(params)
    with pytest.raises(exc, match=match):
        rankfold.NMFk(**kw).fit(X)


def test_nmfk_bad_data():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = rng.random((20, 10))
    small = {"n_perturbations": 2, "max_iter": 20}
    with pytest.raises(ValueError, match="above min\\(n_samples, n_features\\) = 10"):
        rankfold.NMFk(range(2, 12), **small).fit(X)
    with pytest.raises(ValueError, match="negative"):
        rankfold.NMFk(range(2, 4), **small).fit(-X)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        rankfold.NMFk(range(2, 4), **small).fit(bad)
    with pytest.raises(ValueError, match="all zeros"):
        rankfold.NMFk(range(1, 3), **small).fit(np.zeros((5, 4)))
    with pytest.raises(ValueError, match="dense"):
        rankfold.NMFk(range(2, 4), method="cv", **small).fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match="2-D"):
        rankfold.NMFk(range(1, 3), **small).fit(X[0])
    with pytest.raises(TypeError):
        rankfold.NMFk(range(1, 3), **small).fit("X")
    model = rankfold.NMFk(range(1, 3), **small)
    with pytest.raises(rankfold.nmf.NotFittedError):
        model.transform(X)
    with pytest.raises(rankfold.nmf.NotFittedError):
        model.plot()
    model.fit(X)
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :5])
    with pytest.raises(ValueError, match="(?i)invalid parameter"):
        model.set_params(n_components=3)


# ---------------------------------------------------------------- SeNMF
def test_senmf_bad_input():
    import scipy.sparse as sp

    rng = np.random.default_rng(0)
    X = rng.random((20, 8)) * (rng.random((20, 8)) < 0.5)
    with pytest.raises(ValueError, match="n_components"):
        rankfold.SeNMF(0).fit(X)
    with pytest.raises(ValueError, match="semantic_weight"):
        rankfold.SeNMF(2, semantic_weight=-1.0).fit(X)
    with pytest.raises(ValueError, match="semantic_weight"):
        rankfold.SeNMF(2, semantic_weight=float("inf")).fit(X)
    with pytest.raises(TypeError, match="scale_cooccurrence"):
        rankfold.SeNMF(2, scale_cooccurrence="yes").fit(X)
    with pytest.raises(ValueError, match="n_words x n_words"):
        rankfold.SeNMF(2).fit(X, cooccurrence=np.ones((7, 7)))
    with pytest.raises(ValueError, match="negative"):
        rankfold.SeNMF(2).fit(X, cooccurrence=-np.ones((8, 8)))
    with pytest.raises(ValueError, match="all zeros"):
        rankfold.SeNMF(2).fit(X, cooccurrence=sp.csr_matrix((8, 8)))
    with pytest.raises(ValueError, match="negative"):
        rankfold.SeNMF(2).fit(-X)
    with pytest.raises(ValueError, match="solver"):
        rankfold.SeNMF(2, solver="cd").fit(X)
    with pytest.raises(ValueError, match="context"):
        rankfold.SeNMF(2, init="custom").fit(X, W=rng.random((20, 2)), H=rng.random((2, 8)))
    with pytest.raises(ValueError, match="context must have shape"):
        rankfold.SeNMF(2, init="custom").fit(X, W=rng.random((20, 2)), H=rng.random((2, 8)),
                                             context=rng.random((8, 3)))
    with pytest.raises(ValueError, match="W must have shape"):
        rankfold.SeNMF(2, init="custom").fit(X, W=rng.random((20, 3)), H=rng.random((2, 8)),
                                             context=rng.random((8, 2)))
    model = rankfold.SeNMF(2, max_iter=20, tol=0)
    with pytest.raises(rankfold.nmf.NotFittedError):
        model.transform(X)
    model.fit(X)
    with pytest.raises(ValueError, match="features"):
        model.transform(X[:, :4])
    with pytest.raises(ValueError, match="components"):
        model.top_words(["a", "b"])
    from rankfold.nmf import semantic_stack

    with pytest.raises(ValueError, match="semantic_weight"):
        semantic_stack(X, semantic_weight=-1)
    with pytest.raises(TypeError, match="scale_cooccurrence"):
        semantic_stack(X, scale_cooccurrence=None)
    with pytest.raises(ValueError, match="n_words x n_words"):
        semantic_stack(X, cooccurrence=np.ones((3, 3)))
# ---------------------------------------------------------------- rankfold.dask (no cluster needed)
def test_dask_bad_input():
    pytest.importorskip("distributed")
    da = pytest.importorskip("dask.array")
    import scipy.sparse as sp

    from rankfold.dask import ALS as DaskALS
    from rankfold.dask import NMF as DaskNMF

    X = np.ones((10, 4))
    with pytest.raises(TypeError, match=r"dask.array.*use rankfold.NMF"):
        DaskNMF(n_components=2).fit(X)
    with pytest.raises(TypeError, match=r"dask.array.*use rankfold.NMF"):
        DaskNMF(n_components=2).fit(sp.csr_matrix(X))
    with pytest.raises(ValueError, match=r"chunked along rows only.*rechunk"):
        DaskNMF(n_components=2).fit(da.ones((10, 4), chunks=(5, 2)))
    with pytest.raises(ValueError, match="2-D"):
        DaskNMF(n_components=2).fit(da.ones(10, chunks=5))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        Y = da.ones((10, 4), chunks=(5, 4))
        DaskNMF(n_components=2).fit(Y[Y[:, 0] > 0])
    with pytest.raises(ValueError, match="0 sample"):
        DaskNMF(n_components=2).fit(da.ones((0, 4), chunks=(5, 4)))
    with pytest.raises(ValueError, match="missing_values"):
        DaskNMF(n_components=2, missing_values=np.nan).fit(da.ones((10, 4), chunks=(5, 4)))
    with pytest.raises(TypeError, match="persist"):
        DaskNMF(n_components=2, persist="yes").fit(da.ones((10, 4), chunks=(5, 4)))
    with pytest.raises(ValueError, match="solver"):
        DaskNMF(n_components=2, solver="cd").fit(da.ones((10, 4), chunks=(5, 4)))
    with pytest.raises(TypeError, match="client"):
        DaskNMF(n_components=2, client="tcp://nowhere:1").fit(da.ones((10, 4), chunks=(5, 4)))
    with pytest.raises(TypeError, match="client"):
        DaskALS(client="tcp://nowhere:1").fit(sp.random(10, 10, density=0.3, format="csr"))
    with pytest.raises(TypeError, match="scipy.sparse matrix or a dask.array"):
        DaskALS().fit(np.ones((3, 3)))
    with pytest.raises(ValueError, match="chunked by users only"):
        DaskALS().fit(da.ones((10, 6), chunks=(5, 3)))
    with pytest.raises(ValueError, match="unknown chunk sizes"):
        Y = da.ones((10, 4), chunks=(5, 4))
        DaskALS().fit(Y[Y[:, 0] > 0])


# ---------------------------------------------------------------- NMF beta-divergence losses
def test_nmf_beta_loss_bad_input(rng):
    import scipy.sparse as sp

    from rankfold import NMF

    X = _nmf_data(rng) + 0.1
    for solver in ("hals", "anls"):  # the least-squares solvers minimise the Frobenius loss only
        with pytest.raises(ValueError, match="needs solver='mu'"):
            NMF(3, solver=solver, beta_loss="kullback-leibler").fit(X)
    with pytest.raises(ValueError, match="needs solver='mu'"):
        NMF(3, beta_loss=0.5).fit(X)  # default solver
    for loss in ("kl", "KL", "", None, True, float("nan"), float("inf"), [1.0]):
        with pytest.raises(ValueError, match="beta_loss"):
            NMF(3, solver="mu", beta_loss=loss).fit(X)
    zeros = X.copy()
    zeros[0, 0] = 0.0
    for loss in ("itakura-saito", 0, -0.5):
        with pytest.raises(ValueError, match="beta_loss <= 0"):
            NMF(3, solver="mu", beta_loss=loss, max_iter=5).fit(zeros)
        with pytest.raises(ValueError, match="beta_loss <= 0"):  # implicit zeros of a sparse X count
            NMF(3, solver="mu", beta_loss=loss, max_iter=5).fit(sp.csr_matrix(zeros))
    with pytest.raises(ValueError, match="beta_loss <= 0"):  # observed zeros count with a mask
        NMF(3, solver="mu", beta_loss="itakura-saito", max_iter=5).fit(zeros, mask=np.ones_like(zeros))
    model = NMF(3, solver="mu", beta_loss="itakura-saito", max_iter=5, tol=0.0).fit(X)
    with pytest.raises(ValueError, match="beta_loss <= 0"):
        model.transform(zeros)
    kl = NMF(3, solver="mu", beta_loss="kullback-leibler", max_iter=5, tol=0.0)
    with pytest.raises(ValueError, match="[Nn]egative"):
        kl.fit(-X)
    with pytest.raises(ValueError, match="NaN"):
        bad = X.copy()
        bad[2, 2] = np.nan
        kl.fit(bad)
    with pytest.raises(ValueError, match="infinity"):
        bad = X.copy()
        bad[2, 2] = np.inf
        kl.fit(bad)
    with pytest.raises(ValueError, match="all zeros"):
        kl.fit(np.zeros_like(X))
    with pytest.raises(ValueError, match="all zeros"):
        kl.fit(sp.csr_matrix(X.shape))
    with pytest.raises(ValueError, match="mask= needs a dense X"):
        kl.fit(sp.csr_matrix(X), mask=np.ones_like(X))
    with pytest.raises(ValueError, match="W must have shape"):
        NMF(3, solver="mu", beta_loss=1, init="custom").fit(X, W=np.ones((2, 3)), H=np.ones((3, X.shape[1])))
    kl.fit(X)
    with pytest.raises(ValueError, match="features"):
        kl.transform(X[:, :-1])
    # zeros are fine for beta > 0 (KL): a finite fit
    W = NMF(3, solver="mu", beta_loss="kullback-leibler", max_iter=20, tol=0.0).fit_transform(zeros)
    assert np.isfinite(W).all()


def test_nmf_extrapolate_must_be_auto_or_bool(rng):
    from rankfold import NMF

    for bad in (1, None, 0.5):
        with pytest.raises(TypeError, match="extrapolate"):
            NMF(3, extrapolate=bad).fit(_nmf_data(rng))
    with pytest.raises(ValueError, match="extrapolate"):
        NMF(3, extrapolate="yes").fit(_nmf_data(rng))
    with pytest.raises(ValueError, match="extrapolate"):
        NMF(3, solver="mu", extrapolate=True).fit(_nmf_data(rng))


def test_load_samson_bad_input(tmp_path):
    from rankfold.datasets import load_samson

    with pytest.raises(ValueError, match="Samson.mat"):
        load_samson(tmp_path)  # a folder without the file
    (tmp_path / "Samson.mat").write_bytes(b"not a MATLAB file")
    with pytest.raises(ValueError, match="not a readable Samson file"):
        load_samson(tmp_path)
    with pytest.raises(TypeError):
        load_samson(3.5)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_index_load_missing_file_or_directory(tmp_path, kind):
    """A missing file is a FileNotFoundError (still a ValueError, as before); a directory
    is an IsADirectoryError, not a MemoryError from reading it as a file."""
    cls = rankfold.ExactIndex if kind == "exact" else rankfold.HNSWIndex
    loads = [lambda p: cls.load(p)] + ([lambda p: cls.load(p, mmap=True)] if kind == "hnsw" else [])
    for load in loads:
        with pytest.raises(FileNotFoundError, match="cannot open index file") as info:
            load(tmp_path / "missing.rf")
        assert isinstance(info.value, ValueError)
        assert info.value.filename == str(tmp_path / "missing.rf")
        with pytest.raises(IsADirectoryError, match="directory"):
            load(tmp_path)
