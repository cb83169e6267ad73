"""Wire codec: one :class:`~phobos.comms.message.Message` to one compact binary frame and back.

Frame layout (everything after the header is one msgpack array)::

    b"PH" | version: u8 | msgpack [sender, receiver, kind, send_time, seq, payload]

The two magic bytes and the version come first so that a decoder turns away foreign or
future frames before it parses anything. The payload may hold ``None``, ``bool``, ``int``
(64-bit), ``float``, ``str``, ``bytes``, lists, tuples, dicts with ``str`` or ``bytes`` keys,
numpy arrays and numpy scalars of the numeric dtypes in :data:`ARRAY_DTYPES`, nested freely.
Arrays travel as msgpack extension values holding a small header (dtype code, shape) and the
raw little-endian buffer, as in pyzmq's ``examples/serialization``; nothing is ever pickled.

Round trips are exact in type and value, with three deliberate normalisations: a ``bytearray``
or ``memoryview`` arrives as ``bytes``, a dict subclass as a plain ``dict``, and arrays arrive
C-contiguous, little-endian and writable (a copy that owns its memory).

Decoding never trusts its input: every way a frame can be wrong (too large, truncated,
foreign, another version, bad msgpack, an envelope field of the wrong type, an array whose
header and buffer disagree) raises :class:`DecodeError`, whose message names the culprit.
"""

from __future__ import annotations

import math
import operator
import struct
import threading
from typing import Any

import msgpack
import numpy as np

from phobos.comms.message import PROTOCOL_VERSION, Message

MAGIC = b"PH"
"""First two bytes of every frame."""

_FRAME_HEADER = MAGIC + bytes((PROTOCOL_VERSION,))

MAX_FRAME_SIZE = 1 << 20
"""Default largest frame, in bytes, that :func:`encode` writes and :func:`decode` reads."""

ARRAY_DTYPES: tuple[str, ...] = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
)  # fmt: skip
"""Numpy dtypes a payload may carry; the wire code of each is its index here."""

_EXT_ARRAY = 1
_EXT_SCALAR = 2
_EXT_TUPLE = 3
_MAX_NDIM = 32
_MAX_TUPLE_DEPTH = 32
_MAX_NESTING = 1000  # msgpack's own stack holds 1024 levels; the envelope takes one
_CONTAINERS = (dict, list, tuple)
_local = threading.local()
_HEADER = struct.Struct("<BB")
_DIM = struct.Struct("<I")
_ENVELOPE_FIELDS = ("sender", "receiver", "kind", "send_time", "seq", "payload")
_ENVELOPE_TYPES = (str, str, str, float, int)

# Keyed by the little-endian dtype string ('<f8', '|b1'): a string lookup is the cheapest test.
_CODE_OF = {np.dtype(name).newbyteorder("<").str: code for code, name in enumerate(ARRAY_DTYPES)}
_DTYPE_OF = [np.dtype(name).newbyteorder("<") for name in ARRAY_DTYPES]


class EncodeError(ValueError):
    """A message cannot be put on the wire (unsupported payload type, too large, ...)."""


class DecodeError(ValueError):
    """A frame is not a valid message; the text names what is wrong with it."""


def encode(message: Message, max_size: int = MAX_FRAME_SIZE) -> bytes:
    """Encode ``message`` into one frame.

    Args:
        message: The message; its ``version`` must be :data:`PROTOCOL_VERSION`.
        max_size: Largest frame allowed, in bytes.

    Returns:
        The frame.

    Raises:
        EncodeError: if the payload holds an unsupported type or dict key, an int beyond 64
            bits, an array of a dtype outside :data:`ARRAY_DTYPES`, if an envelope field has
            the wrong type, or if the frame would exceed ``max_size``.

    """
    if message.version != PROTOCOL_VERSION:
        raise EncodeError(
            f"message version {message.version!r}: this encoder writes version {PROTOCOL_VERSION}"
        )
    if not (
        type(message.sender) is str and type(message.receiver) is str and type(message.kind) is str
    ):
        for name in ("sender", "receiver", "kind"):
            if type(getattr(message, name)) is not str:
                raise EncodeError(
                    f"{name} must be a str, got {type(getattr(message, name)).__name__}"
                )
    try:
        envelope = [
            message.sender,
            message.receiver,
            message.kind,
            float(message.send_time),
            operator.index(message.seq),
            message.payload,
        ]
        if isinstance(message.payload, _CONTAINERS):
            _check_keys(message.payload)
        body = _envelope_packer().pack(envelope)
    except EncodeError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError) as exc:
        raise EncodeError(f"cannot encode message {message.message_id}: {exc}") from exc
    frame = _FRAME_HEADER + body
    if len(frame) > max_size:
        raise EncodeError(f"frame of {len(frame)} bytes exceeds max_size {max_size}")
    return frame


