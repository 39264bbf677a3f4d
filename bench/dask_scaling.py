"""rankfold.dask: time per sweep and network traffic per sweep, NMF and ALS.

Each model is fitted three ways on the same data and the same 2 cores:
the single-machine estimator with 2 threads (``rankfold.NMF`` /
``rankfold.ALS``), ``rankfold.dask`` on a LocalCluster of 1 worker process
with 2 threads, and on 2 worker processes with 1 thread each. Time per
sweep is the median of the gaps between consecutive ``callback`` calls (the
first sweep, which includes warm-up, is left out).

Traffic per sweep, in bytes, between the first and the last callback:

* measured: what the workers sent (``Worker.transfer_outgoing_log``: to
  other workers, e.g. H fetched by a second worker and the tree reduction's
  partial sums, and to the client, i.e. the gathered sums or factors);
* counted: what the client sends to the workers (the scatter of H, or of the
  factor matrices, and the arrays passed as task arguments), which Dask does
  not log; the sizes of those arrays are known exactly. (A broadcast scatter
  goes to one worker and is replicated from there: the copies are measured.)

The claim to check is that traffic is O((m + n) k) and does not grow with
nnz: each problem is run at two densities (nnz x 4) with m, n, k fixed.

On one 2-core machine the distributed runs cannot be faster than the
single-machine path (same cores, plus serialization and scheduling); the win
is memory (X is split over processes, or read from disk block by block) and
the proof that the same code runs on a cluster of many machines.

Run:  python bench/dask_scaling.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, Dict, List

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import print_table, write_json  # noqa: E402

import dask.array as da  # noqa: E402
import distributed  # noqa: E402

import rankfold  # noqa: E402
import rankfold.dask as rdask  # noqa: E402


def _outgoing_bytes(client: distributed.Client) -> int:
    logs = client.run(lambda dask_worker: sum(int(e.get("total", 0)) for e in dask_worker.transfer_outgoing_log))
    return int(sum(logs.values()))


class SweepClock:
    """callback(it, loss): timestamps, and the workers' outgoing bytes at the
    first and the last sweep."""

    def __init__(self, client: Any = None, last: int = 0) -> None:
        self.client, self.last, self.stamps, self.bytes = client, last, [], {}

    def __call__(self, it: int, loss: float) -> None:
        self.stamps.append(time.perf_counter())
        n = len(self.stamps)
        if self.client is not None and n in (1, self.last):
            self.bytes[n] = _outgoing_bytes(self.client)

    def per_sweep(self) -> float:
        return float(np.median(np.diff(self.stamps)))

    def bytes_per_sweep(self) -> float:
        return (self.bytes[self.last] - self.bytes[1]) / (self.last - 1)


def sparse_data(m: int, n: int, density: float, seed: int) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    X = sp.random(m, n, density=density, format="csr", random_state=rng, dtype=np.float64)
    X.data = np.ceil(X.data * 5)
    return X


def chunked(client: distributed.Client, X: sp.csr_matrix, blocks: int) -> Any:
    """A dask array of X cut into row blocks with scipy.sparse chunks, the
    blocks already on the workers (as a loader running there would leave them)."""
    cuts = np.linspace(0, X.shape[0], blocks + 1).round().astype(int)
    futures = client.scatter([X[a:b] for a, b in zip(cuts[:-1], cuts[1:])], hash=False)
    parts = [da.from_delayed(f, shape=(b - a, X.shape[1]), dtype=X.dtype, meta=sp.csr_matrix((0, 0), dtype=X.dtype))
             for f, a, b in zip(futures, cuts[:-1], cuts[1:])]
    return da.concatenate(parts, axis=0)


def nmf_rows(X: sp.csr_matrix, k: int, sweeps: int, clusters: Dict[str, distributed.Client]) -> List[Dict]:
    m, n = X.shape
    rng = np.random.default_rng(1)
    scale = np.sqrt(X.sum() / (m * n) / k)
    W0, H0 = scale * rng.random((m, k)), scale * rng.random((k, n))
    params = dict(n_components=k, init="custom", tol=0.0, max_iter=sweeps, inner_sweeps=2)
    rows = []
    clock = SweepClock()
    rankfold.NMF(n_threads=2, extrapolate=False, callback=clock, **params).fit(X, W=W0, H=H0)
    base = clock.per_sweep()
    rows.append(dict(model="NMF", nnz=X.nnz, path="rankfold.NMF, 2 threads", s_per_sweep=base, vs_single=1.0))
    for name, client in clusters.items():
        n_workers = len(client.scheduler_info()["workers"])
        dX = chunked(client, X, 4 * n_workers)
        clock = SweepClock(client, last=sweeps)
        model = rdask.NMF(client=client, callback=clock, **params)
        model.fit(dX, W=W0, H=H0)
        measured = clock.bytes_per_sweep()
        n_blocks = model.n_blocks_
        counted = n * k * 8 + n_blocks * k * k * 8  # H scattered once, H H^T passed to each block task
        rows.append(dict(model="NMF", nnz=X.nnz, path=name, s_per_sweep=clock.per_sweep(),
                         vs_single=clock.per_sweep() / base, workers_sent_MB=measured / 1e6,
                         client_sent_MB=counted / 1e6, per_mnk=(measured + counted) / ((m + n) * k * 8),
                         nnz_bytes_MB=X.nnz * 12 / 1e6))
        del dX
    return rows


def als_rows(R: sp.csr_matrix, k: int, sweeps: int, clusters: Dict[str, distributed.Client]) -> List[Dict]:
    m, n = R.shape
    params = dict(factors=k, iterations=sweeps, feedback="implicit", solver="cg", random_state=0)
    rows = []
    clock = SweepClock()
    rankfold.ALS(n_threads=2, callback=clock, **params).fit(R)
    base = clock.per_sweep()
    rows.append(dict(model="ALS", nnz=R.nnz, path="rankfold.ALS, 2 threads", s_per_sweep=base, vs_single=1.0))
    for name, client in clusters.items():
        n_workers = len(client.scheduler_info()["workers"])
        dR = chunked(client, R, 2 * n_workers)
        clock = SweepClock(client, last=sweeps)
        rdask.ALS(client=client, callback=clock, n_blocks=2 * n_workers, **params).fit(dR)
        measured = clock.bytes_per_sweep()
        # user and item factors scattered once each (Dask replicates a broadcast
        # scatter between the workers: that part is in the measured log), and
        # each block's own rows passed as task arguments
        counted = (m + n) * k * 4 * 2
        rows.append(dict(model="ALS", nnz=R.nnz, path=name, s_per_sweep=clock.per_sweep(),
                         vs_single=clock.per_sweep() / base, workers_sent_MB=measured / 1e6,
                         client_sent_MB=counted / 1e6, per_mnk=(measured + counted) / ((m + n) * k * 4),
                         nnz_bytes_MB=R.nnz * 12 / 1e6))
        del dR
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller problems")
    args = parser.parse_args()
    scale = 4 if args.quick else 1
    configs = {"dask, 1 worker x 2 threads": dict(n_workers=1, threads_per_worker=2),
               "dask, 2 workers x 1 thread": dict(n_workers=2, threads_per_worker=1)}
    clusters, handles = {}, []
    for name, kw in configs.items():
        cluster = distributed.LocalCluster(processes=True, dashboard_address=":0", memory_limit="3GiB", **kw)
        handles.append(cluster)
        clusters[name] = distributed.Client(cluster, set_as_default=False)
    rows: List[Dict] = []
    try:
        nmf_m, nmf_n, k = 100_000 // scale, 2_000, 16
        for density in (0.005, 0.02):
            rows += nmf_rows(sparse_data(nmf_m, nmf_n, density, 0), k, 6, clusters)
        als_m, als_n, f = 50_000 // scale, 10_000, 32
        for density in (0.002, 0.008):
            rows += als_rows(sparse_data(als_m, als_n, density, 2).astype(np.float32), f, 5, clusters)
    finally:
        for client in clusters.values():
            client.close()
        for cluster in handles:
            cluster.close()
    columns = ["model", "nnz", "path", "s_per_sweep", "vs_single", "workers_sent_MB", "client_sent_MB",
               "per_mnk", "nnz_bytes_MB"]
    print(f"NMF: {nmf_m} x {nmf_n}, k = {k}, HALS with 2 inner sweeps, float64; "
          f"ALS: {als_m} users x {als_n} items, implicit, CG, {f} factors, float32")
    print("per_mnk = (workers_sent + client_sent) / ((m + n) k itemsize); nnz_bytes = nnz x 12 bytes (CSR)")
    print_table(rows, columns)
    write_json("dask_scaling", {"rows": rows, "nmf": dict(m=nmf_m, n=nmf_n, k=k),
                                "als": dict(users=als_m, items=als_n, factors=f)})


if __name__ == "__main__":
    main()
