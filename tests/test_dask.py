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
    with pytest.raises(FileNotFoundError, match="cannot open index folder") as info:  # still a ValueError
        ShardedIndex.load(tmp_path / "nothing", client=client)
    assert isinstance(info.value, ValueError)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="does not hold a saved ShardedIndex"):
        ShardedIndex.load(tmp_path / "empty", client=client)


def test_merge_topk_matches_global_sort(rng):
    d1, d2 = np.sort(rng.random((4, 3)), 1), np.sort(rng.random((4, 3)), 1)
    i1, i2 = np.arange(12).reshape(4, 3), 100 + np.arange(12).reshape(4, 3)
    ids, dist = merge_topk([i1, i2], [d1, d2], 4)
    all_d = np.concatenate([d1, d2], 1)
    np.testing.assert_array_equal(dist, np.sort(all_d, 1)[:, :4])


@pytest.fixture(scope="module")
def disk_stack(client, tmp_path_factory):
    """640 MiB of float32 vectors on disk, generated and written by the workers
    (the client never holds them)."""
    folder = str(tmp_path_factory.mktemp("ooc") / "vectors")
    n, d, chunk = 32 * 40_960, 128, 40_960
    source = da.random.RandomState(0).standard_normal((n, d), chunks=(chunk, d)).astype(np.float32)
    da.to_npy_stack(folder, source)  # runs on the module cluster (the default client)
    return folder


def small_memory_cluster():
    """Two workers limited to 600 MiB each, less than the data on disk. Spilling
    is off (an index is not spillable data); workers pause only near their limit."""
    import dask

    with dask.config.set({"distributed.worker.memory.target": False, "distributed.worker.memory.spill": False,
                          "distributed.worker.memory.pause": 0.92, "distributed.worker.memory.terminate": 0.98}):
        return distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                        dashboard_address=":0", memory_limit="600MiB")


def test_out_of_core_from_npy_stack(disk_stack):
    with small_memory_cluster() as cluster, distributed.Client(cluster) as client:
        X = da.from_npy_stack(disk_stack)
        n, d = X.shape
        assert X.nbytes >= 640 * 2**20 > 600 * 2**20
        sharded = ShardedIndex(d, index="exact", client=client).add(X)
        assert len(sharded) == n and sharded.n_shards == 32
        rows = np.array([5, 51_300, 400_000, n - 1])
        Q = X[rows].compute()
        ids, dist = sharded.search(Q, k=3)
        assert ids[:, 0].tolist() == rows.tolist()
        np.testing.assert_allclose(dist[:, 0], 0, atol=1e-3)
        assert np.all(dist[:, 1] > 1.0)


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
                                                    ("explicit", "cg", True), ("implicit", "ials++", False),
                                                    ("explicit", "ials++", True)])
def test_dask_als_equals_single_machine(client, feedback, solver, biases):
    import scipy.sparse as sp

    import rankfold
    from rankfold.dask import ALS as DaskALS

    R = sp.random(300, 200, density=0.05, format="csr", random_state=4, dtype=np.float64)
    R.data = np.ceil(R.data * 5)
    params = dict(factors=8, feedback=feedback, solver=solver, biases=biases, iterations=4, alpha=2.0,
                  random_state=3, dtype=np.float64, block_size=3)
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


# ---------------------------------------------------------------------------- NMF
def _nmf_data(rng, m=200, n=40, k=5):
    X = rng.random((m, k)) @ rng.random((k, n)) + 0.05 * rng.random((m, n))
    X[X < np.quantile(X, 0.3)] = 0.0
    scale = np.sqrt(X.mean() / k)
    return X, scale * rng.random((m, k)), scale * rng.random((k, n))


def _chunked(X, sparse, rows=64):
    import scipy.sparse as sp

    dX = da.from_array(X, chunks=(rows, X.shape[1]))
    return dX.map_blocks(sp.csr_matrix) if sparse else dX


