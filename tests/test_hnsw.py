"""HNSWIndex: recall against exact ground truth (ExactIndex / brute force),
filters, removal, persistence, thread safety."""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
from conftest import brute_force, data_path

import rankfold
from rankfold import ExactIndex, HNSWIndex


def clustered(rng, n, d, n_clusters=20, nq=200):
    centers = rng.standard_normal((n_clusters, d)).astype(np.float32) * 3
    X = centers[rng.integers(0, n_clusters, n)] + rng.standard_normal((n, d)).astype(np.float32)
    Q = centers[rng.integers(0, n_clusters, nq)] + rng.standard_normal((nq, d)).astype(np.float32)
    return X.astype(np.float32), Q.astype(np.float32)


def recall(ids, gt):
    k = gt.shape[1]
    return float(np.mean([len(set(a[:k]) & set(b)) / k for a, b in zip(ids, gt)]))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(7)
    return clustered(rng, 4000, 24)


@pytest.fixture(scope="module")
def l2_index(data):
    X, _ = data
    return HNSWIndex(24, M=12, ef_construction=100, random_state=1).add(X)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_recall_against_exact(metric, data):
    X, Q = data
    index = HNSWIndex(24, metric=metric, M=12, ef_construction=100, random_state=0).add(X)
    gt, _ = ExactIndex(24, metric=metric).add(X).search(Q, 10)
    ids, dist = index.search(Q, k=10, ef=100)
    assert ids.dtype == np.int64 and dist.dtype == np.float32 and ids.shape == (len(Q), 10)
    assert recall(ids, gt) >= 0.98
    # Reported distances are the exact distances of the reported ids, sorted.
    D = brute_force(X, Q, metric)
    np.testing.assert_allclose(dist, np.take_along_axis(D, ids, 1), rtol=1e-4, atol=1e-4)
    assert np.all(np.diff(dist, axis=1) >= 0)
    # More ef, more recall; small ef still returns valid, distinct ids.
    low = recall(index.search(Q, k=10, ef=10)[0], gt)
    assert low <= recall(index.search(Q, k=10, ef=200)[0], gt) + 1e-9
    ids10, _ = index.search(Q, k=10, ef=10)
    assert all(len(set(r)) == 10 for r in ids10)


def test_graph_statistics(l2_index):
    st = l2_index.stats()
    assert st["size"] == 4000 and st["removed"] == 0
    assert st["nodes_per_level"][0] == 4000 and st["max_level"] == len(st["nodes_per_level"]) - 1
    # Level sizes shrink geometrically (about 1/M per level).
    assert 4000 / 12 * 0.6 < st["nodes_per_level"][1] < 4000 / 12 * 1.5
    assert 4 <= st["mean_degree0"] <= 24
    # Vector (96 bytes) + level-0 list (4 + 24 * 4) in 64-byte blocks, plus side arrays.
    assert 192 <= st["bytes_per_vector"] <= 400
    assert st["memory_bytes"] >= 4000 * 192


def test_inner_product_on_factors_of_varied_norms(rng):
    # Maximum inner product search over recommendation-like factors whose
    # norms vary (popular items have larger factors).
    items = rng.standard_normal((3000, 16)).astype(np.float32) * rng.gamma(2.0, 0.5, (3000, 1)).astype(np.float32)
    users = rng.standard_normal((100, 16)).astype(np.float32)
    index = HNSWIndex(16, metric="ip", random_state=0).add(items)
    ids, dist = index.search(users, k=10, ef=200)
    top = np.argsort(-(users @ items.T), axis=1, kind="stable")[:, :10]
    assert recall(ids, top) >= 0.95
    np.testing.assert_allclose(1 - dist, np.take_along_axis(users @ items.T, ids, 1), atol=1e-4)


def test_padding_and_small_indexes(rng):
    index = HNSWIndex(5)
    ids, dist = index.search(rng.standard_normal((2, 5)), k=3)
    assert np.all(ids == -1) and np.all(np.isinf(dist))
    X = rng.standard_normal((4, 5)).astype(np.float32)
    index.add(X, ids=[7, 3, 9, 1])
    ids, dist = index.search(X, k=6)
    assert np.all(ids[:, 4:] == -1) and np.all(np.isinf(dist[:, 4:]))
    assert ids[:, 0].tolist() == [7, 3, 9, 1]  # each vector finds itself first
    assert set(ids[0, :4]) == {7, 3, 9, 1}
    assert np.all(np.isfinite(dist[:, :4]))


