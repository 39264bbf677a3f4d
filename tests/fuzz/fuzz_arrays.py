"""Fuzz target: the array-validation entry points (rankfold._validation) and
the estimators' fit / search / transform with odd arrays: every dtype numpy
has a kind for, 0-3 dimensions, empty and one-element shapes, C / F /
strided / reversed / read-only layouts, lists and scalars, sparse formats,
and the awkward values (NaN, +-inf, -0, subnormals, float32 and float16
overflow, int64 extremes).

Input bytes are decisions (see _common.Bytes). A documented exception
(_common.ALLOWED) is a pass; any other exception, a crash, or a result that
breaks the stated contract (shape, dtype, finiteness) is a finding.
"""

from __future__ import annotations

import warnings

import numpy as np
import scipy.sparse as sp

from _common import documented, Bytes

import rankfold
from rankfold import _validation as V

DTYPES = (np.float64, np.float32, np.float16, np.int8, np.int32, np.int64, np.uint8, np.uint64, np.bool_,
          np.complex128, object, "U3", "M8[s]")
SPECIAL = (np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e38, 3.5e38, 1e300, -1e300, 5e-324, 1e-45, 65504.0,
           70000.0, 2.0**63, -(2.0**63), 2.0**64, 1e-300)


def values(r: Bytes, count: int) -> np.ndarray:
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        b = r.byte()
        out[i] = (b - 100) / 10.0 if b < 200 else SPECIAL[(b - 200) % len(SPECIAL)]
    return out


def array(r: Bytes):
    """An array-like of any shape, dtype and layout, or a non-array."""
    form = r.choice(("ndarray",) * 6 + ("list", "scalar", "none", "str", "ragged"))
    if form == "none":
        return None
    if form == "str":
        return "1,2"
    if form == "ragged":
        return [[1.0, 2.0], [3.0]]
    ndim = r.choice((2, 2, 2, 2, 1, 0, 3))
    shape = tuple(r.int(0, 6) for _ in range(ndim))
    base = values(r, int(np.prod(shape, dtype=np.int64))).reshape(shape)
    dtype = r.choice(DTYPES)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            arr = base.astype(dtype)
        except (ValueError, TypeError, OverflowError):
            arr = base
    if form == "scalar":
        return arr.flat[0] if arr.size else 0.5
    if form == "list":
        return arr.tolist()
    layout = r.choice(("C", "F", "strided", "reversed", "transposed", "readonly"))
    if layout == "F":
        arr = np.asfortranarray(arr)
    elif layout == "strided" and arr.ndim:
        arr = np.repeat(arr, 2, axis=0)[::2]
    elif layout == "reversed" and arr.ndim:
        arr = arr[::-1]
    elif layout == "transposed":
        arr = arr.T
    elif layout == "readonly":
        arr = arr.copy()
        arr.flags.writeable = False
    return arr


def sparse(r: Bytes, X):
    fmt = r.choice(("csr", "csc", "coo", "lil", "dok", "bsr"))
    try:
        M = sp.csr_matrix(np.asarray(X, dtype=np.float64) if r.bool() else X)
    except Exception:
        return X  # not sparse-able: the entry point gets the plain object
    if r.bool():
        M.indices = M.indices.astype(np.int64)
        M.indptr = M.indptr.astype(np.int64)
    if r.bool() and M.nnz:  # unsorted indices and a duplicate entry
        M = sp.csr_matrix((np.r_[M.data, M.data[:1]], np.r_[M.indices, M.indices[:1]],
                           np.r_[M.indptr[:-1], M.indptr[-1] + 1]), shape=M.shape)
        M.has_sorted_indices = False
    return M.asformat(fmt)


def check_dense_out(out: np.ndarray, finite: bool = True) -> None:
    assert isinstance(out, np.ndarray) and out.dtype in (np.float32, np.float64), type(out)
    if finite:
        assert np.isfinite(out).all(), "non-finite values in a result"


# ------------------------------------------------------------------ the calls
def call_check_array(r: Bytes, X) -> None:
    kw = dict(dtype=r.choice((None, np.float32, np.float64)), order=r.choice(("C", "F", None)),
              allow_nan=r.bool(), allow_inf=r.bool(), nonnegative=r.bool(), min_rows=r.int(0, 1),
              min_cols=r.int(0, 1), ndim=r.choice((2, 2, 1)))
    out = V.check_array(X, "X", **kw)
    assert out.ndim == kw["ndim"] and out.dtype in (np.float32, np.float64)
    if kw["dtype"] is not None:
        assert out.dtype == kw["dtype"]
    if not kw["allow_nan"]:
        assert not np.isnan(out).any()
    if not kw["allow_nan"] and not kw["allow_inf"]:
        assert np.isfinite(out).all()
    if kw["nonnegative"]:
        assert not (out < 0).any()
    if kw["order"] == "C":
        assert out.flags.c_contiguous
    if kw["order"] == "F":
        assert out.flags.f_contiguous


