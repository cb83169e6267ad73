"""CURVE security: key pairs on disk, socket set-up, and an allow-list of agent keys.

ZeroMQ's CURVE mechanism encrypts and authenticates every connection. The server side also
needs a ZAP handler to decide which client keys it admits; without one, any key would do.
:class:`CurveAuthenticator` is that handler: it admits only the public keys of an allow-list,
names each admitted connection after its agent (the ZAP "User-Id" that
:class:`~phobos.comms.zmq_transport.ZmqServer` checks against the sender of every message), and
counts and logs every key it turns away. A client without an allowed key completes no
handshake, so nothing it sends reaches the server's application.

Typical set-up::

    keys = generate_keys(folder, "world")                  # once, for each endpoint
    auth = CurveAuthenticator(context, load_allow_list(clients_folder)).start()
    server = ZmqServer("tcp://127.0.0.1:*", "world", context=context, curve=keys)

The authenticator serves every socket of its :class:`zmq.Context`; start it before the server
binds, and use one per context.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator
from zmq.utils import z85

from phobos.comms.closing import Closing

log = logging.getLogger(__name__)

_PUBLIC_SUFFIX = ".key"
_SECRET_SUFFIX = ".key_secret"


@dataclass(frozen=True)
class KeyPair:
    """A CURVE key pair, Z85-encoded (40 ASCII bytes each).

    Attributes:
        public: The public key, which peers may know.
        secret: The secret key, or None when only the public half was loaded.

    """

    public: bytes
    secret: bytes | None = None


def generate_keys(folder: str | os.PathLike[str], name: str) -> KeyPair:
    """Create ``<name>.key`` (public) and ``<name>.key_secret`` in ``folder``; return the pair.

    The folder is created if needed. Existing files of that name are overwritten.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _, secret_file = zmq.auth.create_certificates(folder, name)
    os.chmod(secret_file, 0o600)
    return load_keys(folder, name)


def load_keys(folder: str | os.PathLike[str], name: str) -> KeyPair:
    """Load ``name``'s key pair from ``folder``: both halves, or the public one alone.

    Raises:
        FileNotFoundError: if neither ``<name>.key_secret`` nor ``<name>.key`` exists.

    """
    folder = Path(folder)
    for suffix in (_SECRET_SUFFIX, _PUBLIC_SUFFIX):
        path = folder / f"{name}{suffix}"
        if path.exists():
            public, secret = zmq.auth.load_certificate(path)
            return KeyPair(public, secret)
    raise FileNotFoundError(
        f"no key file {name}{_SECRET_SUFFIX} or {name}{_PUBLIC_SUFFIX} in {folder}"
    )


def load_allow_list(folder: str | os.PathLike[str]) -> dict[str, bytes]:
    """Read every ``<name>.key`` in ``folder`` into ``{name: public key}``."""
    return {
        path.name.removesuffix(_PUBLIC_SUFFIX): zmq.auth.load_certificate(path)[0]
        for path in sorted(Path(folder).glob(f"*{_PUBLIC_SUFFIX}"))
    }


def configure_curve(socket: zmq.Socket, keys: KeyPair, server_key: bytes | None = None) -> None:
    """Turn on CURVE for ``socket`` before it binds or connects.

    Args:
        socket: The socket.
        keys: This endpoint's pair; the secret half is required.
        server_key: The server's public key for a client socket; None makes ``socket`` a
            CURVE server (which then needs a :class:`CurveAuthenticator` on its context).

    Raises:
        ValueError: if ``keys`` has no secret half.

    """
    if keys.secret is None:
        raise ValueError("CURVE needs the secret key of this endpoint; only the public was loaded")
    socket.curve_secretkey = keys.secret
    socket.curve_publickey = keys.public
    if server_key is None:
        socket.curve_server = True
    else:
        socket.curve_serverkey = server_key


class CurveAuthenticator(Closing):
    """ZAP handler that admits only allow-listed CURVE client keys.

    Args:
        context: The context whose sockets it guards (one authenticator per context).
        allowed: ``{agent name: public key}`` (Z85); an admitted connection's User-Id is the
            agent name.
        domain: ZAP domain to guard; ``"*"`` guards all.

    Attributes:
        accepted: Handshakes admitted since :meth:`start`.
        rejected: Handshakes refused since :meth:`start` (each is logged as a warning).

    """

    def __init__(
        self, context: zmq.Context, allowed: Mapping[str, bytes], domain: str = "*"
    ) -> None:
        self.context = context
        self.domain = domain
        self.accepted = 0
        self.rejected = 0
        self._names: dict[bytes, str] = {}
        for name, key in allowed.items():
            self.allow(name, key)
        self._thread: _NamingAuthenticator | None = None

    def allow(self, name: str, public_key: bytes) -> None:
        """Admit ``public_key`` as agent ``name`` from now on.

        Raises:
            ValueError: if ``public_key`` is not a Z85-encoded CURVE key.

        """
        key = bytes(public_key)
        # Fail here, with the agent's name, rather than silently at every handshake.
        if len(key) != 40:
            raise ValueError(f"public key of {name!r} must be 40 Z85 bytes, got {len(key)}")
        z85.decode(key)
        self._names[key] = name

    def revoke(self, name: str) -> None:
        """Stop admitting ``name``'s key for new connections (existing ones stay up)."""
        self._names = {key: n for key, n in self._names.items() if n != name}

    def start(self) -> CurveAuthenticator:
        """Start the handler thread; return self."""
        if self._thread is None:
            thread = _NamingAuthenticator(self, self.context)
            thread.start()
            thread.configure_curve_callback(self.domain, credentials_provider=self)
            self._thread = thread
        return self

    def stop(self) -> None:
        """Stop the handler thread; CURVE servers on the context then admit nobody."""
        if self._thread is not None:
            self._thread.stop()
            self._thread = None

    def callback(self, domain: str, key: bytes) -> bool:
        """Decide on client ``key`` (Z85); called by the ZAP handler thread."""
        name = self._names.get(key)
        if name is None:
            self.rejected += 1
            log.warning(
                "CURVE: refused client key %s (domain %r); %d refused so far",
                key.decode("ascii", "replace"),
                domain,
                self.rejected,
            )
            return False
        self.accepted += 1
        log.debug("CURVE: admitted %s", name)
        return True

    def name_of(self, key: bytes) -> str | None:
        """Agent name of Z85 public ``key``, or None if it is not allowed."""
        return self._names.get(key)

    def close(self) -> None:
        """Stop the handler thread (:meth:`stop`; ``with`` starts it and closes it)."""
        self.stop()

    def _enter(self) -> CurveAuthenticator:
        return self.start()


class _NamingAuthenticator(ThreadAuthenticator):
    """pyzmq's ZAP thread, with the User-Id of a connection set to its agent's name."""

    def __init__(self, owner: CurveAuthenticator, context: zmq.Context) -> None:
        super().__init__(context, log=logging.getLogger(f"{__name__}.zap"))
        self._owner = owner

    def curve_user_id(self, client_public_key: bytes) -> str:
        key = z85.encode(client_public_key)
        # Only called after callback() admitted the key; a revoke in between falls back to it.
        return self._owner.name_of(key) or key.decode("ascii")
