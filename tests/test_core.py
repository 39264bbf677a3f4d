"""Core utilities: top-k selection, sparse products, validation policy."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold
from rankfold import _core
from rankfold._validation import check_array, check_random_state, check_sparse


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("largest", [True, False])
def test_topk_matches_argsort(dtype, largest, rng):
    S = rng.standard_normal((257, 1000)).astype(dtype)
    idx, val = rankfold.topk(S, 17, largest=largest)
    order = np.argsort(-S if largest else S, axis=1, kind="stable")[:, :17]
    np.testing.assert_array_equal(idx, order)
    np.testing.assert_array_equal(val, np.take_along_axis(S, order, 1))


def test_topk_pads_and_skips_nan():
    S = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan]])
    idx, val = rankfold.topk(S, 4)
    assert idx.tolist() == [[2, 0, -1, -1], [-1, -1, -1, -1]]
    assert val[0, :2].tolist() == [3.0, 1.0] and np.all(np.isneginf(val[0, 2:]))
    idx, val = rankfold.topk(S, 2, largest=False)
    assert idx[0].tolist() == [0, 2]


def test_topk_ties_go_to_lower_index():
    idx, _ = rankfold.topk(np.zeros((1, 6)), 3)
    assert idx.tolist() == [[0, 1, 2]]


@pytest.mark.parametrize("fmt", ["csr", "csc"])
@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sparse_products_match_scipy(fmt, index_dtype, dtype, rng):
    A = sp.random(300, 200, density=0.05, format=fmt, dtype=dtype, random_state=1)
    A.indices = A.indices.astype(index_dtype)
    A.indptr = A.indptr.astype(index_dtype)
    B = rng.standard_normal((A.shape[1], 7)).astype(dtype)
    C = rng.standard_normal((A.shape[0], 7)).astype(dtype)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    # The compressed-row view of a CSC matrix is its transpose.
    rows, cols = (A.shape if fmt == "csr" else A.shape[::-1])
    if fmt == "csr":
        got_ab = _core.spmm(A.indptr, A.indices, A.data, rows, cols, B, False, 2)
        got_atc = _core.spmm(A.indptr, A.indices, A.data, rows, cols, C, True, 2)
    else:
        got_ab = _core.spmm(A.indptr, A.indices, A.data, rows, cols, B, True, 2)
        got_atc = _core.spmm(A.indptr, A.indices, A.data, rows, cols, C, False, 2)
    np.testing.assert_allclose(got_ab, A @ B, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(got_atc, A.T @ C, rtol=rtol, atol=rtol)


def test_sparse_view_rejects_bad_structure():
    indptr = np.array([0, 2, 1], dtype=np.int32)
    with pytest.raises(ValueError, match="monotone"):
        _core.spmm(indptr, np.array([0, 1], np.int32), np.ones(2), 2, 2, np.ones((2, 1)), False, 1)
    indptr = np.array([0, 1, 2], dtype=np.int64)
    with pytest.raises(ValueError, match="out of range"):
        _core.spmm(indptr, np.array([0, 5], np.int64), np.ones(2), 2, 2, np.ones((2, 1)), False, 1)


def test_dtype_policy():
    assert check_array(np.ones((2, 2), np.float32), "X").dtype == np.float32
    assert check_array(np.ones((2, 2), np.float64), "X").dtype == np.float64
    assert check_array(np.ones((2, 2), np.int16), "X").dtype == np.float64
    assert check_array(np.ones((2, 2), np.float16), "X").dtype == np.float32
    F = np.asfortranarray(np.ones((3, 2)))
    assert check_array(F, "X", order=None) is F or check_array(F, "X", order=None).flags.f_contiguous
    assert check_array(F, "X").flags.c_contiguous
    with pytest.raises(TypeError, match="X"):
        check_array(np.array([["a", "b"]]), "X")
    with pytest.raises(TypeError, match="X"):
        check_array(np.ones((2, 2), np.complex128), "X")


def test_check_sparse_keeps_format_and_sums_duplicates():
    A = sp.coo_matrix((np.array([1.0, 2.0]), (np.array([0, 0]), np.array([1, 1]))), shape=(2, 2))
    out = check_sparse(A, "X")
    assert out.format == "csr" and out[0, 1] == 3.0
    csc = sp.random(5, 5, density=0.5, format="csc", dtype=np.float32)
    assert check_sparse(csc, "X").format == "csc"
    assert check_sparse(csc, "X").dtype == np.float32


def test_random_state_forms():
    assert check_random_state(5) == check_random_state(5)
    g1, g2 = np.random.default_rng(3), np.random.default_rng(3)
    assert check_random_state(g1) == check_random_state(g2)
    assert isinstance(check_random_state(None), int)
    with pytest.raises(TypeError, match="random_state"):
        check_random_state("seed")
    with pytest.raises(ValueError, match="random_state"):
        check_random_state(-1)


def test_threads_follow_omp_num_threads():
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", "import rankfold; print(rankfold.show_config()['default_threads'])"],
                         env={**__import__("os").environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True)
    assert out.stdout.strip() == "1"
