"""Exact k-NN throughput: rankfold vs faiss IndexFlatL2/IndexFlatIP vs NumPy.

Same data, same process, same thread count. Prints queries per second, the
ratio rankfold / faiss, and writes bench/results/knn.json.

    python bench/knn.py                 # 100k x 128 base, 1k queries, k=10, 1 and 2 threads
    python bench/knn.py --n 20000 --quick

NumPy's OpenBLAS may be slowed by OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE in the
environment; to compare against NumPy at full speed run this command with
both unset (env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/knn.py).
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import interleaved_times, machine, print_table, ratio_of, write_json
from threadpoolctl import threadpool_limits

import rankfold


def numpy_knn(X, Q, k, metric):
    S = Q @ X.T
    D = (X * X).sum(1)[None, :] - 2 * S if metric == "l2" else -S
    part = np.argpartition(D, k - 1, axis=1)[:, :k]
    return np.take_along_axis(part, np.argsort(np.take_along_axis(D, part, 1), 1), 1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    import faiss

    rng = np.random.default_rng(0)
    X = rng.standard_normal((args.n, args.dim), dtype=np.float32)
    Q = rng.standard_normal((args.queries, args.dim), dtype=np.float32)
    repeat = 2 if args.quick else args.repeat
    rows = []
    for metric in ("l2", "ip"):
        fi = faiss.IndexFlatL2(args.dim) if metric == "l2" else faiss.IndexFlatIP(args.dim)
        fi.add(X)
        rf = rankfold.ExactIndex(args.dim, metric=metric).add(X)
        for t in args.threads:
            faiss.omp_set_num_threads(t)
            with threadpool_limits(t):
                samples = interleaved_times({
                    "rankfold": lambda: rf.search(Q, args.k, n_threads=t),
                    "faiss": lambda: fi.search(Q, args.k),
                    "numpy": lambda: numpy_knn(X, Q, args.k, metric),
                }, repeat)
            t_rf, t_faiss, t_np = (float(np.median(samples[name])) for name in ("rankfold", "faiss", "numpy"))
            ids_rf, _ = rf.search(Q, args.k, n_threads=t)
            _, ids_f = fi.search(Q, args.k)
            agree = float(np.mean([len(set(a) & set(b)) / args.k for a, b in zip(ids_rf, ids_f)]))
            gflops = 2.0 * args.n * args.queries * args.dim / t_rf / 1e9
            rows.append({"metric": metric, "threads": t, "rankfold q/s": args.queries / t_rf,
                         "faiss q/s": args.queries / t_faiss, "numpy q/s": args.queries / t_np,
                         "rankfold/faiss": ratio_of(samples, "faiss", "rankfold"),
                         "rankfold/numpy": ratio_of(samples, "numpy", "rankfold"),
                         "GFLOP/s": gflops, "agree@k": agree})
    print(f"Exact k-NN, {args.n} x {args.dim} float32 base, {args.queries} queries, k={args.k}; "
          f"medians of {repeat} interleaved rounds; ratios = median of per-round time ratios")
    print(machine())
    print_table(rows, ["metric", "threads", "rankfold q/s", "faiss q/s", "numpy q/s", "rankfold/faiss",
                       "rankfold/numpy", "GFLOP/s", "agree@k"])
    path = write_json("knn", {"args": vars(args), "rows": rows})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
