"""ALS on real data: MovieLens 100K (explicit and implicit) and CiteULike."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from conftest import data_path

from rankfold import ALS
from rankfold.datasets import load_movielens
from rankfold.metrics import ndcg_at_k, precision_at_k, rmse
from rankfold.model_selection import train_test_split_interactions

pytestmark = pytest.mark.realdata


def load_citeulike():
    folder = data_path("citeulike-implicit")
    tr = np.loadtxt(folder / "train.txt", dtype=np.int64)
    te = np.loadtxt(folder / "test.txt", dtype=np.int64)
    shape = (int(max(tr[:, 0].max(), te[:, 0].max())) + 1, int(max(tr[:, 1].max(), te[:, 1].max())) + 1)
    train = sp.csr_matrix((np.ones(len(tr), np.float32), (tr[:, 0], tr[:, 1])), shape=shape)
    test = sp.csr_matrix((np.ones(len(te), np.float32), (te[:, 0], te[:, 1])), shape=shape)
    return train, test


def test_movielens_100k_explicit_rmse():
    ml = load_movielens(data_path("movielens-100k"))
    assert ml.ratings.shape == (943, 1682) and ml.ratings.nnz == 100_000
    train, test = train_test_split_interactions(ml.ratings, test_size=0.2, random_state=0, per_user=False)
    u, i = test.nonzero()
    truth = np.asarray(test[u, i]).ravel()
    for solver in ("cg", "cholesky"):
        model = ALS(factors=64, feedback="explicit", biases=True, regularization=0.12, iterations=15,
                    solver=solver, random_state=0).fit(train)
        err = rmse(truth, model.predict(u, i))
        assert err <= 0.92, (solver, err)
    # the global-mean baseline is far worse: the model learnt something
    assert rmse(truth, np.full(truth.shape, train.data.mean())) > 1.1


def implicit_precision(train, test, **kw):
    implicit = pytest.importorskip("implicit")
    from threadpoolctl import threadpool_limits

    users = np.flatnonzero(np.diff(test.indptr))
    with threadpool_limits(1):
        model = implicit.cpu.als.AlternatingLeastSquares(random_state=0, num_threads=2, **kw)
        model.fit(train, show_progress=False)
        ids, _ = model.recommend(users, train[users], N=10, filter_already_liked_items=True)
    return precision_at_k(ids, test[users], 10), ndcg_at_k(ids, test[users], 10)


def rankfold_precision(train, test, solver, factors, regularization, alpha, iterations):
    users = np.flatnonzero(np.diff(test.indptr))
    model = ALS(factors=factors, regularization=regularization, alpha=alpha, iterations=iterations, solver=solver,
                random_state=0).fit(train)
    ids, _ = model.recommend(users, n=10)
    return precision_at_k(ids, test[users], 10), ndcg_at_k(ids, test[users], 10)


# Note on alpha: implicit weights positives by alpha * r, rankfold by 1 + alpha * r
# (Hu, Koren & Volinsky); both models get the same number.
SETTINGS = dict(factors=64, regularization=0.01, alpha=20.0, iterations=15)


@pytest.mark.parametrize("solver", ["cg", "cholesky"])
def test_citeulike_implicit_precision_vs_implicit(solver):
    train, test = load_citeulike()
    # implicit's Cholesky solver is slow: fewer iterations (the same for both) keep the test short
    settings = dict(SETTINGS, iterations=15 if solver == "cg" else 8)
    p_rf, n_rf = rankfold_precision(train, test, solver, **settings)
    p_im, n_im = implicit_precision(train, test, use_cg=solver == "cg", **settings)
    assert p_rf > 0.06  # far above random (about 0.0006)
    # equal quality up to seed noise (measured difference is within +-0.001)
    assert p_rf >= p_im - 0.002, (p_rf, p_im)
    assert n_rf >= n_im - 0.003, (n_rf, n_im)


def test_movielens_implicit_precision_vs_implicit():
    ml = load_movielens(data_path("movielens-100k"))
    train, test = train_test_split_interactions(ml.ratings, test_size=0.2, random_state=0)
    assert np.all(np.diff(train.indptr) >= 1)
    p_rf, n_rf = rankfold_precision(train, test, "cg", **SETTINGS)
    p_im, n_im = implicit_precision(train, test, use_cg=True, **SETTINGS)
    assert p_rf > 0.2
    assert p_rf >= p_im - 0.005, (p_rf, p_im)
    assert n_rf >= n_im - 0.005, (n_rf, n_im)
