"""The cluster plumbing shared by rankfold's Dask estimators: worker thread
counts, placement of row blocks next to their data, tree sums of partial
results, the tall-skinny QR, and worker-loss detection."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from distributed import Client, Future, get_worker

from .._validation import check_n_threads


def worker_threads(n_threads: Optional[int]) -> int:
    """Threads for a task on a worker: the caller's choice, else the worker's own thread count."""
    if n_threads is not None:
        return n_threads
    try:
        worker = get_worker()
        return int(getattr(worker.state, "nthreads", None) or worker.nthreads)
    except (ValueError, AttributeError):
        return check_n_threads(None)


def placements(client: Client, anchors: List[Any]) -> List[Dict[str, Any]]:
    """Run each block's task where its data (a future; None: anywhere) lives:
    the scheduler might otherwise move a block to where a small broadcast
    array is. Loose (allow_other_workers), so a lost worker's tasks still run
    elsewhere. One scheduler query for all blocks."""
    keyed = [a for a in anchors if isinstance(a, Future)]
    who = client.who_has(keyed) if keyed else {}
    out = []
    for a in anchors:
        holders = list(who.get(a.key, ())) if isinstance(a, Future) else []
        out.append({"workers": holders[:1], "allow_other_workers": True} if holders else {})
    return out


def row_blocks(n: int, n_blocks: int) -> np.ndarray:
    return np.linspace(0, n, n_blocks + 1).round().astype(np.int64)


def add_partials(a: tuple, b: tuple) -> tuple:
    return tuple(x + y for x, y in zip(a, b))


def first(pair: tuple) -> Any:
    return pair[0]


def second(pair: tuple) -> Any:
    return pair[1]


def tree_sum(client: Client, futures: List[Any], hosts: Optional[List[Dict[str, Any]]] = None) -> Any:
    """Pairwise sums on the workers, one small result. With ``hosts`` (the
    placement of each future's task), the futures of each worker are summed
    there first, so only one partial per worker crosses the network."""
    def pairwise(level: List[Any], where: Dict[str, Any]) -> Any:
        while len(level) > 1:
            level = [level[i] if i + 1 >= len(level) else
                     client.submit(add_partials, level[i], level[i + 1], pure=False, **where)
                     for i in range(0, len(level), 2)]
        return level[0]

    if not hosts:
        return pairwise(list(futures), {})
    groups: Dict[str, List[Any]] = {}
    for f, h in zip(futures, hosts):
        groups.setdefault(h["workers"][0] if h.get("workers") else "", []).append(f)
    per_worker = [pairwise(fs, {"workers": [w], "allow_other_workers": True} if w else {})
                  for w, fs in groups.items()]
    return pairwise(per_worker, {})


def local_qr(Y: np.ndarray) -> tuple:
    return np.linalg.qr(Y) if Y.shape[0] else (np.zeros((0, 0)), np.zeros((0, Y.shape[1])))


def tsqr(client: Client, Y: List[Any]) -> List[Any]:
    """Orthonormal basis of the tall matrix whose row blocks are Y (TSQR): each
    block's QR on its worker, one QR of the stacked R factors (l x l each) on
    the client, then Q_b times its slice of that small Q, on the worker."""
    local = [client.submit(local_qr, y, pure=False) for y in Y]
    Rs = client.gather([client.submit(second, f, pure=False) for f in local])
    Q2 = np.linalg.qr(np.vstack(Rs))[0]
    cuts = np.concatenate([[0], np.cumsum([r.shape[0] for r in Rs])])
    return [client.submit(q_times, f, Q2[a:b], pure=False) for f, a, b in zip(local, cuts[:-1], cuts[1:])]


def q_times(qr: tuple, Q2: np.ndarray) -> np.ndarray:
    return qr[0] @ Q2


LOST_STATES = ("lost", "cancelled", "error")


def worker_lost(exc: BaseException) -> bool:
    from concurrent.futures import CancelledError

    from distributed.scheduler import KilledWorker

    return isinstance(exc, (KilledWorker, CancelledError, OSError)) or "lost" in str(exc).lower()
