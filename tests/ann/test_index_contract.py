"""One behavioural contract for every rankfold index: the same cases run over
ExactIndex, HNSWIndex and rankfold.dask.ShardedIndex (with exact and with HNSW
shards, on one 2-worker in-process LocalCluster per module).

Where the classes promise different things, the case says so with an explicit
per-kind expectation (``Kind`` attributes), never with a skip; only the
ShardedIndex kinds skip, and only when distributed is not installed.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from rankfold import ExactIndex, HNSWIndex

METRICS = ["l2", "ip", "cosine"]
KINDS = ["exact", "hnsw", "sharded-exact", "sharded-hnsw"]
EF = 256  # generous search list: at least the size of every small index below


class Kind:
    """How one index kind is built, fed and searched, and what it promises."""

    def __init__(self, name: str, client=None) -> None:
        self.name = name
        self.sharded = name.startswith("sharded")
        self.graph = name.endswith("hnsw")  # HNSW graph search (approximate on large indexes)
        self.client = client
        # Per-kind promises (from the docstrings), used as explicit expectations.
        self.has_remove = name == "hnsw"  # only HNSWIndex documents remove()
        self.has_membership = not self.sharded  # contains / ids / get_vectors: not on ShardedIndex
        self.picklable = not self.sharded  # ShardedIndex holds a Client and futures
        self.ids_in_insertion_order = name == "exact"  # ExactIndex: insertion order; HNSW: slot order
        self.path_name = "folder" if self.sharded else "path"
        # ShardedIndex.add trusts the caller for ids already added by an earlier add.
        self.checks_existing_ids = not self.sharded

    def __repr__(self) -> str:
        return self.name

    def new(self, dim: int, metric: str = "l2"):
        if self.sharded:
            from rankfold.dask import ShardedIndex

            index = "hnsw" if self.graph else "exact"
            params = {"M": 16, "ef_construction": 200, "random_state": 0} if self.graph else {}
            return ShardedIndex(dim, metric=metric, index=index, client=self.client, **params)
        if self.graph:
            return HNSWIndex(dim, metric=metric, M=16, ef_construction=200, random_state=0)
        return ExactIndex(dim, metric=metric)

    def add(self, index, X, ids=None):
        if self.sharded:
            import dask.array as da

            X = np.asarray(X)
            rows = max(1, -(-X.shape[0] // 3))  # three shards (fewer for tiny inputs)
            X = da.from_array(X, chunks=(rows, X.shape[1]))
        return index.add(X, ids=ids)

    def search(self, index, Q, k):
        if self.graph:
            return index.search(Q, k, ef=max(EF, k))
        return index.search(Q, k)

    def load(self, path):
        if self.sharded:
            from rankfold.dask import ShardedIndex

            return ShardedIndex.load(path, client=self.client)
        return (HNSWIndex if self.graph else ExactIndex).load(path)

    def cls(self):
        if self.sharded:
            from rankfold.dask import ShardedIndex

            return ShardedIndex
        return HNSWIndex if self.graph else ExactIndex


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    pytest.importorskip("dask.array")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                       dashboard_address=":0")
    with distributed.Client(cluster) as c:
        yield c
    cluster.close()


@pytest.fixture(params=KINDS)
def kind(request) -> Kind:
    if request.param.startswith("sharded"):
        return Kind(request.param, request.getfixturevalue("client"))
    return Kind(request.param)


# --------------------------------------------------------------------------- reference


def reference_distances(X: np.ndarray, Q: np.ndarray, metric: str) -> np.ndarray:
    """Brute-force (nq, n) distances in float64, in rankfold's conventions."""
    X = X.astype(np.float64)
    Q = Q.astype(np.float64)
    if metric == "cosine":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
        Q = Q / np.linalg.norm(Q, axis=1, keepdims=True)
    if metric == "l2":
        return np.maximum((Q * Q).sum(1)[:, None] - 2.0 * Q @ X.T + (X * X).sum(1)[None, :], 0.0)
    return 1.0 - Q @ X.T