def test_ids_ef_and_default_ef(data):
    X, Q = data
    index = HNSWIndex(24, M=8, ef_construction=50, random_state=3)
    assert index.ef == 50
    index.add(X[:100], ids=np.arange(100) * 5 + 2)
    index.add(X[100:200])  # continues after the largest id
    assert index.next_id == 598  # ids 2, 7, ..., 497, then 498, ..., 597
    assert len(index) == 200 and index.contains([2, 7, 3, 497, 498, 597, 598]).tolist() == [
        True, True, False, True, True, True, False]
    np.testing.assert_array_equal(index.get_vectors([7, 498]), X[[1, 100]])
    index.ef = 7
    assert index.ef == 7
    # k above the stored ef still returns k results (effective ef = max(ef, k)).
    ids, _ = index.search(Q[:5], k=20)
    assert np.all(ids >= 0)


def test_cosine_vectors_are_normalised(rng):
    X = rng.standard_normal((50, 6)) * 9
    index = HNSWIndex(6, metric="cosine").add(X)
    np.testing.assert_allclose(np.linalg.norm(index.get_vectors(np.arange(50)), axis=1), 1, rtol=1e-6)
    ids, dist = index.search(X[:5] * 3, k=1)
    assert ids[:, 0].tolist() == list(range(5))
    np.testing.assert_allclose(dist[:, 0], 0, atol=1e-5)


def test_float64_and_fortran_input(data):
    X, Q = data
    index = HNSWIndex(24, random_state=0).add(np.asfortranarray(X[:500].astype(np.float64)))
    a = index.search(Q[:20].astype(np.float64), 5)
    b = index.search(Q[:20], 5)
    np.testing.assert_array_equal(a[0], b[0])


def test_single_thread_build_is_deterministic(data):
    X, Q = data
    a = HNSWIndex(24, M=8, random_state=11).add(X[:1500], n_threads=1)
    b = HNSWIndex(24, M=8, random_state=11).add(X[:1500], n_threads=1)
    assert pickle.dumps(a) == pickle.dumps(b)
    r1 = a.search(Q, 10, n_threads=1)
    r2 = a.search(Q, 10, n_threads=2)  # search never depends on the thread count
    np.testing.assert_array_equal(r1[0], r2[0])
    np.testing.assert_array_equal(r1[1], r2[1])


def test_parallel_build_recall(data):
    X, Q = data
    index = HNSWIndex(24, M=12, ef_construction=100, random_state=0)
    for part in np.array_split(np.arange(len(X)), 3):  # several batches, each parallel
        index.add(X[part], n_threads=2)
    gt, _ = ExactIndex(24).add(X).search(Q, 10)
    assert recall(index.search(Q, 10, ef=100)[0], gt) >= 0.98


# ------------------------------------------------------------------ filters
@pytest.mark.parametrize("fraction", [0.8, 0.5, 0.05, 0.01])
def test_filtered_search_matches_brute_force_over_allowed(l2_index, data, fraction, rng):
    X, Q = data
    allowed = np.sort(rng.choice(len(X), int(fraction * len(X)), replace=False))
    ef = 30
    # The documented switch: graph search above sqrt(30 ef n) allowed items
    # (1897 here), exact scan below.
    graph = len(allowed) >= l2_index.exact_scan_threshold(ef)
    assert l2_index.exact_scan_threshold(ef) == pytest.approx(np.sqrt(30 * ef * len(X)))
    assert graph == (fraction >= 0.5)
    ids, dist = l2_index.search(Q, k=10, ef=ef, filter=allowed)
    sub_gt, sub_d = ExactIndex(24).add(X[allowed], ids=allowed).search(Q, 10)
    assert np.isin(ids[ids >= 0], allowed).all()
    assert (ids >= 0).all()
    np.testing.assert_allclose(dist, brute_force(X, Q, "l2")[np.arange(len(Q))[:, None], ids], rtol=1e-4, atol=1e-4)
    if graph:
        assert recall(ids, sub_gt) >= 0.95
    else:
        np.testing.assert_array_equal(ids, sub_gt)
        np.testing.assert_allclose(dist, sub_d, rtol=1e-5)
    mask = np.zeros(len(X), dtype=bool)
    mask[allowed] = True
    ids_m, dist_m = l2_index.search(Q, k=10, ef=ef, filter=mask)
    np.testing.assert_array_equal(ids_m, ids)
    np.testing.assert_array_equal(dist_m, dist)