@pytest.mark.parametrize("solver,sweeps", [("hals", 3), ("hals", "auto"), ("mu", 1), ("anls", 1)])
@pytest.mark.parametrize("sparse", [False, True])
def test_dask_nmf_equals_single_machine(client, rng, solver, sweeps, sparse):
    import scipy.sparse as sp

    import rankfold
    from rankfold.dask import NMF as DaskNMF

    X, W0, H0 = _nmf_data(rng)
    params = dict(n_components=5, init="custom", tol=0.0, max_iter=8, solver=solver, inner_sweeps=sweeps,
                  alpha_W=0.01, l1_ratio=0.5)
    single = rankfold.NMF(n_threads=1, extrapolate=False, **params)
    W_single = single.fit_transform(sp.csr_matrix(X) if sparse else X, W=W0, H=H0)
    dist = DaskNMF(client=client, n_threads=1, **params)
    W_dask = dist.fit_transform(_chunked(X, sparse), W=W0, H=H0)
    assert isinstance(W_dask, da.Array) and W_dask.chunks[0] == (64, 64, 64, 8)
    np.testing.assert_allclose(W_dask.compute(), W_single, rtol=1e-6, atol=1e-9 * np.abs(W_single).max())
    np.testing.assert_allclose(dist.components_, single.components_, rtol=1e-6,
                               atol=1e-9 * np.abs(single.components_).max())
    np.testing.assert_allclose(dist.loss_history_, single.loss_history_, rtol=1e-9)
    np.testing.assert_allclose(dist.reconstruction_err_, single.reconstruction_err_, rtol=1e-7)
    assert dist.n_iter_ == single.n_iter_ == 8 and dist.n_blocks_ == 4


