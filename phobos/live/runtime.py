"""The agent process runtime: one agent's policy in its own process, served by a world server.

``phobos agent --id yinghuo1 --world tcp://HOST:PORT --keys DIR`` runs :func:`run_agent`. The
agent connects a CURVE-secured DEALER to the world (its own key pair ``<id>.key_secret`` and
the world's public key ``world.key`` from ``DIR``), says hello with a fresh incarnation
number, receives the environment's id and configuration, builds its own copy of the
environment and its policy from a team spec (:mod:`phobos.agents.team_spec`), and then
answers every observation with an action until the world says ``end``.

Failure handling (zguide's Lazy Pirate): a world that does not answer a hello within the
current backoff gets a fresh socket and another hello, the backoff doubling up to
``retry_max``; each retry is printed. After ``connect_timeout`` seconds without an answer the
agent gives up and exits non-zero: nothing hangs. A world silent for ``world_timeout`` seconds
(pings unanswered) is reconnected the same way. A world that lost this agent (it missed a
deadline) answers its next ping or action with ``rejoin``, and the agent says hello again.
A refusal (unknown id) ends the agent with the world's reason.

Exit codes: 0 (the world ended the run), 2 (refused, or bad input such as a missing key),
3 (the world never answered).
"""

from __future__ import annotations

import os
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zmq

from phobos import config as config_tools
from phobos.comms.codec import DecodeError, decode, encode
from phobos.comms.limits import quote
from phobos.comms.message import Message
from phobos.comms.security import load_keys
from phobos.comms.transport import TransportError
from phobos.comms.zmq_transport import ZmqClient, milliseconds
from phobos.live import protocol as p

EXIT_DONE, EXIT_REFUSED, EXIT_UNREACHABLE = 0, 2, 3


@dataclass(frozen=True)
class AgentSettings:
    """Timeouts and backoff of an agent process."""

    connect_timeout: float = 30.0
    """Seconds to keep trying to join the world before exiting non-zero."""
    retry_initial: float = 0.25
    """First wait for the world's answer to a hello; doubles after each silent attempt."""
    retry_max: float = 4.0
    """Longest wait between attempts."""
    ping_interval: float = 1.0
    """Seconds of silence from the world after which the agent pings it."""
    world_timeout: float = 10.0
    """Seconds of silence after which the agent reconnects (the world may have restarted)."""


def default_policy(env: Any) -> str:
    """``trained`` if that team exists for ``env``, else ``greedy``."""
    from phobos.agents import policy_names

    return "trained" if "trained" in policy_names(env) else "greedy"