def call_check_sparse(r: Bytes, X) -> None:
    out = V.check_sparse(sparse(r, X), "X", nonnegative=r.bool(), dtype=r.choice((None, np.float32)))
    assert out.format in ("csr", "csc") and out.dtype in (np.float32, np.float64)
    assert out.has_canonical_format and np.isfinite(out.data).all()


def call_check_ids(r: Bytes, X) -> None:
    out = V.check_ids(X, "ids", unique=r.bool())
    assert out.dtype == np.int64 and out.ndim == 1 and (out >= 0).all()


def call_knn(r: Bytes, X) -> None:
    Q = array(r) if r.bool() else X
    k = r.int(1, 8)
    ids, dist = rankfold.knn(X, Q, k, metric=r.choice(rankfold.ann.METRICS), n_threads=r.int(1, 2))
    assert ids.shape == dist.shape and ids.shape[1] == k


def call_topk(r: Bytes, X) -> None:
    k = r.int(1, 8)
    idx, val = rankfold.topk(X, k, largest=r.bool(), n_threads=r.int(1, 2))
    assert idx.shape == val.shape and idx.shape[1] == k
    assert ((idx >= -1) & (idx < max(1, np.shape(X)[1]))).all()


def call_index(r: Bytes, X) -> None:
    dim = r.int(1, 6)
    metric = r.choice(rankfold.ann.METRICS)
    if r.bool():
        index = rankfold.ExactIndex(dim, metric=metric, n_threads=r.int(1, 2))
    else:
        index = rankfold.HNSWIndex(dim, metric=metric, M=r.int(2, 6), ef_construction=r.int(1, 20),
                                   random_state=r.int(0, 9), n_threads=r.int(1, 2))
    ids = array(r) if r.bool() else None
    index.add(X, ids=ids)
    Q = array(r) if r.bool() else X
    k = r.int(1, 6)
    if isinstance(index, rankfold.HNSWIndex) and r.bool():
        found, dist = index.search(Q, k, ef=r.int(k, 12), filter=array(r))
    else:
        found, dist = index.search(Q, k)
    assert found.shape == dist.shape and found.shape[1] == k
    live = set(index.ids.tolist())
    assert set(found[found >= 0].tolist()) <= live


def call_nmf(r: Bytes, X) -> None:
    solver = r.choice(("hals", "mu", "anls"))
    loss = r.choice(("frobenius", "frobenius", "kullback-leibler", "itakura-saito")) if solver == "mu" else "frobenius"
    model = rankfold.NMF(r.int(1, 4), solver=solver, beta_loss=loss, max_iter=r.int(1, 4),
                         init=r.choice((None, "random", "nndsvd", "nndsvda", "nndsvdar")),
                         random_state=r.int(0, 9), n_threads=r.int(1, 2))
    if r.bool():
        X = sparse(r, X)
    W = model.fit_transform(X)
    check_dense_out(W)
    check_dense_out(model.components_)
    assert np.isfinite(model.reconstruction_err_)
    check_dense_out(model.transform(X))


def call_als(r: Bytes, X) -> None:
    model = rankfold.ALS(r.int(1, 4), iterations=r.int(1, 2), feedback=r.choice(("implicit", "explicit")),
                         solver=r.choice(("cg", "cholesky")), biases=r.bool(), random_state=r.int(0, 9),
                         n_threads=r.int(1, 2))
    model.fit(sparse(r, X))
    check_dense_out(model.user_factors_)
    check_dense_out(model.item_factors_)
    users = array(r) if r.bool() else np.arange(min(2, model.user_factors_.shape[0]))
    model.recommend(users, n=r.int(1, 4))


def call_randomized_svd(r: Bytes, X) -> None:
    if r.bool():
        X = sparse(r, X)
    U, S, Vt = rankfold.randomized_svd(X, r.int(1, 4), n_iter=r.int(0, 3), random_state=r.int(0, 9))
    check_dense_out(U)
    check_dense_out(S)
    check_dense_out(Vt)


CALLS = (call_check_array, call_check_sparse, call_check_ids, call_knn, call_topk, call_index, call_nmf, call_als,
         call_randomized_svd)


def test_one_input(data: bytes) -> None:
    r = Bytes(data)
    call = r.choice(CALLS)
    X = array(r)
    try:
        call(r, X)
    except Exception as exc:
        if not documented(exc):
            raise


def setup() -> None:
    warnings.simplefilter("ignore")
    np.seterr(all="ignore")
