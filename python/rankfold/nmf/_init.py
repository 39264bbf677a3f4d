"""Starting points of every NMF fit (random and NNDSVD/a/ar, scikit-learn's
rules, so both libraries start from the same point) and the power-of-two
rescaling that keeps extreme inputs inside the safe range; used by
``rankfold.NMF``, ``NMFk`` and ``rankfold.dask.NMF``."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import scipy.sparse as sp

from . import _engine


def initialize(X: Any, k: int, init: str, seed: int, threads: int, mean: float) -> Tuple[np.ndarray, np.ndarray]:
    """W (m x k) and Ht (n x k), C-ordered, X's dtype."""
    m, n = X.shape
    dtype = X.dtype
    rng = np.random.default_rng(seed)
    if init == "random":
        avg = np.sqrt(mean / k)
        Ht = (avg * np.abs(rng.standard_normal((n, k)))).astype(dtype)
        W = (avg * np.abs(rng.standard_normal((m, k)))).astype(dtype)
        return W, Ht
    # scikit-learn's power-iteration rule, so that both start from the same point.
    power = 7 if k < 0.1 * min(m, n) else 4
    U, S, Vt = _engine.randomized_svd(X, k, 10, power, seed, threads)
    # All components at once (array operations, not a Python loop of small
    # BLAS calls): for component j, the positive or the negative parts of
    # (u_j, v_j), whichever pair has the larger product of norms.
    V = Vt.T
    xp, xn = np.maximum(U, 0), np.maximum(-U, 0)
    yp, yn = np.maximum(V, 0), np.maximum(-V, 0)

    def norms(A: np.ndarray) -> np.ndarray:  # column norms, summed in float64 (float32 squares underflow)
        return np.sqrt(np.einsum("ij,ij->j", A, A, dtype=np.float64))

    xpn, xnn, ypn, ynn = norms(xp), norms(xn), norms(yp), norms(yn)
    mp, mn = xpn * ypn, xnn * ynn
    positive = mp > mn
    sigma = np.where(positive, mp, mn)
    lbd = np.sqrt(S.astype(np.float64) * sigma)

    def scaled(norm: np.ndarray) -> np.ndarray:  # lbd / norm, 0 where the part is empty (no overflow)
        return np.divide(lbd, norm, out=np.zeros_like(lbd), where=norm > 0)

    W = np.where(positive, xp * scaled(xpn), xn * scaled(xnn))
    Ht = np.where(positive, yp * scaled(ypn), yn * scaled(ynn))
    W[:, 0] = np.sqrt(S[0]) * np.abs(U[:, 0])
    Ht[:, 0] = np.sqrt(S[0]) * np.abs(Vt[0])
    W = np.ascontiguousarray(W, dtype=dtype)
    Ht = np.ascontiguousarray(Ht, dtype=dtype)
    eps = 1e-6
    W[W < eps] = 0
    Ht[Ht < eps] = 0
    if init == "nndsvda":
        W[W == 0] = mean
        Ht[Ht == 0] = mean
    elif init == "nndsvdar":
        W[W == 0] = np.abs(mean * rng.standard_normal(int((W == 0).sum())) / 100)
        Ht[Ht == 0] = np.abs(mean * rng.standard_normal(int((Ht == 0).sum())) / 100)
    return W, Ht


SAFE_EXPONENT = 16


def scale_exponent(A: Any) -> int:
    """0 when A's largest entry lies within 2**+-SAFE_EXPONENT (or A is all zero),
    otherwise the power of two that brings it to [1, 2)."""
    data = A.data if sp.issparse(A) else A
    if data.size == 0:
        return 0
    top = float(np.nanmax(data)) if data.dtype.kind == "f" else float(data.max())
    if not np.isfinite(top) or top <= 0:
        return 0
    e = int(np.frexp(top)[1]) - 1
    return e if abs(e) > SAFE_EXPONENT else 0


def scaled(A: Any, e: int) -> Any:
    """A 2^e in A's dtype (a copy; exact unless it under/overflows)."""
    if e == 0:
        return A
    if sp.issparse(A):
        out = A.copy()
        out.data = np.ldexp(out.data, e).astype(out.data.dtype, copy=False)
        return out
    A = np.asarray(A)
    return np.ldexp(A, e).astype(A.dtype, copy=False)
