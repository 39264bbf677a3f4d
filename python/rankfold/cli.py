"""Command line: ``rankfold --version``, ``python -m rankfold demo``."""

from __future__ import annotations

import argparse
import sys
import time
from typing import List, Optional

import numpy as np


def _timeit(fn, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def demo(args: argparse.Namespace) -> int:
    """The main job on generated data: everything the library can do so far."""
    import rankfold

    rng = np.random.default_rng(args.seed)
    print(f"rankfold {rankfold.__version__}  {rankfold.show_config()}")
    n, d, nq, k = args.n, args.dim, args.queries, 10
    print(f"\n== Exact k-NN search: {n} x {d} clustered float32 vectors, {nq} queries, k={k}")
    centers = rng.standard_normal((64, d)).astype(np.float32) * 4
    X = (centers[rng.integers(0, 64, n)] + rng.standard_normal((n, d))).astype(np.float32)
    Q = (centers[rng.integers(0, 64, nq)] + rng.standard_normal((nq, d))).astype(np.float32)

    for metric in ("l2", "ip", "cosine"):
        index = rankfold.ExactIndex(d, metric=metric).add(X)
        t = _timeit(lambda: index.search(Q, k))
        ids, dist = index.search(Q, k)
        print(f"  ExactIndex[{metric:6s}]  {nq / t:10.0f} queries/s   first query: ids {ids[0, :5]} "
              f"dist {np.round(dist[0, :3], 3)}")

    def numpy_l2():
        d2 = (Q**2).sum(1)[:, None] - 2 * Q @ X.T + (X**2).sum(1)[None, :]
        part = np.argpartition(d2, k, axis=1)[:, :k]
        return np.take_along_axis(part, np.argsort(np.take_along_axis(d2, part, 1), 1), 1)

    t_np = _timeit(numpy_l2)
    t_rf = _timeit(lambda: rankfold.knn(X, Q, k, "l2"))
    ids_rf, _ = rankfold.knn(X, Q, k, "l2")
    agree = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids_rf, numpy_l2())])
    print(f"  knn(l2) vs NumPy brute force: {t_np / t_rf:.1f}x faster, agreement {agree:.4f}")

    n_hnsw = min(n, 20_000)
    print(f"\n== HNSW approximate search: {n_hnsw} x {d} vectors, M=16, ef_construction=100")
    gt, _ = rankfold.ExactIndex(d).add(X[:n_hnsw]).search(Q, k)
    t0 = time.perf_counter()
    hnsw = rankfold.HNSWIndex(d, M=16, ef_construction=100, random_state=args.seed).add(X[:n_hnsw])
    print(f"  built in {time.perf_counter() - t0:.2f} s; {hnsw.stats()['bytes_per_vector']} bytes/vector")
    for ef in (10, 20, 50):
        t = _timeit(lambda ef=ef: hnsw.search(Q, k, ef=ef))
        ids, _ = hnsw.search(Q, k, ef=ef)
        rec = np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, gt)])
        print(f"  ef={ef:3d}: recall@{k} {rec:.3f}  {nq / t:10.0f} queries/s")
    allowed = np.arange(0, n_hnsw, 3)
    ids, _ = hnsw.search(Q, k, filter=allowed)
    print(f"  filtered to every third id: all results allowed: {bool(np.isin(ids, allowed).all())}")
    _demo_als(rng)
    print(f"\n== NMF: 2000 x 500 nonnegative data of rank 16, k=16, accelerated HALS")
    Xn = rng.random((2000, 16)) @ rng.random((16, 500)) + 0.05 * rng.random((2000, 500))
    model = rankfold.NMF(16, init="nndsvda", tol=1e-2, max_iter=300, random_state=args.seed)
    t = _timeit(lambda: model.fit(Xn))
    print(f"  fit in {t * 1e3:.0f} ms, {model.n_iter_} iterations, relative error "
          f"{model.reconstruction_err_ / np.linalg.norm(Xn):.4f}")
    print("\n== NMFk: choose the rank of 300 x 80 data of nonnegative rank 4, k = 2..7, 6 runs per k")
    Wk = rng.random((300, 4)) * (rng.random((300, 4)) < 0.5)
    Hk = rng.random((4, 80)) * (rng.random((4, 80)) < 0.5)
    t0 = time.perf_counter()
    nk = rankfold.NMFk(range(2, 8), n_perturbations=6, max_iter=300, random_state=args.seed).fit(Wk @ Hk)
    sil = " ".join(f"{s:.2f}" for s in nk.scores_["silhouette_min"])
    print(f"  chose k={nk.n_components_} in {time.perf_counter() - t0:.2f} s; min silhouettes for k=2..7: {sil}")
    print("\nDone.")
    return 0


def _demo_als(rng: np.random.Generator) -> None:
    """Matrix completion: implicit-feedback ALS on generated clustered interactions."""
    import scipy.sparse as sp

    import rankfold
    from rankfold.metrics import precision_at_k
    from rankfold.model_selection import train_test_split_interactions

    n_users, n_items, groups = 3000, 1000, 20
    print(f"\n== ALS (implicit feedback): {n_users} users x {n_items} items in {groups} taste groups")
    users = rng.integers(0, n_users, 60_000)
    own = rng.random(users.size) < 0.8  # 80% of each user's items come from the user's group
    items = np.where(own, (users % groups) + groups * rng.integers(0, n_items // groups, users.size),
                     rng.integers(0, n_items, users.size))
    X = sp.csr_matrix((np.ones(users.size, np.float32), (users, items)), shape=(n_users, n_items))
    train, test = train_test_split_interactions(X, test_size=0.2, random_state=0)
    test_users = np.flatnonzero(np.diff(test.indptr))
    for solver in ("cg", "cholesky"):
        model = rankfold.ALS(factors=32, alpha=10.0, iterations=8, solver=solver, random_state=0)
        t = _timeit(lambda: model.fit(train), repeat=1)
        ids, _ = model.recommend(test_users, n=10)
        print(f"  ALS[{solver:8s}]  {t / 8 * 1e3:7.1f} ms/iteration   precision@10 "
              f"{precision_at_k(ids, test[test_users], 10):.3f}")
    pop = np.argsort(-np.asarray(train.sum(0)).ravel())[:10]
    pop_ids = np.tile(pop, (test_users.size, 1))
    print(f"  (most-popular baseline precision@10 {precision_at_k(pop_ids, test[test_users], 10):.3f})")


def main(argv: Optional[List[str]] = None) -> int:
    from . import __version__

    parser = argparse.ArgumentParser(
        prog="rankfold",
        description="rankfold: fast NMF, matrix completion and nearest-neighbour search.",
    )
    parser.add_argument("--version", action="version", version=f"rankfold {__version__}")
    parser.add_argument("--cmake-dir", action="store_true",
                        help="print the folder of rankfoldConfig.cmake (for C++ find_package) and exit")
    parser.add_argument("--include", action="store_true", help="print the C++ include folder and exit")
    sub = parser.add_subparsers(dest="command")
    p_demo = sub.add_parser("demo", help="run the main job on generated data and print results and timings")
    p_demo.add_argument("--n", type=int, default=50_000, help="base vectors (default 50000)")
    p_demo.add_argument("--dim", type=int, default=64, help="vector dimension (default 64)")
    p_demo.add_argument("--queries", type=int, default=1000, help="queries (default 1000)")
    p_demo.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    args = parser.parse_args(argv)
    if args.cmake_dir or args.include:
        import rankfold

        print(rankfold.get_cmake_dir() if args.cmake_dir else rankfold.get_include())
        return 0
    if args.command == "demo":
        return demo(args)
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
