"""Small building blocks with a public face: parallel top-k selection."""

from __future__ import annotations

from typing import Any, Optional, Tuple

import numpy as np

from . import _core
from ._validation import check_array, check_int, check_n_threads


def topk(scores: Any, k: int, largest: bool = True,
         n_threads: Optional[int] = None) -> Tuple[np.ndarray, np.ndarray]:
    """Per-row top-k of a 2-D score matrix, best first, computed in parallel.

    Returns ``(indices, values)`` of shape (rows, k). Ties go to the lower
    column index; NaN scores are never selected; rows with fewer than k
    selectable entries are padded with index -1 and value -inf (largest) or
    +inf (smallest).
    """
    S = check_array(scores, "scores", allow_nan=True, allow_inf=True, min_rows=0, min_cols=0)
    k = check_int(k, "k", low=1, high=2**31 - 1)
    if not isinstance(largest, (bool, np.bool_)):
        raise TypeError(f"largest must be a bool, got {largest!r}")
    return _core.topk(S, k, bool(largest), check_n_threads(n_threads))
