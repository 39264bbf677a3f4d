"""HNSWIndex under churn: repeated removal of half of the items and re-adds into
the freed slots keep recall at the level of a fresh build; compact() drops the
freed slots without changing results; persistence after churn and compaction;
files whose removed nodes are still linked (earlier versions) load unlinked."""

from __future__ import annotations

import pickle
import struct

import numpy as np
import pytest
from test_hnsw_format import HEADER, reseal

from rankfold import ExactIndex, HNSWIndex

DIM = 24


def pool_of(seed: int, n: int, nq: int = 300, spread: float = 0.5):
    """Clustered vectors (like embeddings): a base pool and held-out queries;
    overlapping clusters (spread 1) make recall at small ef clearly below 1."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((n // 100, DIM)).astype(np.float32)
    lab = rng.integers(0, len(centers), n + nq)
    V = centers[lab] + spread * rng.standard_normal((n + nq, DIM), dtype=np.float32)
    return np.ascontiguousarray(V[:n]), np.ascontiguousarray(V[n:])


def recall(ids, gt):
    return float(np.mean([len(np.intersect1d(a, b)) / gt.shape[1] for a, b in zip(ids, gt)]))


def exact(V, ids, Q, k=10):
    return ExactIndex(DIM).add(V, ids=ids).search(Q, k)[0]


def churn(index, pool, live, next_id, rng, rounds, Q=None):
    """Rounds of removing half of the live items and adding as many new ones
    (pool rows next_id, next_id + 1, ...; the id is the pool row)."""
    removed_all = []
    for _ in range(rounds):
        gone = rng.choice(live, len(live) // 2, replace=False)
        index.remove(gone)
        removed_all.append(gone)
        live = np.setdiff1d(live, gone)
        if Q is not None:  # between remove and add: only live items come back
            ids, _ = index.search(Q, 10, ef=40)
            assert np.isin(ids, live).all()
        new = np.arange(next_id, next_id + len(gone))
        index.add(pool[new], ids=new)
        next_id += len(gone)
        live = np.concatenate([live, new])
    return live, next_id, np.concatenate(removed_all)


M, EFC, EF = 12, 100, 40
EF_CHURN = 30  # recall about 0.94 on the churn data: room to see a loss


@pytest.fixture(scope="module")
def churned():
    """Per seed: 6,000 items through 10 rounds of 50 % churn."""
    out = []
    for seed in (0, 1, 2):
        n = 6000
        pool, Q = pool_of(seed, n * 7, spread=1.0)
        rng = np.random.default_rng(seed + 10)
        index = HNSWIndex(DIM, M=M, ef_construction=EFC, random_state=seed).add(pool[:n], ids=np.arange(n))
        live, next_id, removed = churn(index, pool, np.arange(n), n, rng, rounds=10, Q=Q)
        out.append((index, pool, Q, live, removed))
    return out


def test_churn_recall_matches_a_fresh_build(churned):
    got, fresh = [], []
    for seed, (index, pool, Q, live, removed) in enumerate(churned):
        assert len(index) == 6000 and index.stats()["removed"] == 0
        gt = exact(pool[live], live, Q)
        ids, _ = index.search(Q, 10, ef=EF_CHURN)
        assert np.isin(ids, live).all() and not np.isin(ids, removed).any()
        rebuilt = HNSWIndex(DIM, M=M, ef_construction=EFC, random_state=seed).add(pool[live], ids=live)
        got.append(recall(ids, gt))
        fresh.append(recall(rebuilt.search(Q, 10, ef=EF_CHURN)[0], gt))
        assert got[-1] >= fresh[-1] - 0.02, (got, fresh)
    # Before removal repaired the graph, the churned index was 0.03 below.
    assert np.mean(got) >= np.mean(fresh) - 0.01, (got, fresh)
    # Level-0 lists stay about as full as in a fresh build.
    assert churned[0][0].stats()["mean_degree0"] >= 0.8 * rebuilt.stats()["mean_degree0"]


def test_removed_ids_never_returned_with_filters(churned):
    index, pool, Q, live, removed = churned[0]
    gone = live[::3]
    index = pickle.loads(pickle.dumps(index))
    index.remove(gone)
    alive = np.setdiff1d(live, gone)
    for kw in ({}, {"filter": np.concatenate([gone, alive[::2]])}, {"filter": np.ones(index.next_id, dtype=bool)}):
        ids, dist = index.search(Q, 10, ef=EF, **kw)
        assert np.isin(ids, alive).all() and np.isfinite(dist).all()
    gt = exact(pool[alive], alive, Q)
    assert recall(index.search(Q, 10, ef=EF)[0], gt) >= 0.9


def test_compact_keeps_ids_vectors_and_results(churned):
    index, pool, Q, live, _ = churned[1]
    index = pickle.loads(pickle.dumps(index))
    gone = np.random.default_rng(5).choice(live, 2500, replace=False)
    index.remove(gone)
    alive = np.setdiff1d(live, gone)
    before = index.stats()
    ids_before = index.search(Q, 10, ef=EF)
    filt = alive[::4]
    filtered_before = index.search(Q, 10, ef=EF, filter=filt)
    index.compact()
    after = index.stats()
    assert after["size"] == len(alive) == after["slots"] and after["removed"] == 0
    assert after["capacity"] < before["capacity"]
    assert after["memory_bytes"] < 0.75 * before["memory_bytes"]
    np.testing.assert_array_equal(np.sort(index.ids), alive)
    np.testing.assert_array_equal(index.get_vectors(alive), pool[alive])
    # The graph is the same, renumbered: searches give the same answers.
    for a, b in ((ids_before, index.search(Q, 10, ef=EF)), (filtered_before, index.search(Q, 10, ef=EF, filter=filt))):
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
    # It keeps working: more churn, then compaction of a compacted index.
    rng = np.random.default_rng(6)
    live2, _, removed2 = churn(index, pool, alive, 6000 * 6, rng, rounds=2)
    index.compact().compact()
    ids, _ = index.search(Q, 10, ef=EF)
    assert not np.isin(ids, removed2).any()
    assert recall(ids, exact(pool[live2], live2, Q)) >= 0.9


def test_save_load_after_churn_and_after_compact(tmp_path, churned):
    index, pool, Q, live, _ = churned[2]
    index = pickle.loads(pickle.dumps(index))
    index.remove(live[:1000])
    for step in ("churned", "compacted"):
        if step == "compacted":
            index.compact()
        path = tmp_path / f"{step}.rfh"
        index.save(path)
        other = HNSWIndex.load(path)
        assert len(other) == len(index) and other.stats()["removed"] == index.stats()["removed"]
        a, b = index.search(Q, 10, ef=EF), other.search(Q, 10, ef=EF)
        np.testing.assert_array_equal(a[0], b[0])
        np.testing.assert_array_equal(a[1], b[1])
        assert path.read_bytes() == pickle_bytes(other)  # saving again gives the same file
        new = np.arange(6000 * 6, 6000 * 6 + 500)
        other.add(pool[new], ids=new)
        assert other.stats()["slots"] == index.stats()["slots"] + (500 if step == "compacted" else 0)
        ids, _ = other.search(pool[new[:50]], 1, ef=EF)
        assert np.mean(ids[:, 0] == new[:50]) >= 0.95


def pickle_bytes(index):
    return index.__getstate__()["data"]


def test_remove_everything_then_add_save_and_load(tmp_path):
    pool, Q = pool_of(3, 3000)
    index = HNSWIndex(DIM, M=8, ef_construction=60, random_state=0).add(pool[:1000])
    index.remove(np.arange(1000))
    assert len(index) == 0 and index.stats()["max_level"] == -1
    path = tmp_path / "empty.rfh"
    index.save(path)
    for other in (index, HNSWIndex.load(path)):
        assert np.all(other.search(Q, 5)[0] == -1)
        other.add(pool[1000:2000], ids=np.arange(1000, 2000))
        assert other.stats()["slots"] == 1000  # the freed slots, the entry point's too
        gt = exact(pool[1000:2000], np.arange(1000, 2000), Q)
        assert recall(other.search(Q, 10, ef=EF)[0], gt) >= 0.95
    empty = HNSWIndex(DIM).add(pool[:10]).remove(np.arange(10)).compact()
    assert empty.stats()["slots"] == 0 and len(empty) == 0
    empty.add(pool[:20])
    assert (empty.search(pool[:20], 1)[0][:, 0] == np.arange(10, 30)).all()


def test_one_at_a_time_removal_and_entry_point_replacement():
    pool, Q = pool_of(4, 1500)
    index = HNSWIndex(DIM, M=8, ef_construction=60, random_state=0).add(pool[:1000])
    levels_before = index.stats()["max_level"]
    order = np.random.default_rng(0).permutation(1000)
    for i in order[:400]:
        index.remove([i])
    # remove the top-level nodes too (the entry point among them) by removing
    # everything but 100 items
    index.remove(order[400:900])
    alive = np.sort(order[900:])
    st = index.stats()
    assert st["size"] == 100 and st["max_level"] <= levels_before
    assert sum(st["nodes_per_level"][-1:]) >= 1
    ids, _ = index.search(Q, 10, ef=100)
    assert np.isin(ids, alive).all()
    # Above the exact-scan switch again: the graph itself must hold.
    index.add(pool[1000:1500], ids=np.arange(1000, 1500))
    live = np.concatenate([alive, np.arange(1000, 1500)])
    gt = exact(pool[live], live, Q)
    assert recall(index.search(Q, 10, ef=EF)[0], gt) >= 0.95


def test_files_with_linked_removed_nodes_load_unlinked():
    """Earlier versions kept removed nodes in the graph (and could keep a
    removed entry point). Such a file is made here from a current one by
    flagging nodes removed behind the graph's back."""
    pool, Q = pool_of(5, 3000)
    index = HNSWIndex(DIM, M=8, ef_construction=60, random_state=0, n_threads=1).add(pool)
    raw = bytearray(pickle_bytes(index))
    ns = struct.unpack_from("<q", raw, HEADER + 5 * 8)[0]
    entry = struct.unpack_from("<q", raw, HEADER + 8 * 8)[0]
    flagged = np.union1d(np.random.default_rng(1).choice(ns, 1200, replace=False), [entry])
    deleted_at = HEADER + 12 * 8 + 8 * ns + ns
    for s in flagged:
        raw[deleted_at + s] = 1
    struct.pack_into("<q", raw, HEADER + 6 * 8, ns - len(flagged))
    old = HNSWIndex.__new__(HNSWIndex)
    old.__setstate__({"n_threads": None, "data": reseal(raw)})
    labels = np.arange(3000)  # slot == id in a single-threaded build without removals
    alive = np.setdiff1d(labels, flagged)
    assert len(old) == len(alive) and old.stats()["removed"] == len(flagged)
    gt = exact(pool[alive], alive, Q)
    ids, _ = old.search(Q, 10, ef=EF)
    assert np.isin(ids, alive).all() and recall(ids, gt) >= 0.95
    # Every freed slot is reused, the old entry point's too.
    new = np.arange(3000, 3000 + len(flagged))
    old.add(pool_of(6, len(flagged))[0], ids=new)
    assert old.stats()["slots"] == 3000 and old.stats()["removed"] == 0
