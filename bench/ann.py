"""Approximate k-NN: rankfold.HNSWIndex vs hnswlib vs faiss IndexHNSWFlat.

Same data, same process, same M and ef_construction, same thread counts.
For each data set and metric: recall@10 (against exact ground truth) vs
queries per second over an ef sweep, with 1 and 2 search threads (batch
queries); queries/s at recall@10 0.95 and 0.99 (linear interpolation between
the two sweep points around the target); build time (all threads); index
memory (resident-set growth during the build, and rankfold's own count).
faiss IndexIVFFlat is reported on the synthetic set as a reference
(--ivf). Writes bench/results/ann.json; --plot writes bench/results/ann.png.

    python bench/ann.py --quick                       # small synthetic + real sets
    python bench/ann.py --datasets synthetic --metrics l2
    python bench/ann.py --datasets synthetic --metrics ip
    python bench/ann.py --datasets sift5k minilm --plot

Data sets: "synthetic" (clustered float32, 200,000 x 128 and 1,000 queries;
--n to change), "sift5k" (sift5k-ngt: 4,500 base rows, the last 500 rows as
queries, L2), "minilm" (package-summaries-minilm: 100,000 x 384 text
embeddings, 1,000 queries, inner product; --minilm-n for a subset).
Ground truth: rankfold.ExactIndex (checked against the shipped one for minilm).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Dict, List, Optional

import numpy as np
from _common import DATA_DIR, RESULTS, machine, print_table, write_json

import rankfold

EF_SWEEP = [10, 14, 20, 28, 40, 56, 80, 112, 160, 224, 320, 448]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def clustered(n: int, d: int, nq: int, seed: int = 0):
    """Gaussian clusters of varied spread, like embedding data."""
    rng = np.random.default_rng(seed)
    n_clusters = max(10, n // 200)
    centers = rng.standard_normal((n_clusters, d)).astype(np.float32)
    spread = rng.uniform(0.2, 0.6, n_clusters).astype(np.float32)
    lab = rng.integers(0, n_clusters, n + nq)
    V = centers[lab] + spread[lab, None] * rng.standard_normal((n + nq, d), dtype=np.float32)
    return np.ascontiguousarray(V[:n]), np.ascontiguousarray(V[n:])


def load_datasets(names: List[str], args) -> List[Dict]:
    out = []
    for name in names:
        if name == "synthetic":
            X, Q = clustered(args.n, 128, args.queries)
            for metric in args.metrics:
                out.append({"name": f"synthetic-{args.n // 1000}k", "metric": metric, "X": X, "Q": Q})
        elif name == "sift5k":
            path = DATA_DIR / "sift5k-ngt" / "sift-dataset-5k.tsv"
            if not path.exists():
                print(f"skip sift5k: {path} missing")
                continue
            V = np.loadtxt(path, delimiter="\t", usecols=range(128), dtype=np.float32)
            out.append({"name": "sift5k", "metric": "l2", "X": V[:4500], "Q": V[4500:]})
        elif name == "minilm":
            folder = DATA_DIR / "package-summaries-minilm"
            if not folder.exists():
                print(f"skip minilm: {folder} missing")
                continue
            X = np.load(folder / "base.f16.npy", mmap_mode="r")[: args.minilm_n].astype(np.float32)
            Q = np.load(folder / "queries.f32.npy")
            item = {"name": f"minilm-{args.minilm_n // 1000}k", "metric": "ip", "X": X, "Q": Q}
            if args.minilm_n >= 100_000:
                item["gt_file"] = np.load(folder / "gt_ids.npy")[:, :10]
            out.append(item)
        else:
            raise SystemExit(f"unknown data set {name!r}")
    return out


def recall_at(ids: np.ndarray, gt: np.ndarray) -> float:
    k = gt.shape[1]
    hits = sum(len(set(a[:k].tolist()) & set(b.tolist())) for a, b in zip(ids, gt))
    return hits / (k * len(gt))


def at_recall(curve: List[Dict], target: float) -> Optional[float]:
    """Queries/s at a recall target, interpolated along the ef sweep."""
    pts = sorted(curve, key=lambda p: p["ef"])
    for a, b in zip(pts, pts[1:]):
        if a["recall"] >= target:
            return a["qps"]
        if a["recall"] < target <= b["recall"]:
            w = (target - a["recall"]) / (b["recall"] - a["recall"])
            return a["qps"] + w * (b["qps"] - a["qps"])
    if pts and pts[-1]["recall"] >= target:
        return pts[-1]["qps"]
    return None


class Lib:
    name = ""

    def build(self, X, metric, M, efc, threads): ...

    def search(self, Q, k, ef, threads): ...


class RankfoldLib(Lib):
    name = "rankfold"

    def build(self, X, metric, M, efc, threads):
        self.index = rankfold.HNSWIndex(X.shape[1], metric=metric, M=M, ef_construction=efc, random_state=0)
        self.index.add(X, n_threads=threads)

    def search(self, Q, k, ef, threads):
        return self.index.search(Q, k, ef=max(ef, k), n_threads=threads)[0]

    def save(self, path):
        self.index.save(path)

    def load(self, path, dim, metric):
        self.index = rankfold.HNSWIndex.load(path)


class HnswlibLib(Lib):
    name = "hnswlib"

    def build(self, X, metric, M, efc, threads):
        import hnswlib

        self.index = hnswlib.Index(space=metric, dim=X.shape[1])
        self.index.init_index(max_elements=X.shape[0], M=M, ef_construction=efc, random_seed=0)
        self.index.add_items(X, num_threads=threads)

    def search(self, Q, k, ef, threads):
        self.index.set_ef(max(ef, k))
        return self.index.knn_query(Q, k=k, num_threads=threads)[0]

    def save(self, path):
        self.index.save_index(path)

    def load(self, path, dim, metric):
        import hnswlib

        self.index = hnswlib.Index(space=metric, dim=dim)
        self.index.load_index(path)


class FaissHNSWLib(Lib):
    name = "faiss-hnsw"

    def build(self, X, metric, M, efc, threads):
        import faiss

        faiss.omp_set_num_threads(threads)
        m = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        self.index = faiss.IndexHNSWFlat(X.shape[1], M, m)
        self.index.hnsw.efConstruction = efc
        self.index.add(X)

    def search(self, Q, k, ef, threads):
        import faiss

        faiss.omp_set_num_threads(threads)
        self.index.hnsw.efSearch = max(ef, k)
        return self.index.search(Q, k)[1]

    def save(self, path):
        import faiss

        faiss.write_index(self.index, path)

    def load(self, path, dim, metric):
        import faiss

        self.index = faiss.read_index(path)


class FaissIVFLib(Lib):
    name = "faiss-ivf"
    sweep = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64]

    def build(self, X, metric, M, efc, threads):
        import faiss

        faiss.omp_set_num_threads(threads)
        nlist = int(4 * np.sqrt(X.shape[0]))
        m = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
        quant = faiss.IndexFlatL2(X.shape[1]) if metric == "l2" else faiss.IndexFlatIP(X.shape[1])
        self.index = faiss.IndexIVFFlat(quant, X.shape[1], nlist, m)
        self.index.train(X)
        self.index.add(X)
        self._quant = quant

    def search(self, Q, k, ef, threads):
        import faiss

        faiss.omp_set_num_threads(threads)
        self.index.nprobe = ef
        return self.index.search(Q, k)[1]

    def save(self, path):
        import faiss

        faiss.write_index(self.index, path)

    def load(self, path, dim, metric):
        import faiss

        self.index = faiss.read_index(path)


def build_lib(lib_name: str, X, metric: str, args, path: str) -> Dict:
    """Build one library's index in a fresh process (see run), so that the
    resident-set growth during the build is the index's memory; save it."""
    lib = LIBS[lib_name]()
    before = rss_bytes()
    t0 = time.perf_counter()
    lib.build(X, metric, args.M, args.ef_construction, max(args.threads))
    build = time.perf_counter() - t0
    info = {"build_s": build, "rss_bytes_per_vector": (rss_bytes() - before) / X.shape[0], "curves": {}}
    if lib_name == "rankfold":
        info["own_bytes_per_vector"] = lib.index.stats()["memory_bytes"] / X.shape[0]
    lib.save(path)
    return info


