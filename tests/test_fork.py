"""Fork safety: children created by fork() after the parent ran 2-thread
kernels work (libgomp's pool does not survive fork; rankfold switches to its
own threads there). Each case runs in a subprocess with a timeout, so a
deadlock fails the test instead of hanging the suite."""

import subprocess
import sys
import textwrap

import pytest

PRELUDE = textwrap.dedent("""
    import multiprocessing as mp, os, sys, warnings
    import numpy as np, scipy.sparse as sp
    import rankfold
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = rng.random((3000, 48)).astype(np.float32)
    R = sp.random(300, 200, density=0.05, random_state=0, format="csr")

    def work(seed):
        # every kind of parallel region: fused exact search, HNSW build and search,
        # NMF (dense and sparse), ALS, each with 2 threads
        ids, _ = rankfold.knn(X, X[:50], 5, n_threads=2)
        ex = rankfold.ExactIndex(48, metric="ip"); ex.add(X); ex.search(X[:20], 3, n_threads=2)
        idx = rankfold.HNSWIndex(48, M=8, ef_construction=40, random_state=seed)
        idx.add(X[:1500], n_threads=2)
        hids, _ = idx.search(X[:50], 5, n_threads=2)
        nmf = rankfold.NMF(6, max_iter=20, random_state=seed, n_threads=2).fit(X[:500].astype(np.float64))
        rankfold.NMF(4, max_iter=10, n_threads=2).fit(sp.csr_matrix(X[:500]))
        als = rankfold.ALS(8, iterations=3, random_state=seed, n_threads=2).fit(R)
        assert np.isfinite(nmf.components_).all()
        return int((ids[:, 0] == np.arange(50)).sum()), float(nmf.reconstruction_err_)

    expected = work(0)  # the parent runs 2-thread regions first
""")


def run(body, timeout=120):
    proc = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(body)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_multiprocessing_fork_pool():
    out = run("""
        ctx = mp.get_context("fork")
        with ctx.Pool(2) as pool:
            results = pool.map_async(work, [0, 0, 1, 2]).get(timeout=90)
        assert results[0] == expected and results[1] == expected, (results, expected)
        print("ok", results)
    """)
    assert out.startswith("ok")


def test_fork_of_fork():
    # a child that itself used threads forks again: the grandchild works too
    out = run("""
        ctx = mp.get_context("fork")
        def child(conn):
            work(0)
            with ctx.Pool(1) as pool:
                conn.send(pool.map_async(work, [0]).get(timeout=60)[0])
        parent_end, child_end = ctx.Pipe()
        p = ctx.Process(target=child, args=(child_end,))
        p.start()
        assert parent_end.poll(90), "no answer from the forked child"
        got = parent_end.recv()
        p.join(30)
        assert got == expected and p.exitcode == 0, (got, expected, p.exitcode)
        print("ok")
    """)
    assert out.startswith("ok")


def test_threads_in_forked_child():
    # two Python threads in one forked child, both calling 2-thread kernels
    out = run("""
        import threading
        def child(_):
            errs = []
            def go():
                try:
                    for _ in range(3):
                        assert work(0) == expected
                except Exception as e:
                    errs.append(repr(e))
            ts = [threading.Thread(target=go) for _ in range(2)]
            [t.start() for t in ts]; [t.join() for t in ts]
            return errs
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            errs = pool.map_async(child, [0]).get(timeout=100)[0]
        assert errs == [], errs
        print("ok")
    """, timeout=180)
    assert out.startswith("ok")


def test_joblib_multiprocessing_backend():
    pytest.importorskip("joblib")
    out = run("""
        from joblib import Parallel, delayed
        results = Parallel(n_jobs=2, backend="multiprocessing")(delayed(work)(0) for _ in range(3))
        assert all(r == expected for r in results), (results, expected)
        print("ok")
    """)
    assert out.startswith("ok")


def test_unsorted_sparse_transposed_product_in_forked_child():
    # A^T B over rows with unsorted column indices sums per-thread partials in
    # a second phase; in a child (rankfold's own threads) that phase must wait
    # for every partial too (an OpenMP barrier did not, so sums were missing).
    out = run("""
        from rankfold import _core
        def product(_):
            r = np.random.default_rng(3)
            A = sp.random(4000, 64, density=0.2, random_state=4, format="csr")
            B = r.random((4000, 16))
            for i in range(A.shape[0]):  # reverse each row's entries: unsorted, same matrix
                lo, hi = A.indptr[i], A.indptr[i + 1]
                A.indices[lo:hi] = A.indices[lo:hi][::-1].copy()
                A.data[lo:hi] = A.data[lo:hi][::-1].copy()
            want = A.toarray().T @ B
            worst = 0.0
            for _ in range(20):
                got = _core.spmm(A.indptr, A.indices, A.data, A.shape[0], A.shape[1], B, True, 2)
                worst = max(worst, float(np.abs(got - want).max()))
            return worst
        ctx = mp.get_context("fork")
        with ctx.Pool(1) as pool:
            worst = pool.map_async(product, [0]).get(timeout=90)[0]
        assert product(0) < 1e-9
        assert worst < 1e-9, worst
        print("ok")
    """)
    assert out.startswith("ok")
