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
* scikit-learn: a Python loop over the same perturbed copies,
  ``sklearn.decomposition.NMF(k, init="random", solver="cd", tol=1e-4,
  max_iter=200)``, then the same alignment and silhouettes (rankfold's
  helpers, a few ms). Its BLAS gets 1 or T threads, whichever fits a probe
  case faster (on a loaded machine T spinning BLAS threads can be many times
  slower than one). Because the loop is slow, ``--sk-runs R`` fits only R of
  the 10 copies per k and scales the time by 10 / R (printed as
  "extrapolated"); ``--sk-runs 10`` does it all.

Both report the mean relative error of their fits so that the speed is
compared at equal quality. Run:
python bench/nmfk.py [--dtype float64|float32] [--threads 2] [--sk-runs 2] [--repeat 3] [--quick]
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
from rankfold._nmfk import align_columns, cluster_silhouettes, perturb  # noqa: E402
from sklearn.decomposition import NMF as SkNMF  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def data(m: int, n: int, rank: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    W = rng.random((m, rank)) * (rng.random((m, rank)) < 0.5)
    H = rng.random((rank, n)) * (rng.random((rank, n)) < 0.5)
    X = W @ H
    X *= np.maximum(1 + 0.01 * rng.standard_normal(X.shape), 0)
    return X


def sklearn_nmfk(X: np.ndarray, ks, runs: int, fitted_runs: int, threads: int):
    """The NMFk work with scikit-learn's NMF: fitted_runs of the runs per k."""
    seed = 0
    errors = {}
    sil_min = {}
    with threadpool_limits(limits=threads, user_api="blas"), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        t0 = time.perf_counter()
        for k in ks:
            Hs, errs = [], []
            for r in range(fitted_runs):
                rng = np.random.default_rng(np.random.SeedSequence([seed, k, r]))
                Xp = perturb(X, rng, eps=0.03)
                model = SkNMF(k, init="random", solver="cd", tol=1e-4, max_iter=200,
                              random_state=int(rng.integers(2**31)))
                model.fit(Xp)
                Hs.append(model.components_ / np.linalg.norm(model.components_, axis=1, keepdims=True))
                errs.append(model.reconstruction_err_ / np.linalg.norm(Xp))
            labels, _ = align_columns([H.T for H in Hs])
            sil_min[k] = float(cluster_silhouettes([H.T for H in Hs], labels).min())
            errors[k] = float(np.mean(errs))
        seconds = time.perf_counter() - t0
    return seconds * runs / fitted_runs, errors, sil_min


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--sk-runs", type=int, default=2)
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

    times = []
    model = None
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        model = rankfold.NMFk(ks, n_perturbations=runs, random_state=0, n_threads=args.threads).fit(X)
        times.append(time.perf_counter() - t0)
    rf_time = float(np.median(times))
    s = model.scores_
    print(f"rankfold NMFk: median {rf_time:.2f} s over {args.repeat} runs {np.round(times, 2).tolist()}; "
          f"chosen k = {model.n_components_}")

    probe = {}
    for t in sorted({1, args.threads}):
        with threadpool_limits(limits=t, user_api="blas"), warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            t0 = time.perf_counter()
            SkNMF(6, init="random", solver="cd", tol=0, max_iter=20, random_state=0).fit(X)
            probe[t] = time.perf_counter() - t0
    sk_threads = min(probe, key=probe.get)
    print(f"scikit-learn probe (20 cd iterations, k=6): {probe}; using {sk_threads} BLAS thread(s)")
    sk_time, sk_err, sk_sil = sklearn_nmfk(X, ks, runs, min(args.sk_runs, runs), sk_threads)
    extrapolated = args.sk_runs < runs
    note = f" (extrapolated from {args.sk_runs} runs per k)" if extrapolated else ""
    print(f"scikit-learn loop: {sk_time:.1f} s{note}")

    rows = []
    for row in s:
        k = int(row["k"])
        rows.append({"k": k, "rankfold min silhouette": float(row["silhouette_min"]),
                     "rankfold rel. error": float(row["relative_error"]),
                     "sklearn rel. error": sk_err[k], "sklearn min silhouette": sk_sil[k]})
    print_table(rows, list(rows[0]))
    summary = [{"library": "rankfold NMFk", "threads": args.threads, "seconds": rf_time, "fits": len(ks) * runs,
                "chosen k": model.n_components_},
               {"library": "scikit-learn NMF loop" + (" (extrapolated)" if extrapolated else ""),
                "threads": sk_threads, "seconds": sk_time, "fits": len(ks) * runs, "chosen k": ""},
               {"library": "ratio (sklearn / rankfold)", "seconds": sk_time / rf_time}]
    print()
    print_table(summary, ["library", "threads", "fits", "seconds", "chosen k"])
    path = write_json(f"nmfk_{args.dtype}" + ("_quick" if args.quick else ""), {
        "shape": [m, n], "dtype": args.dtype, "k_range": [ks.start, ks.stop - 1], "runs": runs, "threads": args.threads,
        "rankfold_seconds": times, "rankfold_median": rf_time, "sklearn_seconds": sk_time,
        "sklearn_blas_threads": sk_threads, "sklearn_probe": probe,
        "sklearn_extrapolated_from_runs": args.sk_runs if extrapolated else None,
        "ratio": sk_time / rf_time, "chosen_k": model.n_components_, "per_k": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
