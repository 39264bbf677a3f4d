"""rankfold.dask on a real dask.distributed LocalCluster with 2 worker processes."""

from __future__ import annotations

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
da = pytest.importorskip("dask.array")

from rankfold import ExactIndex  # noqa: E402
from rankfold.dask import ShardedIndex, merge_topk  # noqa: E402


@pytest.fixture(scope="module")
def client():
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=":0", memory_limit="2GiB")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_sharded_exact_equals_single_index(client, metric, rng):
    X = rng.standard_normal((3000, 16)).astype(np.float32)
    Q = rng.standard_normal((50, 16)).astype(np.float32)
    dX = da.from_array(X, chunks=(700, 16))
    sharded = ShardedIndex(16, metric=metric, index="exact", client=client).add(dX)
    assert sharded.n_shards == 5 and len(sharded) == 3000
    ids, dist = sharded.search(Q, k=10)
    ref_ids, ref_dist = ExactIndex(16, metric=metric).add(X).search(Q, k=10)
    np.testing.assert_array_equal(ids, ref_ids)
    np.testing.assert_allclose(dist, ref_dist, rtol=1e-6)


def test_ids_continue_and_padding(client, rng):
    X = rng.standard_normal((6, 4)).astype(np.float32)
    sharded = ShardedIndex(4, index="exact", client=client)
    ids, dist = sharded.search(X[:1], k=3)
    assert np.all(ids == -1) and np.all(np.isinf(dist))
    sharded.add(da.from_array(X[:3], chunks=(2, 4)))
    sharded.add(da.from_array(X[3:], chunks=(3, 4)), ids=np.array([100, 101, 102]))
    ids, dist = sharded.search(X, k=8)
    assert ids[:, 0].tolist() == [0, 1, 2, 100, 101, 102]
    assert np.all(ids[:, 6:] == -1) and np.all(np.isinf(dist[:, 6:]))


def test_save_and_load(client, rng, tmp_path):
    X = rng.standard_normal((500, 8)).astype(np.float32)
    sharded = ShardedIndex(8, index="exact", client=client).add(da.from_array(X, chunks=(200, 8)))
    sharded.save(tmp_path / "idx")
    loaded = ShardedIndex.load(tmp_path / "idx", client=client)
    assert loaded.n_shards == 3 and len(loaded) == 500
    a, b = sharded.search(X[:20], 5), loaded.search(X[:20], 5)
    np.testing.assert_array_equal(a[0], b[0])
    with pytest.raises(ValueError, match="does not hold a saved ShardedIndex"):
        ShardedIndex.load(tmp_path / "nothing", client=client)


def test_merge_topk_matches_global_sort(rng):
    d1, d2 = np.sort(rng.random((4, 3)), 1), np.sort(rng.random((4, 3)), 1)
    i1, i2 = np.arange(12).reshape(4, 3), 100 + np.arange(12).reshape(4, 3)
    ids, dist = merge_topk([i1, i2], [d1, d2], 4)
    all_d = np.concatenate([d1, d2], 1)
    np.testing.assert_array_equal(dist, np.sort(all_d, 1)[:, :4])


def test_out_of_core_from_npy_stack(tmp_path):
    # 640 MiB of vectors on disk, more than one worker's memory limit (600 MiB):
    # generated and written by the workers, indexed shard by shard on them; the
    # client never holds the data. Spilling is off (an index is not spillable
    # data); workers pause only near their limit.
    import dask

    with dask.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": 0.92, "distributed.worker.memory.terminate": 0.98}):
        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                           dashboard_address=":0", memory_limit="600MiB")
    with distributed.Client(cluster) as client:
        n, d, chunk = 32 * 40_960, 128, 40_960
        source = da.random.RandomState(0).standard_normal((n, d), chunks=(chunk, d)).astype(np.float32)
        da.to_npy_stack(str(tmp_path / "vectors"), source)
        X = da.from_npy_stack(str(tmp_path / "vectors"))
        assert X.nbytes >= 640 * 2**20 > 600 * 2**20
        sharded = ShardedIndex(d, index="exact", client=client).add(X)
        assert len(sharded) == n and sharded.n_shards == 32
        rows = np.array([5, 51_300, 400_000, n - 1])
        Q = X[rows].compute()
        ids, dist = sharded.search(Q, k=3)
        assert ids[:, 0].tolist() == rows.tolist()
        np.testing.assert_allclose(dist[:, 0], 0, atol=1e-3)
        assert np.all(dist[:, 1] > 1.0)
    cluster.close()


