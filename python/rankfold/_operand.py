"""One description of an input matrix: validation of the matrices the
factorizations read (dense C/F-ordered or canonical CSR/CSC, native byte
order, matching index dtypes) and the (kind, arrays...) operand the C++ core
reads (``operand(X)``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ._validation import check_array, check_sparse


def native(X: Any) -> Any:
    """Native byte order (MATLAB and some file readers give big-endian arrays)."""
    if X.dtype.isnative:
        return X
    return X.astype(X.dtype.newbyteorder("="))


def check_matrix(X: Any, name: str = "X", dtype: Any = None, allow_nan: bool = False) -> Any:
    """Validated X: a C/F-ordered float array or a canonical CSR/CSC matrix.

    Messages follow scikit-learn's wording where its estimator checks look for it.
    """
    if isinstance(X, np.ndarray) or sp.issparse(X):
        X = native(X)
    shape = getattr(X, "shape", None)
    if shape is not None and len(shape) == 2 and 0 in shape:
        what = "sample(s)" if shape[0] == 0 else "feature(s)"
        raise ValueError(f"{name} has 0 {what} (shape={tuple(shape)}) while a minimum of 1 is required.")
    try:
        if sp.issparse(X):
            X = check_sparse(X, name, dtype=dtype, nonnegative=True)
            if X.indices.dtype != X.indptr.dtype:
                idx = np.result_type(X.indices.dtype, X.indptr.dtype)
                X = X.copy()
                X.indices = X.indices.astype(idx)
                X.indptr = X.indptr.astype(idx)
            return X
        if allow_nan:
            X = check_array(X, name, dtype=dtype, order=None, allow_nan=True)
            observed = X[~np.isnan(X)]
            if (observed < 0).any():
                raise ValueError(f"{name} contains negative values; it must be nonnegative")
            return X
        return check_array(X, name, dtype=dtype, order=None, nonnegative=True)
    except ValueError as exc:
        msg = str(exc)
        if "NaN" in msg:
            raise ValueError(
                f"{name} contains NaN. NMF treats NaN as a missing value only with "
                f"missing_values=np.nan (or a mask= whose weight is 0 there); otherwise impute or drop them"
            ) from None
        if "negative" in msg:
            raise ValueError(f"Negative values in data passed to NMF ({name}): {msg}") from None
        if "1-D array" in msg:
            raise ValueError(f"{msg}. Reshape your data") from None
        raise


def operand(X: Any) -> tuple:
    """The (kind, arrays...) description of X that the C++ core reads."""
    if sp.issparse(X):
        return (X.format, np.ascontiguousarray(X.indptr), np.ascontiguousarray(X.indices),
                np.ascontiguousarray(X.data), int(X.shape[0]), int(X.shape[1]))
    return ("dense", X)
