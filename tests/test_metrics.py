"""rankfold.metrics, model_selection.train_test_split_interactions and datasets.load_movielens."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from rankfold.datasets import load_movielens
from rankfold.metrics import map_at_k, ndcg_at_k, precision_at_k, recall_at_k, rmse
from rankfold.model_selection import train_test_split_interactions


def test_rmse():
    assert rmse([1, 2, 3], [1, 2, 5]) == pytest.approx(np.sqrt(4 / 3))
    assert rmse(np.zeros(4, np.float32), np.ones(4)) == pytest.approx(1.0)


@pytest.fixture
def ranking():
    # user 0 likes {1, 5, 7}; user 1 likes {2}; user 2 likes nothing (left out)
    test = sp.csr_matrix(([1, 1, 1, 1], ([0, 0, 0, 1], [1, 5, 7, 2])), shape=(3, 10))
    rec = np.array([[5, 0, 1, 9], [3, 4, 6, -1], [1, 2, 3, 4]])
    return rec, test


def test_ranking_metrics_by_hand(ranking):
    rec, test = ranking
    # user 0: hits at ranks 1 and 3 (of k = 3); user 1: no hit
    assert precision_at_k(rec, test, 3) == pytest.approx((2 / 3 + 0) / 2)
    assert recall_at_k(rec, test, 3) == pytest.approx((2 / 3 + 0) / 2)
    dcg0 = 1 + 1 / np.log2(4)
    idcg0 = 1 + 1 / np.log2(3) + 1 / np.log2(4)
    assert ndcg_at_k(rec, test, 3) == pytest.approx((dcg0 / idcg0) / 2)
    ap0 = (1 / 1 + 2 / 3) / 3
    assert map_at_k(rec, test, 3) == pytest.approx(ap0 / 2)
    # k = 1
    assert precision_at_k(rec, test, 1) == pytest.approx(0.5)
    assert ndcg_at_k(rec, test, 1) == pytest.approx(0.5)


def test_ranking_metrics_perfect_and_random(rng):
    n_users, n_items = 50, 100
    test = sp.random(n_users, n_items, density=0.1, random_state=np.random.RandomState(0), format="csr")
    perfect = np.full((n_users, 5), -1)
    for u in range(n_users):
        items = test[u].indices[:5]
        perfect[u, :items.size] = items
    has = np.diff(test.indptr) > 0
    assert ndcg_at_k(perfect, test, 5) == pytest.approx(1.0)
    assert map_at_k(perfect, test, 5) == pytest.approx(1.0)
    n_rel = np.diff(test.indptr)[has]
    assert precision_at_k(perfect, test, 5) == pytest.approx(np.mean(np.minimum(n_rel, 5) / 5))


def test_metric_input_errors(ranking):
    rec, test = ranking
    with pytest.raises(ValueError, match="fewer than k"):
        precision_at_k(rec, test, 5)
    with pytest.raises(TypeError, match="test must be a scipy.sparse"):
        precision_at_k(rec, test.toarray(), 2)
    with pytest.raises(ValueError, match="one row per row"):
        recall_at_k(rec[:2], test, 2)
    with pytest.raises(TypeError, match="integer item ids"):
        ndcg_at_k(rec.astype(float), test, 2)
    with pytest.raises(ValueError, match="same length"):
        rmse([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        rmse([1, np.nan], [1, 2])


def test_per_user_split(rng):
    X = sp.random(100, 80, density=0.2, random_state=np.random.RandomState(1), format="csr")
    X.data += 1
    train, test = train_test_split_interactions(X, test_size=0.25, random_state=3)
    assert (train + test - X).nnz == 0 or abs(train + test - X).max() == 0
    assert train.multiply(test).nnz == 0
    n = np.diff(X.indptr)
    n_test = np.diff(test.indptr)
    expected = np.where(n >= 2, np.minimum(np.round(0.25 * n), n - 1), 0)
    np.testing.assert_array_equal(n_test, expected)
    assert np.all(np.diff(train.indptr)[n >= 1] >= 1)
    again, _ = train_test_split_interactions(X, test_size=0.25, random_state=3)
    assert (again != train).nnz == 0
    other, _ = train_test_split_interactions(X, test_size=0.25, random_state=4)
    assert (other != train).nnz > 0


def test_global_split(rng):
    X = sp.random(200, 100, density=0.2, random_state=np.random.RandomState(2), format="csr")
    train, test = train_test_split_interactions(X, test_size=0.2, random_state=0, per_user=False)
    assert train.nnz + test.nnz == X.nnz
    assert abs(test.nnz / X.nnz - 0.2) < 0.02
    with pytest.raises(ValueError, match="test_size"):
        train_test_split_interactions(X, test_size=1.0)
    with pytest.raises(TypeError, match="scipy.sparse"):
        train_test_split_interactions(X.toarray())


def test_load_movielens_formats(tmp_path):
    (tmp_path / "u.data").write_text("10\t5\t4\t881250949\n3\t5\t2\t881250950\n10\t7\t5\t881250951\n")
    (tmp_path / "u.item").write_text("5|Movie A (1995)|x\n7|Movie B (1996)|y\n", encoding="latin-1")
    ml = load_movielens(tmp_path)
    np.testing.assert_array_equal(ml.user_ids, [3, 10])
    np.testing.assert_array_equal(ml.item_ids, [5, 7])
    np.testing.assert_array_equal(ml.ratings.toarray(), [[2, 0], [4, 5]])
    assert ml.ratings.dtype == np.float32
    assert list(ml.titles) == ["Movie A (1995)", "Movie B (1996)"]
    assert ml.timestamps[1, 1] == 881250951
    one_m = tmp_path / "ml1m"
    one_m.mkdir()
    (one_m / "ratings.dat").write_text("1::1193::5::978300760\n2::1193::3::978300761\n")
    ml = load_movielens(one_m)
    assert ml.ratings.shape == (2, 1) and ml.titles is None
    csv = tmp_path / "latest"
    csv.mkdir()
    (csv / "ratings.csv").write_text("userId,movieId,rating,timestamp\n1,2,3.5,100\n1,3,4.0,101\n")
    assert load_movielens(csv).ratings.toarray().tolist() == [[3.5, 4.0]]


def test_load_movielens_errors(tmp_path):
    with pytest.raises(ValueError, match="no MovieLens ratings file"):
        load_movielens(tmp_path)
    with pytest.raises(ValueError, match="must be a folder"):
        load_movielens(tmp_path / "missing")
    with pytest.raises(TypeError, match="path must be a str"):
        load_movielens(3)
    (tmp_path / "u.data").write_text("a\tb\tc\n")
    with pytest.raises(ValueError, match="not a MovieLens ratings file"):
        load_movielens(tmp_path)