def test_filter_edge_cases(l2_index, data):
    X, Q = data
    ids, dist = l2_index.search(Q[:3], k=5, filter=[17, 5, 10**9])  # unknown ids are ignored
    assert np.all(np.sort(ids[:, :2], axis=1) == [5, 17]) and np.all(ids[:, 2:] == -1)
    assert np.all(np.isinf(dist[:, 2:]))
    ids, _ = l2_index.search(Q[:3], k=5, filter=np.array([], dtype=np.int64))
    assert np.all(ids == -1)
    ids, _ = l2_index.search(Q[:3], k=5, filter=np.ones(len(X) + 10, dtype=bool))
    np.testing.assert_array_equal(ids, l2_index.search(Q[:3], k=5)[0])


# ------------------------------------------------------------------ removal
def test_remove_and_slot_reuse(data, rng):
    X, Q = data
    index = HNSWIndex(24, M=12, ef_construction=100, random_state=5).add(X)
    removed = rng.choice(len(X), 1500, replace=False)
    index.remove(removed)
    assert len(index) == len(X) - 1500
    assert not index.contains(removed).any()
    keep = np.setdiff1d(np.arange(len(X)), removed)
    gt, _ = ExactIndex(24).add(X[keep], ids=keep).search(Q, 10)
    # ef=30: 2500 live items are above the exact-scan switch (sqrt(30 ef n) = 1500),
    # so this walks the graph through the tombstones.
    for ef in (30, 100):
        ids, _ = index.search(Q, k=10, ef=ef)
        assert not np.isin(ids, removed).any() and (ids >= 0).all()
        assert recall(ids, gt) >= 0.95
    slots = index.stats()["slots"]
    # New items go into the removed slots; a removed id may come back.
    new = clustered(np.random.default_rng(99), 1000, 24)[0]
    new_ids = np.concatenate([removed[:10], 10_000 + np.arange(990)])
    index.add(new, ids=new_ids)
    assert index.stats()["slots"] == slots and len(index) == len(X) - 500
    np.testing.assert_array_equal(index.get_vectors(removed[:10]), new[:10])
    ids, dist = index.search(new[:50], k=1, ef=100)
    found = ids[:, 0] == new_ids[:50]
    assert found.mean() >= 0.96
    np.testing.assert_allclose(dist[found, 0], 0, atol=1e-4)
    all_ids = np.concatenate([keep, new_ids])
    all_X = np.concatenate([X[keep], new])
    gt, _ = ExactIndex(24).add(all_X, ids=all_ids).search(Q, 10)
    ids, _ = index.search(Q, k=10, ef=40)
    assert not np.isin(ids, removed[10:]).any()
    assert recall(ids, gt) >= 0.95


def test_remove_everything_then_search_and_add(rng):
    X = rng.standard_normal((300, 8)).astype(np.float32)
    index = HNSWIndex(8, random_state=0).add(X)
    index.remove(np.arange(300))
    assert len(index) == 0
    ids, dist = index.search(X[:3], k=4)
    assert np.all(ids == -1) and np.all(np.isinf(dist))
    index.add(X[:100] + 1)
    ids, _ = index.search(X[:100] + 1, k=1)
    assert np.mean(ids[:, 0] == np.arange(300, 400)) >= 0.97
    assert len(index) == 100


# ------------------------------------------------------------------ persistence
def test_save_load_pickle_roundtrip(tmp_path, data, rng):
    X, Q = data
    index = HNSWIndex(24, metric="ip", M=8, ef_construction=60, random_state=0).add(X[:2000], ids=np.arange(2000) * 3)
    index.remove([0, 3, 3000])
    index.ef = 77
    path = tmp_path / "index.rfh"
    index.save(path)
    for other in (HNSWIndex.load(path), HNSWIndex.load(path, mmap=True), pickle.loads(pickle.dumps(index))):
        assert other.dim == 24 and other.metric == "ip" and other.M == 8 and other.ef == 77
        assert len(other) == len(index) == 1997 and other.next_id == index.next_id
        for kw in ({}, {"filter": np.arange(0, 6000, 7)}):
            a, b = index.search(Q, 10, **kw), other.search(Q, 10, **kw)
            np.testing.assert_array_equal(a[0], b[0])
            np.testing.assert_array_equal(a[1], b[1])
        np.testing.assert_array_equal(other.get_vectors([6, 9]), index.get_vectors([6, 9]))
        other.add(X[2000:2100])  # a loaded index keeps growing and reuses slots
        assert len(other) == 2097 and other.stats()["slots"] in (2097, 2098)  # 2098 if the entry was removed


