"""Readers for public data sets stored locally (nothing is downloaded).

MovieLens and similar sets may not be redistributed; users download them
themselves and pass the folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import scipy.sparse as sp

from ._validation import check_path

__all__ = ["MovieLens", "load_movielens", "load_samson"]


@dataclass
class MovieLens:
    """A MovieLens ratings matrix.

    ratings : csr_matrix (n_users, n_items), float32 ratings
    user_ids, item_ids : original ids of each row and column
    timestamps : csr_matrix with the same pattern, Unix seconds (int64)
    titles : item titles (None when the items file is absent)
    """

    ratings: sp.csr_matrix
    user_ids: np.ndarray
    item_ids: np.ndarray
    timestamps: sp.csr_matrix
    titles: Optional[np.ndarray]


def _read_titles(path: str, sep: str, item_ids: np.ndarray) -> Optional[np.ndarray]:
    if not os.path.exists(path):
        return None
    names = {}
    with open(path, encoding="latin-1") as f:
        for line in f:
            parts = line.rstrip("\n").split(sep)
            if len(parts) >= 2 and parts[0].strip().isdigit():
                names[int(parts[0])] = parts[1]
    return np.array([names.get(int(i), "") for i in item_ids], dtype=object)


def load_movielens(path: Any) -> MovieLens:
    """Read a MovieLens folder: 100K (``u.data``), 1M/10M (``ratings.dat``) or
    the CSV releases (``ratings.csv``). Users and items are re-indexed from 0
    in increasing order of their original ids."""
    folder = check_path(path)
    if not os.path.isdir(folder):
        raise ValueError(f"path must be a folder holding the MovieLens files, got {folder!r}")
    candidates = [("u.data", "\t", "u.item", "|"), ("ratings.dat", "::", "movies.dat", "::"),
                  ("ratings.csv", ",", "movies.csv", ",")]
    for fname, sep, items_file, items_sep in candidates:
        fpath = os.path.join(folder, fname)
        if os.path.exists(fpath):
            break
    else:
        raise ValueError(f"no MovieLens ratings file (u.data, ratings.dat or ratings.csv) in {folder!r}")
    try:
        if sep == "::":
            with open(fpath, encoding="latin-1") as f:
                raw = np.array([line.split("::") for line in f if line.strip()], dtype=np.float64)
        else:
            raw = np.loadtxt(fpath, delimiter=sep, skiprows=1 if fname.endswith(".csv") else 0,
                             dtype=np.float64, ndmin=2)
    except ValueError as exc:
        raise ValueError(f"{fpath!r} is not a MovieLens ratings file: {exc}") from None
    if raw.shape[1] < 4 or raw.shape[0] == 0:
        raise ValueError(f"{fpath!r} must have user, item, rating, timestamp columns")
    user_ids, u = np.unique(raw[:, 0].astype(np.int64), return_inverse=True)
    item_ids, i = np.unique(raw[:, 1].astype(np.int64), return_inverse=True)
    shape = (user_ids.size, item_ids.size)
    ratings = sp.csr_matrix((raw[:, 2].astype(np.float32), (u, i)), shape=shape)
    stamps = sp.csr_matrix((raw[:, 3].astype(np.int64), (u, i)), shape=shape)
    titles = _read_titles(os.path.join(folder, items_file), items_sep, item_ids)
    return MovieLens(ratings, user_ids, item_ids, stamps, titles)


def load_samson(path: Any) -> "tuple[np.ndarray, np.ndarray, np.ndarray]":
    """Read the Samson hyperspectral scene from its folder (``Samson.mat``, as
    distributed with Zhu's ground truth): returns ``(X, endmembers,
    abundances)`` as float64 arrays, X (9025 pixels x 156 bands, one row per
    pixel), endmembers (3 x 156: soil, tree, water) and abundances (9025 x 3,
    in X's pixel order)."""
    folder = check_path(path)
    fpath = os.path.join(folder, "Samson.mat")
    if not os.path.isfile(fpath):
        raise ValueError(f"path must be a folder holding Samson.mat, got {folder!r}")
    import scipy.io
    from scipy.io.matlab import MatReadError

    try:
        mat = scipy.io.loadmat(fpath)
        X = np.ascontiguousarray(mat["Y"].T, dtype=np.float64)  # rows = pixels, columns = bands
        endmembers = np.asarray(mat["GT"], dtype=np.float64)
        # S_GT's pixels run down the image columns, as Y's columns do (see the data set's README)
        abundances = np.asarray(mat["S_GT"], dtype=np.float64).reshape(-1, endmembers.shape[0], order="F")
    except (KeyError, ValueError, OSError, MatReadError) as exc:
        raise ValueError(f"{fpath} is not a readable Samson file (Y, GT, S_GT): {exc}") from exc
    if abundances.shape[0] != X.shape[0] or endmembers.shape[1] != X.shape[1]:
        raise ValueError(f"{fpath}: Y, GT and S_GT have inconsistent shapes")
    return X, endmembers, abundances
