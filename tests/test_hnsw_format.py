"""HNSW index files: damaged contents behind a valid checksum must be rejected
by the structural checks (or load into an index that searches safely), never
crash the process."""

from __future__ import annotations

import struct

import numpy as np

from rankfold import HNSWIndex

MASK = 2**64 - 1
P1 = 0x9E3779B185EBCA87
P2 = 0xC2B2AE3D27D4EB4F
HEADER = 24


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & MASK


def _mix(h: int) -> int:
    h ^= h >> 33
    h = (h * P2) & MASK
    h ^= h >> 29
    h = (h * P1) & MASK
    h ^= h >> 32
    return h


def checksum(payload: bytes) -> int:
    """The file format's checksum (ann/file_format.hpp), re-implemented."""
    lanes = [(P1 + P2) & MASK, P2, 0, (-P1) & MASK]
    n_stripes = len(payload) // 32
    words = struct.unpack_from(f"<{4 * n_stripes}Q", payload)
    for s in range(n_stripes):
        for i in range(4):
            lanes[i] = (_rotl((lanes[i] + words[4 * s + i] * P2) & MASK, 31) * P1) & MASK
    h = (len(payload) * P1) & MASK
    for i in range(4):
        h = _mix(h ^ _rotl(lanes[i], 7 + 11 * i))
    for i, byte in enumerate(payload[32 * n_stripes:]):
        h = _mix(h ^ (byte << ((i % 8) * 8)) ^ i)
    return _mix(h)


def reseal(raw: bytearray) -> bytes:
    payload = bytes(raw[HEADER:-8])
    return bytes(raw[:-8]) + struct.pack("<Q", checksum(payload))


def test_checksum_reimplementation_matches(tmp_path):
    index = HNSWIndex(4, M=4, random_state=0).add(np.random.default_rng(0).standard_normal((40, 4)))
    raw = pickle_bytes(index)
    assert struct.unpack("<Q", raw[-8:])[0] == checksum(raw[HEADER:-8])


def pickle_bytes(index: HNSWIndex) -> bytes:
    return index.__getstate__()["data"]


def test_resealed_damage_never_crashes(tmp_path):
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 4)).astype(np.float32)
    index = HNSWIndex(4, M=4, ef_construction=20, random_state=0).add(X)
    index.remove([5, 6])
    raw = pickle_bytes(index)
    Q = rng.standard_normal((5, 4)).astype(np.float32)
    rejected = loaded = 0
    path = tmp_path / "damaged.rfh"
    for trial in range(400):
        bad = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            pos = int(rng.integers(HEADER, len(raw) - 8))
            if trial % 2:
                bad[pos] = int(rng.integers(0, 256))
            else:  # large values in 4- and 8-byte fields
                bad[pos:pos + 4] = struct.pack("<I", int(rng.choice([2**31 - 1, 2**32 - 1, 1 << 20, 64])))
        path.write_bytes(reseal(bad))
        try:
            other = HNSWIndex.load(path)
        except ValueError as exc:
            assert "corrupted" in str(exc) or "rankfold" in str(exc)
            rejected += 1
            continue
        loaded += 1
        ids, _ = other.search(Q, k=5)  # damaged vectors may change results, never crash
        assert ids.shape == (5, 5) and ((ids >= -1) & (ids < other.next_id)).all()
    assert rejected > 100  # the structural checks catch most damage