def check_exact(ids, dist, D, labels, k, tol=1e-4):
    """(ids, dist) is the exact top-k of D (rows labelled ``labels``), ties aside:
    ids are stored labels, distinct, and the distance at place j is the j-th
    smallest true distance; places beyond the index size hold -1 / inf."""
    nq, n = D.shape
    kk = min(k, n)
    assert ids.shape == (nq, k) and dist.shape == (nq, k)
    assert ids.dtype == np.int64 and dist.dtype == np.float32
    row_of = {int(label): r for r, label in enumerate(labels)}
    true_sorted = np.sort(D, axis=1)[:, :kk]
    for q in range(nq):
        got = ids[q, :kk].tolist()
        assert len(set(got)) == kk, f"query {q}: repeated ids {got}"
        assert all(g in row_of for g in got), f"query {q}: unknown ids in {got}"
        rows = [row_of[g] for g in got]
        scale = max(1.0, float(np.abs(D[q]).max()))
        np.testing.assert_allclose(dist[q, :kk], D[q, rows], rtol=tol, atol=tol * scale)
        np.testing.assert_allclose(dist[q, :kk], true_sorted[q], rtol=tol, atol=tol * scale)
    assert np.all(ids[:, kk:] == -1)
    assert np.all(np.isinf(dist[:, kk:])) and np.all(dist[:, kk:] > 0)


def data(seed: int, n: int, dim: int = 16, nq: int = 20):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, dim)).astype(np.float32),
            rng.standard_normal((nq, dim)).astype(np.float32))


# --------------------------------------------------------------------------- search


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_search_matches_brute_force(kind, metric, seed):
    """Exact kinds return the brute-force neighbours; HNSW kinds reach
    recall@10 >= 0.9 with a generous ef (2000 vectors, ef=256)."""
    X, Q = data(seed, 2000, nq=50)
    index = kind.add(kind.new(16, metric), X)
    ids, dist = kind.search(index, Q, 10)
    D = reference_distances(X, Q, metric)
    if not kind.graph:
        check_exact(ids, dist, D, np.arange(len(X)), 10)
        return
    truth = np.argsort(D, axis=1)[:, :10]
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 10 for a, b in zip(ids, truth)])
    assert recall >= 0.9, recall
    # Whatever is returned is a stored id at its true distance, nearest first.
    assert ids.min() >= 0 and ids.max() < len(X)
    np.testing.assert_allclose(dist, np.take_along_axis(D, ids, axis=1), rtol=1e-4, atol=1e-4 * np.abs(D).max())
    assert np.all(np.diff(dist, axis=1) >= -1e-5)


@pytest.mark.parametrize("metric", METRICS)
def test_small_index_is_exact_for_every_kind(kind, metric):
    """On an index no larger than ef every kind is exact (HNSW's beam search
    with a list longer than the index visits every node)."""
    X, Q = data(3, 120)
    index = kind.add(kind.new(16, metric), X)
    check_exact(*kind.search(index, Q, 7), reference_distances(X, Q, metric), np.arange(len(X)), 7)


@pytest.mark.parametrize("metric", METRICS)
def test_custom_ids_round_trip(kind, metric):
    X, Q = data(4, 60)
    labels = np.random.default_rng(4).permutation(10_000)[:60].astype(np.int64) * 7 + 3
    index = kind.add(kind.new(16, metric), X, ids=labels)
    ids, dist = kind.search(index, Q, 5)
    check_exact(ids, dist, reference_distances(X, Q, metric), labels, 5)
    if metric != "ip":  # a stored vector is its own nearest neighbour (not so for inner product)
        self_ids, self_dist = kind.search(index, X, 1)
        np.testing.assert_array_equal(self_ids[:, 0], labels)
        np.testing.assert_allclose(self_dist[:, 0], 0.0, atol=1e-4)


@pytest.mark.parametrize("metric", METRICS)
def test_default_ids_continue_after_custom_ones(kind, metric):
    """Default ids are consecutive, continuing after the largest id added so far."""
    X, Q = data(5, 30)
    index = kind.add(kind.new(16, metric), X[:10])
    kind.add(index, X[10:20], ids=np.arange(100, 110))
    kind.add(index, X[20:])
    labels = np.concatenate([np.arange(10), np.arange(100, 110), np.arange(110, 120)])
    check_exact(*kind.search(index, Q, 30), reference_distances(X, Q, metric), labels, 30)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("k", [9, 10, 25, 1000])
def test_k_larger_than_index_pads(kind, metric, k):
    X, Q = data(6, 9)
    index = kind.add(kind.new(16, metric), X)
    ids, dist = kind.search(index, Q, k)
    assert ids.shape == dist.shape == (len(Q), k)
    check_exact(ids, dist, reference_distances(X, Q, metric), np.arange(9), k)


