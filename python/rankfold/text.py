"""Text helpers for topic models: TF-IDF, word co-occurrence (PPMI), top words
and NPMI topic coherence.

The vectorizing is scikit-learn's (``TfidfVectorizer``/``CountVectorizer``);
scikit-learn is needed only for :func:`tfidf`. Everything else works on
``scipy.sparse`` matrices.
"""

from __future__ import annotations

from typing import Any, Iterable, List, Optional, Sequence, Tuple

import numpy as np
import scipy.sparse as sp

from ._validation import check_float, check_int, check_sparse

__all__ = ["tfidf", "binary_occurrence", "ppmi_cooccurrence", "top_words", "npmi_coherence"]


def tfidf(documents: Iterable[str], **vectorizer_params: Any) -> Tuple[sp.csr_matrix, np.ndarray]:
    """Documents -> (TF-IDF matrix (documents x words, CSR float64), vocabulary).

    Defaults: English stop words removed, words in at least 2 documents and
    at most 95% of them, sublinear tf; any ``TfidfVectorizer`` argument may
    be given instead.
    """
    try:
        from sklearn.feature_extraction.text import TfidfVectorizer
    except ImportError as exc:  # pragma: no cover - scikit-learn ships with the test extra
        raise ImportError('rankfold.text.tfidf needs scikit-learn: pip install "rankfold[sklearn]"') from exc
    docs = list(documents)
    if not docs or not all(isinstance(d, str) for d in docs):
        raise ValueError("documents must be a non-empty sequence of strings")
    params = {"stop_words": "english", "min_df": 2 if len(docs) >= 10 else 1, "max_df": 0.95,
              "sublinear_tf": True}
    params.update(vectorizer_params)
    vec = TfidfVectorizer(**params)
    X = vec.fit_transform(docs).tocsr()
    return X, np.asarray(vec.get_feature_names_out())


def binary_occurrence(X: Any) -> sp.csr_matrix:
    """Which words occur in which documents (documents x words, 0/1 float64)."""
    X = check_sparse(sp.csr_matrix(X) if not sp.issparse(X) else X, "X", formats=("csr",), nonnegative=True)
    B = X.copy().astype(np.float64)
    B.data = (B.data > 0).astype(np.float64)
    B.eliminate_zeros()
    return B


def ppmi_cooccurrence(X: Any, shift: float = 1.0) -> sp.csr_matrix:
    """Positive pointwise mutual information of word pairs co-occurring in a document.

    With D documents, n_i documents containing word i and n_ij containing both,
    PMI(i, j) = log(D n_ij / (n_i n_j)) - log(shift); entries <= 0 and the
    diagonal are dropped. Returns a symmetric words x words CSR matrix.
    """
    shift = check_float(shift, "shift", low=0.0, low_inclusive=False)
    B = binary_occurrence(X)
    n_docs = B.shape[0]
    C = (B.T @ B).tocoo()
    df = np.asarray(B.sum(axis=0)).ravel()
    keep = C.row != C.col
    rows, cols, counts = C.row[keep], C.col[keep], C.data[keep]
    pmi = np.log(counts * n_docs / (df[rows] * df[cols])) - np.log(shift)
    pos = pmi > 0
    return sp.csr_matrix((pmi[pos], (rows[pos], cols[pos])), shape=C.shape)


def top_words(components: Any, vocabulary: Sequence[str], n: int = 10) -> List[List[str]]:
    """The n highest-weighted words of each topic (rows of ``components``)."""
    H = np.asarray(components)
    if H.ndim != 2 or H.shape[1] != len(vocabulary):
        raise ValueError(f"components must have shape (topics, {len(vocabulary)}), got {H.shape}")
    n = check_int(n, "n", low=1, high=H.shape[1])
    order = np.argsort(-H, axis=1, kind="stable")[:, :n]
    vocab = np.asarray(vocabulary)
    return [vocab[row].tolist() for row in order]


def npmi_coherence(topics: Any, X: Any, n: Optional[int] = 10) -> np.ndarray:
    """NPMI coherence of each topic over the corpus X (documents x words).

    ``topics`` is either a topics x words weight matrix (its n top words are
    used) or a list of word-index lists. For each pair of top words,
    NPMI = log(p_ij / (p_i p_j)) / -log p_ij with document frequencies
    (pairs that never co-occur count -1); a topic's score is the mean over its
    pairs. Returns one value per topic, in [-1, 1].
    """
    B = binary_occurrence(X)
    n_docs = B.shape[0]
    if isinstance(topics, np.ndarray) and topics.ndim == 2 and topics.dtype.kind == "f":
        if topics.shape[1] != B.shape[1]:
            raise ValueError(f"topics must have {B.shape[1]} columns (one per word), got {topics.shape[1]}")
        k = check_int(n, "n", low=2, high=topics.shape[1])
        word_lists = np.argsort(-topics, axis=1, kind="stable")[:, :k].tolist()
    else:
        word_lists = [list(map(int, t)) for t in topics]
    Bc = B.tocsc()
    scores = []
    for words in word_lists:
        if len(words) < 2:
            raise ValueError("each topic needs at least 2 words for coherence")
        if min(words) < 0 or max(words) >= B.shape[1]:
            raise ValueError("topic word index out of range")
        sub = Bc[:, words]
        df = np.asarray(sub.sum(axis=0)).ravel() / n_docs
        joint = (sub.T @ sub).toarray() / n_docs
        vals = []
        for a in range(len(words)):
            for b in range(a + 1, len(words)):
                p_ab = joint[a, b]
                if p_ab <= 0:
                    vals.append(-1.0)
                elif p_ab >= 1:
                    vals.append(1.0)
                else:
                    vals.append(np.log(p_ab / (df[a] * df[b])) / -np.log(p_ab))
        scores.append(float(np.mean(vals)))
    return np.asarray(scores)
