"""Shared pieces of the fuzz targets: the exceptions a caller may see, a
byte consumer that turns fuzzer input into decisions, and rankfold's index
file envelope (header + checksum) so that mutated payloads reach the parsers.

Nothing here imports rankfold: atheris instruments rankfold's modules when the
targets import them, and the envelope is rewritten here from the format's
description (cpp/include/rankfold/ann/file_format.hpp) so that a change of the
format shows up as a failing corpus test instead of a silent fallback.
"""

from __future__ import annotations

import struct
from typing import Sequence, TypeVar

# What rankfold documents for bad input: anything else escaping a public call
# (IndexError, RuntimeError, SystemError, KeyError, ...) or a crash is a finding.
ALLOWED = (ValueError, TypeError, MemoryError, OSError, FloatingPointError)
# Documented RuntimeErrors: ALS's row systems singular (completion.ALS docstring).
DOCUMENTED_RUNTIME = ("; increase regularization",)


def documented(exc: BaseException) -> bool:
    """True for an exception rankfold documents for bad input."""
    if isinstance(exc, ALLOWED):
        return True
    return type(exc) is RuntimeError and any(m in str(exc) for m in DOCUMENTED_RUNTIME)

T = TypeVar("T")


class Bytes:
    """Reads decisions from the fuzzer's input; past its end every answer is 0,
    so each input decodes to one well-defined call sequence."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self) -> int:
        if self.pos >= len(self.data):
            return 0
        b = self.data[self.pos]
        self.pos += 1
        return b

    def int(self, low: int, high: int) -> int:
        """An integer in [low, high] (inclusive), from as few bytes as it needs."""
        span = high - low
        value, width = 0, 0
        while (1 << width) <= span:
            value = (value << 8) | self.byte()
            width += 8
        return low + (value % (span + 1) if span >= 0 else 0)

    def bool(self) -> bool:
        return self.byte() & 1 == 1

    def choice(self, options: Sequence[T]) -> T:
        return options[self.int(0, len(options) - 1)]

    def rest(self) -> bytes:
        out = self.data[self.pos:]
        self.pos = len(self.data)
        return out


# ------------------------------------------------------------------ index files
MAGIC = b"RANKFOLD"
VERSION = 1
KIND_EXACT, KIND_HNSW = 1, 2
HEADER = struct.Struct("<8sIIQ")

_MASK = (1 << 64) - 1
_P1 = 0x9E3779B185EBCA87
_P2 = 0xC2B2AE3D27D4EB4F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _MASK


def _mix(h: int) -> int:
    h ^= h >> 33
    h = (h * _P2) & _MASK
    h ^= h >> 29
    h = (h * _P1) & _MASK
    h ^= h >> 32
    return h


def checksum(payload: bytes) -> int:
    """The file format's 64-bit payload checksum (four multiply-rotate lanes
    over 32-byte stripes, the tail mixed in byte by byte)."""
    lanes = [(_P1 + _P2) & _MASK, _P2, 0, (-_P1) & _MASK]
    full = len(payload) - len(payload) % 32
    for off in range(0, full, 32):
        words = struct.unpack_from("<4Q", payload, off)
        for i in range(4):
            lanes[i] = (_rotl((lanes[i] + words[i] * _P2) & _MASK, 31) * _P1) & _MASK
    h = (len(payload) * _P1) & _MASK
    for i in range(4):
        h = _mix(h ^ _rotl(lanes[i], 7 + 11 * i))
    for i, b in enumerate(payload[full:]):
        h = _mix(h ^ (b << ((i % 8) * 8)) ^ i)
    return _mix(h)


def seal(kind: int, payload: bytes) -> bytes:
    """A complete index file around ``payload``: header and a valid checksum."""
    return HEADER.pack(MAGIC, VERSION, kind, len(payload)) + payload + struct.pack("<Q", checksum(payload))


def unseal(data: bytes) -> tuple:
    """(kind, payload) of a file written by rankfold; ValueError if it is not one."""
    if len(data) < HEADER.size + 8:
        raise ValueError("too short")
    magic, version, kind, size = HEADER.unpack_from(data)
    payload = data[HEADER.size:-8]
    if magic != MAGIC or version != VERSION or size != len(payload):
        raise ValueError("not a rankfold index file")
    if struct.unpack("<Q", data[-8:])[0] != checksum(payload):
        raise ValueError("checksum mismatch")
    return kind, payload
