"""Semantic NMF for topic models (SeNMF).

Topics from a documents x words TF-IDF matrix X are made more coherent by
factoring, at the same time, a words x words co-occurrence matrix M (positive
PMI of words appearing in the same documents) with the same word factors
(Vangara, Skau, Alexandrov et al., "Semantic nonnegative matrix
factorization"; Stanev et al., "Topic analysis of superconductivity
literature by semantic non-negative matrix factorization"; Shi et al.'s
SeaNMF has the same coupled objective). In scikit-learn's orientation::

    0.5 ||X - W T||_F^2 + 0.5 * lam * ||s M - s C T||_F^2 + penalties

with T = ``components_`` (topics x words) shared by both terms, W the
document-topic weights, C = ``context_`` the words' context weights,
lam = ``semantic_weight`` and s a fixed scale (below). Because C belongs to
the second term only, this is exactly one NMF of the stacked matrix::

    [X; sqrt(lam) s M]  ~  [W; sqrt(lam) s C] T

so rankfold's NMF engine fits it (HALS, MU or ANLS; dense or sparse; no
second solver). The scale s = ||X||_F / ||M||_F (``scale_cooccurrence=True``,
the default) makes ``semantic_weight=1`` weigh both terms equally whatever the
size of the vocabulary; ``scale_cooccurrence=False`` uses s = 1, the papers'
raw objective. The penalties ``alpha_W``/``l1_ratio`` act on the stacked left
factor and ``alpha_H`` on T, scaled as in :class:`rankfold.NMF` for the
stacked matrix.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np
import scipy.sparse as sp

from .. import text
from .._base import NotFittedError, _Base, _NamesMixin, _Transformer
from .._operand import check_matrix
from .._validation import check_array, check_float, check_int, check_n_threads, check_sparse
from . import _engine
from .nmf import NMF

__all__ = ["SeNMF", "semantic_stack"]


class SeNMF(_NamesMixin, _Transformer, _Base):
    """Topic model: NMF of TF-IDF documents coupled with word co-occurrence.

    Parameters
    ----------
    n_components : int
        Number of topics.
    semantic_weight : float
        Weight lam >= 0 of the co-occurrence term (0: plain NMF of X).
    scale_cooccurrence : bool
        Rescale M to the Frobenius norm of X before weighting (see module doc).
    init, solver, tol, max_iter, random_state, alpha_W, alpha_H, l1_ratio,
    n_threads, inner_sweeps, verbose : as in :class:`rankfold.NMF` (applied to
        the stacked matrix). ``init="custom"`` takes ``W``, ``H`` and
        ``context`` in ``fit``.

    Attributes
    ----------
    components_ : (n_components, n_words) topics T.
    context_ : (n_words, n_components) context factor C (M ~ C T).
    cooccurrence_scale_ : the scale s applied to M.
    reconstruction_err_ : ``||X - W T||_F`` (documents part).
    semantic_err_ : ``||M - C T||_F`` (co-occurrence part, M unscaled).
    loss_history_, n_iter_ : of the stacked fit (its objective as above).
    n_features_in_ : number of words.
    """

    def __init__(
        self,
        n_components: int = 10,
        *,
        semantic_weight: float = 1.0,
        scale_cooccurrence: bool = True,
        init: Optional[str] = None,
        solver: str = "hals",
        tol: float = 1e-4,
        max_iter: int = 200,
        random_state: Any = None,
        alpha_W: float = 0.0,
        alpha_H: Any = "same",
        l1_ratio: float = 0.0,
        verbose: int = 0,
        n_threads: Optional[int] = None,
        inner_sweeps: Any = "auto",
    ) -> None:
        self.n_components = n_components
        self.semantic_weight = semantic_weight
        self.scale_cooccurrence = scale_cooccurrence
        self.init = init
        self.solver = solver
        self.tol = tol
        self.max_iter = max_iter
        self.random_state = random_state
        self.alpha_W = alpha_W
        self.alpha_H = alpha_H
        self.l1_ratio = l1_ratio
        self.verbose = verbose
        self.n_threads = n_threads
        self.inner_sweeps = inner_sweeps

    def __sklearn_tags__(self):  # type: ignore[no-untyped-def]
        tags = super().__sklearn_tags__()
        tags.input_tags.positive_only = True
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags

    def _more_tags(self) -> dict:  # scikit-learn < 1.6
        return {"requires_positive_X": True, "preserves_dtype": [np.float64, np.float32]}

    def _inner(self, k: int) -> NMF:
        return NMF(n_components=k, init=self.init, solver=self.solver, tol=self.tol, max_iter=self.max_iter,
                   random_state=self.random_state, alpha_W=self.alpha_W, alpha_H=self.alpha_H,
                   l1_ratio=self.l1_ratio, verbose=self.verbose, n_threads=self.n_threads,
                   inner_sweeps=self.inner_sweeps)

    # -- fitting
    def fit(self, X: Any, y: Any = None, cooccurrence: Any = None, W: Any = None, H: Any = None,
            context: Any = None) -> "SeNMF":
        """Fit the topics; ``cooccurrence`` defaults to ``text.ppmi_cooccurrence(X)``. Returns self."""
        self.fit_transform(X, y, cooccurrence=cooccurrence, W=W, H=H, context=context)
        return self

    def fit_transform(self, X: Any, y: Any = None, cooccurrence: Any = None, W: Any = None, H: Any = None,
                      context: Any = None) -> np.ndarray:
        """Fit and return the document-topic weights W (n_documents, n_components)."""
        k = check_int(self.n_components, "n_components", low=1)
        lam = check_float(self.semantic_weight, "semantic_weight", low=0.0)
        if not isinstance(self.scale_cooccurrence, (bool, np.bool_)):
            raise TypeError(f"scale_cooccurrence must be True or False, got {self.scale_cooccurrence!r}")
        inner = self._inner(k)
        inner._check_params()  # the NMF parameters, before any work on the data
        X = check_matrix(X)
        m, n = X.shape
        M = _cooccurrence(X, cooccurrence)
        scale = _scale(X, M, lam, bool(self.scale_cooccurrence))
        factor = float(np.sqrt(lam) * scale)
        custom = self.init == "custom" or W is not None or H is not None or context is not None
        if custom and (self.init not in ("custom", None) or W is None or H is None or (lam > 0 and context is None)):
            raise ValueError("init='custom' needs W, H and context in fit (and only then)")
        if lam == 0.0:
            Wd = inner.fit_transform(X, W=W, H=H) if custom else inner.fit_transform(X)
            C = np.zeros((n, inner.components_.shape[0]), dtype=X.dtype)
        else:
            Z = _stack(X, M, factor)
            if custom:
                Cs = check_array(context, "context", dtype=X.dtype, nonnegative=True)
                if Cs.shape != (n, k):
                    raise ValueError(f"context must have shape (n_words, n_components) = {(n, k)}, got {Cs.shape}")
                W0 = check_array(W, "W", dtype=X.dtype, nonnegative=True)
                if W0.shape != (m, k):
                    raise ValueError(f"W must have shape (n_documents, n_components) = {(m, k)}, got {W0.shape}")
                Wz = inner.fit_transform(Z, W=np.vstack([W0, factor * Cs]), H=H)
            else:
                Wz = inner.fit_transform(Z)
            Wd = np.ascontiguousarray(Wz[:m])
            C = np.ascontiguousarray(Wz[m:] / factor, dtype=X.dtype)
        threads = check_n_threads(self.n_threads)
        T = inner.components_
        Tt = np.ascontiguousarray(T.T)
        self.components_ = T
        self.context_ = C
        self.cooccurrence_scale_ = float(scale)
        self.n_components_ = T.shape[0]
        self.n_iter_ = inner.n_iter_
        self.loss_history_ = inner.loss_history_
        self.n_features_in_ = n
        self.reconstruction_err_ = float(np.sqrt(max(_engine.residual(X, Wd, Tt, threads), 0.0)))
        self.semantic_err_ = float(np.sqrt(max(_engine.residual(_canonical(M), C, Tt, threads), 0.0)))
        self._transformer = inner
        return Wd

    # -- using a fitted model
    def _check_fitted(self) -> None:
        if not hasattr(self, "components_"):
            raise NotFittedError("This SeNMF instance is not fitted yet; call fit before using it")

    def transform(self, X: Any) -> np.ndarray:
        """Topic weights of new documents (nonnegative least squares on ``components_``)."""
        self._check_fitted()
        X = check_matrix(X, dtype=self.components_.dtype)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features (words), but SeNMF is expecting {self.n_features_in_}")
        return self._transformer.transform(X)

    def inverse_transform(self, X: Any) -> np.ndarray:
        """W T: documents back in word space."""
        self._check_fitted()
        W = check_array(X, "X", dtype=self.components_.dtype, n_cols=self.components_.shape[0])
        return W @ self.components_

    def top_words(self, vocabulary: Sequence[str], n: int = 10) -> List[List[str]]:
        """The n highest-weighted words of each topic."""
        self._check_fitted()
        return text.top_words(self.components_, vocabulary, n)

    def coherence(self, X: Any, n: int = 10) -> np.ndarray:
        """NPMI coherence of each topic's n top words over the corpus X (documents x words)."""
        self._check_fitted()
        return text.npmi_coherence(np.asarray(self.components_, dtype=np.float64), X, n)

    @property
    def _n_features_out(self) -> int:
        return int(self.components_.shape[0])


