"""Splitting interaction matrices into train and test parts."""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np
import scipy.sparse as sp

from ._validation import check_float, check_random_state, check_sparse

__all__ = ["train_test_split_interactions"]


def train_test_split_interactions(user_items: Any, test_size: float = 0.2, random_state: Any = None,
                                  per_user: bool = True) -> Tuple[sp.csr_matrix, sp.csr_matrix]:
    """Split the stored entries of a users x items matrix into train and test.

    ``per_user=True`` holds out ``round(test_size * n_u)`` random entries of
    every user with at least two entries (always leaving one in train), so
    every test user is known at training time. ``per_user=False`` holds out a
    uniformly random ``test_size`` fraction of all entries. Both matrices are
    CSR with the input's shape and dtype; the split is reproducible for a
    given ``random_state``. Duplicates are summed first.
    """
    X = check_sparse(user_items, "user_items", formats=("csr",))
    test_size = check_float(test_size, "test_size", low=0.0, high=1.0)
    if not 0.0 < test_size < 1.0:
        raise ValueError(f"test_size must be strictly between 0 and 1, got {test_size}")
    if not isinstance(per_user, (bool, np.bool_)):
        raise TypeError(f"per_user must be a bool, got {per_user!r}")
    rng = np.random.default_rng(check_random_state(random_state))
    X = X.tocsr()
    X.sort_indices()
    nnz = X.nnz
    rows = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    key = rng.random(nnz)
    if per_user:
        # rank of each entry within its row in a random order
        order = np.lexsort((key, rows))
        rank = np.empty(nnz, dtype=np.int64)
        starts = X.indptr[:-1][rows[order]]
        rank[order] = np.arange(nnz) - starts
        n_u = np.diff(X.indptr)
        n_test = np.where(n_u >= 2, np.minimum(np.round(test_size * n_u), n_u - 1), 0).astype(np.int64)
        is_test = rank < n_test[rows]
    else:
        is_test = key < test_size
    cols = X.indices
    train = sp.csr_matrix((X.data[~is_test], (rows[~is_test], cols[~is_test])), shape=X.shape, dtype=X.dtype)
    test = sp.csr_matrix((X.data[is_test], (rows[is_test], cols[is_test])), shape=X.shape, dtype=X.dtype)
    return train, test
