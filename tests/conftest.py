"""Shared fixtures. Real data sets are read from RANKFOLD_DATA (default:
../shared/data beside the checkout); tests that need one skip when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

DATA_DIR = Path(os.environ.get("RANKFOLD_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))


def data_path(*parts: str) -> Path:
    """Path inside the data directory; skips the test when it is missing."""
    path = DATA_DIR.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"data set not available: {path} (set RANKFOLD_DATA)")
    return path


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(12345)


def brute_force(X: np.ndarray, Q: np.ndarray, metric: str) -> np.ndarray:
    """Exact distance matrix (nq, n) in float64, rankfold's conventions."""
    X = X.astype(np.float64)
    Q = Q.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    if metric == "l2":
        return ((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1)
    return 1.0 - Q @ X.T


def assert_valid_knn(ids: np.ndarray, dist: np.ndarray, D: np.ndarray, k: int, rtol: float = 1e-4,
                     atol: float = 1e-4) -> None:
    """ids/dist are a correct top-k of the exact distance matrix D, ties aside:
    reported distances equal the exact ones of the reported ids, they are
    sorted, ids are distinct, and nothing outside the list is closer than the
    k-th reported distance (beyond tolerance)."""
    nq, n = D.shape
    kk = min(k, n)
    assert ids.shape == (nq, k) and dist.shape == (nq, k)
    for q in range(nq):
        got = ids[q, :kk]
        assert len(set(got.tolist())) == kk
        np.testing.assert_allclose(dist[q, :kk], D[q, got], rtol=rtol, atol=atol * max(1.0, np.abs(D[q]).max()))
        assert np.all(np.diff(dist[q, :kk]) >= -atol)
        kth_true = np.sort(D[q])[kk - 1]
        assert dist[q, kk - 1] <= kth_true + atol * max(1.0, abs(kth_true)) + rtol * abs(kth_true)
        if k > n:
            assert np.all(ids[q, n:] == -1) and np.all(np.isinf(dist[q, n:]))
