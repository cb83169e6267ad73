"""Trained policies behind the :class:`~phobos.agents.policy.Policy` protocol.

``load_sb3`` loads a Stable-Baselines3 model zip and ``load_rllib`` an RLlib ``RLModule``
checkpoint (no Ray cluster needed). Each refuses a policy whose observation or action space
differs from the agent's in the environment, before any episode runs, and acts greedily
among the actions the observation's mask allows.

Both formats are pickles: loading one runs whatever code it holds. So each loads only with
``trust=True`` (``--trust-checkpoint`` on the command line) and otherwise refuses before it
opens anything but the file's JSON. Shipped policies use the pickle-free format of
:mod:`phobos.agents.shared_policy` (safetensors and JSON) instead.
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from phobos.agents.policy import Policy
from phobos.agents.roles import module_id
from phobos.envs.registry import bare_id

_SB3_CONTRIB = ("MaskablePPO",)
_MAX_JSON = 16 << 20  # largest JSON read from a checkpoint before the trust check
_SB3_ALGORITHMS = ("MaskablePPO", "PPO", "A2C", "DQN")


TRUST_FLAG = "--trust-checkpoint"
"""The command-line flag that lets a pickle-based checkpoint load."""


def check_trusted(kind: str, path: str, trust: bool) -> None:
    """Refuse to unpickle ``path`` unless the user said it is trusted.

    Raises:
        ValueError: naming the flag and why, when ``trust`` is False.

    """
    if not trust:
        raise ValueError(
            f"{kind} checkpoint {path!r} is a pickle, and loading a pickle runs any code it "
            f"holds; load it only if you made it or trust who did, with {TRUST_FLAG} "
            "(trust=True), or export it as a shared: policy (safetensors + JSON)"
        )


def _check_spaces(source: str, observation_space: Any, action_space: Any, env: Any, agent: str):
    if observation_space != env.observation_space(agent) or action_space != env.action_space(agent):
        raise ValueError(
            f"{source} does not match {agent} in this environment: it expects observations "
            f"{observation_space} and actions {action_space}, the environment gives "
            f"{env.observation_space(agent)} and {env.action_space(agent)}"
        )


def _masked_argmax(scores: np.ndarray, observation: Any) -> int:
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if isinstance(observation, dict) and "action_mask" in observation:
        scores = np.where(np.asarray(observation["action_mask"]) > 0, scores, -np.inf)
    return int(np.argmax(scores))


class SB3Policy(Policy):
    """A Stable-Baselines3 model behind the Policy protocol (deterministic actions).

    Args:
        model: A loaded ``BaseAlgorithm``.

    """

    def __init__(self, model: Any) -> None:
        self.model = model
        self._masked = type(model).__name__ == "MaskablePPO"

    def act(self, observation: Any) -> int:
        """The model's deterministic action (MaskablePPO: among the allowed ones)."""
        kwargs = {}
        if self._masked and isinstance(observation, dict) and "action_mask" in observation:
            kwargs["action_masks"] = np.asarray(observation["action_mask"]) > 0
        action, _ = self.model.predict(observation, deterministic=True, **kwargs)
        return int(np.asarray(action).reshape(-1)[0])


def _saved_algorithm(path: Path) -> str:
    """MaskablePPO when the zip's policy class comes from sb3-contrib's maskable package."""
    try:
        with zipfile.ZipFile(path) as archive:
            if archive.getinfo("data").file_size > _MAX_JSON:
                return "PPO"  # the load below (if trusted) says what is wrong with it
            policy = json.loads(archive.read("data")).get("policy_class", {})
    except (OSError, KeyError, ValueError, AttributeError, zipfile.BadZipFile):
        return "PPO"  # not readable as an SB3 zip: the load below says why
    module = policy.get("__module__", "") if isinstance(policy, dict) else ""
    return "MaskablePPO" if module.startswith("sb3_contrib.common.maskable") else "PPO"


def load_sb3(reference: str, env: Any, agent: str, *, trust: bool = False) -> SB3Policy:
    """Load ``PATH[@ALGO]``; without ``@ALGO``, PPO or MaskablePPO as the zip's policy says.

    Raises:
        ValueError: if ``trust`` is False (an SB3 zip is a pickle), or for a bad checkpoint.

    """
    path, _, algorithm = reference.partition("@")
    algorithm = algorithm or _saved_algorithm(Path(path))  # reads JSON only
    if algorithm not in _SB3_ALGORITHMS:
        raise ValueError(f"sb3 algorithm {algorithm!r}; choose from {', '.join(_SB3_ALGORITHMS)}")
    if not Path(path).exists():
        raise ValueError(f"sb3 checkpoint {path!r} does not exist")
    check_trained_for(Path(path), env)
    check_trusted("sb3", path, trust)  # nothing is unpickled before this
    import sb3_contrib
    import stable_baselines3

    library = sb3_contrib if algorithm in _SB3_CONTRIB else stable_baselines3
    try:
        model = getattr(library, algorithm).load(path, device="cpu")
    except Exception as error:  # noqa: BLE001 - any load failure is a bad checkpoint
        raise ValueError(
            f"sb3 checkpoint {path!r} cannot be loaded as {algorithm}: {error}"
        ) from error
    _check_spaces(
        f"sb3 checkpoint {path!r}", model.observation_space, model.action_space, env, agent
    )
    return SB3Policy(model)


