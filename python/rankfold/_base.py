"""What rankfold's estimators share with scikit-learn: the base classes and
exceptions, from scikit-learn when it is installed (an optional dependency),
else small stand-ins with the same behaviour (``get_params``/``set_params``,
``fit_transform``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._validation import warn

try:  # scikit-learn is optional: the estimator works without it
    from sklearn.base import BaseEstimator as _Base
    from sklearn.base import ClassNamePrefixFeaturesOutMixin as _NamesMixin
    from sklearn.base import TransformerMixin as _Transformer
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.exceptions import NotFittedError as _SkNotFitted

    class NotFittedError(_SkNotFitted):
        """Raised when transform or inverse_transform is called before fit."""

except ImportError:  # pragma: no cover - exercised only without scikit-learn
    import inspect

    class ConvergenceWarning(UserWarning):  # type: ignore[no-redef]
        """The solver stopped at max_iter before reaching tol."""

    class NotFittedError(ValueError, AttributeError):  # type: ignore[no-redef]
        """Raised when transform or inverse_transform is called before fit."""

    class _Base:  # type: ignore[no-redef]
        def get_params(self, deep: bool = True) -> dict:
            names = [p for p in inspect.signature(type(self).__init__).parameters if p != "self"]
            return {n: getattr(self, n) for n in names}

        def set_params(self, **params: Any) -> "_Base":
            valid = self.get_params()
            for key, value in params.items():
                if key not in valid:
                    raise ValueError(f"invalid parameter {key!r} for {type(self).__name__}")
                setattr(self, key, value)
            return self

    class _Transformer:  # type: ignore[no-redef]
        def fit_transform(self, X: Any, y: Any = None, **kw: Any) -> Any:
            return self.fit(X, y, **kw).transform(X)

    class _NamesMixin:  # type: ignore[no-redef]
        pass


def feature_names(X: Any) -> Any:
    """The column names of a data frame (anything with ``columns``) as an object
    array, when all are strings (scikit-learn's rule); else None."""
    columns = getattr(X, "columns", None)
    if columns is None:
        return None
    names = np.asarray(list(columns), dtype=object)
    if names.ndim != 1 or names.size == 0 or not all(isinstance(n, str) for n in names):
        return None
    return names


def set_feature_names(est: Any, X: Any) -> None:
    """``feature_names_in_`` from X at fit (removed when X has none, as after a refit on an array)."""
    names = feature_names(X)
    if names is None:
        est.__dict__.pop("feature_names_in_", None)
    else:
        est.feature_names_in_ = names


def check_feature_names(est: Any, X: Any) -> None:
    """X's column names against those seen at fit: different names raise ValueError (a
    renamed or reordered frame would silently give wrong answers); names on one side only warn."""
    fitted = getattr(est, "feature_names_in_", None)
    names = feature_names(X)
    cls = type(est).__name__
    if fitted is None and names is None:
        return
    if names is None:
        warn(f"X does not have valid feature names, but {cls} was fitted with feature names", UserWarning)
    elif fitted is None:
        warn(f"X has feature names, but {cls} was fitted without feature names", UserWarning)
    elif len(fitted) != len(names) or any(a != b for a, b in zip(fitted, names)):
        unseen = [n for n in names if n not in set(fitted)][:5]
        missing = [n for n in fitted if n not in set(names)][:5]
        detail = (f" Feature names unseen at fit time: {unseen}." if unseen else "") + \
                 (f" Feature names seen at fit time, yet now missing: {missing}." if missing else "") + \
                 (" The order differs." if not unseen and not missing else "")
        raise ValueError(f"The feature names should match those that were passed during fit.{detail}")


__all__ = ["_Base", "_Transformer", "_NamesMixin", "ConvergenceWarning", "NotFittedError", "feature_names",
           "set_feature_names", "check_feature_names"]