def test_dask_nmf_tol_callback_verbose_and_transform(client, rng, capsys):
    import rankfold
    from rankfold.dask import NMF as DaskNMF

    X, W0, H0 = _nmf_data(rng)
    params = dict(n_components=5, init="custom", tol=1e-3, max_iter=300, inner_sweeps=2)
    single = rankfold.NMF(n_threads=1, extrapolate=False, **params).fit(X, W=W0, H=H0)
    dist = DaskNMF(client=client, n_threads=1, verbose=1, **params).fit(_chunked(X, False), W=W0, H=H0)
    assert 1 < dist.n_iter_ == single.n_iter_ < 300
    lines = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("dask NMF[hals] iteration")]
    assert len(lines) == dist.n_iter_ and " s " in lines[0]
    # a callback returning False stops the fit
    seen = []
    stopped = DaskNMF(client=client, n_components=5, max_iter=50, tol=0.0, random_state=0,
                      callback=lambda it, loss: seen.append(loss) or it < 3).fit(_chunked(X, True))
    assert stopped.n_iter_ == 3 and seen == list(stopped.loss_history_)
    # transform: lazy on a dask array, the same rows as rankfold.NMF's transform
    lazy = dist.transform(_chunked(X[:100], True, rows=30))
    assert isinstance(lazy, da.Array)
    np.testing.assert_allclose(lazy.compute(), single.transform(X[:100]), rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("init,persist", [("random", True), ("nndsvd", False), ("nndsvdar", True)])
def test_dask_nmf_inits(client, rng, init, persist):
    import rankfold
    from rankfold.dask import NMF as DaskNMF

    X, _, _ = _nmf_data(rng)
    params = dict(n_components=5, init=init, tol=0.0, max_iter=15, random_state=7, inner_sweeps=2)
    single = rankfold.NMF(extrapolate=False, **params).fit(X)
    dist = DaskNMF(client=client, persist=persist, **params)
    W = dist.fit_transform(_chunked(X, False)).compute()
    assert W.min() >= 0 and dist.components_.min() >= 0
    if init == "random":  # H drawn as rankfold.NMF does; W from per-block streams
        first = DaskNMF(client=client, **{**params, "max_iter": 0}).fit(_chunked(X, False))
        ref = rankfold.NMF(**{**params, "max_iter": 0}).fit(X).components_
        np.testing.assert_allclose(first.components_, ref, rtol=1e-12)  # X's mean summed in another order
    elif init == "nndsvd":  # the SVD of a well separated rank-5 matrix: the same starting point
        np.testing.assert_allclose(dist.loss_history_[0], single.loss_history_[0], rtol=1e-4)
    # the objective falls to the single-machine level
    assert np.all(np.diff(dist.loss_history_) <= 1e-9 * dist.loss_history_[0])
    np.testing.assert_allclose(dist.loss_history_[-1], single.loss_history_[-1], rtol=0.05)
    assert np.linalg.norm(X - W @ dist.components_) == pytest.approx(dist.reconstruction_err_, rel=1e-6)


def test_dask_nmf_bad_blocks(client, rng):
    import dask

    from rankfold.dask import NMF as DaskNMF

    X, _, _ = _nmf_data(rng, m=100)
    bad = X.copy()
    bad[70, 3] = np.nan
    with pytest.raises(ValueError, match=r"X \(block 1, rows 64:100\) contains NaN"):
        DaskNMF(client=client, n_components=3, max_iter=2).fit(_chunked(bad, False))
    bad[70, 3] = -1.0
    with pytest.raises(ValueError, match=r"Negative values .*block 1"):
        DaskNMF(client=client, n_components=3, max_iter=2, persist=False).fit(_chunked(bad, True))
    # blocks whose shape differs from the declared chunks (e.g. a wrong from_delayed shape)
    liar = da.concatenate([da.from_array(X[:60], chunks=(60, 40)),
                           da.from_delayed(dask.delayed(np.ones)((30, 40)), shape=(40, 40), dtype=np.float64)])
    with pytest.raises(ValueError, match=r"block 1, rows 60:100\) holds an array of shape \(30, 40\)"):
        DaskNMF(client=client, n_components=3, max_iter=2).fit(liar)
    with pytest.raises(ValueError, match="chunked along rows only"):
        DaskNMF(client=client, n_components=3).fit(da.from_array(X, chunks=(50, 20)))
    with pytest.raises(ValueError, match="all zeros"):
        DaskNMF(client=client, n_components=3).fit(da.zeros((10, 4), chunks=(5, 4)))
    with pytest.raises(ValueError, match=r"W must have shape"):
        DaskNMF(client=client, n_components=3, init="custom").fit(_chunked(X, False), W=np.ones((5, 3)),
                                                                  H=np.ones((3, 40)))
    with pytest.raises(ValueError, match="W contains negative"):
        DaskNMF(client=client, n_components=3, init="custom").fit(
            _chunked(X, False), W=-da.ones((100, 3), chunks=(30, 3)), H=np.ones((3, 40)))
    with pytest.raises(ValueError, match="beta_loss"):
        DaskNMF(client=client, beta_loss="itakura-saito").fit(_chunked(X, False))


def test_dask_nmf_survives_a_worker_dying(rng):
    """A worker process killed mid-fit: Dask restarts it and reruns its tasks; the
    blocks of W it held are re-solved against H and the fit finishes (in a
    thread with a timeout, so a hang fails the test instead of blocking it)."""
    import os
    import signal
    import threading

    from rankfold.dask import NMF as DaskNMF

    X, W0, H0 = _nmf_data(rng, m=400)
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                       memory_limit="1GiB")
    outcome = {}
    try:
        with distributed.Client(cluster) as client:
            pids = client.run(os.getpid)

            def kill_one(it, loss):
                if it == 3:
                    os.kill(next(iter(pids.values())), signal.SIGKILL)

            model = DaskNMF(client=client, n_components=5, init="custom", tol=0.0, max_iter=10, inner_sweeps=2,
                            callback=kill_one)

            def run():
                try:
                    outcome["W"] = model.fit_transform(_chunked(X, True, rows=50), W=W0, H=H0).compute()
                except BaseException as exc:  # reported below
                    outcome["error"] = exc

            worker = threading.Thread(target=run, daemon=True)
            worker.start()
            worker.join(timeout=120)
            assert not worker.is_alive(), "the fit hung after a worker died"
            assert "error" not in outcome, repr(outcome.get("error"))
            assert model.n_iter_ == 10
            losses = model.loss_history_
            assert np.all(np.isfinite(losses)) and losses[-1] < losses[2]
            client.wait_for_workers(2, timeout=60)  # the nanny restarted the killed process
            assert set(client.run(os.getpid).values()) != set(pids.values())
            assert np.linalg.norm(X - outcome["W"] @ model.components_) == pytest.approx(
                model.reconstruction_err_, rel=1e-6)
    finally:
        cluster.close()


