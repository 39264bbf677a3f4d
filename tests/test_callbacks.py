"""One stopping rule for every estimator's callback(iteration, loss).

None continues; any other return value is tested for truth: False, 0,
numpy.False_, numpy.int64(0) stop; True, 1, numpy.True_ continue. A value with no
single truth value raises TypeError; an exception raised by the callback
propagates unchanged.
"""

import numpy as np
import pytest
import scipy.sparse as sp

import rankfold
from rankfold._validation import callback_stops

STOPPERS = [False, 0, np.False_, np.int64(0), 0.0]
CONTINUERS = [None, True, 1, np.True_, np.int32(5), "yes"]


def _nmf_data(seed=0, m=60, n=30, k=4):
    rng = np.random.default_rng(seed)
    return rng.random((m, k)) @ rng.random((k, n)) + 0.01 * rng.random((m, n))


def _ratings(seed=0, m=80, n=60, density=0.2):
    rng = np.random.default_rng(seed)
    R = sp.random(m, n, density=density, random_state=seed, format="csr")
    R.data = rng.integers(1, 6, R.nnz).astype(np.float64)
    return R


NMF_MODELS = {
    "hals": dict(solver="hals"),
    "hals-plain": dict(solver="hals", extrapolate=False),
    "mu-kl": dict(solver="mu", beta_loss="kullback-leibler"),
    "anls": dict(solver="anls"),
    "missing": dict(missing_values=np.nan),
    "graph": dict(graph="knn", graph_reg=0.1),
    "robust": dict(robust="correntropy"),
    "sum-to-one": dict(abundance_sum_to_one=True),
}


def _fit_nmf(name, answer):
    X = _nmf_data()
    if name == "missing":
        X = X.copy()
        X[::7, ::5] = np.nan
    calls = []

    def cb(it, loss):
        calls.append(it)
        return answer if len(calls) >= 3 else None

    model = rankfold.NMF(4, max_iter=40, tol=0.0, random_state=0, n_threads=1, callback=cb, **NMF_MODELS[name])
    model.fit(X)
    return model, calls


def test_rule():
    for a in STOPPERS:
        assert callback_stops(a), a
    for a in CONTINUERS:
        assert not callback_stops(a), a
    with pytest.raises(TypeError, match="callback"):
        callback_stops(np.array([True, False]))


@pytest.mark.parametrize("name", sorted(NMF_MODELS))
@pytest.mark.parametrize("answer", STOPPERS, ids=repr)
def test_nmf_stops(name, answer):
    model, calls = _fit_nmf(name, answer)
    assert len(calls) == 3 and model.n_iter_ == 3


@pytest.mark.parametrize("name", ["hals", "graph"])
@pytest.mark.parametrize("answer", [True, np.True_, 1], ids=repr)
def test_nmf_continues(name, answer):
    model, calls = _fit_nmf(name, answer)
    assert len(calls) == 40 and model.n_iter_ == 40


@pytest.mark.parametrize("feedback", ["explicit", "implicit"])
@pytest.mark.parametrize("answer", STOPPERS + [True, np.True_], ids=repr)
def test_als(feedback, answer):
    calls = []

    def cb(it, loss):
        calls.append(it)
        return answer if len(calls) >= 3 else None

    model = rankfold.ALS(8, feedback=feedback, iterations=10, random_state=0, n_threads=1, callback=cb)
    model.fit(_ratings())
    expected = 10 if callback_stops(answer) is False else 3
    assert len(calls) == expected and model.n_iter_ == expected


class Boom(Exception):
    pass


def _raiser(it, loss):
    raise Boom("from the callback")


@pytest.mark.parametrize("make", [
    lambda: rankfold.NMF(3, max_iter=20, callback=_raiser, n_threads=1),
    lambda: rankfold.NMF(3, max_iter=20, graph="knn", callback=_raiser, n_threads=1),
    lambda: rankfold.NMF(3, max_iter=20, solver="mu", beta_loss=1, callback=_raiser, n_threads=1),
])
def test_nmf_exception_propagates(make):
    with pytest.raises(Boom, match="from the callback"):
        make().fit(_nmf_data())


def test_als_exception_propagates():
    with pytest.raises(Boom, match="from the callback"):
        rankfold.ALS(4, iterations=5, callback=_raiser, n_threads=1).fit(_ratings())


@pytest.mark.parametrize("make", [
    lambda cb: rankfold.NMF(3, max_iter=20, callback=cb, n_threads=1),
    lambda cb: rankfold.NMF(3, max_iter=20, graph="knn", callback=cb, n_threads=1),
])
def test_ambiguous_answer_is_type_error(make):
    with pytest.raises(TypeError, match="callback must return None or a truth value"):
        make(lambda it, loss: np.array([1.0, 0.0])).fit(_nmf_data())


@pytest.mark.parametrize("family", ["nmf", "nmf-graph", "als-explicit", "als-implicit", "als-ials"])
def test_iteration_numbers_count_completed_iterations(family):
    # One convention for every estimator: the first call says 1 iteration is done.
    calls = []

    def cb(it, loss):
        calls.append(it)

    if family.startswith("nmf"):
        extra = NMF_MODELS["graph"] if family == "nmf-graph" else {}
        model = rankfold.NMF(3, max_iter=4, tol=0.0, random_state=0, n_threads=1, callback=cb, **extra)
        model.fit(_nmf_data())
    else:
        feedback = "explicit" if family == "als-explicit" else "implicit"
        solver = {"als-ials": dict(solver="ials++", block_size=2)}.get(family, {})
        model = rankfold.ALS(4, feedback=feedback, iterations=4, random_state=0, n_threads=1, callback=cb, **solver)
        model.fit(_ratings())
    assert calls == [1, 2, 3, 4] and model.n_iter_ == 4
