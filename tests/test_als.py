"""rankfold.ALS against dense NumPy reference implementations."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold
from rankfold import ALS


def random_interactions(rng, n_users=30, n_items=20, density=0.3, scale=5.0):
    R = sp.random(n_users, n_items, density=density, random_state=np.random.RandomState(int(rng.integers(1 << 30))),
                  format="csr")
    R.data = np.ceil(R.data * scale)
    return R


def reference_implicit(R, X0, Y0, alpha, lam, iterations):
    """Hu-Koren-Volinsky ALS, dense and exact (the textbook equations)."""
    D = R.toarray()
    P = (D > 0).astype(float)
    C = 1.0 + alpha * D
    X, Y = X0.astype(float).copy(), Y0.astype(float).copy()
    k = X.shape[1]
    for _ in range(iterations):
        for u in range(X.shape[0]):
            A = Y.T @ (C[u][:, None] * Y) + lam * np.eye(k)
            X[u] = np.linalg.solve(A, Y.T @ (C[u] * P[u]))
        for i in range(Y.shape[0]):
            A = X.T @ (C[:, i][:, None] * X) + lam * np.eye(k)
            Y[i] = np.linalg.solve(A, X.T @ (C[:, i] * P[:, i]))
    return X, Y


def reference_explicit(R, X0, Y0, lam, iterations, biases):
    """Weighted-lambda ALS over the observed entries, optionally with biases."""
    R = R.tocsr()
    RT = R.T.tocsr()
    X, Y = X0.astype(float).copy(), Y0.astype(float).copy()
    k = X.shape[1]
    mu = R.data.mean() if biases else 0.0
    bu, bi = np.zeros(R.shape[0]), np.zeros(R.shape[1])

    def side(M, F, fb, own, ob):
        for u in range(M.shape[0]):
            cols = M.indices[M.indptr[u]:M.indptr[u + 1]]
            vals = M.data[M.indptr[u]:M.indptr[u + 1]]
            if cols.size == 0:
                own[u] = 0
                ob[u] = 0
                continue
            Z = F[cols]
            if biases:
                Z = np.hstack([Z, np.ones((cols.size, 1))])
            t = vals - mu - (fb[cols] if biases else 0)
            sol = np.linalg.solve(Z.T @ Z + lam * cols.size * np.eye(Z.shape[1]), Z.T @ t)
            own[u] = sol[:k]
            if biases:
                ob[u] = sol[k]

    for _ in range(iterations):
        side(R, Y, bi, X, bu)
        side(RT, X, bu, Y, bi)
    return X, Y, bu, bi, mu


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_implicit_matches_dense_reference(rng, solver):
    R = random_interactions(rng)
    k = 4
    # cg_steps = k makes conjugate gradient exact in exact arithmetic
    model = ALS(factors=k, alpha=2.0, regularization=0.05, iterations=4, solver=solver, cg_steps=k,
                dtype=np.float64, random_state=3).fit(R)
    X0, Y0 = model._initial_factors(*R.shape, model._fit_params)
    X, Y = reference_implicit(R, X0, Y0, 2.0, 0.05, 4)
    np.testing.assert_allclose(model.user_factors_, X, atol=1e-5)
    np.testing.assert_allclose(model.item_factors_, Y, atol=1e-5)
    P = (R.toarray() > 0).astype(float)
    C = 1 + 2.0 * R.toarray()
    loss = (C * (P - X @ Y.T) ** 2).sum() + 0.05 * ((X ** 2).sum() + (Y ** 2).sum())
    assert model.loss_history_[-1] == pytest.approx(loss / R.nnz, rel=1e-8)
    assert np.all(np.diff(model.loss_history_) <= 1e-12)  # exact ALS never increases the objective


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
@pytest.mark.parametrize("biases", [False, True])
def test_explicit_matches_dense_reference(rng, solver, biases):
    R = random_interactions(rng).tolil()
    R[3, :] = 0  # a user without ratings
    R = R.tocsr()
    R.eliminate_zeros()
    k = 3
    model = ALS(factors=k, feedback="explicit", biases=biases, regularization=0.1, iterations=4, solver=solver,
                cg_steps=k + 1, dtype=np.float64, random_state=1).fit(R)
    X0, Y0 = model._initial_factors(*R.shape, model._fit_params)
    X, Y, bu, bi, mu = reference_explicit(R, X0, Y0, 0.1, 4, biases)
    np.testing.assert_allclose(model.user_factors_, X, atol=1e-5)
    np.testing.assert_allclose(model.item_factors_, Y, atol=1e-5)
    if biases:
        np.testing.assert_allclose(model.user_biases_, bu, atol=1e-5)
        np.testing.assert_allclose(model.item_biases_, bi, atol=1e-5)
        assert model.global_mean_ == pytest.approx(mu)
        # the user without ratings gets the bias-only prediction
        np.testing.assert_allclose(model.predict([3, 3], [0, 5]), mu + bi[[0, 5]], atol=1e-5)
    else:
        np.testing.assert_array_equal(model.predict([3], [0]), [0.0])
    u, i = R.nonzero()
    pred = (X[u] * Y[i]).sum(1) + (mu + bu[u] + bi[i] if biases else 0)
    np.testing.assert_allclose(model.predict(u, i), pred, atol=1e-5)


def test_cg_converges_to_cholesky(rng):
    R = random_interactions(rng, 60, 40, density=0.2)
    k = 8
    exact = ALS(factors=k, alpha=5.0, iterations=6, solver="cholesky", dtype=np.float64, random_state=0).fit(R)
    errors = []
    for steps in (1, 2, 4, 8, 16):
        approx = ALS(factors=k, alpha=5.0, iterations=6, solver="cg", cg_steps=steps, dtype=np.float64,
                     random_state=0).fit(R)
        errors.append(np.abs(approx.item_factors_ - exact.item_factors_).max())
    # round-off makes CG need a few more than k steps on these ill-conditioned first sweeps
    assert errors[-1] < 1e-8
    assert all(a > b for a, b in zip(errors, errors[1:]))
    # objective of the inexact solver approaches the exact one
    assert approx.loss_history_[-1] == pytest.approx(exact.loss_history_[-1], rel=1e-8)


@pytest.mark.parametrize("solver", ["cholesky", "cg"])
def test_low_rank_recovery(solver):
    rng = np.random.default_rng(7)
    n, m, k = 250, 180, 4
    M = rng.standard_normal((n, k)) @ rng.standard_normal((k, m))
    n_obs = int(3 * n * k * np.log(n))  # |Omega| = c n k log n, c = 3
    idx = rng.choice(n * m, n_obs, replace=False)
    r, c = np.divmod(idx, m)
    R = sp.csr_matrix((M[r, c], (r, c)), shape=(n, m))
    model = ALS(factors=k, feedback="explicit", regularization=1e-9, iterations=40, solver=solver, cg_steps=3,
                dtype=np.float64, random_state=0).fit(R)
    M_hat = model.user_factors_ @ model.item_factors_.T
    assert np.linalg.norm(M_hat - M) / np.linalg.norm(M) < 1e-3


@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_float32_stays_float32_and_matches_float64(rng, feedback):
    R = random_interactions(rng, 50, 40)
    kw = dict(factors=6, feedback=feedback, iterations=5, solver="cholesky", random_state=2)
    m32 = ALS(dtype=np.float32, **kw).fit(R)
    m64 = ALS(dtype=np.float64, **kw).fit(R)
    assert m32.user_factors_.dtype == np.float32 and m32.item_factors_.dtype == np.float32
    assert m64.user_factors_.dtype == np.float64
    np.testing.assert_allclose(m32.item_factors_, m64.item_factors_, atol=2e-3)
    assert m32.predict([0, 1], [2, 3]).dtype == np.float32
    ids, scores = m32.recommend([0, 1], n=3)
    assert scores.dtype == np.float32


def test_same_seed_same_model_any_thread_count(rng):
    R = random_interactions(rng, 200, 150, density=0.1)
    a = ALS(factors=8, iterations=3, random_state=5, n_threads=1).fit(R)
    b = ALS(factors=8, iterations=3, random_state=5, n_threads=2).fit(R)
    c = ALS(factors=8, iterations=3, random_state=6, n_threads=2).fit(R)
    np.testing.assert_array_equal(a.user_factors_, b.user_factors_)
    np.testing.assert_array_equal(a.item_factors_, b.item_factors_)
    assert not np.array_equal(a.item_factors_, c.item_factors_)


def test_input_formats_and_duplicates(rng):
    R = random_interactions(rng)
    ref = ALS(factors=3, iterations=2, random_state=0).fit(R)
    for X in (R.tocsc(), R.tocoo(), sp.csr_array(R), R.astype(np.int64)):
        m = ALS(factors=3, iterations=2, random_state=0).fit(X)
        np.testing.assert_allclose(m.item_factors_, ref.item_factors_, rtol=1e-5, atol=1e-7)
    # duplicated triplets are summed
    u, i = R.nonzero()
    v = np.asarray(R[u, i]).ravel()
    half = v / 2
    m = ALS(factors=3, iterations=2, random_state=0).fit_triplets(np.r_[u, u], np.r_[i, i], np.r_[half, half],
                                                                 shape=R.shape)
    np.testing.assert_allclose(m.item_factors_, ref.item_factors_, rtol=1e-5, atol=1e-7)


def test_users_and_items_without_observations(rng):
    R = random_interactions(rng).tolil()
    R[5, :] = 0
    R[:, 7] = 0
    R = R.tocsr()
    for solver in ("cg", "cholesky"):
        m = ALS(factors=4, iterations=3, solver=solver, random_state=0).fit(R)
        assert np.all(m.user_factors_[5] == 0) and np.all(m.item_factors_[7] == 0)
        ids, scores = m.recommend(5, n=3)
        assert np.all(scores == 0)


def brute_recommend(model, users, n, seen=None, items=None):
    S = model.user_factors_[users].astype(np.float64) @ model.item_factors_.T.astype(np.float64)
    if model.user_biases_ is not None:
        S += model.item_biases_[None, :] + model.user_biases_[users][:, None] + model.global_mean_
    if seen is not None:
        S[seen.toarray() != 0] = -np.inf
    if items is not None:
        mask = np.full(S.shape[1], True)
        mask[items] = False
        S[:, mask] = -np.inf
    return S


@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_recommend_matches_brute_force(rng, feedback):
    R = random_interactions(rng, 80, 60, density=0.2)
    m = ALS(factors=5, feedback=feedback, biases=feedback == "explicit", iterations=3, random_state=0,
            dtype=np.float64).fit(R)
    users = np.array([0, 3, 3, 79, 10])
    for kwargs, seen, items in [
        (dict(), R[users], None),
        (dict(filter_seen=False), None, None),
        (dict(items=[5, 7, 9, 11, 50, 59, 1]), R[users], [5, 7, 9, 11, 50, 59, 1]),
    ]:
        ids, scores = m.recommend(users, n=4, **kwargs)
        S = brute_recommend(m, users, 4, seen, items)
        assert ids.shape == (5, 4)
        for row in range(len(users)):
            valid = ids[row] >= 0
            np.testing.assert_allclose(scores[row][valid], S[row, ids[row][valid]], rtol=1e-6, atol=1e-9)
            expected = np.sort(S[row][np.isfinite(S[row])])[::-1][:4]
            np.testing.assert_allclose(scores[row][valid], expected, rtol=1e-6, atol=1e-9)
            assert np.all(np.diff(scores[row][valid]) <= 1e-12)
            if seen is not None:
                assert not set(ids[row][valid]) & set(R[users[row]].indices)
            if items is not None:
                assert set(ids[row][valid]) <= set(items)
    # user_items given explicitly: rows follow the users argument
    other = sp.csr_matrix(([1.0, 1.0], ([0, 1], [2, 4])), shape=(2, 60))
    ids, scores = m.recommend([0, 1], n=60, user_items=other)
    assert 2 not in ids[0] and 4 not in ids[1] and (ids[0] == -1).sum() == 1
    # scalar user: 1-D results
    ids, scores = m.recommend(3, n=2)
    assert ids.shape == (2,) and scores.shape == (2,)


def test_recommend_pads_when_few_candidates(rng):
    R = random_interactions(rng, 10, 8, density=0.5)
    m = ALS(factors=3, iterations=2, random_state=0).fit(R)
    ids, scores = m.recommend(np.arange(10), n=8)
    n_seen = np.diff(R.indptr)
    for u in range(10):
        assert (ids[u] == -1).sum() == n_seen[u]
        assert np.all(np.isneginf(scores[u][ids[u] == -1]))


def test_similar_items_and_users_cosine(rng):
    R = random_interactions(rng, 50, 40)
    m = ALS(factors=5, iterations=3, random_state=0, dtype=np.float64).fit(R)
    for F, fn in ((m.item_factors_, m.similar_items), (m.user_factors_, m.similar_users)):
        Fn = F / np.linalg.norm(F, axis=1, keepdims=True)
        q = np.array([0, 4, 9])
        ids, scores = fn(q, n=5)
        C = Fn[q] @ Fn.T
        for row in range(3):
            assert ids[row, 0] == q[row] and scores[row, 0] == pytest.approx(1.0)
            np.testing.assert_allclose(scores[row], np.sort(C[row])[::-1][:5], atol=1e-9)
            np.testing.assert_allclose(scores[row], C[row, ids[row]], atol=1e-9)


@pytest.mark.parametrize("feedback", ["implicit", "explicit"])
def test_recalculate_user_is_an_exact_row_solve(rng, feedback):
    R = random_interactions(rng)
    m = ALS(factors=4, feedback=feedback, biases=feedback == "explicit", iterations=3, solver="cholesky",
            random_state=0, dtype=np.float64).fit(R)
    # with Cholesky the last user sweep used the previous item factors; one more
    # exact solve against the final item factors must match the reference
    row = R[2]
    out = m.recalculate_user(row)
    Y = m.item_factors_
    if feedback == "implicit":
        d = row.toarray()[0]
        C = 1 + m.alpha * d
        x = np.linalg.solve(Y.T @ (C[:, None] * Y) + 0.01 * np.eye(4), Y.T @ (C * (d > 0)))
        np.testing.assert_allclose(out[0], x, atol=1e-8)
        np.testing.assert_allclose(m.recalculate_user(row.toarray()[0]), x, atol=1e-8)
    else:
        factors, bias = out
        cols, vals = row.indices, row.data
        Z = np.hstack([Y[cols], np.ones((cols.size, 1))])
        t = vals - m.global_mean_ - m.item_biases_[cols]
        sol = np.linalg.solve(Z.T @ Z + 0.1 * cols.size * np.eye(5), Z.T @ t)
        np.testing.assert_allclose(factors[0], sol[:4], atol=1e-8)
        assert bias[0] == pytest.approx(sol[4])


def test_nonnegative_factors(rng):
    R = random_interactions(rng, 40, 30)
    for feedback in ("implicit", "explicit"):
        for solver in ("cg", "cholesky"):
            m = ALS(factors=5, feedback=feedback, nonnegative=True, solver=solver, iterations=4,
                    random_state=0).fit(R)
            assert m.user_factors_.min() >= 0 and m.item_factors_.min() >= 0
            assert np.isfinite(m.loss_history_).all()


def test_callback_verbose_and_early_stop(rng, capsys):
    R = random_interactions(rng)
    seen = []
    m = ALS(factors=3, iterations=5, random_state=0, verbose=True,
            callback=lambda it, loss: seen.append((it, loss))).fit(R)
    assert [s[0] for s in seen] == list(range(1, 6))  # completed iterations, as NMF counts
    assert [s[1] for s in seen] == m.loss_history_
    assert "iteration 5/5" in capsys.readouterr().out
    m = ALS(factors=3, iterations=5, random_state=0, callback=lambda it, loss: it < 2).fit(R)
    assert m.n_iter_ == 2 and len(m.loss_history_) == 2


def test_exported():
    assert rankfold.ALS is ALS
    assert "ALS" in rankfold.__all__


def test_recommend_across_item_tiles(rng):
    # more items than one score tile (1024), so seen lists are walked across tiles
    R = sp.random(70, 2600, density=0.05, random_state=np.random.RandomState(3), format="csr")
    m = ALS(factors=6, iterations=2, random_state=0, dtype=np.float64).fit(R)
    users = np.arange(70)
    cand = np.random.default_rng(1).permutation(2600)[:1500]
    for items in (None, cand):
        ids, scores = m.recommend(users, n=7, items=items)
        S = brute_recommend(m, users, 7, R, items)
        for row in range(70):
            np.testing.assert_allclose(scores[row], np.sort(S[row])[::-1][:7], rtol=1e-6, atol=1e-9)
            np.testing.assert_allclose(scores[row], S[row, ids[row]], rtol=1e-6, atol=1e-9)
            assert not set(ids[row]) & set(R[row].indices)


def test_get_set_params_and_clone(rng):
    from sklearn.base import clone

    m = ALS(factors=5, alpha=3.0, solver="cholesky")
    assert m.get_params()["factors"] == 5 and m.get_params()["solver"] == "cholesky"
    c = clone(m).set_params(factors=7)
    assert c.factors == 7 and c.alpha == 3.0 and m.factors == 5
    with pytest.raises(ValueError, match="invalid parameter 'rank'"):
        m.set_params(rank=3)
    R = random_interactions(rng)
    assert clone(m).fit(R).item_factors_.shape == (20, 5)


def test_pickle_round_trip(rng):
    import pickle

    R = random_interactions(rng)
    m = ALS(factors=4, iterations=2, random_state=0).fit(R)
    m2 = pickle.loads(pickle.dumps(m))
    np.testing.assert_array_equal(m2.recommend([0, 1], n=3)[0], m.recommend([0, 1], n=3)[0])
    np.testing.assert_array_equal(m2.recalculate_user(R[0]), m.recalculate_user(R[0]))
