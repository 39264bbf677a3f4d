"""Implicit-feedback ALS: rankfold vs implicit (same run, same data, float32, 64 factors).

For CiteULike (the data set's own train/test split), MovieLens 100K as
implicit feedback (ratings as confidences, per-user 80/20 holdout) and a
synthetic power-law matrix (50,000 users x 20,000 items, 2,500,000
binary interactions, per-user 80/20 holdout: ~2,000,000 to train on) it prints seconds per ALS iteration for both
libraries (CG against CG, Cholesky against Cholesky) with 1 and 2 threads,
precision@10 and nDCG@10 of the fitted models, and the throughput of `recommend` for all
users (n = 10, seen items filtered). For explicit ratings it prints fit time
and test RMSE on MovieLens 100K next to scikit-surprise's SVD and SVD++. Seconds per iteration are the median of
the per-iteration times after the first iteration (both libraries report
them through their fit callbacks; rankfold's includes its loss evaluation,
implicit's does not compute a loss), then the median over --repeat fits that
alternate between the libraries. A second table shows the time per
iteration of both rankfold solvers as the rank grows (k = 16, 64, 256).

    python bench/als.py            # default: 5 iterations per fit, 3 repeats
    python bench/als.py --quick    # 3 iterations, 1 repeat, no rank-growth table

implicit's alpha scales confidences as alpha * r, rankfold's as 1 + alpha * r
(Hu, Koren & Volinsky); both get the same numbers here. Writes
bench/results/als.json.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
from _common import DATA_DIR, machine, median_time, print_table, write_json
from threadpoolctl import threadpool_limits

import rankfold
from rankfold.datasets import load_movielens
from rankfold.metrics import ndcg_at_k, precision_at_k
from rankfold.model_selection import train_test_split_interactions

SETTINGS = dict(factors=64, regularization=0.01, alpha=20.0)


def citeulike():
    folder = DATA_DIR / "citeulike-implicit"
    tr = np.loadtxt(folder / "train.txt", dtype=np.int64)
    te = np.loadtxt(folder / "test.txt", dtype=np.int64)
    shape = (int(max(tr[:, 0].max(), te[:, 0].max())) + 1, int(max(tr[:, 1].max(), te[:, 1].max())) + 1)
    train = sp.csr_matrix((np.ones(len(tr), np.float32), (tr[:, 0], tr[:, 1])), shape=shape)
    test = sp.csr_matrix((np.ones(len(te), np.float32), (te[:, 0], te[:, 1])), shape=shape)
    return train, test


def movielens():
    ml = load_movielens(DATA_DIR / "movielens-100k")
    return train_test_split_interactions(ml.ratings, test_size=0.2, random_state=0)


def power_law(n_users=50_000, n_items=20_000, n_train=2_000_000, clusters=50, seed=0):
    """Zipf-like user activity and item popularity, with cluster structure:
    half of each user's interactions come from items of the user's cluster.
    Binary interactions, about n_train in the training part (80%)."""
    rng = np.random.default_rng(seed)
    wu = 1.0 / np.arange(1, n_users + 1) ** 0.7
    wi = 1.0 / np.arange(1, n_items + 1) ** 0.9
    rng.shuffle(wu)
    rng.shuffle(wi)
    item_cluster = rng.integers(0, clusters, n_items)
    order = np.argsort(item_cluster, kind="stable")
    cum = np.concatenate([[0.0], np.cumsum(wi[order])])
    bounds = np.searchsorted(item_cluster[order], np.arange(clusters + 1))
    user_cluster = rng.integers(0, clusters, n_users)
    target = int(n_train / 0.8)
    keys = np.empty(0, dtype=np.int64)
    while keys.size < target:
        m = 1_000_000
        users = rng.choice(n_users, m, p=wu / wu.sum())
        items = rng.choice(n_items, m, p=wi / wi.sum())
        local = rng.random(m) < 0.5
        c = user_cluster[users[local]]
        lo, hi = cum[bounds[c]], cum[bounds[c + 1]]
        pos = np.searchsorted(cum, lo + rng.random(c.size) * (hi - lo), side="right") - 1
        items[local] = order[np.clip(pos, 0, n_items - 1)]
        keys = np.unique(np.concatenate([keys, users.astype(np.int64) * n_items + items]))
    keys = rng.permutation(keys)[:target]
    users, items = np.divmod(keys, n_items)
    X = sp.csr_matrix((np.ones(keys.size, np.float32), (users, items)), shape=(n_users, n_items))
    return train_test_split_interactions(X, test_size=0.2, random_state=seed)


def fit_rankfold(train, solver, threads, iterations, factors=None):
    stamps = []
    kw = dict(SETTINGS)
    if factors is not None:
        kw["factors"] = factors
    model = rankfold.ALS(iterations=iterations, solver=solver, n_threads=threads, random_state=0,
                         callback=lambda it, loss: stamps.append(time.perf_counter()), **kw)
    model.fit(train)
    per_iter = np.diff(stamps)
    return model, float(np.median(per_iter)) if per_iter.size else float("nan")


def fit_implicit(train, solver, threads, iterations):
    from implicit.cpu.als import AlternatingLeastSquares

    times = []
    with threadpool_limits(1):  # implicit warns unless BLAS is limited to one thread
        model = AlternatingLeastSquares(iterations=iterations, use_cg=solver == "cg", num_threads=threads,
                                        random_state=0, calculate_training_loss=False, **SETTINGS)
        model.fit(train, show_progress=False, callback=lambda it, elapsed, loss: times.append(elapsed))
    return model, float(np.median(times[1:]))


def explicit_section(quick):
    """Explicit ratings on MovieLens 100K (seeded 80/20 random split): rankfold
    ALS (weighted-lambda, biases) against scikit-surprise's SVD and SVD++."""
    ml = load_movielens(DATA_DIR / "movielens-100k")
    train, test = train_test_split_interactions(ml.ratings, test_size=0.2, random_state=0, per_user=False)
    u, i = test.nonzero()
    truth = np.asarray(test[u, i]).ravel().astype(np.float64)
    rows = []
    for solver in ("cg", "cholesky"):
        for t in (1, 2):
            model = rankfold.ALS(factors=64, feedback="explicit", biases=True, regularization=0.12, iterations=15,
                                 solver=solver, n_threads=t, random_state=0)
            t0 = time.perf_counter()
            model.fit(train)
            fit_s = time.perf_counter() - t0
            rows.append(dict(model=f"rankfold ALS {solver} (k=64, 15 it)", threads=t, fit_s=fit_s,
                             rmse=float(np.sqrt(np.mean((model.predict(u, i) - truth) ** 2)))))
    try:
        from surprise import SVD, Dataset, Reader, SVDpp
    except ImportError:
        print("scikit-surprise is not installed: explicit comparison skipped")
        return rows
    import tempfile

    tu, ti = train.nonzero()
    tr = np.asarray(train[tu, ti]).ravel()
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/train.tsv"
        np.savetxt(path, np.c_[tu, ti, tr], fmt="%d\t%d\t%g")
        data = Dataset.load_from_file(path, Reader(line_format="user item rating", sep="\t", rating_scale=(1, 5)))
        trainset = data.build_full_trainset()
    algos = [("surprise SVD (defaults)", SVD(random_state=0))]
    if not quick:
        algos.append(("surprise SVD++ (defaults)", SVDpp(random_state=0)))
    for name, algo in algos:
        t0 = time.perf_counter()
        algo.fit(trainset)
        fit_s = time.perf_counter() - t0
        pred = np.array([algo.predict(str(a), str(b)).est for a, b in zip(u, i)])
        rows.append(dict(model=name, threads=1, fit_s=fit_s, rmse=float(np.sqrt(np.mean((pred - truth) ** 2)))))
    return rows


