"""Nearest-neighbour search: exact search (``ExactIndex``, ``knn``) and the
HNSW graph index (``HNSWIndex``) for approximate search.

Every rankfold index shares one interface: ``add(X, ids=None)``,
``search(Q, k) -> (ids, distances)``, ``len(index)``, ``save(path)`` and
``load(path)``, and pickling. Distances are ascending:

* ``"l2"``: squared Euclidean distance;
* ``"ip"``: ``1 - <q, x>`` (maximum inner product search; as hnswlib);
* ``"cosine"``: ``1 - cos(q, x)``; vectors are normalised when added.

When fewer than ``k`` vectors are stored the missing places hold id ``-1``
and distance ``inf``; any ``k`` is accepted, the work and scratch memory are
those of ``min(k, len(index))`` neighbours, and a result of ``nq x k`` that
cannot fit in memory raises MemoryError before anything is computed.

Concurrency: each index has one reader-writer lock, taken once for the whole
of each call, with the GIL released. Readers (``search``, ``get_vectors``,
``contains``, ``ids``, ``len``, ``save``, pickling, ``stats``) run together;
writers (``add``, ``remove``, ``reserve``) run alone: a writer waits for the
running readers, readers started meanwhile wait for it, and two writers run
one after the other. Every answer is therefore that of one state of the
index (a search's filter is resolved in the same call; a pickle or a saved
file is a snapshot between two writes).

Ctrl-C: ``HNSWIndex.add`` inserts in batches of a few tens of milliseconds and
stops between two of them, keeping the vectors of the finished batches
(``len(index)`` counts them and they are searchable); searches and ``knn`` stop
between blocks of work and return nothing.
"""

from ._index import METRICS
from .exact import ExactIndex, knn
from .hnsw import HNSWIndex

__all__ = ["ExactIndex", "HNSWIndex", "knn", "METRICS"]
