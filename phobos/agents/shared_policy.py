"""A team whose agents share one network: safetensors weights beside a JSON spec, no pickle.

The batch training path trains one MLP for every agent of a team: its input is the agent's
observation vector followed by a one-hot of the agent's role
(:func:`~phobos.agents.roles.module_id`), and its output one logit per action of the widest
agent, the actions an agent does not have being masked like forbidden ones. A folder holds::

    policy.json          # SharedPolicySpec: format, env id, roles, sizes, activation
    policy.safetensors   # the actor's weights (and the critic's, for warm restarts)

Neither file can run code when loaded (safetensors holds raw tensors; the spec is JSON), so
this is the format a policy from an untrusted source can be offered in. Both files are
size-checked before they are read, and the weights' shapes against the spec.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phobos.agents.policy import Policy
from phobos.agents.roles import module_id

FORMAT = "phobos-shared-mlp/1"
SPEC_FILE = "policy.json"
WEIGHTS_FILE = "policy.safetensors"
MAX_SPEC_BYTES = 64 * 1024
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024
ACTIVATIONS = ("tanh", "relu")


@dataclass(frozen=True)
class SharedPolicySpec:
    """What a shared-network team policy is.

    Attributes:
        env: The environment id it was trained on, version included.
        roles: Role names in one-hot order.
        observation_size: Length of an agent's observation vector (without the role one-hot).
        action_count: Logits per agent (the widest agent's action count).
        hidden: Hidden layer sizes of the actor (and of the critic).
        activation: ``tanh`` or ``relu``.

    """

    env: str
    roles: tuple[str, ...]
    observation_size: int
    action_count: int
    hidden: tuple[int, ...]
    activation: str = "tanh"

    @property
    def input_size(self) -> int:
        """Observation plus role one-hot."""
        return self.observation_size + len(self.roles)

    def role_features(self, agents: list[str] | tuple[str, ...]) -> np.ndarray:
        """``[agents, roles]`` float32 one-hot of each agent's role; an unknown role is an error."""
        features = np.zeros((len(agents), len(self.roles)), dtype=np.float32)
        for i, agent in enumerate(agents):
            role = module_id(agent)
            if role not in self.roles:
                raise ValueError(
                    f"shared policy has no role for {agent!r} (roles: {', '.join(self.roles)})"
                )
            features[i, self.roles.index(role)] = 1.0
        return features

    def to_json(self) -> str:
        """The spec file's text."""
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> SharedPolicySpec:
        """Parse and check a spec file's text; raises ValueError naming ``source``."""
        try:
            record = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{source}: not JSON ({error})") from None
        if not isinstance(record, dict) or record.get("format") != FORMAT:
            raise ValueError(f"{source}: not a {FORMAT} spec")
        try:
            spec = cls(
                env=str(record["env"]),
                roles=tuple(str(r) for r in record["roles"]),
                observation_size=_positive(record["observation_size"], "observation_size"),
                action_count=_positive(record["action_count"], "action_count"),
                hidden=tuple(_positive(h, "hidden") for h in record["hidden"]),
                activation=str(record.get("activation", "tanh")),
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"{source}: missing or malformed field {error}") from None
        if spec.activation not in ACTIVATIONS:
            raise ValueError(f"{source}: activation {spec.activation!r}; use {ACTIVATIONS}")
        if not spec.roles or len(set(spec.roles)) != len(spec.roles):
            raise ValueError(f"{source}: roles must be distinct and at least one")
        return spec


def _positive(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= 1_000_000:
        raise TypeError(name)
    return value


def actor_layers(spec: SharedPolicySpec) -> list[tuple[str, tuple[int, int]]]:
    """``(weight name, (out, in))`` of each linear layer of the actor, input to output."""
    sizes = [spec.input_size, *spec.hidden, spec.action_count]
    names = [f"actor.{i}" for i in range(len(spec.hidden))] + ["actor.logits"]
    return [(names[i], (sizes[i + 1], sizes[i])) for i in range(len(names))]


def save_shared_policy(folder: Path, spec: SharedPolicySpec, tensors: dict[str, Any]) -> None:
    """Write ``folder/policy.json`` and ``folder/policy.safetensors``.

    ``tensors`` holds ``actor.K.weight``/``.bias`` for every layer of :func:`actor_layers`
    (more, such as the critic's, may ride along).
    """
    from safetensors.torch import save_file

    for name, shape in actor_layers(spec):
        weight = tensors.get(f"{name}.weight")
        if weight is None or tuple(weight.shape) != shape:
            raise ValueError(f"shared policy weights: {name}.weight missing or not {shape}")
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, folder / WEIGHTS_FILE)
    (folder / SPEC_FILE).write_text(spec.to_json())


def is_shared_policy(path: Path) -> bool:
    """Whether ``path`` is a folder holding a shared-network team policy."""
    return (path / SPEC_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


class SharedActor:
    """The actor as numpy matrices: deterministic logits without torch at run time.

    Args:
        spec: The policy's spec.
        tensors: Name to array, checked against the spec's shapes.
        source: The folder, for error messages.

    """

    def __init__(self, spec: SharedPolicySpec, tensors: dict[str, np.ndarray], source: str):
        self.spec = spec
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        for name, shape in actor_layers(spec):
            weight, bias = tensors.get(f"{name}.weight"), tensors.get(f"{name}.bias")
            if weight is None or bias is None:
                raise ValueError(f"{source}: weights lack {name}")
            if weight.shape != shape or bias.shape != (shape[0],):
                raise ValueError(
                    f"{source}: {name} has shape {weight.shape}/{bias.shape}, the spec says "
                    f"{shape}"
                )
            if not (np.isfinite(weight).all() and np.isfinite(bias).all()):
                raise ValueError(f"{source}: {name} holds non-finite weights")
            self.layers.append((weight.astype(np.float32), bias.astype(np.float32)))
        self._activation = np.tanh if spec.activation == "tanh" else _relu

    def logits(self, inputs: np.ndarray) -> np.ndarray:
        """``[batch, action_count]`` logits of ``[batch, input_size]`` inputs."""
        x = np.asarray(inputs, dtype=np.float32)
        for weight, bias in self.layers[:-1]:
            x = self._activation(x @ weight.T + bias)
        weight, bias = self.layers[-1]
        return x @ weight.T + bias


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def read_shared_policy(path: Path) -> SharedActor:
    """Load a shared policy folder without unpickling anything; raises ValueError naming it."""
    source = str(path)
    if not is_shared_policy(path):
        raise ValueError(f"{source}: no {SPEC_FILE} and {WEIGHTS_FILE} there")
    spec_file, weights_file = path / SPEC_FILE, path / WEIGHTS_FILE
    if spec_file.stat().st_size > MAX_SPEC_BYTES:
        raise ValueError(f"{spec_file}: larger than {MAX_SPEC_BYTES} bytes")
    if weights_file.stat().st_size > MAX_WEIGHTS_BYTES:
        raise ValueError(f"{weights_file}: larger than {MAX_WEIGHTS_BYTES} bytes")
    spec = SharedPolicySpec.from_json(spec_file.read_text(errors="replace"), str(spec_file))
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    try:
        tensors = load_file(weights_file)
    except (SafetensorError, OSError, ValueError) as error:
        raise ValueError(f"{weights_file}: not a readable safetensors file ({error})") from None
    return SharedActor(spec, tensors, source)


class SharedTeamPolicy(Policy):
    """One agent of a shared-network team: greedy over the logits of its allowed actions.

    Args:
        actor: The loaded actor.
        role: The agent's role one-hot (``[roles]``).

    """

    def __init__(self, actor: SharedActor, role: np.ndarray) -> None:
        self.actor = actor
        self.role = role

    def act(self, observation: Any) -> int:
        """Argmax of the logits over the actions the observation's mask allows."""
        vector = np.asarray(observation["observations"], dtype=np.float32)
        inputs = np.concatenate([vector, self.role])[None]
        scores = self.actor.logits(inputs)[0].astype(np.float64)
        mask = np.zeros(self.actor.spec.action_count, dtype=bool)
        given = np.asarray(observation["action_mask"]) > 0
        mask[: len(given)] = given
        return int(np.argmax(np.where(mask, scores, -np.inf)))


def load_shared_team(path: str, env: Any) -> dict[str, Policy]:
    """Every agent of ``env`` flying the shared policy at ``path``; refused if it cannot."""
    folder = Path(path)
    actor = read_shared_policy(folder)
    spec = actor.spec
    env_id = env.metadata.get("env_id") or env.metadata.get("name", "").replace("_", "-")
    if spec.env.replace("_", "-") != env_id:
        raise ValueError(f"shared policy {path!r} was trained on {spec.env}, not on {env_id}")
    agents = list(env.possible_agents)
    roles = spec.role_features(agents)
    team: dict[str, Policy] = {}
    for i, agent in enumerate(agents):
        size = env.observation_space(agent)["observations"].shape[0]
        actions = env.action_space(agent).n
        if size != spec.observation_size or actions > spec.action_count:
            raise ValueError(
                f"shared policy {path!r} expects observations of {spec.observation_size} and at "
                f"most {spec.action_count} actions; {agent} has {size} and {actions}"
            )
        team[agent] = SharedTeamPolicy(actor, roles[i])
    return team
