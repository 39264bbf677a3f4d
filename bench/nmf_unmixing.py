"""Hyperspectral unmixing on the Samson scene: plain, graph-regularized and correntropy NMF.

Every method starts from the same W and H (the "random" init of a seed) and
runs at most 300 iterations (tol 1e-6); scikit-learn's NMF (the anchor) runs
from the same start with init="custom". Quality: mean spectral angle (SAD,
radians, Hungarian matching) between the learned and the reference endmembers
and abundance RMSE (abundances scaled so each endmember peaks at 1, then
normalised per pixel), as in tests/test_nmf_realdata.py. "Corrupted": 5% of
the bands (8 of 156) replaced by uniform noise up to 5 times the scene's
maximum; endmembers are then compared on the 148 clean bands. Medians over the
seeds; time is the median seconds per fit.

SS-NMF here is graph-regularized NMF with the 8-neighbour pixel-grid affinity
(heat weights on spectral distance, `rankfold.nmf.grid_graph`), graph_reg=1e-3.

Run:  python bench/nmf_unmixing.py [--seeds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
from scipy.optimize import linear_sum_assignment

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DATA_DIR, machine, print_table, write_json  # noqa: E402

import rankfold  # noqa: E402
from rankfold import datasets  # noqa: E402
from rankfold.nmf import grid_graph
from rankfold.nmf._init import initialize as _initialize  # noqa: E402
from sklearn.decomposition import NMF as SkNMF  # noqa: E402
from sklearn.exceptions import ConvergenceWarning  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402


def load_samson():
    return datasets.load_samson(DATA_DIR / "samson")


def corrupt(X, fraction=0.05, seed=0):
    gen = np.random.default_rng(seed)
    bad = np.sort(gen.choice(X.shape[1], int(round(fraction * X.shape[1])), replace=False))
    Xc = X.copy()
    Xc[:, bad] = gen.uniform(0.0, 5.0 * X.max(), (X.shape[0], bad.size))
    return Xc, np.setdiff1d(np.arange(X.shape[1]), bad)


def scores(W, H, endmembers, abundances):
    Hn = H / np.maximum(np.linalg.norm(H, axis=1, keepdims=True), 1e-300)
    En = endmembers / np.linalg.norm(endmembers, axis=1, keepdims=True)
    angles = np.arccos(np.clip(En @ Hn.T, -1.0, 1.0))
    rows, cols = linear_sum_assignment(angles)
    A = W * H.max(axis=1)
    A = A / np.maximum(A.sum(axis=1, keepdims=True), 1e-12)
    return float(angles[rows, cols].mean()), float(np.sqrt(np.mean((A[:, cols] - abundances[:, rows]) ** 2)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    X, endmembers, abundances = load_samson()
    Xc, good = corrupt(X)
    graph = grid_graph(X, (95, 95), "F")
    common = dict(max_iter=300, tol=1e-6, n_threads=args.threads)
    methods = {
        "plain NMF (hals)": dict(solver="hals", extrapolate=False),
        "plain NMF (hals, extrapolated: the default)": dict(solver="hals"),
        "plain NMF (mu)": dict(solver="mu"),
        "SS-NMF: graph (hals)": dict(solver="hals", graph=graph, graph_reg=1e-3),
        "SS-NMF: graph (mu)": dict(solver="mu", graph=graph, graph_reg=1e-3),
        "correntropy (hals)": dict(solver="hals", robust="correntropy"),
        "correntropy (mu)": dict(solver="mu", robust="correntropy"),
    }
    results = {}
    for scene, data, bands in (("clean", X, np.arange(X.shape[1])), ("corrupted", Xc, good)):
        for seed in range(args.seeds):
            W0, Ht0 = _initialize(data, 3, "random", seed, 1, float(data.mean()))
            H0 = np.ascontiguousarray(Ht0.T)
            runs = {name: lambda p=p: rankfold.NMF(3, init="custom", **common, **p) for name, p in methods.items()}
            for sk_solver in ("cd", "mu"):
                runs[f"scikit-learn NMF ({sk_solver})"] = lambda s=sk_solver: SkNMF(
                    3, init="custom", solver=s, max_iter=300, tol=1e-6)
            for name, make in runs.items():
                model = make()
                with warnings.catch_warnings(), threadpool_limits(args.threads):
                    warnings.simplefilter("ignore", ConvergenceWarning)
                    t0 = time.perf_counter()
                    W = model.fit_transform(data, W=W0.copy(), H=H0.copy())
                    seconds = time.perf_counter() - t0
                sad, rmse = scores(W, model.components_[:, bands], endmembers[:, bands], abundances)
                results.setdefault((name, scene), []).append((sad, rmse, seconds, model.n_iter_))
    rows = []
    names = list(methods) + ["scikit-learn NMF (cd)", "scikit-learn NMF (mu)"]
    for name in names:
        row = {"method": name}
        for scene in ("clean", "corrupted"):
            r = np.median(np.array(results[(name, scene)]), axis=0)
            row[f"SAD {scene}"] = float(r[0])
            row[f"RMSE {scene}"] = float(r[1])
            row[f"s/fit {scene}"] = float(r[2])
        rows.append(row)
    cols = ["method", "SAD clean", "RMSE clean", "SAD corrupted", "RMSE corrupted", "s/fit clean",
            "s/fit corrupted"]
    print(f"Samson 9025 x 156, k=3, {args.seeds} seeds (medians), {args.threads} threads")
    print_table(rows, cols)
    per_seed = {f"{n} | {s}": v for (n, s), v in results.items()}
    path = write_json("nmf_unmixing", {"threads": args.threads, "seeds": args.seeds, "rows": rows,
                                       "per_seed": per_seed})
    print(f"wrote {path}")
    print(machine())


if __name__ == "__main__":
    main()