def _cooccurrence(X: Any, M: Any) -> Any:
    """The validated co-occurrence matrix of X's words (PPMI of X when M is None)."""
    n = X.shape[1]
    if M is None:
        return text.ppmi_cooccurrence(X if sp.issparse(X) else sp.csr_matrix(X)).astype(X.dtype)
    if sp.issparse(M):
        M = check_sparse(M, "cooccurrence", dtype=X.dtype, nonnegative=True)
    else:
        M = check_array(M, "cooccurrence", dtype=X.dtype, nonnegative=True)
    if M.shape != (n, n):
        raise ValueError(f"cooccurrence must be n_words x n_words = {(n, n)} (X has {n} columns), "
                         f"got {M.shape}")
    return M


def _scale(X: Any, M: Any, lam: float, rescale: bool) -> float:
    """s = ||X||_F / ||M||_F (or 1 without rescaling)."""
    x_norm = float(sp.linalg.norm(X)) if sp.issparse(X) else float(np.linalg.norm(X))
    m_norm = float(sp.linalg.norm(M)) if sp.issparse(M) else float(np.linalg.norm(M))
    if lam > 0 and m_norm == 0.0:
        raise ValueError("the co-occurrence matrix is all zeros (no two words share a document); "
                         "use semantic_weight=0 or give a cooccurrence matrix")
    return x_norm / m_norm if (rescale and m_norm > 0) else 1.0


