"""A team whose agents share one network: safetensors weights beside a JSON spec, no pickle.

The batch training path trains one MLP for every agent of a team: its input is the agent's
observation vector followed by a one-hot of the agent's role
(:func:`~phobos.agents.roles.module_id`), and its output one logit per action of the widest
agent, the actions an agent does not have being masked like forbidden ones. A folder holds::

    policy.json          # SharedPolicySpec: format, env id, roles, sizes, activation
    policy.safetensors   # the actor's weights (and the critic's, for warm restarts)

With ``per_role`` the folder holds one actor per role instead (tensor names prefixed by the
role), which is how per-role RLlib modules and a single learned agent (an SB3 lander among
scripted teammates) are stored; ``inputs`` says what an actor reads, in order: the
observation vector, the action mask (as SB3's ``MultiInputPolicy`` reads it) and the role
one-hot. Neither file can run code when loaded (safetensors holds raw tensors; the spec is
JSON), so this is the format a policy from an untrusted source can be offered in. Both files are
size-checked before they are read, and the weights' shapes against the spec.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from phobos.agents.cell_actor import (
    cell_groups,
    cell_layers,
    cell_logits,
    check_cells,
    parse_area_actions,
    parse_areas,
    parse_cell_actions,
    parse_cells,
    positive,
)
from phobos.agents.policy import Policy
from phobos.agents.roles import module_id

FORMAT = "phobos-shared-mlp/1"
CELLS_FORMAT = "phobos-shared-cells/1"
"""The cell-set actor (:attr:`SharedPolicySpec.cells`): one scorer shared by every cell."""
AREAS_FORMAT = "phobos-shared-cells/2"
"""The cell-set actor whose area actions are scored from their cells (``areas``)."""
SPEC_FILE = "policy.json"
WEIGHTS_FILE = "policy.safetensors"
MAX_SPEC_BYTES = 64 * 1024
MAX_WEIGHTS_BYTES = 256 * 1024 * 1024
ACTIVATIONS = ("tanh", "relu")
INPUTS = ("action_mask", "observations", "role")
"""What an actor may read, each a block of its input vector in the order the spec lists."""


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
        inputs: The blocks of an actor's input, in order (of :data:`INPUTS`).
        per_role: One actor per role (``ROLE.actor.K`` tensors) instead of one shared
            ``actor.K``; agents whose role is not listed are not covered.
        cells: ``(header, count, size)`` for the cell-set actor: the observation is a header
            of ``header`` values then ``count`` blocks of ``size``, one per cell of a site.
            Each cell's block (with the header and role) goes through one MLP shared by all
            cells (``actor.cell.K``, the ``hidden`` sizes) to a score per cell action group
            (``actor.cell_logits``); the cells' mean latent, the header and the role go
            through one layer (``actor.mix``) to the logits of every action
            (``actor.logits``), of which the cell actions are then replaced by their cells'
            scores. An argmax over cells is one comparison of shared scores, which a flat MLP
            over 590 inputs learns poorly. None: the plain MLP.
        cell_actions: For the cell-set actor, per role: ``[first action, group]`` pairs, each
            ``count`` actions (one per cell) scored by that group.
        areas: For the cell-set actor, the cells of each area of the site; with
            ``area_actions`` (per role, the first of its one-per-area actions) those actions
            are scored from the mean latent of their area's cells (``actor.area_logits``).
            None: they come from the mixing layer like the other actions.
        area_actions: See ``areas``.

    """

    env: str
    roles: tuple[str, ...]
    observation_size: int
    action_count: int
    hidden: tuple[int, ...]
    activation: str = "tanh"
    inputs: tuple[str, ...] = ("observations", "role")
    per_role: bool = False
    cells: tuple[int, int, int] | None = None
    cell_actions: dict[str, tuple[tuple[int, int], ...]] | None = None
    areas: tuple[tuple[int, ...], ...] | None = None
    area_actions: dict[str, int] | None = None

    @property
    def cell_groups(self) -> int:
        """Scores per cell of the cell-set actor (0 for the MLP)."""
        return cell_groups(self)

    @property
    def input_size(self) -> int:
        """Length of an actor's input vector."""
        sizes = {
            "observations": self.observation_size,
            "action_mask": self.action_count,
            "role": len(self.roles),
        }
        return sum(sizes[name] for name in self.inputs)

    def prefixes(self) -> dict[str, str]:
        """Tensor-name prefix of each role's actor."""
        return {r: f"{r}.actor" if self.per_role else "actor" for r in self.roles}

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
        record = asdict(self)
        if self.cells is None:
            for key in ("cells", "cell_actions", "areas", "area_actions"):
                del record[key]  # MLP specs read as before
            return json.dumps({"format": FORMAT, **record}, indent=2) + "\n"
        if self.areas is None:
            del record["areas"], record["area_actions"]  # as format 1 wrote them
            return json.dumps({"format": CELLS_FORMAT, **record}, indent=2) + "\n"
        return json.dumps({"format": AREAS_FORMAT, **record}, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str, source: str) -> SharedPolicySpec:
        """Parse and check a spec file's text; raises ValueError naming ``source``."""
        try:
            record = json.loads(text)
        except ValueError as error:
            raise ValueError(f"{source}: not JSON ({error})") from None
        formats = (FORMAT, CELLS_FORMAT, AREAS_FORMAT)
        if not isinstance(record, dict) or record.get("format") not in formats:
            raise ValueError(f"{source}: not a {FORMAT} spec (nor {CELLS_FORMAT}/2)")
        cells = record.get("format") in (CELLS_FORMAT, AREAS_FORMAT)
        areas = record.get("format") == AREAS_FORMAT
        if not areas and ("areas" in record or "area_actions" in record):
            raise ValueError(f"{source}: areas need format {AREAS_FORMAT}")
        try:
            spec = cls(
                env=str(record["env"]),
                roles=tuple(str(r) for r in record["roles"]),
                observation_size=positive(record["observation_size"], "observation_size"),
                action_count=positive(record["action_count"], "action_count"),
                hidden=tuple(positive(h, "hidden") for h in record["hidden"]),
                activation=str(record.get("activation", "tanh")),
                inputs=tuple(str(i) for i in record.get("inputs", ("observations", "role"))),
                per_role=bool(record.get("per_role", False)),
                cells=parse_cells(record["cells"]) if cells else None,
                cell_actions=parse_cell_actions(record["cell_actions"]) if cells else None,
                areas=parse_areas(record["areas"]) if areas else None,
                area_actions=parse_area_actions(record["area_actions"]) if areas else None,
            )
        except (KeyError, TypeError) as error:
            raise ValueError(f"{source}: missing or malformed field {error}") from None
        if spec.cells is not None:
            check_cells(spec, source)
        if spec.activation not in ACTIVATIONS:
            raise ValueError(f"{source}: activation {spec.activation!r}; use {ACTIVATIONS}")
        if not spec.roles or len(set(spec.roles)) != len(spec.roles):
            raise ValueError(f"{source}: roles must be distinct and at least one")
        if not set(spec.inputs) <= set(INPUTS) or len(set(spec.inputs)) != len(spec.inputs):
            raise ValueError(f"{source}: inputs {list(spec.inputs)}; choose from {INPUTS}")
        return spec


