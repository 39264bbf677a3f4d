"""Input validation shared by every public entry point.

Policy
------
* float32 and float64 arrays are kept as they are; other real numeric types
  (integers, booleans, float16) are converted once, to float64 (float16 to
  float32); complex, object and string data raise ``TypeError``.
* Shapes, finiteness and value ranges are checked here, once, and every
  message names the offending argument. The C++ core re-checks its own
  preconditions, but users should only ever see these messages.
"""

from __future__ import annotations

import errno
import numbers
import os
import sys
import warnings
from typing import Any, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from . import _core

FLOAT_DTYPES = (np.float32, np.float64)


def _float_dtype_for(dtype: np.dtype, name: str) -> np.dtype:
    if dtype in (np.float32, np.float64):
        return dtype
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    raise TypeError(
        f"{name} must hold real numbers (float32 or float64; integers are converted), "
        f"got dtype {dtype}"
    )


def check_array(
    X: Any,
    name: str,
    *,
    ndim: int = 2,
    dtype: Optional[Any] = None,
    order: Optional[str] = "C",
    allow_nan: bool = False,
    allow_inf: bool = False,
    nonnegative: bool = False,
    min_rows: int = 1,
    min_cols: int = 1,
    n_cols: Optional[int] = None,
    copy: bool = False,
) -> np.ndarray:
    """Validate a dense array and return it as a float32/float64 ndarray.

    ``dtype`` forces a float dtype (converted once); ``order`` asks for a memory
    layout ("C", "F", or None to keep C or F order as given).
    """
    if sp.issparse(X):
        raise TypeError(f"{name} must be a dense array here, got a scipy.sparse matrix")
    if isinstance(X, (str, bytes)) or X is None:
        raise TypeError(f"{name} must be an array of numbers, got {type(X).__name__}")
    try:
        arr = np.asarray(X)
    except Exception as exc:  # ragged lists and other non-arrays
        raise TypeError(f"{name} must be an array of numbers: {exc}") from None
    target = np.dtype(dtype) if dtype is not None else _float_dtype_for(arr.dtype, name)
    if dtype is not None:
        _float_dtype_for(arr.dtype, name)  # reject non-numeric input before casting
    if arr.ndim != ndim:
        if ndim == 2 and arr.ndim == 1:
            raise ValueError(
                f"{name} must be a 2-D array, got a 1-D array of shape {arr.shape}; "
                f"use reshape(1, -1) for a single sample or reshape(-1, 1) for a single feature"
            )
        raise ValueError(f"{name} must be a {ndim}-D array, got {arr.ndim} dimensions")
    if ndim >= 1 and arr.shape[0] < min_rows:
        raise ValueError(f"{name} must have at least {min_rows} row(s), got shape {arr.shape}")
    if ndim == 2:
        if n_cols is not None and arr.shape[1] != n_cols:
            raise ValueError(f"{name} must have {n_cols} columns, got shape {arr.shape}")
        if arr.shape[1] < min_cols:
            raise ValueError(f"{name} must have at least {min_cols} column(s), got shape {arr.shape}")
    if order is None:
        if not (arr.flags.c_contiguous or arr.flags.f_contiguous):
            order = "C"
    if order is None:
        out = arr.astype(target, copy=copy)
    else:
        out = np.asarray(arr, dtype=target, order=order)  # type: ignore[call-overload]
        if copy and np.shares_memory(out, arr):
            out = out.copy(order=order)
    check_values(out, name, allow_nan=allow_nan, allow_inf=allow_inf, nonnegative=nonnegative)
    return out


def check_values(values: np.ndarray, name: str, *, allow_nan: bool = False,
                 allow_inf: bool = False, nonnegative: bool = False) -> None:
    """Finiteness and sign checks on a float array (or the data of a sparse matrix)."""
    if values.size == 0:
        return
    if allow_nan and allow_inf:
        pass
    elif allow_nan:
        if np.isinf(values).any():
            raise ValueError(f"{name} contains infinity")
    elif not np.isfinite(values).all():
        what = "NaN" if np.isnan(values).any() else "infinity"
        raise ValueError(f"{name} contains {what}; all values must be finite")
    if nonnegative and (values < 0).any():
        raise ValueError(f"{name} contains negative values; it must be nonnegative")


def check_sparse(
    X: Any,
    name: str,
    *,
    formats: Sequence[str] = ("csr", "csc"),
    dtype: Optional[Any] = None,
    nonnegative: bool = False,
    min_rows: int = 1,
    min_cols: int = 1,
) -> sp.spmatrix:
    """Validate a scipy.sparse matrix without densifying it.

    Keeps CSR/CSC (converting other formats once to the first of ``formats``),
    float32/float64 data and int32/int64 indices; sums duplicates.
    """
    if not sp.issparse(X):
        raise TypeError(f"{name} must be a scipy.sparse matrix, got {type(X).__name__}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D")
    if X.shape[0] < min_rows or X.shape[1] < min_cols:
        raise ValueError(f"{name} has shape {X.shape}; it must be at least {min_rows} x {min_cols}")
    target = np.dtype(dtype) if dtype is not None else _float_dtype_for(X.dtype, name)
    if dtype is not None:
        _float_dtype_for(X.dtype, name)  # reject complex/object data before casting
    if X.format not in formats:
        X = X.asformat(formats[0])
    if X.dtype != target:
        X = X.astype(target)
    if not X.has_canonical_format:
        X = X.copy()
        X.sum_duplicates()
    check_values(X.data, name, nonnegative=nonnegative)
    return X


