"""Write the seed corpus of the fuzz targets (tests/fuzz/corpus/TARGET/seed-*).

    python tests/fuzz/make_corpus.py

Seeds are small valid inputs: index files of every kind and metric (a few
dozen 4-dimensional vectors, removed items, empty indexes) in each loader mode,
and for the array target one decision string per entry point. Inputs of fixed
findings are kept beside them as finding-* files and are never rewritten here.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _common import unseal  # noqa: E402

import rankfold  # noqa: E402
from fuzz_arrays import CALLS  # noqa: E402
from fuzz_loaders import MODES  # noqa: E402


def index_files() -> dict:
    rng = np.random.default_rng(7)
    X = rng.standard_normal((40, 4)).astype(np.float32)
    out = {}
    for metric in rankfold.ann.METRICS:
        h = rankfold.HNSWIndex(4, metric=metric, M=4, ef_construction=16, random_state=1, n_threads=1)
        h.add(X[:24], n_threads=1)
        if metric == "ip":
            h.remove([3, 5, 8])
        out[f"hnsw-{metric}"] = h.__getstate__()["data"]
        e = rankfold.ExactIndex(4, metric=metric)
        e.add(X[:10], ids=np.arange(100, 110) if metric == "l2" else None)
        out[f"exact-{metric}"] = e.__getstate__()["data"]
    out["hnsw-empty"] = rankfold.HNSWIndex(3, M=2, ef_construction=4).__getstate__()["data"]
    out["exact-empty"] = rankfold.ExactIndex(3).__getstate__()["data"]
    big = rankfold.HNSWIndex(2, M=2, ef_construction=8, random_state=3, n_threads=1)
    big.add(rng.standard_normal((60, 2)).astype(np.float32), n_threads=1)  # several levels
    out["hnsw-levels"] = big.__getstate__()["data"]
    return out


def loader_seeds() -> dict:
    seeds = {}
    for name, blob in index_files().items():
        kind = name.split("-")[0]
        _, payload = unseal(blob)
        for mode_id, mode in enumerate(MODES):
            if not mode.replace("raw-", "").startswith(kind):
                continue
            body = blob if mode.startswith("raw-") else payload
            if mode.endswith("-header"):
                if name not in ("hnsw-l2", "hnsw-levels", "exact-l2"):
                    continue
                body = bytes([3, 255]) + payload  # ef_construction (exact: count), nudged by +7
            if mode.startswith("raw-") or mode.endswith(("file", "mmap")):
                if name not in ("hnsw-l2", "exact-l2"):
                    continue  # one seed per mode is enough for the raw and file paths
            seeds[f"{name}-{mode}"] = bytes([mode_id]) + body
    return seeds


def array_seeds() -> dict:
    rng = np.random.default_rng(11)
    seeds = {}
    for i, call in enumerate(CALLS):
        for j in range(3):
            # call, form=ndarray, 2-D, shape (3..6, 2..4), values, dtype float64/float32/int, C layout, then noise
            head = [i, 0, 0, 3 + j, 2 + j]
            vals = rng.integers(100, 160, size=(3 + j) * (2 + j)).tolist()
            tail = rng.integers(0, 256, size=48).tolist()
            seeds[f"{call.__name__[5:]}-{j}"] = bytes(head + vals + [j, 0] + tail)
    return seeds


def main() -> None:
    for target, seeds in (("loaders", loader_seeds()), ("arrays", array_seeds())):
        folder = HERE / "corpus" / target
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("seed-*"):
            old.unlink()
        for name, data in seeds.items():
            (folder / f"seed-{name}").write_bytes(data)
        print(f"{target}: {len(seeds)} seeds, {sum(map(len, seeds.values()))} bytes in {folder}")


if __name__ == "__main__":
    main()
