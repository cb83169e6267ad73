"""Hypothesis strategies and an exact-equality check shared by the comms tests."""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from phobos.comms.codec import ARRAY_DTYPES
from phobos.comms.message import Message

names = st.text(min_size=1, max_size=12)
arrays = hnp.arrays(
    dtype=st.sampled_from(ARRAY_DTYPES).map(np.dtype),
    shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
)
numpy_scalars = arrays.filter(lambda a: a.size > 0).map(lambda a: a.flat[0])
leaves = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.binary(max_size=20)
    | arrays
    | numpy_scalars
)
payloads = st.recursive(
    leaves,
    lambda children: (
        st.lists(children, max_size=4)
        | st.lists(children, max_size=4).map(tuple)
        | st.dictionaries(st.text(max_size=8) | st.binary(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
messages = st.builds(
    Message,
    sender=names,
    receiver=names,
    kind=names,
    send_time=st.floats(allow_nan=False),
    seq=st.integers(min_value=0, max_value=2**63 - 1),
    payload=payloads,
)


def same(a: Any, b: Any) -> bool:
    """Exact equality: same types, same bits for floats and arrays (NaN equals its own bits)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, Message):
        return all(
            same(getattr(a, f), getattr(b, f))
            for f in ("sender", "receiver", "kind", "send_time", "seq", "payload", "version")
        )
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, np.generic):
        return a.dtype == b.dtype and a.tobytes() == b.tobytes()
    if isinstance(a, float):
        return struct.pack("<d", a) == struct.pack("<d", b)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b
