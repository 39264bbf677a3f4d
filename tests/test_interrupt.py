"""Ctrl-C stops long NMF and ALS fits, randomized SVD, HNSW adds and
searches, exact searches and knn: each case runs in a subprocess that is sent
SIGINT one second into the call and must exit with KeyboardInterrupt soon
after (before this, NMF, MU-KL, sparse and NMFk fits, HNSW adds and big
search batches ran on for the whole call)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

PRELUDE = """
import sys
import numpy as np
import scipy.sparse as sp
import rankfold
rng = np.random.default_rng(0)
X = rng.random((3000, 1500))
"""

CASES = {
    "hals": "model = rankfold.NMF(20, max_iter=10**6, tol=0.0, n_threads=2)",
    "hals-plain": "model = rankfold.NMF(20, max_iter=10**6, tol=0.0, extrapolate=False, n_threads=2)",
    "mu-kl": "model = rankfold.NMF(20, solver='mu', beta_loss='kullback-leibler', max_iter=10**6, tol=0.0, n_threads=2)",
    "sparse": "X = sp.random(20000, 5000, density=0.01, random_state=0, format='csr')\n"
              "model = rankfold.NMF(20, max_iter=10**6, tol=0.0, n_threads=2)",
    "missing": "X[rng.random(X.shape) < 0.1] = np.nan\n"
               "model = rankfold.NMF(10, missing_values=np.nan, init='random', max_iter=10**6, tol=0.0, n_threads=2)",
    "nmfk": "model = rankfold.NMFk(range(2, 12), n_perturbations=10, max_iter=10**6, tol=0.0, n_threads=2)",
    "graph": "X = X[:1500, :300]\n"
             "model = rankfold.NMF(20, graph='knn', graph_reg=0.1, max_iter=10**6, tol=0.0, n_threads=2)",
    "senmf": "X = sp.random(4000, 3000, density=0.02, random_state=0, format='csr')\n"
             "model = rankfold.SeNMF(20, max_iter=10**6, tol=0.0, n_threads=2)",
    # one half-sweep of these takes tens of seconds: the sweep itself must stop
    "als-explicit": "X = sp.random(40000, 4000, density=0.003, random_state=0, format='csr')\n"
                    "X.data = 1 + 4 * X.data\n"
                    "model = rankfold.ALS(512, feedback='explicit', solver='cholesky', iterations=10**6, "
                    "n_threads=2)",
    "als-implicit": "X = sp.random(40000, 4000, density=0.003, random_state=0, format='csr')\n"
                    "model = rankfold.ALS(512, solver='cholesky', iterations=10**6, n_threads=2)",
    "als-ials": "X = sp.random(40000, 4000, density=0.003, random_state=0, format='csr')\n"
                "model = rankfold.ALS(1024, solver='ials++', block_size=128, iterations=10**6, n_threads=2)",
}
FITTED = {"als-explicit": "user_factors_", "als-implicit": "user_factors_", "als-ials": "user_factors_"}


@pytest.mark.parametrize("case", list(CASES))
def test_sigint_stops_the_fit(case):
    script = PRELUDE + f"ATTR = {FITTED.get(case, 'components_')!r}\n" + textwrap.dedent(CASES[case]) + """
print("ready", flush=True)
try:
    model.fit(X)
except KeyboardInterrupt:
    assert not hasattr(model, ATTR), "an interrupted fit must leave the estimator unfitted"
    print("interrupted", flush=True)
    sys.exit(3)
print("finished", flush=True)
"""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        elapsed = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3, (proc.returncode, out, err[-2000:])
    assert "interrupted" in out
    # About a second is the goal; the bound leaves room for a loaded machine
    # (an uninterruptible fit here runs for hours).
    assert elapsed < 5.0, elapsed


def test_sigint_stops_randomized_svd():
    script = PRELUDE + """
X = rng.random((6000, 4000))
print("ready", flush=True)
try:
    rankfold.randomized_svd(X, 50, n_iter=10**5, n_threads=2)
except KeyboardInterrupt:
    print("interrupted", flush=True)
    sys.exit(3)
print("finished", flush=True)
"""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(1.0)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        elapsed = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3 and "interrupted" in out, (proc.returncode, out, err[-2000:])
    assert elapsed < 5.0, elapsed


def test_sigint_stops_dask_nmf(tmp_path):
    pytest.importorskip("distributed")
    script = """
