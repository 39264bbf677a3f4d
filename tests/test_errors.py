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