def test_corrupt_truncated_and_foreign_files(tmp_path, data):
    X, _ = data
    index = HNSWIndex(24, M=8, ef_construction=40, random_state=0).add(X[:300])
    path = tmp_path / "good.rfh"
    index.save(path)
    raw = path.read_bytes()
    cases = {
        "truncated": raw[: len(raw) // 2],
        "flipped": raw[:500] + bytes([raw[500] ^ 0x10]) + raw[501:],
        "empty": b"",
        "garbage": bytes(range(256)) * 4,
        "newer": raw[:8] + (99).to_bytes(4, "little") + raw[12:],
        "trailing": raw + b"\0",
    }
    ExactIndex(24).add(X[:10]).save(tmp_path / "exact.rf")
    cases["exact"] = (tmp_path / "exact.rf").read_bytes()
    for name, content in cases.items():
        bad = tmp_path / f"{name}.rfh"
        bad.write_bytes(content)
        for mmap in (False, True):
            with pytest.raises(ValueError):
                HNSWIndex.load(bad, mmap=mmap)
    with pytest.raises(ValueError, match="different index type"):
        HNSWIndex.load(tmp_path / "exact.rfh")
    with pytest.raises(ValueError, match="checksum"):
        HNSWIndex.load(tmp_path / "flipped.rfh")
    with pytest.raises(ValueError, match="cannot open"):
        HNSWIndex.load(tmp_path / "missing.rfh")
    with pytest.raises(ValueError):
        ExactIndex.load(path)


# ------------------------------------------------------------------ threads
def test_concurrent_searches_and_adds(data):
    X, Q = data
    index = HNSWIndex(24, M=8, ef_construction=60, random_state=0).add(X[:2000])
    expected = index.search(Q, 10, n_threads=1)
    errors = []
    results = []

    def searcher():
        try:
            for _ in range(5):
                results.append(index.search(Q, 10, n_threads=1))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=searcher) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for ids, dist in results:
        np.testing.assert_array_equal(ids, expected[0])

    # Adds concurrent with searches: serialised by the index, never corrupt.
    def adder():
        try:
            for part in np.array_split(np.arange(2000, 4000), 4):
                index.add(X[part], n_threads=1)
        except Exception as exc:  # pragma: no cover
            errors.append(exc)

    results.clear()
    threads = [threading.Thread(target=adder)] + [threading.Thread(target=searcher) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(index) == 4000
    for ids, dist in results:
        assert ids.min() >= 0 and ids.max() < 4000 and np.all(np.diff(dist, axis=1) >= 0)
    gt, _ = ExactIndex(24).add(X).search(Q, 10)
    assert recall(index.search(Q, 10, ef=100)[0], gt) >= 0.97


def test_exported():
    assert rankfold.HNSWIndex is HNSWIndex
    assert "HNSWIndex" in rankfold.__all__


# ------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_sift5k_recall():
    folder = data_path("sift5k-ngt")
    X = np.loadtxt(folder / "sift-dataset-5k.tsv", delimiter="\t", usecols=range(128), dtype=np.float32)
    Q = np.loadtxt(folder / "sift-query-3.tsv", delimiter="\t", dtype=np.float32).reshape(-1, 128)
    gt = np.loadtxt(folder / "sift-query-3_groundtruth_k100.tsv", delimiter="\t", dtype=np.int64).reshape(-1, 100)
    index = HNSWIndex(128, M=16, ef_construction=200, random_state=0).add(X)
    ids, _ = index.search(Q, k=10, ef=100)
    assert recall(ids, gt[:, :10]) == 1.0
    # Held-out rows as 500 more queries, ground truth from ExactIndex (one
    # build thread: the graph, hence the figure, is then fixed by the seed).
    base = HNSWIndex(128, M=16, ef_construction=200, random_state=0).add(X[:4500], n_threads=1)
    gt, _ = ExactIndex(128).add(X[:4500]).search(X[4500:], 10)
    assert recall(base.search(X[4500:], 10, ef=100)[0], gt) >= 0.99


@pytest.mark.realdata
def test_minilm_inner_product_recall():
    folder = data_path("package-summaries-minilm")
    X = np.load(folder / "base.f16.npy", mmap_mode="r")[:20000].astype(np.float32)
    Q = np.load(folder / "queries.f32.npy")[:300]
    index = HNSWIndex(384, metric="ip", M=16, ef_construction=100, random_state=0).add(X, n_threads=1)
    gt, _ = ExactIndex(384, metric="ip").add(X).search(Q, 10)
    assert recall(index.search(Q, 10, ef=150)[0], gt) >= 0.99
    assert recall(index.search(Q, 10, ef=50)[0], gt) >= 0.95
