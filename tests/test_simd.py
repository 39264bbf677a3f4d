"""Runtime SIMD dispatch: RANKFOLD_SIMD selects the level every hand-vectorised
kernel runs at, show_config reports it, and every level the CPU supports gives
exact search results equal to brute force (each level in its own subprocess,
since the variable is read once per process)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import rankfold
from rankfold import _core

LEVELS = ["generic", "avx2", "avx512"]


def supported_levels():
    cpu = rankfold.show_config()["simd_cpu"]
    return LEVELS[: LEVELS.index(cpu) + 1]


def run_python(code, simd):
    env = dict(os.environ)
    if simd is None:
        env.pop("RANKFOLD_SIMD", None)
    else:
        env["RANKFOLD_SIMD"] = simd
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


# In the child: exact search over three metrics on random data (checked
# against float64 brute force there) and on integer data (returned, so that
# the parent can compare the levels with each other).
CHILD = r"""
import json
import numpy as np
import rankfold

rng = np.random.default_rng(3)
report = {"config": rankfold.show_config(), "brute_force_ok": True, "integer": {}}
for metric in ("l2", "ip", "cosine"):
    # 1000 base vectors (not a multiple of any tile), 71 queries (partial tiles).
    X = rng.standard_normal((1000, 45)).astype(np.float32)
    Q = rng.standard_normal((71, 45)).astype(np.float32)
    X64, Q64 = X.astype(np.float64), Q.astype(np.float64)
    if metric == "cosine":
        X64 /= np.linalg.norm(X64, axis=1, keepdims=True)
        Q64 /= np.linalg.norm(Q64, axis=1, keepdims=True)
    D = ((Q64[:, None] - X64[None]) ** 2).sum(-1) if metric == "l2" else 1 - Q64 @ X64.T
    for n_threads in (1, 2):
        ids, dist = rankfold.ExactIndex(45, metric=metric).add(X).search(Q, k=15, n_threads=n_threads)
        ref = np.sort(D, axis=1)[:, :15]
        exact = np.take_along_axis(D, ids, 1)
        ok = (np.allclose(dist, exact, rtol=1e-4, atol=1e-4) and np.allclose(dist, ref, rtol=1e-4, atol=1e-4)
              and all(len(set(r)) == 15 for r in ids.tolist()))
        report["brute_force_ok"] &= bool(ok)
    Xi = rng.integers(-6, 7, (700, 20)).astype(np.float32)
    Qi = rng.integers(-6, 7, (40, 20)).astype(np.float32)
    ids, dist = rankfold.knn(Xi, Qi, k=12, metric=metric)
    report["integer"][metric] = [ids.tolist(), dist.tolist()]
    if metric == "l2":
        Di = ((Qi.astype(np.float64)[:, None] - Xi[None]) ** 2).sum(-1)
        ref = np.argsort(Di, axis=1, kind="stable")[:, :12]
        report["integer_l2_equals_argsort"] = bool(np.array_equal(ids, ref))
print(json.dumps(report))
"""


@pytest.fixture(scope="module")
def level_reports():
    reports = {}
    for level in supported_levels():
        out = run_python(CHILD, level)
        assert out.returncode == 0, out.stderr
        reports[level] = json.loads(out.stdout.strip().splitlines()[-1])
    return reports


def test_each_supported_level_is_reported_and_matches_brute_force(level_reports):
    for level, report in level_reports.items():
        cfg = report["config"]
        assert cfg["simd"] == level, (level, cfg)
        assert cfg["simd_requested"] == level
        assert cfg["simd_cpu"] == rankfold.show_config()["simd_cpu"]
        assert report["brute_force_ok"], level
        assert report["integer_l2_equals_argsort"], level


def test_levels_give_identical_results_on_exact_arithmetic(level_reports):
    # Integer data: every product and sum is exact, so all levels must return
    # the same ids (ties by lower id) and the same distances, bit for bit.
    # (Cosine normalises the vectors, so its arithmetic is not exact: it is
    # checked against brute force only.)
    levels = list(level_reports)
    for other in levels[1:]:
        for metric in ("l2", "ip"):
            assert level_reports[other]["integer"][metric] == level_reports[levels[0]]["integer"][metric], other


def test_request_above_the_cpu_is_capped_and_unset_means_best():
    cpu = rankfold.show_config()["simd_cpu"]
    code = "import rankfold; print(rankfold.show_config()['simd'])"
    out = run_python(code, "avx512")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == cpu
    for value in (None, "", "auto", " AUTO "):
        out = run_python(code, value)
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == cpu, value


def test_unknown_value_fails_the_import_with_the_reason():
    out = run_python("import rankfold", "avx3")
    assert out.returncode != 0
    assert "RANKFOLD_SIMD='avx3' is not a SIMD level" in out.stderr


def test_resolution_rule():
    # The rule itself, for any CPU: lower requests win, higher ones are capped.
    for cpu in LEVELS:
        for value in LEVELS:
            want = LEVELS[min(LEVELS.index(cpu), LEVELS.index(value))]
            assert _core.simd_resolve(value, cpu) == want
            assert _core.simd_resolve(value.upper(), cpu) == want
        assert _core.simd_resolve(None, cpu) == cpu
        assert _core.simd_resolve("auto", cpu) == cpu
    with pytest.raises(ValueError, match="not a SIMD level"):
        _core.simd_resolve("sse4", "avx2")


def test_show_config_keys():
    cfg = rankfold.show_config()
    assert cfg["simd"] in LEVELS and cfg["simd_cpu"] in LEVELS and cfg["simd_compiled"] in LEVELS
    assert LEVELS.index(cfg["simd"]) <= LEVELS.index(cfg["simd_cpu"])
    assert cfg["simd"] == _core.simd_isa()
    requested = os.environ.get("RANKFOLD_SIMD")
    assert cfg["simd_requested"] == (requested if requested else None)


def test_distance_kernels_in_each_level():
    code = r"""
import numpy as np
from rankfold import _core
rng = np.random.default_rng(0)
worst = 0.0
for d in (5, 16, 33, 64, 100, 128, 384):
    X = rng.standard_normal((40, d)).astype(np.float32)
    Y = rng.standard_normal((40, d)).astype(np.float32)
    ref = ((X.astype(np.float64) - Y) ** 2).sum(1)
    dot = (X.astype(np.float64) * Y).sum(1)
    worst = max(worst, float(np.max(np.abs(_core.paired_distances(X, Y, "l2") - ref) / ref)),
                float(np.max(np.abs(_core.paired_distances(X, Y, "dot") - dot))) / d)
print(_core.simd_isa(), worst)
"""
    for level in supported_levels():
        out = run_python(code, level)
        assert out.returncode == 0, out.stderr
        name, worst = out.stdout.split()
        assert name == level
        assert float(worst) < 1e-4
