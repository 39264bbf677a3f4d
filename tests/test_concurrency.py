"""Python threads calling rankfold at the same time: every kernel releases the
GIL, so calls on shared read-only inputs and concurrent searches of one index
overlap in C++. Each result must equal the one computed alone (same seed,
same thread count).

These are the tests tools/sanitize.sh runs under ThreadSanitizer (with the
HNSW add/search test); sizes stay small because TSan slows the kernels down
by an order of magnitude.
"""

from __future__ import annotations

import pickle
import threading

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold

N_PYTHON_THREADS = 3


def run_together(fn, n=N_PYTHON_THREADS):
    """fn(i) in n threads released at once; returns the results in order and
    re-raises the first exception of a thread."""
    barrier = threading.Barrier(n)
    results, errors = [None] * n, []

    def target(i):
        try:
            barrier.wait(timeout=60)
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
        assert not t.is_alive(), "a thread did not finish"
    if errors:
        raise errors[0]
    return results


def close(got, want):
    """Equal up to the order of floating-point sums. rankfold's own thread pool
    (forked children, ThreadSanitizer builds) runs a region that starts while
    another one runs on its calling thread alone, so a fit's reductions may
    then add up in another order than with two threads."""
    want = np.asarray(want)
    tol = 1e-9 if want.dtype == np.float64 else 1e-4
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * max(1.0, float(np.abs(want).max())))


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(5)
    X = rng.random((400, 12)).astype(np.float32)
    R = sp.random(120, 80, density=0.08, random_state=6, format="csr", dtype=np.float32)
    return X, R


def test_knn_and_topk_in_parallel_threads(data):
    X, _ = data
    want = [rankfold.knn(X, X[:40], 5, metric=m, n_threads=2) for m in rankfold.ann.METRICS]
    want_top = rankfold.topk(X, 3, n_threads=2)

    def work(i):
        got = [rankfold.knn(X, X[:40], 5, metric=m, n_threads=2) for m in rankfold.ann.METRICS]
        return got, rankfold.topk(X, 3, n_threads=2)

    for got, top in run_together(work):
        for (gi, gd), (wi, wd) in zip(got, want):
            np.testing.assert_array_equal(gi, wi)
            np.testing.assert_array_equal(gd, wd)
        np.testing.assert_array_equal(top[0], want_top[0])


@pytest.mark.filterwarnings("ignore:NMF stopped at max_iter")
@pytest.mark.parametrize("sparse", [False, True])
def test_nmf_fits_in_parallel_threads(data, sparse):
    X, _ = data
    A = sp.csr_matrix(X) if sparse else X.astype(np.float64)

    def fit(seed):
        model = rankfold.NMF(4, max_iter=15, random_state=seed, n_threads=2).fit(A)
        return model.components_, model.reconstruction_err_

    want = [fit(i) for i in range(N_PYTHON_THREADS)]
    for (H, err), (H0, err0) in zip(run_together(fit), want):
        close(H, H0)
        close(err, err0)


@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_als_fits_in_parallel_threads(data, feedback):
    _, R = data

    def fit(seed):
        model = rankfold.ALS(6, iterations=3, feedback=feedback, random_state=seed, n_threads=2).fit(R)
        return model.user_factors_, model.recommend(np.arange(5), n=4)[0]

    want = [fit(i) for i in range(N_PYTHON_THREADS)]
    for (U, rec), (U0, rec0) in zip(run_together(fit), want):
        close(U, U0)
        np.testing.assert_array_equal(rec, rec0)


@pytest.mark.parametrize("kind", ["exact", "hnsw"])
def test_concurrent_searches_of_one_index(data, kind):
    X, _ = data
    if kind == "exact":
        index = rankfold.ExactIndex(X.shape[1], n_threads=2).add(X)
    else:
        index = rankfold.HNSWIndex(X.shape[1], M=8, ef_construction=40, random_state=0, n_threads=2)
        index.add(X, n_threads=2)
    Q = X[::7] + 0.01
    want = index.search(Q, 5, n_threads=2)

    def work(i):
        found = [index.search(Q, 5, n_threads=1 + i % 2) for _ in range(3)]
        blob = pickle.dumps(index)  # saving reads the index while others search it
        return found, len(pickle.loads(blob))

    for found, size in run_together(work):
        assert size == len(index)
        for ids, dist in found:
            np.testing.assert_array_equal(ids, want[0])
            np.testing.assert_allclose(dist, want[1], rtol=1e-6, atol=1e-6)