def test_dask_nmf_out_of_core(disk_stack):
    """NMF of a matrix on disk larger than a worker's memory: every iteration
    reads the blocks from disk (persist=False), W's blocks stay on the workers.
    The reference is rankfold.NMF on the same matrix loaded in this process."""
    import os

    import rankfold
    from rankfold.dask import NMF as DaskNMF

    folder = disk_stack
    X = abs(da.from_npy_stack(folder))  # nonnegative, 640 MiB float32, read block by block
    m, n = X.shape
    k = 4
    W0 = da.random.RandomState(1).random_sample((m, k), chunks=(X.chunks[0], k)).astype(np.float32)
    H0 = np.random.default_rng(2).random((k, n)).astype(np.float32)
    params = dict(n_components=k, init="custom", tol=0.0, max_iter=2, inner_sweeps=2)
    with small_memory_cluster() as cluster, distributed.Client(cluster) as client:
        model = DaskNMF(client=client, persist=False, n_threads=1, **params)
        W = model.fit_transform(X, W=W0, H=H0)
        assert W.dtype == np.float32 and model.components_.dtype == np.float32
        W_rows = W[400_000:400_100].compute()
        W0 = W0.compute()
    n_files = len([f for f in os.listdir(folder) if f.endswith(".npy")])
    X_local = np.abs(np.concatenate([np.load(os.path.join(folder, f"{i}.npy")) for i in range(n_files)]))
    single = rankfold.NMF(n_threads=2, extrapolate=False, **params)
    W_single = single.fit_transform(X_local, W=W0, H=H0)
    # float32 sums over 1.3 million rows added in another order
    np.testing.assert_allclose(model.components_, single.components_, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(model.loss_history_, single.loss_history_, rtol=1e-3)
    np.testing.assert_allclose(W_rows, W_single[400_000:400_100], rtol=2e-3, atol=1e-4)


@pytest.mark.parametrize("feedback,biases,dense_chunks", [("implicit", False, False), ("explicit", True, False),
                                                          ("implicit", False, True)])
def test_dask_als_from_a_dask_array(client, feedback, biases, dense_chunks):
    """Ratings that never sit on the client: user blocks built on the workers,
    item blocks by a shuffle; the factors equal rankfold.ALS's."""
    import scipy.sparse as sp

    import rankfold
    from rankfold.dask import ALS as DaskALS

    R = sp.random(300, 200, density=0.05, format="csr", random_state=5, dtype=np.float64)
    R.data = np.ceil(R.data * 5)
    params = dict(factors=8, feedback=feedback, biases=biases, iterations=4, alpha=2.0, random_state=3,
                  dtype=np.float64)
    single = rankfold.ALS(n_threads=1, **params).fit(R)
    dR = da.from_array(R.toarray(), chunks=(70, 200))
    if not dense_chunks:
        dR = dR.map_blocks(sp.csr_matrix)
    dist = DaskALS(client=client, n_blocks=3, n_threads=1, **params).fit(dR)
    np.testing.assert_allclose(dist.user_factors_, single.user_factors_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.item_factors_, single.item_factors_, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(dist.loss_history_, single.loss_history_, rtol=1e-9)
    if biases:
        np.testing.assert_allclose(dist.item_biases_, single.item_biases_, rtol=1e-9, atol=1e-12)
        assert dist.global_mean_ == pytest.approx(single.global_mean_, rel=1e-12)
    ids_a, _ = dist.recommend(np.arange(6), n=5)  # seen items fetched from the dask array
    ids_b, _ = single.recommend(np.arange(6), n=5)
    np.testing.assert_array_equal(ids_a, ids_b)
    assert dist.recommend(2, n=3)[0].tolist() == single.recommend(2, n=3)[0].tolist()


def test_dask_als_dask_array_bad_input(client):
    import scipy.sparse as sp

    from rankfold.dask import ALS as DaskALS

    with pytest.raises(ValueError, match="chunked by users only"):
        DaskALS(client=client).fit(da.ones((10, 6), chunks=(5, 3)))
    neg = -da.ones((10, 6), chunks=(5, 6))
    with pytest.raises(ValueError, match=r"user_items \(block \d, rows \d+:\d+\) contains negative"):
        DaskALS(client=client).fit(neg.map_blocks(sp.csr_matrix))
    with pytest.raises(ValueError, match="no observed"):
        DaskALS(client=client).fit(da.zeros((10, 6), chunks=(5, 6)).map_blocks(sp.csr_matrix))
    with pytest.raises(TypeError, match="dask.array chunked by users"):
        DaskALS(client=client).fit([[1.0, 2.0]])