def run(ds: Dict, lib_names: List[str], args) -> Dict:
    """Builds each index in its own process, then loads them all here and
    times the searches round-robin (every ef and repeat runs each library in
    turn), so load changes on a shared machine hit all libraries alike."""
    import multiprocessing as mp
    import tempfile

    X, Q, metric = ds["X"], ds["Q"], ds["metric"]
    k = 10
    gt, _ = rankfold.ExactIndex(X.shape[1], metric=metric).add(X).search(Q, k)
    if "gt_file" in ds:
        print(f"  exact ground truth agrees with the shipped one: recall {recall_at(gt, ds['gt_file']):.4f}")
    result = {"dataset": ds["name"], "metric": metric, "n": int(X.shape[0]), "dim": int(X.shape[1]),
              "queries": int(Q.shape[0]), "libs": {}}
    ctx = mp.get_context("spawn")
    repeat = 3 if args.quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        libs = {}
        for name in lib_names:
            path = os.path.join(tmp, name + ".index")
            with ctx.Pool(1) as pool:
                info = pool.apply(build_lib, (name, X, metric, args, path))
            print(f"  {name}: build {info['build_s']:.1f} s, {info['rss_bytes_per_vector']:.0f} B/vector (RSS)")
            result["libs"][name] = info
            lib = LIBS[name]()
            lib.load(path, X.shape[1], metric)
            libs[name] = lib
        for t in args.threads:
            curves = {name: [] for name in libs}
            done = set()
            for step in range(len(EF_SWEEP)):
                active = [n for n in libs if n not in done]
                if not active:
                    break
                times = {n: [] for n in active}
                for _ in range(repeat):
                    for n in active:
                        ef = getattr(libs[n], "sweep", EF_SWEEP)[step]
                        t0 = time.perf_counter()
                        libs[n].search(Q, k, ef, t)
                        times[n].append(time.perf_counter() - t0)
                for n in active:
                    ef = getattr(libs[n], "sweep", EF_SWEEP)[step]
                    rec = recall_at(libs[n].search(Q, k, ef, t), gt)
                    curves[n].append({"ef": ef, "recall": rec, "qps": Q.shape[0] / float(np.median(times[n]))})
                    if rec >= 0.999:
                        done.add(n)
            for n in libs:
                result["libs"][n]["curves"][str(t)] = curves[n]
    return result


