"""HNSW under churn: rounds of removing half of the index and adding as many
new vectors (into the freed slots).

Per round: recall@10 at a fixed ef of the churned rankfold.HNSWIndex, of a
fresh rankfold build of the same live set, and of hnswlib with
``mark_deleted`` + ``add_items(replace_deleted=True)`` (same M,
ef_construction, ef and threads, same run); rankfold's memory
(``stats()["memory_bytes"]``); remove and add times. After the last round:
``compact()`` time, memory before/after and recall after it. Ground truth:
rankfold.ExactIndex over the live set of each round. Writes
bench/results/ann_churn.json.

    python bench/ann_churn.py                         # minilm, 20,000 live, 20 rounds
    python bench/ann_churn.py --n 10000 --rounds 5    # quicker

Data: package-summaries-minilm (384-d text embeddings, inner product). The
index starts with base rows 0..n-1; each round removes a random half of the
live ids and adds the same number of rows not currently live (new ids; rows
are drawn from the whole 100,000-row base, so a row may come back under a new
id after it was removed). Queries: the set's 1,000 held-out queries.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from _common import DATA_DIR, machine, print_table, write_json

import rankfold

try:
    import hnswlib
except ImportError:  # the anchor is optional
    hnswlib = None


def recall(ids: np.ndarray, gt: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / gt.shape[1] for a, b in zip(ids, gt)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20_000, help="live vectors")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--fraction", type=float, default=0.5, help="share of the live ids removed per round")
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=100)
    ap.add_argument("--ef", type=int, default=40, help="search ef for every recall figure")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-hnswlib", action="store_true")
    ap.add_argument("--out", default="ann_churn")
    args = ap.parse_args()

    folder = DATA_DIR / "package-summaries-minilm"
    base = np.load(folder / "base.f16.npy", mmap_mode="r").astype(np.float32)
    Q = np.load(folder / "queries.f32.npy")
    rng = np.random.default_rng(args.seed)
    n, dim, nt = args.n, base.shape[1], args.threads
    params = dict(M=args.M, ef_construction=args.ef_construction, random_state=args.seed, n_threads=nt)

    row_of = {}  # id -> base row
    live = np.arange(n)
    for i in live:
        row_of[int(i)] = int(i)
    next_id = n
    t0 = time.perf_counter()
    index = rankfold.HNSWIndex(dim, metric="ip", **params).add(base[:n], ids=live)
    build_s = time.perf_counter() - t0
    anchor = None
    if hnswlib is not None and not args.no_hnswlib:
        anchor = hnswlib.Index(space="ip", dim=dim)
        anchor.init_index(max_elements=n, ef_construction=args.ef_construction, M=args.M, random_seed=args.seed,
                          allow_replace_deleted=True)
        anchor.set_num_threads(nt)
        anchor.add_items(base[:n], live)
        anchor.set_ef(args.ef)

    def measure(round_no: int, remove_s: float, add_s: float, anchor_remove_s: float, anchor_add_s: float):
        rows = np.array([row_of[int(i)] for i in live])
        gt = rankfold.ExactIndex(dim, metric="ip").add(base[rows], ids=live).search(Q, 10, n_threads=nt)[0]
        ids = index.search(Q, 10, ef=args.ef, n_threads=nt)[0]
        assert np.isin(ids, live).all()
        t = time.perf_counter()
        fresh = rankfold.HNSWIndex(dim, metric="ip", **params).add(base[rows], ids=live)
        fresh_s = time.perf_counter() - t
        row = {"round": round_no, "recall_churned": recall(ids, gt),
               "recall_fresh": recall(fresh.search(Q, 10, ef=args.ef, n_threads=nt)[0], gt),
               "memory_mb": index.stats()["memory_bytes"] / 1e6,
               "fresh_memory_mb": fresh.stats()["memory_bytes"] / 1e6,
               "remove_s": remove_s, "add_s": add_s, "fresh_build_s": fresh_s}
        row["gap"] = row["recall_churned"] - row["recall_fresh"]
        if anchor is not None:
            got = anchor.knn_query(Q, k=10, num_threads=nt)[0].astype(np.int64)
            row["recall_hnswlib"] = recall(got, gt)
            row["hnswlib_remove_s"] = anchor_remove_s
            row["hnswlib_add_s"] = anchor_add_s
        return row

    results = [measure(0, 0.0, build_s, 0.0, 0.0)]
    print(f"round 0: recall churned {results[0]['recall_churned']:.4f} fresh {results[0]['recall_fresh']:.4f}",
          flush=True)
    for r in range(1, args.rounds + 1):
        gone = rng.choice(live, int(len(live) * args.fraction), replace=False)
        live = np.setdiff1d(live, gone)
        used = {row_of[int(i)] for i in live}
        free_rows = np.setdiff1d(np.arange(base.shape[0]), np.fromiter(used, dtype=np.int64))
        rows = rng.choice(free_rows, len(gone), replace=False)
        new = np.arange(next_id, next_id + len(gone))
        next_id += len(gone)
        for i, row in zip(new, rows):
            row_of[int(i)] = int(row)
        for i in gone:
            del row_of[int(i)]
        t = time.perf_counter()
        index.remove(gone)
        remove_s = time.perf_counter() - t
        t = time.perf_counter()
        index.add(base[rows], ids=new)
        add_s = time.perf_counter() - t
        a_rm = a_add = 0.0
        if anchor is not None:
            t = time.perf_counter()
            for i in gone:
                anchor.mark_deleted(int(i))
            a_rm = time.perf_counter() - t
            t = time.perf_counter()
            anchor.add_items(base[rows], new, replace_deleted=True)
            a_add = time.perf_counter() - t
        live = np.concatenate([live, new])
        results.append(measure(r, remove_s, add_s, a_rm, a_add))
        row = results[-1]
        print(f"round {r}: churned {row['recall_churned']:.4f} fresh {row['recall_fresh']:.4f} "
              f"hnswlib {row.get('recall_hnswlib', float('nan')):.4f} remove {remove_s:.2f}s add {add_s:.2f}s",
              flush=True)

    # Compaction: drop the freed slots of one more removal.
    gone = rng.choice(live, int(len(live) * args.fraction), replace=False)
    index.remove(gone)
    live = np.setdiff1d(live, gone)
    for i in gone:
        del row_of[int(i)]
    mem_before = index.stats()["memory_bytes"]
    t = time.perf_counter()
    index.compact()
    compact_s = time.perf_counter() - t
    rows = np.array([row_of[int(i)] for i in live])
    gt = rankfold.ExactIndex(dim, metric="ip").add(base[rows], ids=live).search(Q, 10, n_threads=nt)[0]
    compact = {"live": int(len(live)), "memory_before_mb": mem_before / 1e6,
               "memory_after_mb": index.stats()["memory_bytes"] / 1e6, "compact_s": compact_s,
               "recall_after": recall(index.search(Q, 10, ef=args.ef, n_threads=nt)[0], gt)}

    cols = ["round", "recall_churned", "recall_fresh", "gap", "recall_hnswlib", "memory_mb", "remove_s", "add_s",
            "hnswlib_remove_s", "hnswlib_add_s", "fresh_build_s"]
    print_table(results, cols)
    print(f"compact: {compact}")
    path = write_json(args.out, {"dataset": "package-summaries-minilm", "metric": "ip", "n": n,
                                 "rounds": args.rounds, "fraction": args.fraction, "M": args.M,
                                 "ef_construction": args.ef_construction, "ef": args.ef, "threads": nt,
                                 "config": rankfold.show_config(), "machine_short": machine()["cpu"],
                                 "hnswlib": getattr(hnswlib, "__version__", None) if anchor is not None else None,
                                 "rounds_table": results, "compact": compact})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
