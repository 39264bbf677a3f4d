"""Exact search (ExactIndex, knn) against a NumPy float64 brute-force reference."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from conftest import assert_valid_knn, brute_force, data_path

import rankfold
from rankfold import ExactIndex, knn


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n,nq,d,k", [(1, 3, 5, 1), (37, 5, 3, 7), (1500, 70, 17, 10), (3000, 600, 64, 25),
                                      (700, 13, 385, 100)])
def test_knn_matches_brute_force(metric, dtype, n, nq, d, k, rng):
    X = rng.standard_normal((n, d)).astype(dtype)
    Q = rng.standard_normal((nq, d)).astype(dtype)
    ids, dist = knn(X, Q, k=k, metric=metric)
    assert ids.dtype == np.int64 and dist.dtype == dtype
    tol = 1e-4 if dtype == np.float32 else 1e-9
    assert_valid_knn(ids, dist, brute_force(X, Q, metric), k, rtol=tol, atol=tol)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_index_matches_brute_force_with_ids(metric, rng):
    X = rng.standard_normal((2000, 24)).astype(np.float32)
    Q = rng.standard_normal((300, 24)).astype(np.float32)
    labels = rng.permutation(10**6)[:2000].astype(np.int64)
    index = ExactIndex(24, metric=metric)
    index.add(X[:1200], ids=labels[:1200]).add(X[1200:], ids=labels[1200:])
    assert len(index) == 2000
    ids, dist = index.search(Q, k=10)
    assert dist.dtype == np.float32
    rows = {lab: i for i, lab in enumerate(labels)}
    row_ids = np.vectorize(rows.get)(ids)
    assert_valid_knn(row_ids, dist, brute_force(X, Q, metric), 10)


def test_exact_results_equal_numpy_argsort_without_ties(rng):
    # Integer data: distances are exact in float32, so ranks must be identical
    # to NumPy's stable argsort (ties broken by the lower id in both).
    X = rng.integers(0, 50, (800, 16)).astype(np.float32)
    Q = rng.integers(0, 50, (40, 16)).astype(np.float32)
    ids, dist = knn(X, Q, k=12)
    D = brute_force(X, Q, "l2")
    ref = np.argsort(D, axis=1, kind="stable")[:, :12]
    np.testing.assert_array_equal(ids, ref)
    np.testing.assert_array_equal(dist, np.take_along_axis(D, ref, 1).astype(np.float32))


def test_padding_when_k_exceeds_size(rng):
    index = ExactIndex(4)
    ids, dist = index.search(rng.standard_normal((2, 4)), k=3)
    assert np.all(ids == -1) and np.all(np.isinf(dist))
    index.add(rng.standard_normal((2, 4)))
    ids, dist = index.search(rng.standard_normal((2, 4)), k=5)
    assert np.all(ids[:, 2:] == -1) and np.all(np.isinf(dist[:, 2:]))
    assert set(ids[0, :2]) == {0, 1}


def test_default_ids_continue_after_custom_ids(rng):
    index = ExactIndex(3).add(rng.standard_normal((2, 3)), ids=[10, 4])
    index.add(rng.standard_normal((2, 3)))
    np.testing.assert_array_equal(index.ids, [10, 4, 11, 12])
    assert index.contains([4, 5, 12]).tolist() == [True, False, True]


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_save_load_and_pickle_roundtrip(tmp_path, metric, rng):
    X = rng.standard_normal((500, 8)).astype(np.float32)
    Q = rng.standard_normal((20, 8)).astype(np.float32)
    index = ExactIndex(8, metric=metric).add(X, ids=np.arange(500) * 3)
    path = tmp_path / "index.rf"
    index.save(path)
    loaded = ExactIndex.load(path)
    assert loaded.dim == 8 and loaded.metric == metric and len(loaded) == 500
    for other in (loaded, pickle.loads(pickle.dumps(index))):
        a, b = index.search(Q, 5), other.search(Q, 5)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(loaded.get_vectors([3, 6]), index.get_vectors([3, 6]))


def test_thread_counts_give_identical_results(rng):
    X = rng.standard_normal((5000, 32)).astype(np.float32)
    Q = rng.standard_normal((700, 32)).astype(np.float32)
    index = ExactIndex(32).add(X)
    r1 = index.search(Q, 10, n_threads=1)
    r2 = index.search(Q, 10, n_threads=2)
    r3 = index.search(Q[:3], 10, n_threads=2)  # few queries: split over base segments
    np.testing.assert_array_equal(r1[0], r2[0])
    np.testing.assert_array_equal(r1[1], r2[1])
    np.testing.assert_array_equal(r1[0][:3], r3[0])


def test_accepts_fortran_order_and_integer_input(rng):
    X = np.asfortranarray(rng.integers(0, 9, (100, 6)))
    ids_f, _ = knn(X, X[:5], k=1)
    np.testing.assert_array_equal(ids_f[:, 0], np.arange(5))
    index = ExactIndex(6).add(X.astype(np.float16))
    assert index.search(X[:5], 1)[0][:, 0].tolist() == list(range(5))


def test_get_vectors_cosine_are_normalised(rng):
    X = rng.standard_normal((10, 5)) * 7
    index = ExactIndex(5, metric="cosine").add(X)
    np.testing.assert_allclose(np.linalg.norm(index.get_vectors(np.arange(10)), axis=1), 1, rtol=1e-6)


@pytest.mark.realdata
def test_sift5k_ground_truth():
    folder = data_path("sift5k-ngt")
    X = np.loadtxt(folder / "sift-dataset-5k.tsv", delimiter="\t", usecols=range(128), dtype=np.float32)
    Q = np.loadtxt(folder / "sift-query-3.tsv", delimiter="\t", dtype=np.float32).reshape(-1, 128)
    gt = np.loadtxt(folder / "sift-query-3_groundtruth_k100.tsv", delimiter="\t", dtype=np.int64).reshape(-1, 100)
    gt_d = np.loadtxt(folder / "sift-query-3_groundtruth_k100_dist.tsv", delimiter="\t").reshape(-1, 100)
    ids, dist = ExactIndex(128).add(X).search(Q, k=100)
    recall = np.mean([len(set(a) & set(b)) / 100 for a, b in zip(ids, gt)])
    assert recall == 1.0
    np.testing.assert_allclose(np.sqrt(dist), gt_d, rtol=1e-4)
    # Held-out base rows as extra queries, against float64 brute force.
    ids, dist = knn(X[:4500], X[4500:], k=10)
    assert_valid_knn(ids, dist, brute_force(X[:4500], X[4500:], "l2"), 10, rtol=1e-4, atol=1e-6)


@pytest.mark.realdata
def test_minilm_inner_product_ground_truth():
    folder = data_path("package-summaries-minilm")
    X = np.load(folder / "base.f16.npy")
    Q = np.load(folder / "queries.f32.npy")[:200]
    gt = np.load(folder / "gt_ids.npy")[:200]
    gt_scores = np.load(folder / "gt_scores.npy")[:200]
    ids, dist = ExactIndex(384, metric="ip").add(X).search(Q, k=10)
    recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt[:, :10])])
    assert recall >= 0.999  # float16 base: rare near-ties may swap at rank 10
    np.testing.assert_allclose(1 - dist, gt_scores[:, :10], atol=2e-5)


def test_show_config_and_cmake_dir():
    cfg = rankfold.show_config()
    assert cfg["openmp"] is True and cfg["default_threads"] >= 1
    import os

    assert os.path.exists(os.path.join(rankfold.get_cmake_dir(), "rankfoldConfig.cmake"))
    assert os.path.exists(os.path.join(rankfold.get_include(), "rankfold", "ann", "exact.hpp"))
