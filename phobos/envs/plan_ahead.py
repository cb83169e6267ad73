"""Episode preparation drawn ahead in a background process, so resets do not stall stepping.

A batch core's reset tabulates everything exogenous to the agents for every new episode
(orbits, eclipses, contact plans, message deliveries): hundreds of milliseconds for hundreds
of episodes, as long as stepping them through the whole episode. The draws that shape the next
episodes are known as soon as the current ones are drawn: they come from each episode's own
generator, whose state after this reset is the state the next reset starts from. So a worker
process can prepare the next episodes while the core steps the current ones, and the reset
only takes the result.

The result is exactly the one the core would compute itself: the worker runs the same
``prepare(config, generators)`` on generators rebuilt from the very states the core's
generators are in, and the core's generators then advance to the states the worker's reached.
When the states no longer match at reset (an episode was reseeded meanwhile), the prepared
episodes are thrown away and the core prepares its own. The worker's results lie in two
buffers of shared memory (``memfd``) that alternate (the core reads one while the worker
fills the other), so nothing is copied on the way back and nothing touches the disk. The
worker is ``python -m phobos.envs.plan_ahead``, started with :mod:`subprocess` (not
:mod:`multiprocessing`, whose spawn re-runs the caller's main script): it is told what to run
by name and the configuration as its mapping; requests and replies are JSON lines on its
standard input and output, and nothing is pickled.

A prepared array is valid until the reset after the one that took it: the core that takes it
must not hand it on.
"""

from __future__ import annotations

import importlib
import json
import mmap
import os
import subprocess
import sys
import tempfile
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

import numpy as np

from phobos import config as config_tools

Prepare = Callable[[Any, Sequence[np.random.Generator]], Mapping[str, np.ndarray]]
"""A module-level function ``prepare(config, generators) -> {name: array}``."""

_ALIGN = 64
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "Philox", "SFC64", "MT19937")


