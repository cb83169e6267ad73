"""``with`` support written once for the comms pieces that hold sockets or a thread.

Transports, telemetry ends and the CURVE authenticator are released by ``close()``; each
is also a context manager that closes it on leaving the block, whatever raised inside.
"""

from __future__ import annotations

import abc
from types import TracebackType
from typing import Self


class Closing(abc.ABC):
    """A resource released by :meth:`close`, usable as ``with resource: ...``.

    Required: :meth:`close`. Optional hook: :meth:`_enter`, run on entering the block (it
    returns ``self`` by default; the authenticator starts its thread there).
    """

    @abc.abstractmethod
    def close(self) -> None:
        """Release what the resource holds; closing twice is allowed."""

    def _enter(self) -> Self:
        return self

    def __enter__(self) -> Self:
        return self._enter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
