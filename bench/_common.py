"""Shared helpers for the benchmarks: timing, machine facts, tables, JSON."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np

import rankfold

DATA_DIR = Path(os.environ.get("RANKFOLD_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
RESULTS = Path(__file__).resolve().parent / "results"


def median_time(fn: Callable[[], object], repeat: int = 5, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def interleaved_times(fns: Dict[str, Callable[[], object]], repeat: int = 5,
                      warmup: int = 1) -> Dict[str, List[float]]:
    """Times several functions in turns (a, b, c, a, b, c, ...), so that a load
    change on a shared machine hits all of them alike; returns all samples.
    Compare with the median of per-round ratios (see ratio_of)."""
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    samples: Dict[str, List[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - t0)
    return samples


def ratio_of(samples: Dict[str, List[float]], slow: str, fast: str) -> float:
    """Median over rounds of time(slow) / time(fast)."""
    return float(np.median(np.array(samples[slow]) / np.array(samples[fast])))


def machine() -> Dict[str, object]:
    cpu = platform.processor() or ""
    # Virtual machines often hide the model ("AMD EPYC"): keep family/model
    # (AMD family 25 model 1 = Zen 3 Milan) and the SIMD flags too.
    fields: Dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if not line.strip():
                    break
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" in fields:
        cpu = fields["model name"]
    flags = set(fields.get("flags", "").split())
    cpu_id = f"family {fields['cpu family']} model {fields['model']}" if "cpu family" in fields else ""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    info: Dict[str, object] = {"cpu": cpu, "cpu_id": cpu_id,
                               "simd_flags": [f for f in ("avx2", "fma", "avx512f") if f in flags],
                               "simd": rankfold.show_config()["simd"],
                               "cores": os.cpu_count(), "commit": commit,
                               "date": time.strftime("%Y-%m-%d")}
    try:
        from threadpoolctl import threadpool_info

        info["blas"] = [f"{p.get('internal_api')} {p.get('version')} ({p.get('architecture')})"
                        for p in threadpool_info() if p.get("user_api") == "blas"]
    except ImportError:
        pass
    return info


def print_table(rows: List[Dict[str, object]], columns: List[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(v: object) -> str:
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"
    return "" if v is None else str(v)


def write_json(name: str, payload: Dict[str, object]) -> Path:
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"{name}.json"
    with open(path, "w") as f:
        json.dump({"machine": machine(), **payload}, f, indent=2)
    return path
