"""One index, many Python threads: searches (with and without filters),
reads (ids, contains, get_vectors, stats, len), snapshots (pickle, save) and
writers (add, remove) running at the same time for a few seconds each.

Every index takes one reader-writer lock per call, so each answer must be one
the index gave at some moment: returned ids lie inside the filter, belong to
ids that were added at some point, and carry the distance of their (only)
vector; a snapshot is a consistent index (its length matches its ids and
counts whole add calls); two writers' adds all land. Each case runs in a
subprocess so that a crash (the failure mode before the lock discipline: a
filter built under one lock and used under another, an ExactIndex without
any lock) fails the test instead of killing pytest. The runs are bounded by
wall time, not by assertions on it.

tools/sanitize.sh runs this file under ThreadSanitizer (the subprocesses
inherit the sanitizer runtime and report to files).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

SECONDS = 3.0

PRELUDE = f"""
import os, pickle, sys, tempfile, threading, time
import numpy as np
import rankfold

SECONDS = {SECONDS}
DIM = 16
"""

HELPERS = """
X_POOL = np.random.default_rng(0).standard_normal((POOL, DIM)).astype(np.float32)


def run_for(workers):
    '''Each worker() runs in a loop in its own thread until the deadline;
    returns the number of calls per worker and re-raises the first error.'''
    deadline = time.monotonic() + SECONDS
    errors, counts = [], [0] * len(workers)
    start = threading.Barrier(len(workers))

    def target(i, fn):
        try:
            start.wait()
            while time.monotonic() < deadline:
                fn()
                counts[i] += 1
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i, fn)) for i, fn in enumerate(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    assert all(c > 0 for c in counts), counts
    return counts


def check_rows(ids, dist, Q, allowed=None):
    '''Real results first, then (-1, inf) padding; unique ids of the pool
    (inside `allowed` when given), each at the distance of its vector.'''
    assert ids.shape == dist.shape and ids.shape[0] == Q.shape[0]
    for q, row, drow in zip(Q, ids, dist):
        n = int((row >= 0).sum())
        assert (row[:n] >= 0).all() and (row[n:] == -1).all() and np.isinf(drow[n:]).all(), row
        real = row[:n]
        assert len(set(real.tolist())) == n, row
        assert (real < POOL).all(), row
        if allowed is not None:
            outside = set(real.tolist()) - allowed
            assert not outside, f"ids outside the filter: {sorted(outside)[:5]}"
        want = ((X_POOL[real] - q) ** 2).sum(axis=1)
        np.testing.assert_allclose(drow[:n], want, rtol=1e-3, atol=1e-3)
        assert (np.diff(drow[:n]) >= 0).all(), drow
"""

CASES = {
    # Filtered (ids and masks) and plain searches while one thread removes and
    # re-adds items, so that slots are reused under the searches' feet.
    "hnsw-filtered-search-while-add-remove": """
POOL = 6000
STABLE = 500  # never removed: get_vectors and contains must find them
""" + HELPERS + """
index = rankfold.HNSWIndex(DIM, M=8, ef_construction=40, random_state=0)
index.add(X_POOL[:2000], ids=np.arange(2000), n_threads=2)
live = set(range(2000))  # the writer's own view
wrng = np.random.default_rng(1)


def writer():
    removable = np.array(sorted(live - set(range(STABLE))))
    gone = wrng.choice(removable, size=min(150, removable.size), replace=False)
    index.remove(gone)
    live.difference_update(gone.tolist())
    free = np.array(sorted(set(range(POOL)) - live))
    new = wrng.choice(free, size=min(200, free.size), replace=False)
    index.add(X_POOL[new], ids=new, n_threads=2)
    live.update(new.tolist())


def searcher(seed, kind):
    rng = np.random.default_rng(seed)

    def step():
        Q = rng.standard_normal((8, DIM)).astype(np.float32)
        threads = int(rng.integers(1, 3))
        if kind == "ids":
            # from below to above the exact-scan threshold: both search paths
            allowed = rng.choice(POOL, size=int(rng.integers(20, 4000)), replace=False)
            ids, dist = index.search(Q, 10, filter=allowed, n_threads=threads)
            check_rows(ids, dist, Q, set(allowed.tolist()))
        elif kind == "mask":
            mask = rng.random(POOL) < rng.uniform(0.005, 0.9)
            ids, dist = index.search(Q, 10, filter=mask, n_threads=threads)
            check_rows(ids, dist, Q, set(np.flatnonzero(mask).tolist()))
        else:
            ids, dist = index.search(Q, 10, ef=int(rng.integers(10, 80)), n_threads=threads)
            check_rows(ids, dist, Q)
    return step


def reader():
    ids = index.ids
    assert ids.size == len(set(ids.tolist())) and (ids < POOL).all()
    assert index.contains(np.arange(STABLE)).all()
    np.testing.assert_array_equal(index.get_vectors(np.arange(0, STABLE, 7)), X_POOL[0:STABLE:7])
    assert index.stats()["size"] >= STABLE and len(index) >= STABLE


counts = run_for([writer, searcher(2, "ids"), searcher(3, "mask"), searcher(4, "plain"), reader])
assert len(index) == len(live) and set(index.ids.tolist()) == live
print("ok", counts)
""",
    # ExactIndex: searches and reads while one thread keeps adding.
    "exact-search-while-add": """
POOL = 100000
""" + HELPERS + """
index = rankfold.ExactIndex(DIM)
index.add(X_POOL[:1000], ids=np.arange(1000))
added = [1000]


def writer():
    lo = added[0]
    if lo >= POOL:
        time.sleep(0.001)
        return
    hi = min(POOL, lo + 500)
    index.add(X_POOL[lo:hi], ids=np.arange(lo, hi))
    added[0] = hi


def searcher(seed):
    rng = np.random.default_rng(seed)

    def step():
        Q = rng.standard_normal((int(rng.integers(1, 40)), DIM)).astype(np.float32)
        ids, dist = index.search(Q, 10, n_threads=int(rng.integers(1, 3)))
        check_rows(ids, dist, Q)
    return step


def reader():
    ids = index.ids
    assert ids.size == len(set(ids.tolist()))
    np.testing.assert_array_equal(ids, np.arange(ids.size))
    assert index.contains(np.arange(1000)).all()
    np.testing.assert_array_equal(index.get_vectors(np.arange(0, 1000, 9)), X_POOL[0:1000:9])
    assert len(index) >= 1000


counts = run_for([writer, searcher(2), searcher(3), reader])
assert len(index) == added[0]
print("ok", counts)
""",
    # Two writers at once (disjoint ids) and a searcher: every add lands.
    "two-writers": """
POOL = 1
""" + HELPERS + """
index = KIND
per_call = 100
done = {0: 0, 1: 0}


def writer(w):
    rng = np.random.default_rng(10 + w)

    def step():
        start = w * 10**9 + done[w]
        index.add(rng.standard_normal((per_call, DIM)).astype(np.float32),
                  ids=np.arange(start, start + per_call))
        done[w] += per_call
    return step


def searcher():
    Q = np.random.default_rng(5).standard_normal((4, DIM)).astype(np.float32)
    ids, dist = index.search(Q, 5)
    assert ((ids >= -1) & (ids < 2 * 10**9)).all()


counts = run_for([writer(0), writer(1), searcher])
want = np.concatenate([w * 10**9 + np.arange(done[w]) for w in (0, 1)])
got = index.ids
assert len(index) == want.size == got.size, (len(index), want.size, got.size)
np.testing.assert_array_equal(np.sort(got), np.sort(want))
assert index.contains(want).all()
print("ok", counts)
""",
    # Pickling and saving while another thread adds: each snapshot is one
    # state the index had between two add calls.
    "snapshot-while-add": """
POOL = 1
""" + HELPERS + """
index = KIND
rng = np.random.default_rng(0)
index.add(rng.standard_normal((1000, DIM)).astype(np.float32))
per_call = 250
Q = rng.standard_normal((3, DIM)).astype(np.float32)
folder = tempfile.mkdtemp()


def writer():
    index.add(np.random.default_rng(len(index)).standard_normal((per_call, DIM)).astype(np.float32))


def check_snapshot(again):
    n = len(again)
    ids = again.ids
    assert ids.size == n and (n - 1000) % per_call == 0, (ids.size, n)
    np.testing.assert_array_equal(np.sort(ids), np.arange(n))
    found, _ = again.search(Q, 5)
    assert set(found[found >= 0].tolist()) <= set(ids.tolist())


def pickler():
    check_snapshot(pickle.loads(pickle.dumps(index)))


def saver():
    path = os.path.join(folder, "index.bin")
    index.save(path)
    check_snapshot(type(index).load(path))


counts = run_for([writer, pickler, saver])
print("ok", counts)
""",
}

INDEXES = {
    "hnsw": "rankfold.HNSWIndex(DIM, M=8, ef_construction=40, random_state=0, n_threads=2)",
    "exact": "rankfold.ExactIndex(DIM, n_threads=2)",
}


def run_case(script: str) -> None:
    # TSan builds run far slower; the run itself is bounded by SECONDS.
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0 and "ok" in proc.stdout, (proc.returncode, proc.stdout[-2000:], proc.stderr[-4000:])


@pytest.mark.parametrize("case", ["hnsw-filtered-search-while-add-remove", "exact-search-while-add"])
def test_searches_while_writing(case):
    run_case(PRELUDE + textwrap.dedent(CASES[case]))


@pytest.mark.parametrize("kind", list(INDEXES))
@pytest.mark.parametrize("case", ["two-writers", "snapshot-while-add"])
def test_writers_and_snapshots(case, kind):
    run_case(PRELUDE + textwrap.dedent(CASES[case]).replace("KIND", INDEXES[kind]))