@pytest.mark.parametrize("metric", METRICS)
def test_empty_index_search(kind, metric):
    _, Q = data(7, 1, nq=3)
    index = kind.new(16, metric)
    assert len(index) == 0
    ids, dist = kind.search(index, Q, 4)
    assert ids.shape == dist.shape == (3, 4)
    assert np.all(ids == -1) and np.all(np.isposinf(dist))


def test_empty_query_batch(kind):
    X, _ = data(8, 20)
    index = kind.add(kind.new(16), X)
    ids, dist = kind.search(index, np.zeros((0, 16), np.float32), 3)
    assert ids.shape == dist.shape == (0, 3)


# --------------------------------------------------------------------------- size and membership


def test_len_contains_ids(kind):
    X, _ = data(9, 40)
    labels = np.arange(40, dtype=np.int64)[::-1] * 2 + 1
    index = kind.new(16)
    assert len(index) == 0
    kind.add(index, X[:25], ids=labels[:25])
    kind.add(index, X[25:], ids=labels[25:])
    assert len(index) == 40
    if not kind.has_membership:
        # ShardedIndex documents no membership queries: only len and search.
        for name in ("contains", "ids", "get_vectors"):
            assert not hasattr(index, name), name
        return
    np.testing.assert_array_equal(index.contains(np.array([labels[0], 0, labels[-1], 2])),
                                  [True, False, True, False])
    assert index.contains(np.array([], np.int64)).shape == (0,)
    if kind.ids_in_insertion_order:
        np.testing.assert_array_equal(index.ids, labels)
    else:  # HNSWIndex: slot order, the same set
        np.testing.assert_array_equal(np.sort(index.ids), np.sort(labels))
    assert index.ids.dtype == np.int64
    np.testing.assert_allclose(index.get_vectors(labels[[3, 30]]), X[[3, 30]])
    with pytest.raises(ValueError, match="ids"):
        index.get_vectors([0])


@pytest.mark.parametrize("metric", METRICS)
def test_remove_hides_ids(kind, metric):
    X, Q = data(10, 80)
    index = kind.add(kind.new(16, metric), X)
    if not kind.has_remove:
        # Only HNSWIndex documents remove(); the exact and sharded indexes are add-only.
        assert not hasattr(index, "remove")
        return
    gone = np.arange(0, 80, 3)
    index.remove(gone)
    keep = np.setdiff1d(np.arange(80), gone)
    assert len(index) == len(keep)
    assert not index.contains(gone).any() and index.contains(keep).all()
    np.testing.assert_array_equal(np.sort(index.ids), keep)
    ids, dist = kind.search(index, Q, 80)
    assert not np.isin(ids, gone).any()
    check_exact(ids, dist, reference_distances(X[keep], Q, metric), keep, 80)
    with pytest.raises(ValueError, match="ids"):
        index.remove(gone[:1])  # unknown now
    with pytest.raises(ValueError, match="ids"):
        index.remove(np.array([keep[0], keep[0]]))  # repeated
    assert len(index) == len(keep)
    # Removed ids may be added again, and are found again.
    kind.add(index, X[gone], ids=gone)
    check_exact(*kind.search(index, Q, 10), reference_distances(X, Q, metric), np.arange(80), 10)


# --------------------------------------------------------------------------- persistence


@pytest.mark.parametrize("metric", METRICS)
def test_save_load_round_trip(kind, metric, tmp_path):
    X, Q = data(11, 300)
    index = kind.add(kind.new(16, metric), X, ids=np.arange(300) * 5)
    before = kind.search(index, Q, 12)
    path = tmp_path / "index"
    index.save(path)
    for where in (path, str(path)):
        loaded = kind.load(where)
        assert type(loaded) is type(index)
        assert len(loaded) == len(index) and loaded.dim == 16 and loaded.metric == metric
        after = kind.search(loaded, Q, 12)
        np.testing.assert_array_equal(after[0], before[0])
        np.testing.assert_array_equal(after[1], before[1])
    # The loaded index keeps working: default ids continue after the largest (1495).
    kind.add(loaded, X[:2])
    assert len(loaded) == 302
    if kind.has_membership:
        assert loaded.contains(np.array([1496, 1497])).all()