def precision(ids, test, users):
    return precision_at_k(ids, test[users], 10)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 iterations per fit, no rank-growth table")
    ap.add_argument("--iterations", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=None, help="fits per setting (median); default 3, 1 with --quick")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--datasets", nargs="+", default=["citeulike", "movielens", "powerlaw"])
    args = ap.parse_args()
    iterations = args.iterations or (3 if args.quick else 5)
    repeat = args.repeat or (1 if args.quick else 3)
    loaders = {"citeulike": citeulike, "movielens": movielens, "powerlaw": power_law}
    rows, rec_rows = [], []
    for name in args.datasets:
        train, test = loaders[name]()
        users = np.flatnonzero(np.diff(test.indptr))
        print(f"# {name}: {train.shape[0]} x {train.shape[1]}, {train.nnz} training interactions, "
              f"{users.size} test users", flush=True)
        for solver in ("cg", "cholesky"):
            for t in args.threads:
                # alternate the libraries over the repeats so both see the same machine load
                times_im, times_rf = [], []
                for _ in range(repeat):
                    m_im, t_im = fit_implicit(train, solver, t, iterations)
                    m_rf, t_rf = fit_rankfold(train, solver, t, iterations)
                    times_im.append(t_im)
                    times_rf.append(t_rf)
                t_im, t_rf = float(np.median(times_im)), float(np.median(times_rf))
                row = dict(dataset=name, solver=solver, threads=t, implicit_s_per_iter=t_im,
                           rankfold_s_per_iter=t_rf, speedup=t_im / t_rf)
                if t == args.threads[0]:
                    with threadpool_limits(1):
                        ids_im, _ = m_im.recommend(users, train[users], N=10, filter_already_liked_items=True)
                    ids_rf, _ = m_rf.recommend(users, n=10)
                    row.update(implicit_p_at_10=precision(ids_im, test, users),
                               rankfold_p_at_10=precision(ids_rf, test, users),
                               implicit_ndcg_at_10=ndcg_at_k(ids_im, test[users], 10),
                               rankfold_ndcg_at_10=ndcg_at_k(ids_rf, test[users], 10))
                rows.append(row)
                print(row, flush=True)
                if solver == "cg":
                    all_users = np.arange(train.shape[0])
                    m_im.num_threads = t
                    with threadpool_limits(1):
                        r_im = median_time(lambda: m_im.recommend(all_users, train, N=10,
                                                                  filter_already_liked_items=True), repeat, warmup=0)
                    r_rf = median_time(lambda: m_rf.recommend(all_users, n=10, n_threads=t), repeat, warmup=0)
                    rec_rows.append(dict(dataset=name, threads=t, implicit_users_per_s=all_users.size / r_im,
                                         rankfold_users_per_s=all_users.size / r_rf, speedup=r_im / r_rf))
    print(f"\nImplicit ALS, float32, factors={SETTINGS['factors']}, iterations={iterations} per fit "
          "(seconds per iteration: median after the first)")
    print_table(rows, ["dataset", "solver", "threads", "implicit_s_per_iter", "rankfold_s_per_iter", "speedup",
                       "implicit_p_at_10", "rankfold_p_at_10", "implicit_ndcg_at_10", "rankfold_ndcg_at_10"])
    print("\nrecommend(all users, n=10, filter seen)")
    print_table(rec_rows, ["dataset", "threads", "implicit_users_per_s", "rankfold_users_per_s", "speedup"])
    explicit_rows = explicit_section(args.quick) if "movielens" in args.datasets else []
    if explicit_rows:
        print("\nExplicit ratings, MovieLens 100K, seeded 80/20 random split (test RMSE)")
        print_table(explicit_rows, ["model", "threads", "fit_s", "rmse"])
    growth = []
    if not args.quick and "citeulike" in args.datasets:
        train, _ = citeulike()
        for k in (16, 64, 256):
            for solver in ("cg", "cholesky"):
                _, t_rf = fit_rankfold(train, solver, args.threads[-1], 3, factors=k)
                growth.append(dict(k=k, solver=solver, threads=args.threads[-1], rankfold_s_per_iter=t_rf))
        print("\nrankfold time per iteration as the rank grows (CiteULike)")
        print_table(growth, ["k", "solver", "threads", "rankfold_s_per_iter"])
    name = "als" if args.datasets == ap.get_default("datasets") else "als_" + "_".join(args.datasets)
    path = write_json(name, dict(settings=dict(SETTINGS, iterations=iterations), fit=rows, recommend=rec_rows,
                                  explicit=explicit_rows, rank_growth=growth))
    print(f"\nwrote {path}; machine: {machine()}")


if __name__ == "__main__":
    main()
