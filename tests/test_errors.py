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