@pytest.mark.parametrize("metric", METRICS)
def test_pickle_round_trip(kind, metric):
    X, Q = data(12, 300)
    index = kind.add(kind.new(16, metric), X)
    if not kind.picklable:
        # ShardedIndex keeps futures on a cluster and does not promise pickling
        # (save/load to a shared folder is its persistence).
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(index)
        return
    before = kind.search(index, Q, 12)
    clone = pickle.loads(pickle.dumps(index))
    assert type(clone) is type(index) and len(clone) == len(index)
    after = kind.search(clone, Q, 12)
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[1], before[1])
    np.testing.assert_array_equal(clone.ids, index.ids)


# --------------------------------------------------------------------------- bad input


def test_bad_constructor_arguments(kind):
    with pytest.raises(ValueError, match="dim"):
        kind.new(0)
    with pytest.raises(TypeError, match="dim"):
        kind.new(2.5)
    with pytest.raises(ValueError, match="metric"):
        kind.new(4, "manhattan")


def test_bad_add_input_raises_and_changes_nothing(kind):
    X, _ = data(13, 10)
    index = kind.add(kind.new(16), X)
    with pytest.raises(ValueError, match="X"):  # wrong dimension
        kind.add(index, X[:, :8])
    bad = X.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="X contains NaN"):
        kind.add(index, bad)
    with pytest.raises(ValueError, match="ids must have 10 entries"):
        kind.add(index, X, ids=np.arange(100, 105))
    with pytest.raises(ValueError, match="ids contains duplicate"):
        kind.add(index, X[:3], ids=np.array([100, 101, 100]))
    with pytest.raises(ValueError, match="ids must be >= 0"):
        kind.add(index, X[:2], ids=np.array([100, -1]))
    with pytest.raises(TypeError, match="ids must be integers"):
        kind.add(index, X[:2], ids=np.array([1.5, 2.5]))
    assert len(index) == 10
    if kind.checks_existing_ids:
        with pytest.raises(ValueError, match="already in the index"):
            kind.add(index, X[:2], ids=np.array([200, 3]))
        assert len(index) == 10
    else:
        # ShardedIndex.add documents that the caller is trusted for ids of earlier adds.
        kind.add(index, X[:2], ids=np.array([200, 3]))
        assert len(index) == 12


def test_bad_search_input(kind):
    X, Q = data(14, 10)
    index = kind.add(kind.new(16), X)
    with pytest.raises(ValueError, match="Q must have 16 columns"):
        kind.search(index, Q[:, :5], 3)
    with pytest.raises(ValueError, match="Q must be a 2-D array"):
        kind.search(index, Q[0], 3)
    nan_q = Q.copy()
    nan_q[1, 0] = np.nan
    with pytest.raises(ValueError, match="Q contains NaN"):
        kind.search(index, nan_q, 3)
    inf_q = Q.copy()
    inf_q[0, 0] = np.inf
    with pytest.raises(ValueError, match="Q contains infinity"):
        kind.search(index, inf_q, 3)
    for k in (0, -1):
        with pytest.raises(ValueError, match="k must be >= 1"):
            index.search(Q, k)
    with pytest.raises(TypeError, match="k must be an integer"):
        index.search(Q, 2.0)
    with pytest.raises(TypeError, match="Q"):
        index.search("not an array", 3)


def test_bad_save_and_load_paths(kind, tmp_path):
    X, _ = data(15, 10)
    index = kind.add(kind.new(16), X)
    with pytest.raises(TypeError, match=kind.path_name):
        index.save(3)
    with pytest.raises(TypeError, match=kind.path_name):
        kind.cls().load(None)
    missing = tmp_path / "missing"
    if kind.sharded:
        # a missing folder is a FileNotFoundError (also a ValueError); a folder without a manifest a ValueError
        with pytest.raises(FileNotFoundError, match="cannot open index folder") as info:
            kind.load(missing)
        assert isinstance(info.value, ValueError)
        with pytest.raises(ValueError, match="does not hold a saved ShardedIndex"):
            kind.load(tmp_path)
        return
    with pytest.raises(FileNotFoundError) as info:
        kind.load(missing)
    assert isinstance(info.value, ValueError)  # documented: also a ValueError
    with pytest.raises(IsADirectoryError):
        kind.load(tmp_path)
    garbage = tmp_path / "garbage.rfi"
    garbage.write_bytes(b"this is not an index file" * 10)
    with pytest.raises(ValueError):
        kind.load(garbage)
    truncated = tmp_path / "truncated.rfi"
    index.save(tmp_path / "whole.rfi")
    truncated.write_bytes((tmp_path / "whole.rfi").read_bytes()[:-7])
    with pytest.raises(ValueError):
        kind.load(truncated)