def check_int(value: Any, name: str, *, low: Optional[int] = None, high: Optional[int] = None) -> int:
    """An integer parameter within [low, high]."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if low is not None and value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_float(value: Any, name: str, *, low: Optional[float] = None, high: Optional[float] = None,
                low_inclusive: bool = True) -> float:
    """A finite real parameter within the given range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a real number, got {value!r}")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if low is not None and (value < low or (value == low and not low_inclusive)):
        op = ">=" if low_inclusive else ">"
        raise ValueError(f"{name} must be {op} {low}, got {value}")
    if high is not None and value > high:
        raise ValueError(f"{name} must be <= {high}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_n_threads(n_threads: Any) -> int:
    """None -> all cores (OMP_NUM_THREADS honoured); otherwise an int >= 1."""
    if n_threads is None:
        return int(_core.default_threads())
    return check_int(n_threads, "n_threads", low=1, high=4096)


def check_random_state(random_state: Any) -> int:
    """A 63-bit seed for the C++ generator from an int, a Generator, or None."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**63 - 1))
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, bool):
        if random_state < 0:
            raise ValueError(f"random_state must be >= 0, got {random_state}")
        return int(random_state) & (2**63 - 1)
    raise TypeError(
        f"random_state must be None, an int or a numpy.random.Generator, got {type(random_state).__name__}"
    )


def check_ids(ids: Any, name: str, *, n: Optional[int] = None, unique: bool = True) -> np.ndarray:
    """A 1-D array of nonnegative int64 ids."""
    arr = np.asarray(ids)
    if arr.dtype.kind not in "iu":
        if arr.size == 0 and arr.dtype.kind == "f":
            arr = arr.astype(np.int64)
        else:
            raise TypeError(f"{name} must be integers, got dtype {arr.dtype}")
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have {n} entries (one per row), got {arr.shape[0]}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"{name} has values above the int64 range")
    arr = np.ascontiguousarray(arr, dtype=np.int64)
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0, got {arr.min()}")
    if unique and arr.size != np.unique(arr).size:
        raise ValueError(f"{name} contains duplicate ids")
    return arr


def check_path(path: Any, name: str = "path") -> str:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a str or os.PathLike, got {type(path).__name__}")
    return os.fspath(path)


class IndexFileNotFoundError(FileNotFoundError, ValueError):
    """An index file that does not exist (or is a directory). A FileNotFoundError, as
    ``open`` raises; also a ValueError, which earlier versions raised for every bad file."""


def check_index_file(path: Any, name: str = "path") -> str:
    """``path`` as a str, naming a readable file: a missing one raises FileNotFoundError
    (IndexFileNotFoundError), a directory IsADirectoryError, before the C++ reader runs."""
    path = check_path(path, name)
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f"{name} is a directory, not an index file", path)
    if not os.path.exists(path):
        raise IndexFileNotFoundError(errno.ENOENT, "cannot open index file: no such file", path)
    return path


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _library_frame(filename: str) -> bool:
    """Frames of rankfold itself or of scikit-learn's method wrappers around it (set_output)."""
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE_DIR + os.sep) or f"{os.sep}sklearn{os.sep}" in path


def warn(message: str, category: type = UserWarning) -> None:
    """``warnings.warn`` attributed to the first caller outside rankfold (and outside
    scikit-learn's wrappers of its methods), so the warning names the user's line
    whatever the depth of the call inside the package."""
    frame, level = sys._getframe(1), 2  # level 1 would be this function
    while frame is not None and _library_frame(frame.f_code.co_filename):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)


def callback_stops(answer: Any, name: str = "callback") -> bool:
    """The one stopping rule for every estimator's ``callback(iteration, loss)``.

    ``None`` (no return statement) continues; any other value is tested for
    truth like an ``if``: ``False``, ``0``, ``numpy.False_`` and ``numpy.int64(0)``
    stop, ``True`` and other true values continue. A value without a single truth
    value (an array of several entries) raises ``TypeError``. Exceptions raised
    by the callback itself propagate unchanged (they never reach this function).
    """
    if answer is None:
        return False
    try:
        return not bool(answer)
    except Exception as exc:  # e.g. numpy's "truth value of an array ... is ambiguous"
        raise TypeError(f"{name} must return None or a truth value (False stops the fit), "
                        f"got {type(answer).__name__}: {exc}") from None