class PlanAhead:
    """A worker process that prepares a batch core's next episodes while it steps these.

    Args:
        prepare: What the core runs at reset (a module-level function); the worker imports
            and runs the same function.
        config: Its first argument, the task's configuration (a config dataclass).
        example: One result of ``prepare`` for this core: it fixes every array's name, shape
            and dtype (all results of one core share them).
        timeout_s: Longest wait for a result at reset before the core prepares its own.

    """

    def __init__(
        self,
        prepare: Prepare,
        config: Any,
        example: Mapping[str, np.ndarray],
        timeout_s: float = 120.0,
    ) -> None:
        self.timeout_s = timeout_s
        self._layout, size = _layout(example)
        self._fds = [_anonymous_file(f"phobos-plan-ahead-{i}", size) for i in range(2)]
        self._maps = [mmap.mmap(fd, size) for fd in self._fds]
        self._process = subprocess.Popen(
            [sys.executable, "-m", "phobos.envs.plan_ahead"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            pass_fds=self._fds,
        )
        self._finalizer = weakref.finalize(self, _shutdown, self._process, self._fds)
        self._pending: tuple[int, list[dict]] | None = None
        self._next_slot = 0
        self.taken = 0
        """Resets served from the worker."""
        self.discarded = 0
        """Prepared results thrown away because the generators had been reseeded."""
        self.failure: str | None = None
        """Why the worker stopped serving (then every reset prepares its own), or ``None``."""
        self._send(
            {
                "prepare": f"{prepare.__module__}:{prepare.__qualname__}",
                "config_class": f"{type(config).__module__}:{type(config).__qualname__}",
                "config": config_tools.to_mapping(config),
                "fds": self._fds,
                "size": size,
                "layout": self._layout,
            }
        )

    def request(self, rngs: Sequence[np.random.Generator]) -> None:
        """Ask for the episodes the generators' current states will draw next."""
        if self.failure is not None or self._pending is not None:
            return
        states = [rng.bit_generator.state for rng in rngs]
        slot = self._next_slot
        if self._send({"slot": slot, "states": states}):
            self._pending = (slot, states)
            self._next_slot = 1 - slot

    def take(self, rngs: Sequence[np.random.Generator]) -> dict[str, np.ndarray] | None:
        """The prepared episodes, if drawn from the generators' current states; else ``None``.

        On success the generators advance to the states preparing them left, exactly as if
        the core had prepared them itself.

        Raises:
            RuntimeError: ``prepare`` raised in the worker (the same call would raise here).

        """
        if self._pending is None:
            return None
        slot, states = self._pending
        self._pending = None
        reply = self._receive()
        if reply is None:
            return None
        if "error" in reply:
            self._fail(reply["error"])
            raise RuntimeError(f"preparing episodes ahead failed: {reply['error']}")
        if [rng.bit_generator.state for rng in rngs] != states:
            self.discarded += 1
            return None
        for rng, state in zip(rngs, reply["states"], strict=True):
            rng.bit_generator.state = state
        self.taken += 1
        return _views(self._maps[slot], self._layout, writeable=False)

    def close(self) -> None:
        """Stop the worker and free its buffers."""
        self._finalizer()

    def _send(self, message: dict) -> bool:
        try:
            self._process.stdin.write(json.dumps(message).encode() + b"\n")
            self._process.stdin.flush()
            return True
        except (BrokenPipeError, OSError, ValueError) as error:
            self._fail(f"the worker is gone ({error})")
            return False

    def _receive(self) -> dict | None:
        # The reply comes when the worker is done; a dead worker closes its end (empty read).
        line = _read_line(self._process.stdout, self.timeout_s)
        if line is None:
            self._fail(f"no result within {self.timeout_s:g} s")
            return None
        if not line:
            self._fail(f"the worker is gone (exit status {self._process.poll()})")
            return None
        return json.loads(line)

    def _fail(self, reason: str) -> None:
        self.failure = reason
        self._finalizer()


def _read_line(stream: IO[bytes], timeout_s: float) -> bytes | None:
    import selectors

    with selectors.DefaultSelector() as selector:
        selector.register(stream, selectors.EVENT_READ)
        if not selector.select(timeout_s):
            return None
    return stream.readline()


def _layout(example: Mapping[str, np.ndarray]) -> tuple[list[tuple[str, str, list[int], int]], int]:
    layout, offset = [], 0
    for name, array in example.items():
        layout.append((name, array.dtype.str, list(array.shape), offset))
        offset += -(-array.nbytes // _ALIGN) * _ALIGN
    return layout, max(offset, 1)


def _views(buffer: np.ndarray, layout: list, writeable: bool) -> dict[str, np.ndarray]:
    views = {}
    for name, dtype, shape, offset in layout:
        count = int(np.prod(shape, dtype=np.int64))
        view = np.frombuffer(buffer, dtype=dtype, count=count, offset=offset).reshape(shape)
        view.flags.writeable = writeable
        views[name] = view
    return views


def _generator(state: dict) -> np.random.Generator:
    name = state.get("bit_generator")
    if name not in _BIT_GENERATORS:
        raise ValueError(f"unknown bit generator {name!r}")
    bit_generator = getattr(np.random, name)()
    bit_generator.state = state
    return np.random.Generator(bit_generator)


def _load(entry_point: str) -> Any:
    module, _, attribute = entry_point.partition(":")
    return getattr(importlib.import_module(module), attribute)


def serve(stdin: IO[bytes], stdout: IO[bytes]) -> None:
    """The worker's loop: a setup line, then one reply line per request line, until EOF."""
    setup = json.loads(stdin.readline() or b"null")
    if setup is None:
        return
    prepare = _load(setup["prepare"])
    config = config_tools.from_mapping(_load(setup["config_class"]), setup["config"])
    maps = [mmap.mmap(fd, setup["size"]) for fd in setup["fds"]]
    views = [_views(buffer, setup["layout"], writeable=True) for buffer in maps]
    for line in stdin:
        try:
            request = json.loads(line)
            rngs = [_generator(state) for state in request["states"]]
            result = prepare(config, rngs)
            target = views[request["slot"]]
            if set(result) != set(target):
                raise ValueError(f"prepare returned {sorted(result)}, expected {sorted(target)}")
            for name, array in result.items():
                if array.shape != target[name].shape or array.dtype != target[name].dtype:
                    raise ValueError(
                        f"{name}: {array.dtype}{list(array.shape)} differs from "
                        f"{target[name].dtype}{list(target[name].shape)}"
                    )
                target[name][...] = array
            reply: dict = {"states": [rng.bit_generator.state for rng in rngs]}
        except Exception as error:  # noqa: BLE001 -- the reason goes back to the core
            reply = {"error": f"{type(error).__name__}: {error}"}
        stdout.write(json.dumps(reply).encode() + b"\n")
        stdout.flush()


def _anonymous_file(name: str, size: int) -> int:
    """A descriptor of ``size`` bytes of memory two processes can map (nothing on disk)."""
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create(name)
    else:  # no memfd (not Linux): an unlinked temporary file, so nothing is left behind
        handle, path = tempfile.mkstemp(prefix=name)
        os.unlink(path)
        fd = handle
    os.ftruncate(fd, size)
    return fd


def _shutdown(process: subprocess.Popen, fds: list[int]) -> None:
    try:
        process.stdin.close()
    except OSError:
        pass
    try:
        process.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5.0)
    process.stdout.close()
    for fd in fds:
        os.close(fd)


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