# --------------------------------------------------------------------------- input forms


def test_query_and_id_forms_are_equivalent(kind):
    """Vectors are converted to float32 C order once: lists, float64, Fortran
    order and strided views search alike; ids may be any integer array or list."""
    X, Q = data(16, 50)
    index = kind.add(kind.new(16), X.astype(np.float64), ids=list(range(1000, 1050)))
    base = kind.search(index, Q, 6)
    check_exact(*base, reference_distances(X, Q, "l2"), np.arange(1000, 1050), 6)
    wide = np.zeros((len(Q), 32), np.float32)
    wide[:, ::2] = Q
    for form in (Q.tolist(), Q.astype(np.float64), np.asfortranarray(Q), wide[:, ::2]):
        got = kind.search(index, form, 6)
        np.testing.assert_array_equal(got[0], base[0])
        np.testing.assert_array_equal(got[1], base[1])
    other = kind.add(kind.new(16), X, ids=np.arange(1000, 1050, dtype=np.uint32))
    np.testing.assert_array_equal(kind.search(other, Q, 6)[0], base[0])


def test_adding_no_rows_is_a_no_op(kind):
    X, _ = data(17, 12)
    index = kind.add(kind.new(16), X)
    kind.add(index, np.zeros((0, 16), np.float32))
    assert len(index) == 12
    kind.add(index, X[:1])  # the default id after 0..11 is still 12
    ids, _ = kind.search(index, X[:1], 2)
    assert sorted(ids[0].tolist()) == [0, 12]


def test_ef_below_k_is_rejected_by_graph_kinds(kind):
    X, Q = data(18, 30)
    index = kind.add(kind.new(16), X)
    if not kind.graph:
        # Exact search has no ef: the argument does not exist.
        with pytest.raises(TypeError, match="ef"):
            index.search(Q, 5, ef=10)
        return
    with pytest.raises(ValueError, match="ef must be >= k"):
        index.search(Q, 5, ef=4)
    ids, _ = index.search(Q, 5)  # default ef: max(ef, k)
    assert ids.shape == (len(Q), 5) and np.all(ids >= 0)


def test_removal_survives_save_load_and_pickle(kind, tmp_path):
    X, Q = data(19, 60)
    index = kind.add(kind.new(16), X)
    if not kind.has_remove:
        assert not hasattr(index, "remove")
        return
    index.remove(np.arange(10))
    before = kind.search(index, Q, 60)
    index.save(tmp_path / "removed.rfi")
    for clone in (kind.load(tmp_path / "removed.rfi"), pickle.loads(pickle.dumps(index))):
        assert len(clone) == 50 and not clone.contains(np.arange(10)).any()
        after = kind.search(clone, Q, 60)
        np.testing.assert_array_equal(after[0], before[0])
        np.testing.assert_array_equal(after[1], before[1])
        assert np.all(after[0][:, 50:] == -1)


def test_stored_vectors_are_normalised_for_cosine(kind):
    X, _ = data(20, 15)
    index = kind.add(kind.new(16, "cosine"), X * 3.0)
    if not kind.has_membership:
        assert not hasattr(index, "get_vectors")
        return
    stored = index.get_vectors(np.arange(15))
    np.testing.assert_allclose(stored, X / np.linalg.norm(X, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_dim_metric_and_repr(kind):
    index = kind.new(7, "ip")
    assert index.dim == 7 and index.metric == "ip"
    assert type(index).__name__ in repr(index) and "size=0" in repr(index)


def test_sharded_ids_may_be_a_dask_array(kind):
    X, Q = data(21, 40)
    if not kind.sharded:
        # The in-memory indexes take NumPy-like ids; nothing dask-specific to check.
        assert isinstance(kind.new(16), (ExactIndex, HNSWIndex))
        return
    import dask.array as da

    labels = np.arange(40) * 3
    index = kind.add(kind.new(16), X, ids=da.from_array(labels, chunks=15))
    check_exact(*kind.search(index, Q, 5), reference_distances(X, Q, "l2"), labels, 5)
