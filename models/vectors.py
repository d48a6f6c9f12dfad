"""A ticket's embedding on the wire: base64 of its float32s, not a JSON list of numbers.

A classify batch's write-back message carries every ticket's vector for the index. As JSON
numbers, 64 MiniLM vectors took ~28 ms to round, encode and parse back, for 256 KB of message
that Redis, kombu and the pop script then copy again; packed they take ~1 ms and half the bytes.
A JSON list is still accepted: messages written before, and `producer.send_writeback`'s callers.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Annotated, Any

import numpy as np
from pydantic import BeforeValidator

#: float32, little-endian: the same bytes on every machine.
WIRE_DTYPE = np.dtype("<f4")


def pack(vector: np.ndarray | Sequence[float]) -> str:
    """A vector as the base64 of its float32s ("" for none)."""
    array = np.asarray(vector, dtype=WIRE_DTYPE)
    if array.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, not of shape {array.shape}")
    return base64.b64encode(array.tobytes()).decode("ascii") if array.size else ""


def unpack(value: str | Sequence[float] | np.ndarray | None) -> np.ndarray:
    """A packed vector, or numbers, as float32 (empty for none); ValueError if malformed."""
    if value is None or (isinstance(value, str | list | tuple) and not value):
        return np.zeros(0, dtype=np.float32)
    if isinstance(value, str):
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ValueError(f"a packed vector must be base64: {exc}") from exc
        if len(raw) % WIRE_DTYPE.itemsize:
            raise ValueError(f"a packed vector of {len(raw)} bytes is not whole float32s")
        return np.frombuffer(raw, dtype=WIRE_DTYPE).astype(np.float32)
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"a vector must be numbers: {exc}") from exc
    if array.ndim != 1:
        raise ValueError(f"a vector must be one-dimensional, not of shape {array.shape}")
    return array


def _as_packed(value: Any) -> str:
    if isinstance(value, str):
        unpack(value)  # refuse a malformed one where it enters, not where it is used
        return value
    return pack(unpack(value))


#: A pydantic field holding a packed vector; validating from a list packs it.
PackedVector = Annotated[str, BeforeValidator(_as_packed)]
