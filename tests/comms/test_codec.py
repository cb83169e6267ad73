from __future__ import annotations

import datetime

import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phobos.comms.codec import (
    MAGIC,
    MAX_FRAME_SIZE,
    DecodeError,
    EncodeError,
    decode,
    encode,
)
from phobos.comms.message import PROTOCOL_VERSION, Message
from tests.comms.strategies import messages, same

# Generous deadline: CI machines are slow and shared; a deadline miss is not a codec bug.
codec_settings = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def frame_of(body: object, version: int = PROTOCOL_VERSION) -> bytes:
    return MAGIC + bytes((version,)) + msgpack.packb(body, use_bin_type=True)


def msg(payload: object = None, **fields: object) -> Message:
    values = dict(sender="phobos_grunt", receiver="yinghuo1", kind="intent", send_time=1.0, seq=0)
    values.update(fields)
    return Message(payload=payload, **values)


# -- round trips -------------------------------------------------------------------------------


@codec_settings
@given(messages)
def test_round_trip_is_exact(message):
    assert same(decode(encode(message)), message)


def test_round_trip_of_a_typical_payload():
    payload = {
        "target": ("phobos", 3),
        "power": np.linspace(0.0, 1.0, 7, dtype=np.float32),
        "mask": np.array([[True, False], [False, True]]),
        "score": np.float64(0.25),
        "count": np.int16(-4),
        "raw": b"\x00\xff",
        "notes": [None, True, 2**64 - 1, -(2**63), float("inf"), "ok"],
    }
    assert same(decode(encode(msg(payload))), msg(payload))


def test_decoded_arrays_are_writable_copies():
    frame = encode(msg(np.arange(4)))
    array = decode(frame).payload
    array[0] = 7  # would raise on a read-only view of the frame
    assert decode(frame).payload[0] == 0


@pytest.mark.parametrize(
    "array",
    [
        np.arange(6, dtype=">i4").reshape(2, 3),  # big-endian
        np.arange(12.0).reshape(3, 4).T,  # Fortran order
        np.arange(10, dtype=np.uint16)[::3],  # strided
    ],
    ids=["big-endian", "fortran", "strided"],
)
def test_arrays_arrive_contiguous_little_endian_with_equal_values(array):
    out = decode(encode(msg(array))).payload
    assert out.dtype == array.dtype.newbyteorder("<")
    assert out.flags.c_contiguous
    np.testing.assert_array_equal(out, array)


def test_bytes_like_and_dict_subclasses_are_normalised():
    from collections import OrderedDict

    payload = [bytearray(b"ab"), memoryview(b"cd"), OrderedDict(x=1)]
    assert same(decode(encode(msg(payload))).payload, [b"ab", b"cd", {"x": 1}])


def test_int_send_time_and_numpy_seq_are_normalised():
    out = decode(encode(msg(send_time=3, seq=np.int64(5))))
    assert same(out, msg(send_time=3.0, seq=5))


# -- encoding refuses what the wire cannot carry -----------------------------------------------


@pytest.mark.parametrize(
    ("payload", "culprit"),
    [
        (object(), "builtins.object"),
        (datetime.date(2011, 11, 9), "datetime.date"),
        (np.array(["a"]), "dtype <U1"),
        (np.array([object()]), "dtype object"),
        (np.array(["2011-11-09"], dtype="datetime64[D]"), "dtype datetime64"),
        (2**64, "does not fit in 64 bits"),
        ({1: "a"}, "dict key 1 is a int"),
        ([{"ok": {(1, 2): 0}}], "dict key (1, 2) is a tuple"),
        ({1.5}, "builtins.set"),
    ],
)
def test_encode_rejects_unsupported_payloads(payload, culprit):
    with pytest.raises(EncodeError, match=culprit.replace("(", r"\(").replace(")", r"\)")):
        encode(msg(payload))


def test_encode_rejects_cyclic_and_too_deep_payloads():
    cyclic: list = []
    cyclic.append(cyclic)
    with pytest.raises(EncodeError, match="nested deeper"):
        encode(msg(cyclic))
    deep: tuple = ()
    for _ in range(40):
        deep = (deep,)
    with pytest.raises(EncodeError, match="tuples nested deeper"):
        encode(msg(deep))


def test_encode_rejects_bad_envelope_and_oversized_frames():
    with pytest.raises(EncodeError, match="sender must be a str"):
        encode(msg(sender=b"bytes"))
    with pytest.raises(EncodeError, match="version 2"):
        encode(msg(version=2))
    with pytest.raises(EncodeError, match="exceeds max_size 100"):
        encode(msg(b"x" * 100), max_size=100)
    assert len(encode(msg(b"x" * 1000), max_size=MAX_FRAME_SIZE)) < MAX_FRAME_SIZE


# -- decoding rejects garbage with DecodeError and nothing else ---------------------------------


def decodes_or_rejects(frame: bytes) -> None:
    """Decoding ``frame`` either succeeds or raises DecodeError: never another exception."""
    try:
        decode(frame)
    except DecodeError:
        pass


@codec_settings
@given(st.binary(max_size=200))
def test_random_bytes_are_rejected(data):
    # Without the magic and version nothing decodes; with them, only DecodeError may escape.
    if not data.startswith(MAGIC + bytes((PROTOCOL_VERSION,))):
        with pytest.raises(DecodeError):
            decode(data)
    decodes_or_rejects(MAGIC + bytes((PROTOCOL_VERSION,)) + data)


