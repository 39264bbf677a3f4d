"""Sizes that come from the caller or from a file header never drive an
unbounded allocation.

* Search results are padded to k with (-1, inf) (as faiss does), but the
  per-query heaps and candidate lists hold at most min(k, len(index))
  entries, and a result of nq x k that cannot fit in memory raises
  MemoryError before anything is allocated (before this, k = 2**31 - 1 on a
  1,000-vector index was accepted by the kernel's overcommit and the padding
  filled 24 GB).
* ef larger than the index is harmless.
* An index file whose header asks for a huge ef_construction, M, dim, ef or
  slot count is rejected on load with ValueError.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from rankfold import ExactIndex, HNSWIndex

sys.path.insert(0, str(Path(__file__).resolve().parent / "fuzz"))

from _common import KIND_HNSW, seal, unseal  # noqa: E402

BIG_K = 2**31 - 1
# Sanitizer runtimes reserve terabytes of shadow memory: an address-space
# limit cannot be set under them.
SANITIZED = any(name in os.environ.get("LD_PRELOAD", "") for name in ("libasan", "libtsan"))

SETUP = """
import resource, sys
import numpy as np
import rankfold
rng = np.random.default_rng(0)
X = rng.standard_normal((1000, 16)).astype(np.float32)
Q = rng.standard_normal((NQ, 16)).astype(np.float32)
exact = rankfold.ExactIndex(16, n_threads=2).add(X)
hnsw = rankfold.HNSWIndex(16, M=8, ef_construction=60, random_state=0, n_threads=2).add(X)
removed = rankfold.HNSWIndex(16, M=8, ef_construction=60, random_state=0, n_threads=2).add(X)
removed.remove(np.arange(0, 1000, 10))  # searched through the removed-items path
allowed = np.arange(0, 1000, 2)
SEARCHES = {
    "exact": lambda k: exact.search(Q, k),
    "knn32": lambda k: rankfold.knn(X, Q, k, n_threads=2),
    "knn64": lambda k: rankfold.knn(X.astype(np.float64), Q.astype(np.float64), k, n_threads=2),
    "hnsw": lambda k: hnsw.search(Q, k),
    "hnsw-filter": lambda k: hnsw.search(Q, k, filter=allowed),
    "hnsw-removed": lambda k: removed.search(Q, k),
}
"""

SEARCHES = ["exact", "knn32", "knn64", "hnsw", "hnsw-filter", "hnsw-removed"]


def run(script: str) -> str:
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.mark.skipif(SANITIZED, reason="no address-space limit under a sanitizer runtime")
@pytest.mark.parametrize("search", SEARCHES)
def test_k_max_refused_before_allocating(search):
    # A 4 GB address space stands for a machine the (1, 2**31 - 1) result
    # does not fit in, whatever this machine's RAM: the search must say so
    # itself (not numpy's failed allocation, not the kernel's OOM killer).
    run(SETUP.replace("NQ", "1") + textwrap.dedent(f"""
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
        try:
            SEARCHES[{search!r}]({BIG_K})
        except MemoryError as exc:
            assert "search result" in str(exc) and "{BIG_K}" in str(exc), str(exc)
        else:
            raise AssertionError("no MemoryError")
        ids, dist = SEARCHES[{search!r}](10)  # the index still works under the limit
        assert (ids >= 0).all()
        print("ok")
        """))


@pytest.mark.parametrize("search", SEARCHES)
def test_result_larger_than_any_machine_refused(search):
    # 10,000 x (2**31 - 1) results are 258 TB: refused on any machine, at once.
    run(SETUP.replace("NQ", "10000") + textwrap.dedent(f"""
        try:
            SEARCHES[{search!r}]({BIG_K})
        except MemoryError as exc:
            assert "search result" in str(exc), str(exc)
        else:
            raise AssertionError("no MemoryError")
        print("ok")
        """))


@pytest.mark.parametrize("search", SEARCHES)
def test_large_k_pads_without_large_heaps(search):
    # k = 3,000,000 on 1,000 vectors: the padded result (8 x k ids and
    # distances, 288 MB) is all the memory the search may add; heaps or
    # partial lists sized by k would double it at least.
    run(SETUP.replace("NQ", "8") + textwrap.dedent(f"""
        k = 3_000_000
        live = {{"hnsw-filter": 500, "hnsw-removed": 900}}.get({search!r}, 1000)
        want, _ = exact.search(Q, 1000)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        ids, dist = SEARCHES[{search!r}](k)
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
        out = ids.nbytes + dist.nbytes
        assert ids.shape == dist.shape == (8, k)
        assert grown < 1.25 * out + (64 << 20), (grown, out)
        real = (ids >= 0).sum(axis=1)
        assert (real <= live).all() and (real >= 0.95 * live).all(), real
        for row, drow, n in zip(ids, dist, real):
            assert (row[n:] == -1).all() and np.isinf(drow[n:]).all()
            assert len(set(row[:n].tolist())) == n and np.all(np.diff(drow[:n]) >= 0)
        if {search!r} in ("exact", "knn32", "knn64"):
            np.testing.assert_array_equal(np.sort(ids[:, :1000], axis=1), np.sort(want, axis=1))
        print("ok")
        """))


@pytest.fixture(scope="module")
def small():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((600, 12)).astype(np.float32)
    Q = rng.standard_normal((20, 12)).astype(np.float32)
    return X, Q


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_huge_ef_is_capped_by_the_index(small, seed):
    X, Q = small
    index = HNSWIndex(12, M=8, ef_construction=60, random_state=seed).add(X)
    gt, gd = ExactIndex(12).add(X).search(Q, 10)
    ids, dist = index.search(Q, 10, ef=2**30)
    # a candidate list that holds every node: the search is exhaustive
    np.testing.assert_array_equal(ids, gt)
    index.ef = 2**30
    np.testing.assert_array_equal(index.search(Q, 10)[0], gt)
    ids, _ = index.search(Q, 10, filter=np.arange(0, 600, 3))
    assert set(ids[ids >= 0].tolist()) <= set(range(0, 600, 3))


def test_capacity_larger_than_memory_refused():
    with pytest.raises(MemoryError, match="capacity"):
        HNSWIndex(1024, capacity=2**31 - 1)
    index = HNSWIndex(1024)
    assert len(index) == 0


# ------------------------------------------------------------------ crafted files
# The HNSW payload starts with 64-bit fields: dim, metric, M, ef_construction,
# ef, slots, live, next id, entry, max level, seed, counter (ann/hnsw.hpp).
FIELD = {"dim": 0, "M": 2, "ef_construction": 3, "ef": 4, "slots": 5}


def patched(blob: bytes, field: str, value: int) -> bytes:
    kind, payload = unseal(blob)
    assert kind == KIND_HNSW
    raw = bytearray(payload)
    struct.pack_into("<q", raw, 8 * FIELD[field], value)
    return seal(kind, bytes(raw))


def from_bytes(blob: bytes) -> HNSWIndex:
    index = HNSWIndex.__new__(HNSWIndex)
    index.__setstate__({"n_threads": 1, "data": blob})
    return index


@pytest.fixture(scope="module")
def saved():
    X = np.random.default_rng(2).standard_normal((50, 8)).astype(np.float32)
    return HNSWIndex(8, M=4, ef_construction=20, random_state=0).add(X).__getstate__()["data"]


@pytest.mark.parametrize("field,value", [
    ("ef_construction", 2**31 - 1), ("ef_construction", 2**20 + 1), ("ef_construction", 2**40),
    ("M", 2**31 - 1), ("M", 1025), ("dim", 2**31 - 1), ("dim", 2**24 + 1), ("ef", 2**31 - 1),
    ("slots", 2**31 - 1), ("slots", 2**40),
])
def test_header_fields_that_size_allocations_are_bounded(saved, tmp_path, field, value):
    blob = patched(saved, field, value)
    with pytest.raises(ValueError, match="corrupted"):
        from_bytes(blob)
    path = tmp_path / "index.bin"
    path.write_bytes(blob)
    for mmap in (False, True):
        with pytest.raises(ValueError, match="corrupted"):
            HNSWIndex.load(path, mmap=mmap)


def test_largest_allowed_ef_construction_loads_and_works(saved):
    index = from_bytes(patched(saved, "ef_construction", 2**20))
    assert index.ef_construction == 2**20
    index.add(np.random.default_rng(3).standard_normal((5, 8)).astype(np.float32))
    assert len(index) == 55
    ids, _ = index.search(np.zeros((2, 8), np.float32), 5)
    assert (ids >= 0).all()


@pytest.mark.parametrize("cls", [ExactIndex, HNSWIndex])
def test_ids_near_the_int64_limit(cls):
    X = np.ones((2, 4), np.float32)
    index = cls(4)
    with pytest.raises(ValueError, match="ids"):
        index.add(X[:1], ids=[2**63 - 1])
    index.add(X[:1], ids=[2**63 - 2])
    next_id = index.next_id if cls is HNSWIndex else index._impl.next_label
    assert next_id == 2**63 - 1
    with pytest.raises(ValueError, match="ids"):
        index.add(X)  # default ids would overflow
    assert len(index) == 1 and index.contains([2**63 - 2]).all()
