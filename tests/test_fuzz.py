"""The fuzz harness stays usable: its copy of the file envelope agrees with
the C++ writer, every corpus input (seeds and inputs of fixed findings) runs
clean, and a short run of the plain mutation engine finds nothing. Each run
is a subprocess with a timeout: a crash fails the test, not the suite. The
timed coverage-guided run is a CI step (.ci/run, tests/fuzz/run.py)."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import rankfold

FUZZ = Path(__file__).resolve().parent / "fuzz"
sys.path.insert(0, str(FUZZ))

from _common import KIND_EXACT, KIND_HNSW, seal, unseal  # noqa: E402


def test_envelope_matches_the_writer(rng):
    X = rng.standard_normal((37, 5)).astype(np.float32)  # payload sizes not multiples of 32
    exact = rankfold.ExactIndex(5).add(X)
    hnsw = rankfold.HNSWIndex(5, M=4, ef_construction=10, random_state=0).add(X, n_threads=1)
    for index, kind in ((exact, KIND_EXACT), (hnsw, KIND_HNSW)):
        blob = index.__getstate__()["data"]
        got_kind, payload = unseal(blob)
        assert got_kind == kind and seal(kind, payload) == blob
    # a resealed edit reaches the parser: the next id raised by one loads
    _, payload = unseal(exact.__getstate__()["data"])
    edited = bytearray(payload)
    struct.pack_into("<q", edited, 24, 38)
    loaded = rankfold.ExactIndex.__new__(rankfold.ExactIndex)
    loaded.__setstate__({"n_threads": 1, "data": seal(KIND_EXACT, bytes(edited))})
    assert loaded._impl.next_label == 38


def run_fuzz(*args, timeout=300):
    proc = subprocess.run([sys.executable, str(FUZZ / "run.py"), *args], capture_output=True, text=True,
                          timeout=timeout)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-4000:])
    return proc.stdout


@pytest.mark.parametrize("target", ["loaders", "arrays"])
def test_corpus_replays_clean(target):
    out = run_fuzz(target, "--replay")
    assert "no finding" in out


@pytest.mark.parametrize("target", ["loaders", "arrays"])
def test_short_random_run(target, tmp_path):
    out = run_fuzz(target, "--engine", "random", "--seconds", "3", "--seed", "1", "--findings", str(tmp_path))
    assert "no finding" in out