import sys
import numpy as np
import dask.array as da
import distributed
import rankfold.dask as rd
if __name__ == "__main__":
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
    client = distributed.Client(cluster)
    X = da.random.RandomState(0).random_sample((20000, 400), chunks=(5000, 400))
    rd.NMF(20, max_iter=3, tol=0.0, client=client).fit(X[:2000])  # warm the workers up: the timed fit below runs at once
    model = rd.NMF(20, max_iter=10**6, tol=0.0, client=client)
    print("ready", flush=True)
    try:
        model.fit(X)
    except KeyboardInterrupt:
        assert not hasattr(model, "components_")
        print("interrupted", flush=True)
        sys.exit(3)
    print("finished", flush=True)
"""
    path = tmp_path / "dask_fit.py"  # a file: the cluster's worker processes re-import __main__
    path.write_text(script)
    proc = subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(2.0)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        elapsed = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 3 and "interrupted" in out, (proc.returncode, out, err[-2000:])
    assert elapsed < 10.0, elapsed  # includes cancelling the workers' running tasks


# Nearest-neighbour work: a large HNSW add must stop between insertion
# batches and keep the vectors of the batches done (whole batches, in order:
# len(index) equals the ids found, and the index takes searches and adds
# afterwards); large exact searches and graph searches stop between blocks.
ANN_PRELUDE = """
import sys
import numpy as np
import rankfold
rng = np.random.default_rng(0)
"""

ANN_CASES = {
    "hnsw-add": ("""
X = rng.standard_normal((200000, 128), dtype=np.float32)
index = rankfold.HNSWIndex(128, random_state=0, n_threads=2)
""", "index.add(X)", """
n = len(index)
assert 0 < n < len(X), n
inside = index.contains(np.arange(len(X)))
assert inside.sum() == n and inside[:n].all(), (inside.sum(), n)
assert index.ids.size == n and index.stats()["size"] == n
ids, dist = index.search(X[:5], 5)
assert ((ids >= 0) & (ids < n)).all(), ids
index.add(X[n:n + 100])
assert len(index) == n + 100 and index.contains(np.arange(n + 100)).all()
"""),
    "knn": ("""
X = rng.standard_normal((200000, 128), dtype=np.float32)
Q = rng.standard_normal((20000, 128), dtype=np.float32)
""", "rankfold.knn(X, Q, 10, n_threads=2)", """
ids, _ = rankfold.knn(X[:1000], X[:3], 1, n_threads=2)
assert (ids[:, 0] == np.arange(3)).all()
"""),
    "knn-float64": ("""
X = rng.standard_normal((100000, 128))
Q = rng.standard_normal((20000, 128))
""", "rankfold.knn(X, Q, 10, n_threads=2)", ""),
    "exact-search": ("""
X = rng.standard_normal((200000, 128), dtype=np.float32)
Q = rng.standard_normal((20000, 128), dtype=np.float32)
index = rankfold.ExactIndex(128, n_threads=2).add(X)
""", "index.search(Q, 10)", """
ids, _ = index.search(X[:3], 1)
assert (ids[:, 0] == np.arange(3)).all() and len(index) == len(X)
"""),
    "hnsw-search": ("""
X = rng.standard_normal((5000, 16), dtype=np.float32)
Q = rng.standard_normal((2000000, 16), dtype=np.float32)
index = rankfold.HNSWIndex(16, M=8, ef_construction=40, random_state=0, n_threads=2).add(X)
""", "index.search(Q, 10, ef=400)", """
ids, _ = index.search(X[:3], 1)
assert (ids[:, 0] == np.arange(3)).all() and len(index) == len(X)
"""),
}


def sigint_after(script, wait=1.0):
    """Runs script, which prints "ready" before its long call; sends SIGINT
    `wait` seconds later. Returns (returncode, stdout, stderr, seconds from
    the signal to the exit)."""
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        time.sleep(wait)
        sent = time.perf_counter()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
        elapsed = time.perf_counter() - sent
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, out, err, elapsed


@pytest.mark.parametrize("case", list(ANN_CASES))
def test_sigint_stops_index_work(case):
    setup, call, after = ANN_CASES[case]
    script = ANN_PRELUDE + setup + f"""
print("ready", flush=True)
try:
    {call}
except KeyboardInterrupt:
""" + textwrap.indent(after, "    ") + """
    print("interrupted", flush=True)
    sys.exit(3)
print("finished", flush=True)
"""
    code, out, err, elapsed = sigint_after(script)
    assert code == 3 and "interrupted" in out, (code, out, err[-2000:])
    # About a second is the goal; the bound leaves room for a loaded machine
    # (the calls here run for tens of seconds when not interrupted).
    assert elapsed < 5.0, elapsed