def actor_layers(
    spec: SharedPolicySpec, prefix: str = "actor"
) -> list[tuple[str, tuple[int, int]]]:
    """``(weight name, (out, in))`` of each linear layer of an actor, input to output."""
    if spec.cells is not None:
        return cell_layers(spec, prefix)
    sizes = [spec.input_size, *spec.hidden, spec.action_count]
    names = [f"{prefix}.{i}" for i in range(len(spec.hidden))] + [f"{prefix}.logits"]
    return [(names[i], (sizes[i + 1], sizes[i])) for i in range(len(names))]


def save_shared_policy(folder: Path, spec: SharedPolicySpec, tensors: dict[str, Any]) -> None:
    """Write ``folder/policy.json`` and ``folder/policy.safetensors``.

    ``tensors`` holds ``actor.K.weight``/``.bias`` for every layer of :func:`actor_layers`
    (more, such as the critic's, may ride along).
    """
    from safetensors.torch import save_file

    for prefix in set(spec.prefixes().values()):
        for name, shape in actor_layers(spec, prefix):
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
        prefix: Tensor-name prefix of this actor (``actor``, or ``ROLE.actor``).

    """

    def __init__(
        self,
        spec: SharedPolicySpec,
        tensors: dict[str, np.ndarray],
        source: str,
        prefix: str = "actor",
    ):
        self.spec = spec
        self.layers: list[tuple[np.ndarray, np.ndarray]] = []
        for name, shape in actor_layers(spec, prefix):
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
        if self.spec.cells is not None:
            return self._cell_logits(np.asarray(inputs, dtype=np.float32))
        x = np.asarray(inputs, dtype=np.float32)
        for weight, bias in self.layers[:-1]:
            x = self._activation(x @ weight.T + bias)
        weight, bias = self.layers[-1]
        return x @ weight.T + bias


    def _cell_logits(self, x: np.ndarray) -> np.ndarray:
        return cell_logits(self.spec, self.layers, self._activation, x)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def read_shared_policy(path: Path) -> tuple[SharedPolicySpec, dict[str, SharedActor]]:
    """Load a policy folder without unpickling anything: its spec and each role's actor.

    Raises ValueError naming the file for anything unreadable, oversized or misshapen.
    """
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
    built: dict[str, SharedActor] = {}
    actors = {}
    for role, prefix in spec.prefixes().items():
        if prefix not in built:
            built[prefix] = SharedActor(spec, tensors, source, prefix)
        actors[role] = built[prefix]
    return spec, actors


class SharedTeamPolicy(Policy):
    """One agent of a team policy: greedy over the logits of its allowed actions.

    Args:
        actor: The agent's actor.
        role: The agent's role one-hot (``[roles]``).

    """

    def __init__(self, actor: SharedActor, role: np.ndarray) -> None:
        self.actor = actor
        self.role = role

    def act(self, observation: Any) -> int:
        """Argmax of the logits over the actions the observation's mask allows."""
        return int(np.argmax(self.scores(observation)))

    def scores(self, observation: Any) -> np.ndarray:
        """The actor's logits of every action (float64), ``-inf`` where the mask forbids it."""
        count = self.actor.spec.action_count
        mask = np.zeros(count, dtype=np.float32)
        given = np.asarray(observation["action_mask"])
        mask[: len(given)] = given
        blocks = {
            "observations": np.asarray(observation["observations"], dtype=np.float32),
            "action_mask": mask,
            "role": self.role,
        }
        inputs = np.concatenate([blocks[name] for name in self.actor.spec.inputs])[None]
        scores = self.actor.logits(inputs)[0].astype(np.float64)
        return np.where(mask > 0, scores, -np.inf)


def load_shared_team(path: str, env: Any, partial: bool = False) -> dict[str, Policy]:
    """The agents of ``env`` flying the policy at ``path``; refused if it cannot fly them.

    Args:
        path: The policy folder.
        env: The ``ParallelEnv`` to fly.
        partial: Return only the agents whose role the policy covers (the caller flies the
            rest); otherwise every agent must be covered.

    """
    folder = Path(path)
    spec, actors = read_shared_policy(folder)
    env_id = env.metadata.get("env_id") or env.metadata.get("name", "").replace("_", "-")
    if spec.env.replace("_", "-") != env_id:
        raise ValueError(f"shared policy {path!r} was trained on {spec.env}, not on {env_id}")
    agents = [a for a in env.possible_agents if not partial or module_id(a) in spec.roles]
    if not agents:
        raise ValueError(f"shared policy {path!r} covers no agent of {env_id}")
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
        team[agent] = SharedTeamPolicy(actors[module_id(agent)], roles[i])
    return team