def decode(frame: bytes | bytearray | memoryview, max_size: int = MAX_FRAME_SIZE) -> Message:
    """Decode one frame made by :func:`encode`.

    Args:
        frame: The received bytes.
        max_size: Largest frame accepted, in bytes; larger ones are rejected before parsing.

    Returns:
        The message.

    Raises:
        DecodeError: if the frame is oversized, truncated, foreign, of another version,
            malformed, or has an envelope field of the wrong type.

    """
    size = len(frame)
    if size > max_size:
        raise DecodeError(f"frame of {size} bytes exceeds max_size {max_size}")
    if frame[:3] != _FRAME_HEADER:
        if size < 3:
            raise DecodeError(f"frame of {size} bytes is shorter than the 3-byte header")
        if frame[:2] != MAGIC:
            raise DecodeError(f"bad magic {bytes(frame[:2])!r}, expected {MAGIC!r}")
        raise DecodeError(
            f"unsupported protocol version {frame[2]} (this decoder reads {PROTOCOL_VERSION})"
        )
    # Slicing bytes copies; cheaper than a memoryview below a few KiB, dearer above.
    body = frame[3:] if size < 4096 else memoryview(frame)[3:]
    try:
        # msgpack's defaults already give str for str, lists, and str/bytes-only map keys.
        envelope = msgpack.unpackb(body, ext_hook=_TOP_LEVEL_HOOK)
    except DecodeError:
        raise
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # ValueError covers msgpack's truncated input, extra data, bad bytes, too-deep nesting
        # and invalid UTF-8; TypeError an unhashable map key.
        raise DecodeError(f"malformed msgpack body: {type(exc).__name__}: {exc}") from exc
    if type(envelope) is not list or len(envelope) != len(_ENVELOPE_FIELDS):
        got = f"list of {len(envelope)}" if type(envelope) is list else type(envelope).__name__
        raise DecodeError(f"envelope must be a list of {len(_ENVELOPE_FIELDS)} fields, got {got}")
    sender, receiver, kind, send_time, seq, payload = envelope
    if not (
        type(sender) is str
        and type(receiver) is str
        and type(kind) is str
        and type(send_time) is float
        and type(seq) is int
    ):
        for name, value, expected in zip(_ENVELOPE_FIELDS, envelope, _ENVELOPE_TYPES, strict=False):
            if type(value) is not expected:
                raise DecodeError(
                    f"envelope field {name} must be {expected.__name__}, got {type(value).__name__}"
                )
    return Message(sender, receiver, kind, send_time, seq, payload, PROTOCOL_VERSION)


def _check_keys(payload: Any) -> None:
    """Refuse dict keys other than str and bytes, which the decoder would refuse.

    msgpack itself would pack them; the decoder keeps msgpack's ``strict_map_key`` because
    keys of other types open dicts to hash-collision floods.
    """
    stack = [(payload, 0)]
    while stack:
        obj, depth = stack.pop()
        if depth > _MAX_NESTING:
            raise EncodeError(f"payload nested deeper than {_MAX_NESTING} (or cyclic)")
        if isinstance(obj, dict):
            for key in obj:
                if type(key) is not str and type(key) is not bytes:
                    raise EncodeError(
                        f"dict key {key!r} is a {type(key).__name__}, not str or bytes"
                    )
            children = obj.values()
        else:
            children = obj
        stack.extend((child, depth + 1) for child in children if isinstance(child, _CONTAINERS))


def _envelope_packer() -> msgpack.Packer:
    # A Packer reused per thread saves most of packb's cost on small messages; it must not be
    # shared across threads, and is never re-entered (nested tuples use packb).
    packer = getattr(_local, "packer", None)
    if packer is None:
        packer = _local.packer = msgpack.Packer(
            default=_ExtEncoder(), strict_types=True, use_bin_type=True
        )
    return packer


def _pack(obj: Any, default: _ExtEncoder) -> bytes:
    # strict_types sends every non-plain type (numpy scalars, which may subclass float; bool
    # subclasses; tuples) through the default hook, so that nothing changes type silently.
    return msgpack.packb(obj, default=default, strict_types=True, use_bin_type=True)