@codec_settings
@given(messages, st.data())
def test_truncated_frames_are_rejected(message, data):
    frame = encode(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
    with pytest.raises(DecodeError):
        decode(frame[:cut])


@codec_settings
@given(messages, st.data())
def test_corrupted_frames_decode_or_raise_decode_error(message, data):
    frame = bytearray(encode(message))
    for _ in range(data.draw(st.integers(min_value=1, max_value=4))):
        i = data.draw(st.integers(min_value=0, max_value=len(frame) - 1))
        frame[i] = data.draw(st.integers(min_value=0, max_value=255))
    decodes_or_rejects(bytes(frame))


@codec_settings
@given(messages, st.binary(min_size=1, max_size=8))
def test_trailing_bytes_are_rejected(message, extra):
    with pytest.raises(DecodeError, match="malformed msgpack body"):
        decode(encode(message) + extra)


@codec_settings
@given(messages, st.integers(min_value=0, max_value=255).filter(lambda v: v != PROTOCOL_VERSION))
def test_unknown_versions_are_rejected(message, version):
    frame = bytearray(encode(message))
    frame[len(MAGIC)] = version
    with pytest.raises(DecodeError, match=f"unsupported protocol version {version}"):
        decode(bytes(frame))


@codec_settings
@given(messages, st.integers(min_value=3, max_value=2000))
def test_oversized_frames_are_rejected_before_parsing(message, max_size):
    frame = encode(message)
    if len(frame) > max_size:
        with pytest.raises(DecodeError, match=f"exceeds max_size {max_size}"):
            decode(frame, max_size=max_size)
    else:
        assert same(decode(frame, max_size=max_size), message)


def test_default_max_size_rejects_a_frame_just_over_one_mebibyte():
    frame = frame_of(["a", "b", "k", 0.0, 0, b"x" * MAX_FRAME_SIZE])
    with pytest.raises(DecodeError, match=f"{len(frame)} bytes exceeds max_size"):
        decode(frame)


@pytest.mark.parametrize(
    ("frame", "culprit"),
    [
        (b"", "shorter than the 3-byte header"),
        (b"XX\x01\x90", "bad magic"),
        (frame_of({"sender": "a"}), "envelope must be a list of 6 fields, got dict"),
        (frame_of(["a", "b", "k", 0.0, 0]), "got list of 5"),
        (frame_of([1, "b", "k", 0.0, 0, None]), "field sender must be str, got int"),
        (frame_of(["a", None, "k", 0.0, 0, None]), "field receiver must be str"),
        (frame_of(["a", "b", b"k", 0.0, 0, None]), "field kind must be str, got bytes"),
        (frame_of(["a", "b", "k", "0", 0, None]), "field send_time must be float, got str"),
        (frame_of(["a", "b", "k", 0.0, 0.0, None]), "field seq must be int, got float"),
        (frame_of(["a", "b", "k", 0.0, True, None]), "field seq must be int, got bool"),
        (MAGIC + b"\x01\x96\xa1\xff", "malformed msgpack body"),  # invalid UTF-8
        (frame_of(["a", "b", "k", 0.0, 0, {1: 2}]), "malformed msgpack body"),  # int key
        (frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(9, b"")]), "extension type 9"),
        (frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(1, b"\x00")]), "header truncated"),
        (frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(1, b"\x63\x00")]), "dtype code 99"),
        (frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(1, b"\x04\x63")]), "99 dimensions"),
        (frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(1, b"\x04\x02\x01")]), "shape trunc"),
        (
            frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(1, b"\x04\x01\x02\x00\x00\x00")]),
            r"buffer of 0 bytes does not match shape \(2,\)",
        ),
        (
            frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(1, b"\x04\x02" + b"\xff" * 8)]),
            "does not match shape",
        ),
        (
            frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(2, b"\x00\x01\x01\x00\x00\x00\x01")]),
            "numpy scalar with shape",
        ),
        (frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(3, b"\x01")]), "tuple extension holds"),
    ],
)
def test_malformed_frames_name_the_culprit(frame, culprit):
    with pytest.raises(DecodeError, match=culprit):
        decode(frame)


def test_deeply_nested_tuples_are_rejected():
    inner = msgpack.packb([])
    for _ in range(40):
        inner = msgpack.packb([msgpack.ExtType(3, inner)])
    frame = frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(3, inner)])
    with pytest.raises(DecodeError, match="tuples nested deeper"):
        decode(frame)


def test_deeply_nested_lists_are_rejected():
    body = b"\x91" * 5000 + b"\xc0"
    with pytest.raises(DecodeError, match="malformed msgpack body"):
        decode(MAGIC + bytes((PROTOCOL_VERSION,)) + body)


def test_zero_size_array_with_huge_dimensions_is_rejected():
    header = b"\x04\x03" + b"\x00\x00\x00\x00" + b"\xff\xff\xff\xff" * 2
    frame = frame_of(["a", "b", "k", 0.0, 0, msgpack.ExtType(1, header)])
    with pytest.raises(DecodeError, match="array"):
        decode(frame)
