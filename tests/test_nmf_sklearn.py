"""rankfold.NMF as a scikit-learn estimator: clone, Pipeline, GridSearchCV, check_estimator."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import rankfold

sklearn = pytest.importorskip("sklearn")
from sklearn.base import clone  # noqa: E402
from sklearn.exceptions import ConvergenceWarning, SkipTestWarning  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.utils.estimator_checks import check_estimator  # noqa: E402

# Checks that rankfold.NMF fails on purpose, and why:
EXPECTED_FAILED_CHECKS = {
    # rankfold's validation policy (rankfold/_validation.py): data that are not
    # real numbers are a TypeError naming the argument, not a ValueError, and
    # object arrays are refused rather than converted element by element.
    "check_complex_data": "complex input raises TypeError by rankfold's validation policy",
    "check_dtype_object": "object arrays raise TypeError by rankfold's validation policy",
}


def test_check_estimator():
    # transform solves the row problems exactly, fit_transform returns the W of
    # the last iteration: they agree once the fit has converged, hence the tight tol.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", SkipTestWarning)
        check_estimator(rankfold.NMF(max_iter=3000, tol=1e-12), expected_failed_checks=EXPECTED_FAILED_CHECKS)


def test_clone_and_params():
    model = rankfold.NMF(4, solver="mu", alpha_W=0.1, n_threads=1, random_state=3)
    copy = clone(model)
    assert copy.get_params() == model.get_params()
    copy.set_params(n_components=6)
    assert copy.n_components == 6 and model.n_components == 4


def test_pipeline_and_grid_search(rng):
    n = 120
    y = rng.integers(0, 2, n)
    centers = np.abs(rng.standard_normal((2, 30))) * 3
    X = np.abs(centers[y] + 0.5 * rng.standard_normal((n, 30)))
    pipe = make_pipeline(rankfold.NMF(init="nndsvda", max_iter=200, tol=1e-3, random_state=0),
                         LogisticRegression(max_iter=500))
    grid = GridSearchCV(pipe, {"nmf__n_components": [2, 4], "nmf__solver": ["hals", "mu"]}, cv=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        grid.fit(X, y)
        names = pipe.set_params(nmf__n_components=3).fit(X, y).named_steps["nmf"].get_feature_names_out()
    assert grid.best_score_ > 0.9
    assert grid.best_params_["nmf__n_components"] in (2, 4)
    assert names.tolist() == ["nmf0", "nmf1", "nmf2"]


class _Frame:
    """The two things scikit-learn reads from a data frame: ``columns`` and the array."""

    def __init__(self, values, columns):
        self._values = np.asarray(values)
        self.columns = list(columns)
        self.shape = self._values.shape

    def __array__(self, dtype=None, copy=None):
        return self._values if dtype is None else self._values.astype(dtype)


def _frames():
    yield lambda v, cols: _Frame(v, cols)
    try:
        import pandas as pd
    except ImportError:
        return
    yield lambda v, cols: pd.DataFrame(v, columns=cols)


@pytest.mark.parametrize("make", list(_frames()))
def test_feature_names_in(make):
    rng = np.random.default_rng(0)
    X = rng.random((30, 6))
    cols = [f"f{i}" for i in range(6)]
    model = rankfold.NMF(2, random_state=0, max_iter=3000, tol=1e-12).fit(make(X, cols))
    np.testing.assert_array_equal(model.feature_names_in_, np.array(cols, dtype=object))
    W_frame = model.transform(make(X, cols))
    with pytest.raises(ValueError, match="feature names should match"):
        model.transform(make(X, [f"g{i}" for i in range(6)]))  # renamed
    with pytest.raises(ValueError, match="feature names should match"):
        model.transform(make(X[:, ::-1], cols[::-1]))  # reordered
    with pytest.warns(UserWarning, match="does not have valid feature names"):
        W_array = model.transform(X)
    np.testing.assert_array_equal(W_frame, W_array)  # the names are checked, the numbers are the same
    # a refit on an array forgets the names; then frames warn the other way
    model.fit(X)
    assert not hasattr(model, "feature_names_in_")
    with pytest.warns(UserWarning, match="fitted without feature names"):
        model.transform(make(X, cols))
    # non-string column names are not feature names (scikit-learn's rule)
    assert not hasattr(rankfold.NMF(2, random_state=0, max_iter=3000, tol=1e-12).fit(make(X, range(6))),
                       "feature_names_in_")