class RLlibPolicy(Policy):
    """An RLlib ``RLModule`` behind the Policy protocol: greedy over the allowed logits.

    Args:
        module: The loaded (torch) ``RLModule``.

    """

    def __init__(self, module: Any) -> None:
        self.module = module

    def act(self, observation: Any) -> int:
        """Argmax of the module's action logits over the actions the mask allows."""
        import torch

        def batch(x: Any) -> Any:
            if isinstance(x, dict):
                return {k: batch(v) for k, v in x.items()}
            # A copy: observations decoded off the wire are read-only views, which torch
            # warns about (it cannot share memory it may not write).
            return torch.from_numpy(np.array(x))[None]

        with torch.no_grad():
            out = self.module.forward_inference({"obs": batch(observation)})
        return _masked_argmax(out["action_dist_inputs"][0].numpy(), observation)


def check_trained_for(path: Path, env: Any) -> None:
    """Refuse a ``phobos train`` export made for another environment or env version.

    Exports carry ``phobos.json`` (written by ``phobos train``); a folder without one is
    checked by its spaces alone.
    """
    record_file = path / "phobos.json" if path.is_dir() else path.parent / "phobos.json"
    if not record_file.exists():
        return
    if record_file.stat().st_size > _MAX_JSON:
        raise ValueError(f"{record_file} is larger than {_MAX_JSON} bytes: not an export record")
    try:
        record = json.loads(record_file.read_text())
    except ValueError as error:
        raise ValueError(f"{record_file} is not valid JSON: {error}") from error
    if not isinstance(record, dict):
        raise ValueError(f"{record_file} must hold a JSON object")
    name = env.metadata.get("name", "")  # e.g. orbit_scheduling_v0
    trained = bare_id(str(record.get("env", ""))).replace("-", "_")
    if name and trained and trained != name:
        raise ValueError(
            f"policy {str(path)!r} was trained on {record.get('env')}, not on this environment "
            f"({name.replace('_', '-')}); train one for it or fly it on {record.get('env')}"
        )


_LOADED: dict[str, Any] = {}


def load_rllib(path: str, env: Any, agent: str, *, trust: bool = False) -> RLlibPolicy:
    """Load an RLModule checkpoint at ``path`` and check it against ``agent``'s spaces.

    Raises:
        ValueError: if ``trust`` is False (an RLlib checkpoint is a pickle), or for a bad one.

    """
    if not Path(path).exists():
        raise ValueError(f"rllib checkpoint {path!r} does not exist")
    check_trained_for(Path(path), env)  # reads phobos.json only
    check_trusted("rllib", path, trust)  # nothing is unpickled before this
    from ray.rllib.core.rl_module.rl_module import RLModule

    from phobos.agents.rl_module import quiet_rllib_module_deprecation

    quiet_rllib_module_deprecation()  # also for checkpoints of RLlib's own module classes
    key = str(Path(path).resolve())
    if key not in _LOADED:  # one load per process serves every agent of a team
        try:
            _LOADED[key] = RLModule.from_checkpoint(key)  # absolute: pyarrow needs one
        except Exception as error:  # noqa: BLE001 - any load failure is a bad checkpoint
            raise ValueError(f"rllib checkpoint {path!r} cannot be loaded: {error}") from error
    module = _LOADED[key]
    modules = getattr(module, "_rl_modules", None)
    if modules is not None:  # a MultiRLModule: one module per role
        key = module_id(agent) if module_id(agent) in modules else "default_policy"
        if key not in modules:
            raise ValueError(
                f"rllib checkpoint {path!r} has no module for {agent} (modules: "
                f"{', '.join(modules)})"
            )
        module = modules[key]
    # A central critic's module is built for observations with the joint state; what it
    # needs to act (and what the environment must give) is its policy's space.
    space = getattr(module, "policy_observation_space", module.observation_space)
    _check_spaces(f"rllib checkpoint {path!r}", space, module.action_space, env, agent)
    return RLlibPolicy(module)
