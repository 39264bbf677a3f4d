"""Building blocks of NMFk (rank selection by the stability of NMF solutions
under perturbation): perturbation of the data, assignment-constrained
clustering of the factor columns of many runs, cosine silhouettes.

Reference: Alexandrov, Vesselinov et al., "Nonnegative tensor decomposition
with custom clustering for microphase separation of block copolymers" /
NMFk (Los Alamos); the clustering assigns exactly one column of each run to
each cluster, as a k x k assignment problem per run.
"""

from __future__ import annotations

from typing import List, Sequence, Tuple

import numpy as np
import scipy.sparse as sp
from scipy.optimize import linear_sum_assignment

from .._validation import check_choice, check_float


def perturb(X, rng: np.random.Generator, eps: float = 0.03, method: str = "uniform"):
    """A perturbed copy of nonnegative X (dense or sparse; zeros stay zero).

    "uniform": X * (1 + U(eps, 3 eps)) entrywise; "poisson": Poisson
    resampling of count data, X' ~ Poisson(X).
    """
    method = check_choice(method, "perturbation", ("uniform", "poisson"))
    eps = check_float(eps, "eps", low=0.0)
    if sp.issparse(X):
        out = X.copy()
        out.data = _perturb_values(out.data, rng, eps, method)
        out.eliminate_zeros()
        return out
    return _perturb_values(np.asarray(X), rng, eps, method)


def _perturb_values(v: np.ndarray, rng: np.random.Generator, eps: float, method: str) -> np.ndarray:
    if method == "poisson":
        return rng.poisson(v).astype(v.dtype)
    return (v * (1.0 + rng.uniform(eps, 3.0 * eps, size=v.shape))).astype(v.dtype)


def _unit_columns(W: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(W, axis=0)
    return W / np.where(norms > 0, norms, 1.0)


def align_columns(runs: Sequence[np.ndarray], max_iter: int = 100) -> Tuple[np.ndarray, np.ndarray]:
    """Cluster the k columns of each of R runs into k clusters, one column of
    every run per cluster, maximising cosine similarity to the centroids.

    Returns ``labels`` (R, k): the cluster of each run's columns, and the
    unit-norm ``centroids`` (m, k). Starts from the first run's columns and
    alternates Hungarian assignments with centroid updates until stable.
    """
    if len(runs) == 0:
        raise ValueError("runs must not be empty")
    cols = [_unit_columns(np.asarray(W, dtype=np.float64)) for W in runs]
    k = cols[0].shape[1]
    if any(c.shape != cols[0].shape for c in cols):
        raise ValueError("all runs must have the same shape")
    centroids = cols[0].copy()
    labels = np.tile(np.arange(k), (len(cols), 1))
    for _ in range(max_iter):
        new = np.empty_like(labels)
        for r, C in enumerate(cols):
            sim = centroids.T @ C  # (clusters, columns)
            rows, assigned = linear_sum_assignment(-sim)
            new[r, assigned] = rows
        acc = np.zeros_like(centroids)
        for r, C in enumerate(cols):
            acc[:, new[r]] += C
        centroids = _unit_columns(acc)
        if np.array_equal(new, labels):
            break
        labels = new
    return labels, centroids


def cluster_silhouettes(runs: Sequence[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Mean cosine silhouette of each cluster of columns (length k).

    s(i) = (b - a) / max(a, b) with a the mean cosine distance of column i to
    the other members of its cluster and b the smallest mean distance to
    another cluster. One cluster (k = 1) is perfectly stable: 1.
    """
    k = labels.shape[1]
    if k == 1:
        return np.ones(1)
    P = np.concatenate([_unit_columns(np.asarray(W, dtype=np.float64)) for W in runs], axis=1).T
    lab = np.asarray(labels).ravel()
    D = np.clip(1.0 - P @ P.T, 0.0, 2.0)
    n = len(lab)
    members: List[np.ndarray] = [np.flatnonzero(lab == c) for c in range(k)]
    # Mean distance of every point to every cluster.
    mean_to = np.stack([D[:, m].sum(axis=1) for m in members], axis=1)
    sizes = np.array([len(m) for m in members], dtype=np.float64)
    own = lab
    a = (mean_to[np.arange(n), own]) / np.maximum(sizes[own] - 1, 1)
    mean_to = mean_to / sizes[None, :]
    mean_to[np.arange(n), own] = np.inf
    b = mean_to.min(axis=1)
    denom = np.maximum(a, b)
    s = np.where(denom > 0, (b - a) / np.where(denom > 0, denom, 1.0), 0.0)
    s[sizes[own] <= 1] = 0.0
    return np.array([s[m].mean() for m in members])