def _stack(X: Any, M: Any, factor: float) -> Any:
    """[X; factor M]: CSR if either part is sparse (nothing is densified), else dense."""
    bottom = factor * M
    if sp.issparse(X) or sp.issparse(M):
        return sp.vstack([sp.csr_matrix(X), sp.csr_matrix(bottom)], format="csr").astype(X.dtype)
    return np.vstack([X, bottom]).astype(X.dtype, copy=False)


def semantic_stack(X: Any, cooccurrence: Any = None, semantic_weight: float = 1.0,
                   scale_cooccurrence: bool = True) -> Any:
    """The stacked matrix ``[X; sqrt(semantic_weight) s M]`` that SeNMF factors.

    Its first ``X.shape[0]`` rows are the documents. Any NMF of it is a
    semantic NMF: ``NMFk(...).fit(semantic_stack(X))`` chooses the number of
    topics of SeNMF (SeNMFk), with ``components_`` the topics.
    """
    lam = check_float(semantic_weight, "semantic_weight", low=0.0, low_inclusive=False)
    if not isinstance(scale_cooccurrence, (bool, np.bool_)):
        raise TypeError(f"scale_cooccurrence must be True or False, got {scale_cooccurrence!r}")
    X = check_matrix(X)
    M = _cooccurrence(X, cooccurrence)
    return _stack(X, M, float(np.sqrt(lam) * _scale(X, M, lam, bool(scale_cooccurrence))))


def _canonical(M: Any) -> Any:
    """CSR/CSC with matching index dtypes, or the dense array (what the core's operand expects)."""
    if sp.issparse(M) and M.indices.dtype != M.indptr.dtype:
        M = M.copy()
        M.indices = M.indices.astype(np.int64)
        M.indptr = M.indptr.astype(np.int64)
    return M