class _ExtEncoder:
    """msgpack default hook for one encode call; counts tuple nesting as the decoder does."""

    __slots__ = ("depth",)

    def __init__(self) -> None:
        self.depth = 0

    def __call__(self, obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return msgpack.ExtType(_EXT_ARRAY, _array_bytes(obj))
        if isinstance(obj, np.generic):
            return msgpack.ExtType(_EXT_SCALAR, _array_bytes(np.asarray(obj)))
        if isinstance(obj, tuple):
            if self.depth >= _MAX_TUPLE_DEPTH:
                raise EncodeError(f"tuples nested deeper than {_MAX_TUPLE_DEPTH}")
            self.depth += 1
            try:
                return msgpack.ExtType(_EXT_TUPLE, _pack(list(obj), self))
            finally:
                self.depth -= 1
        if isinstance(obj, dict):
            return dict(obj)
        if isinstance(obj, bytearray | memoryview):
            return bytes(obj)
        if type(obj) is int:
            raise EncodeError(f"int {obj} does not fit in 64 bits")
        raise EncodeError(f"cannot encode a {type(obj).__module__}.{type(obj).__qualname__}")


def _array_bytes(array: np.ndarray) -> bytes:
    code = _CODE_OF.get(array.dtype.str)
    if code is None:
        swapped = array.dtype.newbyteorder("<")
        code = _CODE_OF.get(swapped.str)
        if code is None:
            raise EncodeError(
                f"array dtype {array.dtype} is not allowed; allowed: {', '.join(ARRAY_DTYPES)}"
            )
        array = array.astype(swapped)
    if array.ndim > _MAX_NDIM:
        raise EncodeError(f"array of {array.ndim} dimensions exceeds {_MAX_NDIM}")
    if any(n > 0xFFFFFFFF for n in array.shape):
        raise EncodeError(f"array shape {array.shape} has a dimension beyond 2**32 - 1")
    if not array.flags.c_contiguous:
        # Not np.ascontiguousarray: it turns a 0-d array into a 1-d one.
        array = array.copy(order="C")
    dims = b"".join(_DIM.pack(n) for n in array.shape)
    return b"".join((_HEADER.pack(code, array.ndim), dims, array.data))


class _ExtDecoder:
    """msgpack ext hook for values nested in ``depth`` tuples; stateless, so shareable."""

    __slots__ = ("depth",)

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __call__(self, code: int, data: bytes) -> Any:
        if code == _EXT_ARRAY:
            return _array_from(data)
        if code == _EXT_SCALAR:
            array = _array_from(data)
            if array.ndim != 0:
                raise DecodeError(f"numpy scalar with shape {array.shape}, expected ()")
            return array[()]
        if code == _EXT_TUPLE:
            if self.depth >= _MAX_TUPLE_DEPTH:
                raise DecodeError(f"tuples nested deeper than {_MAX_TUPLE_DEPTH}")
            items = msgpack.unpackb(data, ext_hook=_ExtDecoder(self.depth + 1))
            if type(items) is not list:
                raise DecodeError(f"tuple extension holds a {type(items).__name__}, not a list")
            return tuple(items)
        raise DecodeError(f"unknown msgpack extension type {code}")


_TOP_LEVEL_HOOK = _ExtDecoder(0)


def _array_from(data: bytes) -> np.ndarray:
    if len(data) < _HEADER.size:
        raise DecodeError(f"array header truncated: {len(data)} bytes")
    code, ndim = _HEADER.unpack_from(data)
    if code >= len(_DTYPE_OF):
        raise DecodeError(f"unknown array dtype code {code}")
    if ndim > _MAX_NDIM:
        raise DecodeError(f"array of {ndim} dimensions exceeds {_MAX_NDIM}")
    offset = _HEADER.size + ndim * _DIM.size
    if len(data) < offset:
        raise DecodeError(f"array shape truncated: {len(data)} bytes for {ndim} dimensions")
    shape = tuple(_DIM.unpack_from(data, _HEADER.size + i * _DIM.size)[0] for i in range(ndim))
    dtype = _DTYPE_OF[code]
    count = math.prod(shape)
    if len(data) - offset != count * dtype.itemsize:
        raise DecodeError(
            f"array buffer of {len(data) - offset} bytes does not match "
            f"shape {shape} of {dtype.name}"
        )
    try:
        flat = np.frombuffer(data, dtype=dtype, count=count, offset=offset)
        return flat.reshape(shape).copy()
    except ValueError as exc:
        raise DecodeError(f"array of shape {shape} and {dtype.name}: {exc}") from exc
