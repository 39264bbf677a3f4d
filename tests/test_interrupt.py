"""Ctrl-C stops long NMF fits: each case runs in a subprocess that is sent
SIGINT one second into the fit and must exit with KeyboardInterrupt soon after
(before this, NMF, MU-KL, sparse and NMFk fits ran on for the whole fit)."""

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