class AgentRuntime:
    """One agent's connection to the world and its policy.

    Args:
        agent_id: The agent's id (also its key name and routing id).
        world: The world server's address.
        keys: Folder with ``<agent_id>.key_secret`` and ``world.key``.
        policy: Team spec (see :mod:`phobos.agents.team_spec`); None picks
            :func:`default_policy` once the environment is known.
        settings: Timeouts and backoff.
        say: Where progress lines go (default: standard error).
        trust: Let pickle-based checkpoints (``sb3:``, ``rllib:``) load; they run code.
        ledger: This agent's message ledger file (:mod:`phobos.live.dtn.ledger`), used when
            the world names a DTN relay; None keeps it in memory.
        task_modules: Modules this agent may import for a task the world names as
            ``"module:name-vN"`` (a task registered outside the package). Importing a module
            runs its code, so the world's word is not enough: a module id naming any other
            module is refused.

    """

    def __init__(
        self,
        agent_id: str,
        world: str,
        keys: str | Path,
        policy: str | None = None,
        settings: AgentSettings | None = None,
        say: Callable[[str], None] | None = None,
        trust: bool = False,
        ledger: str | Path | None = None,
        task_modules: Sequence[str] = (),
    ) -> None:
        self.agent_id = agent_id
        self.task_modules = frozenset(task_modules)
        self.key_dir = keys
        self.ledger_path = ledger
        self.relay: str | None = None
        self.env: Any = None
        self.talk: Any = None
        self.trust = trust
        self.world = world
        self.policy_spec = policy
        self.settings = settings or AgentSettings()
        self.say = say or (lambda line: print(line, file=sys.stderr, flush=True))
        self.keys = load_keys(keys, agent_id)
        if self.keys.secret is None:
            raise FileNotFoundError(f"no secret key {agent_id}.key_secret in {keys}")
        self.server_key = load_keys(keys, p.WORLD).public
        self.incarnation = secrets.randbits(62)
        self.policy: Any = None
        self.index = 0
        self.steps = 0

    def run(self) -> int:
        """Join the world and serve it until it ends the run; return the exit code."""
        self._preload()
        context = zmq.Context()
        try:
            while True:
                client, answer = self._join(context)
                if client is None:
                    return answer
                if self.relay is not None and self.talk is None:
                    self.talk = self._talk(context)
                try:
                    outcome = self._serve(client)
                finally:
                    client.close()
                if outcome != "silent":
                    return outcome
        finally:
            if self.talk is not None:
                self.talk.close()
            context.destroy(linger=0)

    def _talk(self, context: zmq.Context) -> Any:
        """The connection to the DTN relay the world named (this agent sends its messages)."""
        from phobos.live.dtn.talker import AgentTalk

        relay_key = load_keys(self.key_dir, "relay").public
        return AgentTalk(
            self.agent_id, self.relay, self.keys, relay_key, context, self.env, self.ledger_path
        )

    def _preload(self) -> None:
        """Import what a trained policy needs before saying hello, not after.

        torch and RLlib take seconds to import; an agent that imported them only once the
        world had welcomed it (and started the clock) would miss its first deadlines and fly
        safe defaults until it caught up. The policy itself still loads on the welcome, which
        names the environment; that takes a fraction of a second.
        """
        spec = self.policy_spec or "trained"  # no spec: the default may be the trained team
        if any(kind in spec for kind in ("trained", "rllib:", "sb3:")):
            import ray.rllib.core.rl_module.rl_module  # noqa: F401
            import sb3_contrib  # noqa: F401

            import phobos.agents.loaders  # noqa: F401

    # ---------------------------------------------------------------------- joining
    def _join(self, context: zmq.Context) -> tuple[ZmqClient | None, int]:
        settings = self.settings
        started = time.monotonic()
        deadline = started + settings.connect_timeout
        wait = settings.retry_initial
        attempt = 0
        while True:
            attempt += 1
            client = ZmqClient(
                self.world,
                self.agent_id,
                context=context,
                curve=self.keys,
                server_key=self.server_key,
            )
            answer = None
            try:
                client.send(self._message(p.HELLO, self._hello()))
                answer = self._await_welcome(client, min(wait, max(deadline - time.monotonic(), 0)))
            except TransportError:
                pass
            if answer is not None:
                if answer.kind == p.REFUSED:
                    client.close()
                    self.say(f"{self.agent_id}: refused by the world: {answer.payload}")
                    return None, EXIT_REFUSED
                try:
                    self._welcome(answer.payload)
                except (ValueError, config_tools.ConfigError) as exc:
                    client.close()
                    self.say(f"{self.agent_id}: cannot fly this world: {exc}")
                    return None, EXIT_REFUSED
                return client, EXIT_DONE
            client.close()
            left = deadline - time.monotonic()
            if left <= 0:
                self.say(
                    f"{self.agent_id}: the world at {self.world} did not answer in "
                    f"{settings.connect_timeout:.1f} s ({attempt} attempts); giving up "
                    "(is it running, and is this agent's key on its allow-list?)"
                )
                return None, EXIT_UNREACHABLE
            wait = min(wait * 2, settings.retry_max, left)
            self.say(
                f"{self.agent_id}: no answer from the world at {self.world} "
                f"(attempt {attempt}); retrying, waiting up to {wait:.2f} s"
            )

    def _await_welcome(self, client: ZmqClient, timeout: float) -> Message | None:
        deadline = time.monotonic() + timeout
        while True:
            message = client.recv(max(deadline - time.monotonic(), 0.0))
            if message is None or message.kind in (p.WELCOME, p.REFUSED):
                return message

    def _hello(self) -> dict[str, Any]:
        return {
            "incarnation": self.incarnation,
            "pid": os.getpid(),
            "policy": self.policy_spec or "default",
        }

    def _welcome(self, payload: Any) -> None:
        """Build the environment and the policy from the world's welcome (first time only)."""
        if self.policy is not None:
            return
        if not isinstance(payload, dict):
            raise ValueError(f"welcome payload must be a mapping, got {type(payload).__name__}")
        from phobos.agents.team_spec import TeamSpec, build_team
        from phobos.envs import config_class, make

        env_id = payload["env"]
        if not isinstance(env_id, str):
            raise ValueError(f"welcome's env must be a string, got {type(env_id).__name__}")
        module, named, _ = env_id.rpartition(":")
        if named and module not in self.task_modules:
            raise ValueError(
                f"the world's task {env_id[:200]!r} needs module {module[:100]!r} imported, "
                f"which this agent was not told to trust (--task-module {module[:100]})"
            )
        config = config_tools.from_mapping(config_class(env_id), payload["config"])
        env = make(env_id, config)
        if self.agent_id not in env.possible_agents:
            raise ValueError(f"{self.agent_id!r} is not an agent of {env_id}")
        spec = self.policy_spec or default_policy(env)
        self.policy = build_team(TeamSpec.parse(spec), env, trust=self.trust)[self.agent_id]
        self.index = env.possible_agents.index(self.agent_id)
        self.env = env
        relay = payload.get("relay")
        if relay is not None:
            if not (isinstance(relay, str) and len(relay) < 300):
                raise ValueError("the welcome's relay must be an address")
            if not hasattr(env, "agent_messages"):
                raise ValueError(f"{env_id} has no message rule for agent processes")
            if relay.startswith("tcp://0.0.0.0:"):  # bound on every interface: the world's host
                host = self.world.partition("://")[2].rpartition(":")[0]
                relay = f"tcp://{host}:{relay.rpartition(':')[2]}"
            self.relay = relay
        self.say(f"{self.agent_id}: joined {env_id} at {self.world}, flying policy {spec}")

    # ---------------------------------------------------------------------- serving
    def _serve(self, client: ZmqClient) -> int | str:
        """Answer observations; return an exit code, or ``"silent"`` to reconnect."""
        sock = client.socket
        settings = self.settings
        sock.rcvtimeo = milliseconds(settings.ping_interval)
        agent, policy, talk = self.agent_id, self.policy, self.talk
        episode_key = None
        heard = time.monotonic()
        while True:
            try:
                if talk is not None and not talk.wait(sock, settings.ping_interval):
                    raise zmq.Again
                frame = sock.recv()
            except zmq.Again:
                if time.monotonic() - heard > settings.world_timeout:
                    self.say(
                        f"{agent}: the world has been silent for {settings.world_timeout:.1f} s; "
                        "reconnecting"
                    )
                    return "silent"
                try:
                    sock.send(encode(Message(agent, p.WORLD, p.PING, 0.0, 0)), zmq.NOBLOCK)
                except zmq.Again:
                    pass
                continue
            heard = time.monotonic()
            try:
                message = decode(frame)
            except DecodeError as exc:
                self.say(f"{agent}: ignored a bad frame from the world: {exc}")
                continue
            kind = message.kind
            if kind == p.OBS:
                try:
                    episode, seed, step, observation = p.observation_from(message.payload)
                    sensing = p.sensing_from(message.payload)
                except (ValueError, TypeError) as exc:
                    self.say(f"{agent}: ignored a bad observation from the world: {exc}")
                    continue
                if (episode, seed) != episode_key:
                    episode_key = (episode, seed)
                    policy.reset(seed=seed + self.index)
                action = int(policy(observation))
                if talk is not None:  # its own messages to the relay; their count to the world
                    action = [action, talk.submit(episode, step, action, observation, sensing)]
                sock.send(encode(Message(agent, p.WORLD, p.ACT, 0.0, message.seq, action)))
                self.steps += 1
            elif kind == p.END:
                self.say(f"{agent}: the world ended the run after {self.steps} steps")
                return EXIT_DONE
            elif kind == p.REJOIN:
                # Lost (a missed deadline): only a fresh hello brings an agent back.
                self.say(f"{agent}: the world lost this agent; saying hello again")
                try:
                    sock.send(encode(self._message(p.HELLO, self._hello())), zmq.NOBLOCK)
                except zmq.Again:
                    pass  # the next ping is answered with rejoin again
            elif kind == p.ERROR:
                self.say(f"{agent}: the world says: {quote(message.payload, 300)}")
            elif kind == p.REFUSED:
                self.say(f"{agent}: refused by the world: {quote(message.payload, 300)}")
                return EXIT_REFUSED

    def _message(self, kind: str, payload: Any) -> Message:
        return Message(self.agent_id, p.WORLD, kind, 0.0, 0, payload)


def run_agent(
    agent_id: str,
    world: str,
    keys: str | Path,
    policy: str | None = None,
    settings: AgentSettings | None = None,
    *,
    trust: bool = False,
    ledger: str | Path | None = None,
    task_modules: Sequence[str] = (),
) -> int:
    """Run one agent process until the world ends the run; return its exit code."""
    try:
        runtime = AgentRuntime(
            agent_id,
            world,
            keys,
            policy,
            settings,
            trust=trust,
            ledger=ledger,
            task_modules=task_modules,
        )
    except FileNotFoundError as exc:
        print(f"{agent_id}: {exc}", file=sys.stderr)
        return EXIT_REFUSED
    return runtime.run()
