"""The DTN relay process: custody, contact plan and light time for every agent's messages.

``python -m phobos.live.dtn.relay --keys DIR --journal FILE [--address tcp://HOST:PORT]``
(``phobos demo`` starts and supervises one; run it alone for agents on other hosts). One
ROUTER, tcp+CURVE with the allow-list of ``DIR``; it prints ``relay <address>`` once it
listens. The protocol, tick by tick, is in :mod:`phobos.live.dtn.protocol`.

It runs the same :class:`~phobos.comms.router.Router` over the same
:class:`~phobos.comms.link.TabulatedLinks` as the environment does in-process (buffer, loss,
bandwidth, light time), fed in lock-step with the world's simulated clock: a message submitted
during step ``t`` is offered to the router when the world says step ``t`` is done, in a
canonical order, so a seeded episode delivers the same copies, at the same steps, as
in-process. Custody is journaled (:mod:`phobos.live.dtn.journal`); killed and started again
on the same journal, the relay replays the routed ticks of the episode through a fresh
router (the router is deterministic in what it is fed), answers a repeated ``tick`` as it
did, and resends each receiver what it still owes when the receiver says hello (or
submits).

Bad input is refused, counted (:attr:`DtnRelay.counts`) and the sender told: a frame that is
not a message, one sent under another's name, from a name off the allow-list, a message to
an unknown agent, of an unknown kind, over :data:`~phobos.live.dtn.protocol.MAX_MESSAGE_BYTES`,
for a step already routed (late), or with broken fields. The relay keeps serving.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import zmq

from phobos.comms.codec import DecodeError, EncodeError, decode, encode
from phobos.comms.limits import LogLimiter, quote
from phobos.comms.message import Message
from phobos.comms.security import CurveAuthenticator, load_allow_list, load_keys
from phobos.comms.zmq_transport import milliseconds, waiting_frames
from phobos.live.dtn import protocol as r
from phobos.live.dtn.episode import TOTALS as _TOTALS
from phobos.live.dtn.episode import Episode
from phobos.live.dtn.journal import RelayJournal

log = logging.getLogger(__name__)
WORLD = "world"
"""Name (and key name) of the world server, the only peer that may send plans and ticks."""


class DtnRelay:
    """The relay server; see the module docstring.

    Args:
        address: Where the ROUTER binds.
        keys: Key folder: ``relay.key_secret`` and the allow-list of every ``<name>.key``.
        journal: The custody journal's file.
        gather_timeout: Seconds a tick waits for the messages the world counted.

    """

    def __init__(
        self,
        address: str,
        keys: str | Path,
        journal: str | Path,
        gather_timeout: float = 2.0,
    ) -> None:
        self.context = zmq.Context()
        self.journal = RelayJournal(journal, max_size=r.MAX_FRAME_BYTES)
        self.gather_timeout = gather_timeout
        self.limited = LogLimiter(log)
        self.routes: dict[str, bytes] = {}
        self.counts: dict[str, int] = defaultdict(int)
        self.counts.update(self.journal.counts())
        allowed = {k: v for k, v in load_allow_list(keys).items() if k != r.RELAY}
        self.peers = frozenset(allowed)
        self.authenticator = CurveAuthenticator(self.context, allowed).start()
        sock = self.sock = self.context.socket(zmq.ROUTER)
        sock.linger = 0
        sock.maxmsgsize = r.MAX_FRAME_BYTES
        sock.sndtimeo = 1000
        sock.router_mandatory = 1
        own = load_keys(keys, r.RELAY)
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = own.secret, own.public, 1
        sock.bind(address)
        self.address = sock.getsockopt_string(zmq.LAST_ENDPOINT)
        self.episode: Episode | None = None
        self.owed: dict[str, dict[tuple[int, str, int], Message]] = defaultdict(dict)
        self._gathering = False
        self._accepted: list[tuple[int, int, Message, bytes]] = []  # since the last commit
        self._acks: list[tuple[bytes, str, int, list[int]]] = []
        self._acked: list[tuple[str, int, str, int]] = []
        self._recover()

    # ------------------------------------------------------------------ recovery
    def _recover(self) -> None:
        """Rebuild the episode's router by replaying its routed ticks; reload what is owed."""
        plan = self.journal.latest_plan()
        if plan is not None:
            episode = self.episode = Episode(plan)
            by_tick: dict[int, list[Message]] = defaultdict(list)
            for tick, message in self.journal.accepted(episode.number):
                episode.accept(tick, message)
                by_tick[tick].append(message)
            for tick, until in self.journal.ticks(episode.number):
                episode.answer = [r.copy_fields(*c) for c in episode.route(tick, until)]
                episode.answer_meta = [until, dict(episode.upto)]
            if episode.done >= 0:
                log.info("relay: resumed episode %d at tick %d", episode.number, episode.done)
        for receiver, episode_number, message in self.journal.owed():
            self.owed[receiver][episode_number, message.sender, message.seq] = message

    # ------------------------------------------------------------------- serving
    def serve(self, stop: Callable[[], bool], tick: float = 0.1) -> None:
        """Handle frames until ``stop()`` is true (checked every ``tick`` seconds)."""
        while not stop():
            if self.sock.poll(milliseconds(tick)):
                self.drain()
            else:
                self._commit()  # idle: custody of what came since the last tick

    def drain(self, most: int = 1000) -> None:
        """Handle the frames waiting (at most ``most``), without blocking."""
        for ident, part in waiting_frames(self.sock, most):
            if part is None:
                self.refuse(ident, None, "sent a multipart message, expected one frame")
                continue
            user = part.get("User-Id")
            try:
                message = decode(part.bytes, r.MAX_FRAME_BYTES)
            except DecodeError as exc:
                self.refuse(ident, user, str(exc))
                continue
            if message.sender != user:
                spoof = f"authenticated as {user!r}, sent as {quote(message.sender)}"
                self.refuse(ident, user, spoof)
                continue
            self.routes[user] = ident
            try:
                if message.kind == r.SUBMIT:
                    self._on_submit(user, message)
                else:
                    self._dispatch(user, ident, message)
            except Exception as exc:  # noqa: BLE001 - no frame may stop the relay
                self.refuse(ident, user, f"{message.kind!r} could not be handled: {exc}")
        self._route_ahead()

    def _route_ahead(self) -> None:
        """Route the next tick as soon as every agent's submit of it is in, unasked.

        The world would ask for exactly this (every agent answered, so it counts what they
        submitted): answering before it asks takes the relay's round trip off the step. The
        answer is the one a ``tick`` would get; the world checks the step, its end and the
        counts, and asks with ``tick`` when any differ, or when some agent did not answer.
        """
        episode = self.episode
        if episode is None or self._gathering or WORLD not in self.routes:
            return
        tick = episode.done + 1
        ready = episode.ready.get(tick)
        if ready is None or len(ready) < len(episode.endpoints):
            return
        until = (tick + 1) * episode.step_seconds  # a step's copies are due at its end
        self._route(self.routes[WORLD], episode, tick, until, dict(episode.upto))

    def _commit(
        self,
        copies: dict[str, list] | None = None,
        first: tuple[bytes, list[Any]] | None = None,
        **more: Any,
    ) -> None:
        """Commit what came since the last commit (with ``more``), then tell each agent.

        One transaction a step: the step's accepted messages, its tick, the copies owed and
        the copies acknowledged since. An acknowledgement goes out only once its message is
        journaled (custody); a copy's row goes when its receiver's ``got`` is committed (a
        relay that dies first resends it, and the receiver's ledger knows it already). Each
        agent then gets one ``deliver``: its copies of the step and its acknowledgements,
        after ``first`` (the world's ``routed``: the step waits for it, the agents do not).
        """
        if not (self._accepted or self._acked or more):
            return
        self.journal.commit(accepted=self._accepted, acked=self._acked, **more)
        self._accepted.clear()
        self._acked.clear()
        if first is not None:
            self._send(first[0], WORLD, r.ROUTED, first[1])
        acks: dict[str, list] = defaultdict(list)
        for _, name, episode, seqs in self._acks:
            acks[name].append([episode, seqs])
        self._acks.clear()
        copies = copies or {}
        number = self.episode.number if self.episode is not None else -1
        for name in acks.keys() | copies.keys():
            payload = [number, copies.get(name, []), acks.get(name, [])]
            self._send(self.routes.get(name), name, r.DELIVER, payload)

    def _dispatch(self, user: str, ident: bytes, message: Message) -> None:
        kind = message.kind
        if kind == r.GOT:
            self._on_got(user, message.payload)
        elif kind == r.HELLO:
            self._send(ident, user, r.WELCOME, None)
            self._resend(user)
        elif user == WORLD and kind == r.PLAN:
            self._on_plan(ident, message)
        elif user == WORLD and kind == r.TICK:
            self._on_tick(ident, message.payload)
        elif user == WORLD and kind == r.FLUSH:
            self._on_flush(ident, message.payload)
        else:
            self.refuse(ident, user, f"unexpected message kind {quote(kind)}")

    # ------------------------------------------------------------------- agents
    def _on_submit(self, user: str, message: Message) -> None:
        ident = self.routes[user]
        payload = message.payload
        if not (
            isinstance(payload, list) and len(payload) in (2, 3, 4) and isinstance(payload[1], list)
        ):
            self.refuse(ident, user, "a submit is [episode, [message, ...], got, step]")
            return
        number, items = payload[0], payload[1]
        if len(payload) >= 3:  # the receiver's got, carried with its next submit
            self._on_got(user, payload[2])
        episode = self.episode
        if episode is None or number != episode.number:
            self.refuse(ident, user, f"episode {quote(number)} is not the current one", number)
            return
        if user not in episode.index:
            self.refuse(ident, user, f"{user} is not an agent of this episode", number)
            return
        if len(items) > r.MAX_PER_SUBMIT:
            many = f"more than {r.MAX_PER_SUBMIT} messages in one submit"
            self.refuse(ident, user, many, number)
            return
        seqs = []
        for item in items:
            seq = item[3] if isinstance(item, list) and len(item) == 5 else -1
            reason, tick, built, frame = episode.admit(user, item)
            if reason is not None:
                valid = type(seq) is int and 0 <= seq < 2**62
                if valid:
                    episode.settle(user, seq)
                self.refuse(ident, user, reason, number, seq if valid else -1)
                continue
            held = episode.accepted.get((user, built.seq))
            if held is not None and encode(held) != frame:
                self.refuse(ident, user, f"sequence number {built.seq} reused", number)
                continue
            if held is not None:
                self.counts["duplicates"] += 1  # a retransmission: custody holds already
            else:
                episode.accept(tick, built)
                self._accepted.append((number, tick, built, frame))
            seqs.append(built.seq)
        if seqs:
            self._acks.append((ident, user, number, seqs))
        if len(payload) == 4 and type(payload[3]) is int:  # its submit of that step is in
            episode.ready[payload[3]].add(user)

    def _on_got(self, user: str, payload: Any) -> None:
        owed = self.owed.get(user)
        if not (isinstance(payload, list) and owed):
            return
        for item in payload[: 4 * r.MAX_PER_SUBMIT]:
            if isinstance(item, list) and len(item) == 3:
                key = (item[0], item[1], item[2])
                if owed.pop(key, None) is not None:
                    self._acked.append((user, *key))

    def _resend(self, user: str) -> None:
        by_episode: dict[int, list] = defaultdict(list)
        for (number, _, _), message in self.owed.get(user, {}).items():
            by_episode[number].append(r.copy_fields(user, message))
        for number, copies in by_episode.items():
            for begin in range(0, len(copies), r.MAX_PER_SUBMIT):
                chunk = copies[begin : begin + r.MAX_PER_SUBMIT]
                self._send(self.routes.get(user), user, r.DELIVER, [number, chunk, []])

    # -------------------------------------------------------------------- world
    def _on_plan(self, ident: bytes, message: Message) -> None:
        if self.episode is None or message.seq != self.episode.number:
            episode = Episode(message)  # raises on a malformed plan: refused, counted
            if self.episode is not None:  # the run's totals keep the episode that ends
                for name, value in zip(_TOTALS, self.episode.stats(), strict=True):
                    self.counts[name] += value
            self.counts["episodes"] += 1
            self._commit(plan=message, counts=dict(self.counts))
            self.episode = episode
        self._send(ident, WORLD, r.OK, message.seq)

    def _on_tick(self, ident: bytes, payload: Any) -> None:
        number, tick, until, expect, _capture = payload
        episode = self.episode
        if episode is None or number != episode.number:
            self._send(ident, WORLD, r.REPLAN, number)
            return
        if tick == episode.done:
            answer = [number, tick, episode.answer, episode.stats(), episode.flights()]
            self._send(ident, WORLD, r.ROUTED, [*answer, *episode.answer_meta])
            return
        if tick != episode.done + 1 or self._gathering:
            self.refuse(ident, WORLD, f"tick {tick} out of order (routed {episode.done})")
            return
        self._gather(episode, expect)
        self._route(ident, episode, tick, float(until), dict(episode.upto))

    def _route(
        self, world: bytes, episode: Episode, tick: int, until: float, counts: dict[str, int]
    ) -> None:
        """Route one tick, commit it, answer the world (``routed``), tell the agents."""
        number = episode.number
        episode.ready.pop(tick, None)
        copies = episode.route(tick, until)
        owed = [(receiver, number, message) for receiver, message in copies]
        self.counts["routed_ticks"] = tick
        episode.answer = fields = [r.copy_fields(*c) for c in copies]
        per: dict[str, list] = defaultdict(list)
        for (receiver, message), item in zip(copies, fields, strict=True):
            self.owed[receiver][number, message.sender, message.seq] = message
            per[receiver].append(item)
        episode.answer_meta = [until, counts]
        answer = [number, tick, fields, episode.stats(), episode.flights(), until, counts]
        tick_row = (number, tick, until)
        self._commit(per, (world, answer), tick=tick_row, owed=owed, counts=dict(self.counts))

    def _gather(self, episode: Episode, expect: dict[str, int]) -> None:
        """Serve frames until every counted message is here or the wait ends."""
        deadline = time.monotonic() + self.gather_timeout
        self._gathering = True
        try:
            while True:
                short = {a: n - episode.upto.get(a, n) for a, n in expect.items()}
                short = {a: n for a, n in short.items() if n > 0}
                left = deadline - time.monotonic()
                if not short:
                    return
                if left <= 0:
                    self.counts["missing"] += sum(short.values())
                    self.limited.warning("relay: tick without %s's messages", ", ".join(short))
                    return
                if self.sock.poll(milliseconds(min(left, 0.05))):
                    self.drain()
        finally:
            self._gathering = False

    def _on_flush(self, ident: bytes, payload: Any) -> None:
        wait = min(float(payload), 30.0) if isinstance(payload, float | int) else 0.0
        deadline = time.monotonic() + wait
        while any(self.owed.values()) and time.monotonic() < deadline:
            if self.sock.poll(50):
                self.drain()
        self._commit()
        self._send(ident, WORLD, r.FLUSHED, self.ledger())

    def ledger(self) -> dict[str, int]:
        """The relay's own record over the run: the routers' counters, custody, what is owed.

        ``sent``, ``routed`` (copies the routers delivered), ``dropped_buffer``,
        ``dropped_loss`` and ``held_router`` (copies still in the current episode's router)
        sum every episode; ``accepted`` counts the journal's rows; ``owed`` the copies routed
        but not yet acknowledged by their receivers.
        """
        out = {k: int(v) for k, v in self.counts.items() if k not in _TOTALS}
        totals = [self.counts.get(name, 0) for name in _TOTALS]
        if self.episode is not None:
            totals = [a + b for a, b in zip(totals, self.episode.stats(), strict=True)]
        out.update(zip(_TOTALS, totals, strict=True))
        out["accepted"] = self.journal.accepted_count()
        out["owed"] = sum(len(v) for v in self.owed.values())
        return out

    # ------------------------------------------------------------------ plumbing
    def refuse(
        self, ident: bytes | None, user: str | None, reason: str, episode: Any = -1, seq: int = -1
    ) -> None:
        """Count a refusal, log it (rate-limited) and tell the sender when it is a peer."""
        self.counts["refused"] += 1
        self.limited.warning("relay: refused from %s: %s", quote(user), reason)
        if ident is not None and user in self.peers:
            number = episode if type(episode) is int else -1
            self._send(ident, user, r.REFUSED, [number, seq, reason])

    def _send(self, ident: bytes | None, to: str, kind: str, payload: Any) -> None:
        if ident is None:
            return
        try:
            frame = encode(Message(r.RELAY, to, kind, 0.0, 0, payload), r.MAX_FRAME_BYTES)
            self.sock.send(ident, zmq.SNDMORE)
            self.sock.send(frame)
        except (EncodeError, zmq.ZMQError) as exc:
            self.limited.warning("relay: cannot send %s to %s: %s", kind, to, exc)

    def close(self) -> None:
        """Close the socket, the authenticator, the journal and the context."""
        self.sock.close(linger=0)
        self.authenticator.stop()
        self.journal.close()
        self.context.destroy(linger=0)


def main(argv: Sequence[str] | None = None) -> int:
    """Run a relay until SIGTERM or SIGINT; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m phobos.live.dtn.relay", description=__doc__)
    parser.add_argument("--address", default="tcp://127.0.0.1:*")
    parser.add_argument("--keys", required=True, help="key folder (relay.key_secret, allow-list)")
    parser.add_argument("--journal", required=True, help="custody journal (SQLite file)")
    parser.add_argument("--gather-timeout", type=float, default=2.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        relay = DtnRelay(args.address, args.keys, args.journal, args.gather_timeout)
    except (OSError, ValueError, zmq.ZMQError, sqlite3.Error) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    print(f"relay {relay.address}", flush=True)
    try:
        relay.serve(lambda: bool(stopping))
    finally:
        relay.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
