"""Scale-out on Dask: indexes spread over the workers of a Dask cluster.

Install with ``pip install "rankfold[dask]"``. Everything runs on
``dask.distributed`` (a ``LocalCluster`` on one machine, or any cluster the
same code connects to); the C++ kernels run on the workers with the GIL
released, and only small arrays (queries, top-k lists) cross the network.

``ShardedIndex`` keeps one index per row block of a ``dask.array`` of vectors,
built and kept on the workers (the vectors are never gathered on the client);
``search`` sends the queries to every shard, each returns its top-k with
global ids, and the client merges them.

``NMF`` fits X (a ``dask.array`` chunked by rows, dense or scipy.sparse
chunks, in memory or on disk) with W's row blocks kept next to X's on the
workers; per iteration only k x n and k x k sums cross the network.

``ALS`` runs rankfold.ALS's half sweeps block by block on the workers, from a
scipy.sparse matrix or from a ``dask.array`` of ratings chunked by users.
"""

try:  # the dask extra
    import dask  # noqa: F401
    import distributed  # noqa: F401
except ImportError as exc:  # pragma: no cover - exercised only without the extra
    raise ImportError('rankfold.dask needs Dask: pip install "rankfold[dask]"') from exc

from .als import ALS
from .index import ShardedIndex, merge_topk
from .nmf import NMF

__all__ = ["ShardedIndex", "ALS", "NMF", "merge_topk"]
