"""Exact k-NN throughput: rankfold vs faiss IndexFlatL2/IndexFlatIP (vs NumPy).

Same data, same process, same thread count, timed in interleaved rounds
(rankfold, faiss, rankfold, faiss, ...). Prints queries per second, the median
of the per-round ratios rankfold / faiss, the CPU and the active SIMD path, and
writes bench/results/knn.json.

    python bench/knn.py                          # all sets below, 1 and 2 threads
    python bench/knn.py --datasets synthetic --quick
    RANKFOLD_SIMD=generic python bench/knn.py    # another dispatch level

Data sets: "synthetic" (100k x 128 standard normal float32, 1k queries, l2 and
ip, also against a NumPy brute force), "minilm" (package-summaries-minilm:
100,000 x 384 sentence embeddings, 1,000 queries, ip and cosine; faiss runs
IndexFlatIP on normalised vectors for cosine), "sift5k" (sift5k-ngt: 4,500
base rows, the last 500 rows as queries, l2). Real sets are read from
RANKFOLD_DATA (default ../shared/data).

NumPy's OpenBLAS may be slowed by OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE in the
environment; to compare against NumPy at full speed run this command with
both unset (env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/knn.py).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import DATA_DIR, interleaved_times, machine, print_table, ratio_of, write_json
from threadpoolctl import threadpool_limits

import rankfold


def numpy_knn(X, Q, k, metric):
    S = Q @ X.T
    D = (X * X).sum(1)[None, :] - 2 * S if metric == "l2" else -S
    part = np.argpartition(D, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(np.take_along_axis(D, part, 1), 1), 1)


def load_sets(args):
    out = []
    for name in args.datasets:
        if name == "synthetic":
            rng = np.random.default_rng(0)
            X = rng.standard_normal((args.n, args.dim), dtype=np.float32)
            Q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
            out.append({"name": f"synthetic-{args.n // 1000}k x {args.dim}", "X": X, "Q": Q,
                        "metrics": ["l2", "ip"], "numpy": True})
        elif name == "minilm":
            folder = DATA_DIR / "package-summaries-minilm"
            if not folder.exists():
                print(f"skip minilm: {folder} missing")
                continue
            X = np.load(folder / "base.f16.npy")[: args.minilm_n].astype(np.float32)
            Q = np.load(folder / "queries.f32.npy")[: args.queries]
            out.append({"name": f"minilm-{len(X) // 1000}k x 384", "X": X, "Q": Q, "metrics": ["ip", "cosine"],
                        "numpy": False})
        elif name == "sift5k":
            path = DATA_DIR / "sift5k-ngt" / "sift-dataset-5k.tsv"
            if not path.exists():
                print(f"skip sift5k: {path} missing")
                continue
            V = np.loadtxt(path, delimiter="\t", usecols=range(128), dtype=np.float32)
            out.append({"name": "sift5k (4.5k x 128)", "X": V[:4500], "Q": V[4500:], "metrics": ["l2"],
                        "numpy": False})
        else:
            raise SystemExit(f"unknown data set {name!r}")
    return out


def faiss_index(faiss, X, metric):
    d = X.shape[1]
    if metric == "l2":
        index = faiss.IndexFlatL2(d)
    else:
        index = faiss.IndexFlatIP(d)
        if metric == "cosine":
            X = X / np.linalg.norm(X, axis=1, keepdims=True)
    index.add(np.ascontiguousarray(X, dtype=np.float32))
    return index


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "minilm", "sift5k"])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--minilm-n", type=int, default=100_000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--quick", action="store_true", help="3 rounds")
    args = ap.parse_args()
    import faiss

    repeat = 3 if args.quick else args.repeat
    config = rankfold.show_config()
    rows = []
    for ds in load_sets(args):
        X, Q = ds["X"], ds["Q"]
        nq = len(Q)
        for metric in ds["metrics"]:
            fi = faiss_index(faiss, X, metric)
            rf = rankfold.ExactIndex(X.shape[1], metric=metric).add(X)
            Qf = Q / np.linalg.norm(Q, axis=1, keepdims=True) if metric == "cosine" else Q
            for t in args.threads:
                faiss.omp_set_num_threads(t)
                fns = {
                    "rankfold": lambda: rf.search(Q, args.k, n_threads=t),
                    # faiss gets pre-normalised queries for cosine: its users normalise once, outside.
                    "faiss": lambda: fi.search(Qf, args.k),
                }
                if ds["numpy"]:
                    fns["numpy"] = lambda: numpy_knn(X, Q, args.k, metric)
                with threadpool_limits(t):
                    samples = interleaved_times(fns, repeat)
                med = {name: float(np.median(v)) for name, v in samples.items()}
                ids_rf, _ = rf.search(Q, args.k, n_threads=t)
                _, ids_f = fi.search(Qf, args.k)
                agree = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids_rf, ids_f)]))
                row = {"data": ds["name"], "metric": metric, "threads": t,
                       "rankfold q/s": nq / med["rankfold"], "faiss q/s": nq / med["faiss"],
                       "rankfold/faiss": ratio_of(samples, "faiss", "rankfold"),
                       "min ratio": float(np.min(np.array(samples["faiss"]) / np.array(samples["rankfold"]))),
                       "max ratio": float(np.max(np.array(samples["faiss"]) / np.array(samples["rankfold"]))),
                       "GFLOP/s": 2.0 * len(X) * nq * X.shape[1] / med["rankfold"] / 1e9, "agree@k": agree}
                if "numpy" in med:
                    row["numpy q/s"] = nq / med["numpy"]
                    row["rankfold/numpy"] = ratio_of(samples, "numpy", "rankfold")
                rows.append(row)
                print(f"  {ds['name']} {metric} {t} thread(s): {row['rankfold q/s']:.0f} vs {row['faiss q/s']:.0f} "
                      f"q/s, ratio {row['rankfold/faiss']:.2f}", flush=True)
    info = machine()
    print(f"\nExact k-NN, k={args.k}; medians of {repeat} interleaved rounds; ratio = median of per-round time "
          f"ratios faiss / rankfold (min, max over rounds)")
    print(f"CPU: {info['cpu']} ({info['cores']} cores); rankfold SIMD path: {config['simd']} "
          f"(CPU best {config['simd_cpu']}, compiled for {config['simd_compiled']}); faiss {faiss.__version__}")
    print(info)
    print_table(rows, ["data", "metric", "threads", "rankfold q/s", "faiss q/s", "rankfold/faiss", "min ratio",
                       "max ratio", "numpy q/s", "rankfold/numpy", "GFLOP/s", "agree@k"])
    path = write_json("knn", {"args": vars(args), "simd": config, "faiss": faiss.__version__, "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