LIBS = {"rankfold": RankfoldLib, "hnswlib": HnswlibLib, "faiss-hnsw": FaissHNSWLib, "faiss-ivf": FaissIVFLib}


def summarize(results: List[Dict], args) -> List[Dict]:
    rows = []
    for r in results:
        base = r["libs"].get("hnswlib")
        for t in args.threads:
            ref95 = at_recall(base["curves"][str(t)], 0.95) if base else None
            ref99 = at_recall(base["curves"][str(t)], 0.99) if base else None
            for name, info in r["libs"].items():
                curve = info["curves"][str(t)]
                q95, q99 = at_recall(curve, 0.95), at_recall(curve, 0.99)
                rows.append({
                    "data": r["dataset"], "metric": r["metric"], "threads": t, "library": name,
                    "q/s@0.95": q95, "q/s@0.99": q99,
                    "x hnswlib@0.95": q95 / ref95 if q95 and ref95 else None,
                    "x hnswlib@0.99": q99 / ref99 if q99 and ref99 else None,
                    "max recall": max(p["recall"] for p in curve),
                    "build s": info["build_s"],
                    "build / hnswlib": info["build_s"] / base["build_s"] if base else None,
                    "B/vector (RSS)": info["rss_bytes_per_vector"],
                })
    return rows


def plot(results: List[Dict], path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return
    cols = min(3, len(results))
    rows = (len(results) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.5 * rows), squeeze=False)
    for ax in axes.flat[len(results):]:
        ax.set_visible(False)
    for ax, r in zip(axes.flat, results):
        for name, info in r["libs"].items():
            for t, curve in info["curves"].items():
                ax.plot([p["recall"] for p in curve], [p["qps"] for p in curve], marker="o", ms=3,
                        linestyle="-" if t == "1" else "--", label=f"{name} ({t} thr)")
        ax.set_yscale("log")
        ax.set_xlabel("recall@10")
        ax.set_ylabel("queries / s")
        ax.set_title(f"{r['dataset']} ({r['metric']})")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    print(f"wrote {path}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=["synthetic", "sift5k", "minilm"])
    ap.add_argument("--metrics", nargs="+", default=["l2", "ip"], help="metrics for the synthetic set")
    ap.add_argument("--n", type=int, default=200_000, help="synthetic base size")
    ap.add_argument("--minilm-n", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--M", type=int, default=16)
    ap.add_argument("--ef-construction", type=int, default=200)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--libs", nargs="+", default=["rankfold", "hnswlib", "faiss-hnsw"])
    ap.add_argument("--ivf", action="store_true", help="also faiss IndexIVFFlat (synthetic sets)")
    ap.add_argument("--quick", action="store_true", help="synthetic 30k, minilm 20k, fewer repeats")
    ap.add_argument("--plot", action="store_true")
    ap.add_argument("--out", default="ann")
    ap.add_argument("--replot", nargs="+", metavar="JSON",
                    help="only draw the curves of earlier result files into results/<out>.png")
    args = ap.parse_args()
    if args.replot:
        import json

        merged = []
        for name in args.replot:
            with open(name) as f:
                merged.extend(json.load(f)["results"])
        plot(merged, RESULTS / f"{args.out}.png")
        return
    if args.quick:
        args.n = min(args.n, 30_000)
        args.minilm_n = min(args.minilm_n, 20_000)
    results = []
    for ds in load_datasets(args.datasets, args):
        print(f"{ds['name']} ({ds['metric']}): {ds['X'].shape[0]} x {ds['X'].shape[1]}, {ds['Q'].shape[0]} queries")
        libs = list(args.libs)
        if args.ivf and ds["name"].startswith("synthetic"):
            libs.append("faiss-ivf")
        results.append(run(ds, libs, args))
    rows = summarize(results, args)
    print(f"\nHNSW M={args.M}, ef_construction={args.ef_construction}, k=10; build with {max(args.threads)} "
          f"threads; search: median of {3 if args.quick else 5} round-robin runs over {args.queries} batch queries")
    print(machine())
    print_table(rows, ["data", "metric", "threads", "library", "q/s@0.95", "q/s@0.99", "x hnswlib@0.95",
                       "x hnswlib@0.99", "max recall", "build s", "build / hnswlib", "B/vector (RSS)"])
    for r in results:
        if "rankfold" in r["libs"]:
            print(f"{r['dataset']} {r['metric']}: rankfold stats() memory "
                  f"{r['libs']['rankfold']['own_bytes_per_vector']:.0f} B/vector")
    path = write_json(args.out, {"args": vars(args), "results": results, "summary": rows})
    print(f"wrote {path}")
    if args.plot:
        plot(results, RESULTS / f"{args.out}.png")


if __name__ == "__main__":
    main()
