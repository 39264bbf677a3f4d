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
