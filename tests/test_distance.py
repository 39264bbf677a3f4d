"""The per-pair distance kernels (squared L2, inner product, L2 with early exit)
against float64 NumPy, at every length that reaches a different code path
(tails, masks, 4-chain loops, the bounded kernel's 64-dimension steps).

They run at the active SIMD level: .ci/run repeats this file under each
RANKFOLD_SIMD level the machine supports, and test_simd.py checks each level
in a subprocess."""

from __future__ import annotations

import numpy as np
import pytest

from rankfold import _core

LENGTHS = [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 63, 64, 65, 100, 127, 128, 129, 200, 384, 785]


def _pairs(rng, n, d):
    X = rng.standard_normal((n, d)).astype(np.float32)
    Y = rng.standard_normal((n, d)).astype(np.float32)
    return X, Y


@pytest.mark.parametrize("d", LENGTHS)
def test_l2_and_dot_match_float64(d, rng):
    X, Y = _pairs(rng, 50, d)
    X64, Y64 = X.astype(np.float64), Y.astype(np.float64)
    l2 = _core.paired_distances(X, Y, "l2")
    dot = _core.paired_distances(X, Y, "dot")
    assert l2.dtype == np.float32 and l2.shape == (50,)
    ref_l2 = ((X64 - Y64) ** 2).sum(1)
    ref_dot = (X64 * Y64).sum(1)
    # float32 sums of d terms: relative error grows like sqrt(d) * eps.
    np.testing.assert_allclose(l2, ref_l2, rtol=2e-5 * np.sqrt(d), atol=1e-6 * d)
    scale = np.sqrt((X64 ** 2).sum(1) * (Y64 ** 2).sum(1))
    np.testing.assert_array_less(np.abs(dot - ref_dot), 3e-6 * np.sqrt(d) * scale + 1e-6)


def test_kernels_are_exact_on_small_integers(rng):
    # Integer data: every partial sum is exact in float32, so each level must
    # return the exact value whatever its summation order.
    for d in LENGTHS:
        X = rng.integers(-8, 9, (20, d)).astype(np.float32)
        Y = rng.integers(-8, 9, (20, d)).astype(np.float32)
        np.testing.assert_array_equal(_core.paired_distances(X, Y, "l2"), ((X - Y).astype(np.float64) ** 2).sum(1))
        np.testing.assert_array_equal(_core.paired_distances(X, Y, "dot"),
                                      (X.astype(np.float64) * Y).sum(1))


@pytest.mark.parametrize("d", [16, 64, 65, 128, 200, 384])
def test_bounded_l2_is_exact_below_the_bound_and_above_it_otherwise(d, rng):
    X, Y = _pairs(rng, 200, d)
    full = _core.paired_distances(X, Y, "l2")
    for bound in (0.0, float(np.median(full)), float(full.max()) * 2):
        got = _core.paired_distances(X, Y, "l2_bounded", bound)
        inside = full <= bound
        np.testing.assert_allclose(got[inside], full[inside], rtol=1e-5)
        assert np.all(got[~inside] > bound)
        # A partial sum never exceeds the full distance (all terms are >= 0).
        assert np.all(got <= full * (1 + 1e-5))


def test_paired_distances_rejects_bad_input(rng):
    X, Y = _pairs(rng, 3, 4)
    with pytest.raises(ValueError, match="kind"):
        _core.paired_distances(X, Y, "cosine")
    with pytest.raises(ValueError, match="same number of rows"):
        _core.paired_distances(X, Y[:2], "l2")
