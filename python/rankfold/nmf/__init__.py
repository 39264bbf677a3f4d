"""Nonnegative matrix factorization: ``NMF`` (HALS, MU, ANLS; beta losses;
missing values; graph-regularized, correntropy and sum-to-one models, all on
one C++ fit loop), ``NMFk`` (automatic rank), ``SeNMF`` (semantic NMF for
text) and the affinity graphs of the graph-regularized model."""

from .._base import ConvergenceWarning, NotFittedError
from .graphs import grid_graph, knn_graph
from .nmf import NMF
from .nmfk import NMFk
from .senmf import SeNMF, semantic_stack

__all__ = ["NMF", "NMFk", "SeNMF", "semantic_stack", "grid_graph", "knn_graph", "ConvergenceWarning",
           "NotFittedError"]