def test_bad_input(client, rng):
    with pytest.raises(TypeError, match="dask.array"):
        ShardedIndex(4, index="exact", client=client).add(rng.standard_normal((5, 4)))
    with pytest.raises(ValueError, match="chunked along rows only"):
        ShardedIndex(4, index="exact", client=client).add(da.ones((10, 4), chunks=(5, 2)))
    with pytest.raises(ValueError, match="shape"):
        ShardedIndex(4, index="exact", client=client).add(da.ones((10, 3), chunks=(5, 3)))
    with pytest.raises(ValueError, match="index must be one of"):
        ShardedIndex(4, index="ivf")
    with pytest.raises(TypeError, match="client"):
        ShardedIndex(4, index="exact", client="tcp://nowhere")
    bad = np.ones((10, 4), np.float32)
    bad[7, 1] = np.nan
    sharded = ShardedIndex(4, index="exact", client=client)
    with pytest.raises(ValueError, match="X contains NaN"):
        sharded.add(da.from_array(bad, chunks=(5, 4)))
    assert len(sharded) == 0 and sharded.n_shards == 0
    sharded.add(da.ones((4, 4), chunks=(2, 4)))
    with pytest.raises(ValueError, match="Q must have 4 columns"):
        sharded.search(np.ones((1, 3)))
    with pytest.raises(ValueError, match="k must be >= 1"):
        sharded.search(np.ones((1, 4)), k=0)


def test_sharded_hnsw_recall_matches_one_index(client, rng):
    from rankfold import HNSWIndex

    centers = rng.standard_normal((20, 24)).astype(np.float32) * 3
    X = (centers[rng.integers(0, 20, 6000)] + rng.standard_normal((6000, 24))).astype(np.float32)
    Q = (centers[rng.integers(0, 20, 200)] + rng.standard_normal((200, 24))).astype(np.float32)
    gt, _ = ExactIndex(24).add(X).search(Q, k=10)
    sharded = ShardedIndex(24, index="hnsw", client=client, M=8, ef_construction=60, random_state=0)
    sharded.add(da.from_array(X, chunks=(2000, 24)))
    single = HNSWIndex(24, M=8, ef_construction=60, random_state=0).add(X)

    def recall(ids):
        return np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, gt)])

    r_sharded = recall(sharded.search(Q, k=10, ef=20)[0])
    r_single = recall(single.search(Q, k=10, ef=20)[0])
    assert r_sharded >= r_single - 0.02
    assert recall(sharded.search(Q, k=10, ef=200)[0]) >= 0.99


@pytest.mark.parametrize("feedback,solver,biases", [("implicit", "cg", False), ("implicit", "cholesky", False),
                                                    ("explicit", "cg", True)])
def test_dask_als_equals_single_machine(client, feedback, solver, biases):
    import scipy.sparse as sp

    import rankfold
    from rankfold.dask import ALS as DaskALS

    R = sp.random(300, 200, density=0.05, format="csr", random_state=4, dtype=np.float64)
    R.data = np.ceil(R.data * 5)
    params = dict(factors=8, feedback=feedback, solver=solver, biases=biases, iterations=4, alpha=2.0,
                  random_state=3, dtype=np.float64)
    single = rankfold.ALS(n_threads=1, **params).fit(R)
    dist = DaskALS(client=client, n_blocks=3, n_threads=1, **params).fit(R)
    np.testing.assert_allclose(dist.user_factors_, single.user_factors_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.item_factors_, single.item_factors_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.loss_history_, single.loss_history_, rtol=1e-9)
    if biases:
        np.testing.assert_allclose(dist.user_biases_, single.user_biases_, rtol=1e-9, atol=1e-12)
    ids_a, _ = dist.recommend(np.arange(5), n=5)
    ids_b, _ = single.recommend(np.arange(5), n=5)
    np.testing.assert_array_equal(ids_a, ids_b)


def test_dask_als_bad_input(client):
    import scipy.sparse as sp

    from rankfold.dask import ALS as DaskALS

    with pytest.raises(TypeError, match="scipy.sparse"):
        DaskALS(client=client).fit(np.ones((3, 3)))
    with pytest.raises(ValueError, match="n_blocks"):
        DaskALS(client=client, n_blocks=0).fit(sp.random(10, 10, density=0.3, format="csr"))
    with pytest.raises(TypeError, match="client"):
        DaskALS(client="tcp://x").fit(sp.random(10, 10, density=0.3, format="csr"))
