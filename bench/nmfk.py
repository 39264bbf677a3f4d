"""NMFk (automatic rank selection): rankfold.NMFk vs the same work done with
scikit-learn's NMF in a loop.

Work: a dense 10000 x 500 matrix (float64, or float32 with --dtype float32)
of nonnegative rank 6 (sparse random
factors, 1% multiplicative noise); k = 2..12, 10 perturbed copies per k
(uniform multiplicative noise, eps = 0.03), one NMF per copy: 110 fits, then
the alignment of the runs' components and the silhouettes per k.

* rankfold: ``NMFk(range(2, 13), n_perturbations=10, n_threads=T)``: a pool
  of T threads, each running single-threaded HALS fits (random start, tol
  1e-4, at most 200 iterations).
* scikit-learn: the same 110 fits of the same perturbed copies with
  ``sklearn.decomposition.NMF(k, init="random", solver="cd", tol=1e-4,
  max_iter=200)``, spread over T worker processes (joblib, the way a
  scikit-learn user parallelises independent fits), each with one BLAS
  thread, then the same alignment and silhouettes (rankfold's helpers, a few
  ms per k). Every fit is done: no time is extrapolated.

Both sides are timed the same way: ``--repeat`` rounds, rankfold and then
scikit-learn in each round (interleaved, so a load change hits both), no
warm-up for either; the table gives both medians and the median of the
per-round ratios.

Both report the mean relative error of their fits so that the speed is
compared at equal quality. Run:
python bench/nmfk.py [--dtype float64|float32] [--threads 2] [--repeat 3] [--quick]
(the full run takes about 3 x (20 + 200) s on 2 cores)
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, print_table, write_json  # noqa: E402

import rankfold  # noqa: E402
from rankfold.nmf._nmfk import align_columns, cluster_silhouettes, perturb  # noqa: E402
from sklearn.decomposition import NMF as SkNMF  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402
from joblib import Parallel, delayed  # noqa: E402


def data(m: int, n: int, rank: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    W = rng.random((m, rank)) * (rng.random((m, rank)) < 0.5)
    H = rng.random((rank, n)) * (rng.random((rank, n)) < 0.5)
    X = W @ H
    X *= np.maximum(1 + 0.01 * rng.standard_normal(X.shape), 0)
    return X


def _sklearn_fit(X: np.ndarray, k: int, r: int, seed: int):
    """One perturbed scikit-learn fit (a joblib task): normalised H and relative error."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, k, r]))
    Xp = perturb(X, rng, eps=0.03)
    with threadpool_limits(limits=1, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = SkNMF(k, init="random", solver="cd", tol=1e-4, max_iter=200, random_state=int(rng.integers(2**31)))
        model.fit(Xp)
    H = model.components_
    norms = np.linalg.norm(H, axis=1, keepdims=True)
    return k, H / np.where(norms > 0, norms, 1.0), model.reconstruction_err_ / np.linalg.norm(Xp)


def sklearn_nmfk(X: np.ndarray, ks, runs: int, threads: int):
    """The whole NMFk work with scikit-learn's NMF: every run of every k, on `threads` processes."""
    seed = 0
    t0 = time.perf_counter()
    tasks = [(int(k), r) for k in ks[::-1] for r in range(runs)]  # large k first, as rankfold does
    out = Parallel(n_jobs=threads)(delayed(_sklearn_fit)(X, k, r, seed) for k, r in tasks)
    errors, sil_min = {}, {}
    for k in ks:
        Hs = [H for kk, H, _ in out if kk == k]
        labels, _ = align_columns([H.T for H in Hs])
        sil_min[int(k)] = float(cluster_silhouettes([H.T for H in Hs], labels).min())
        errors[int(k)] = float(np.mean([e for kk, _, e in out if kk == k]))
    return time.perf_counter() - t0, errors, sil_min


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="2000 x 200, k = 2..8, 4 runs")
    ap.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    args = ap.parse_args()
    if args.quick:
        m, n, ks, runs = 2000, 200, range(2, 9), 4
    else:
        m, n, ks, runs = 10000, 500, range(2, 13), 10
    X = data(m, n, 6).astype(args.dtype)
    print(f"X: {m} x {n} {args.dtype}, rank 6; k = {ks.start}..{ks.stop - 1}, {runs} perturbations per k, "
          f"{args.threads} threads; machine: {machine()}")

    rf_times, sk_times = [], []
    model = None
    sk_err = sk_sil = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        model = rankfold.NMFk(ks, n_perturbations=runs, random_state=0, n_threads=args.threads).fit(X)
        rf_times.append(time.perf_counter() - t0)
        seconds, sk_err, sk_sil = sklearn_nmfk(X, ks, runs, args.threads)
        sk_times.append(seconds)
        print(f"round {len(rf_times)}: rankfold {rf_times[-1]:.2f} s, scikit-learn {sk_times[-1]:.2f} s", flush=True)
    rf_time, sk_time = float(np.median(rf_times)), float(np.median(sk_times))
    ratio = float(np.median(np.array(sk_times) / np.array(rf_times)))
    s = model.scores_
    print(f"rankfold NMFk: median {rf_time:.2f} s; chosen k = {model.n_components_}; "
          f"scikit-learn loop on {args.threads} processes: median {sk_time:.2f} s")

    rows = []
    for row in s:
        k = int(row["k"])
        rows.append({"k": k, "rankfold min silhouette": float(row["silhouette_min"]),
                     "rankfold rel. error": float(row["relative_error"]),
                     "sklearn rel. error": sk_err[k], "sklearn min silhouette": sk_sil[k]})
    print_table(rows, list(rows[0]))
    summary = [{"library": "rankfold NMFk", "threads": args.threads, "seconds": rf_time, "fits": len(ks) * runs,
                "chosen k": model.n_components_},
               {"library": "scikit-learn NMF, joblib", "threads": args.threads, "seconds": sk_time,
                "fits": len(ks) * runs, "chosen k": ""},
               {"library": "ratio (sklearn / rankfold, median per round)", "seconds": ratio}]
    print()
    print_table(summary, ["library", "threads", "fits", "seconds", "chosen k"])
    path = write_json(f"nmfk_{args.dtype}" + ("_quick" if args.quick else ""), {
        "shape": [m, n], "dtype": args.dtype, "k_range": [ks.start, ks.stop - 1], "runs": runs, "threads": args.threads,
        "rankfold_seconds": rf_times, "rankfold_median": rf_time, "sklearn_seconds": sk_times,
        "sklearn_median": sk_time, "sklearn_workers": args.threads, "sklearn_blas_threads": 1,
        "ratio": ratio, "chosen_k": model.n_components_, "per_k": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
