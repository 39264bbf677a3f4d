"""What rankfold's estimators share with scikit-learn: the base classes and
exceptions, from scikit-learn when it is installed (an optional dependency),
else small stand-ins with the same behaviour (``get_params``/``set_params``,
``fit_transform``)."""

from __future__ import annotations

from typing import Any

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


__all__ = ["_Base", "_Transformer", "_NamesMixin", "ConvergenceWarning", "NotFittedError"]
