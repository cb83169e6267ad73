"""Policies and scripted teams across ``orbit-scheduling-v0`` and ``-v1``.

A policy trained on one version is refused on the other with both ids named, before anything
is loaded or flown; the greedy team flies v0 exactly as before and reads v1's lookahead.
"""

from __future__ import annotations

import numpy as np
import pytest

from phobos.agents import make_team
from phobos.agents.orbit_greedy import greedy_team
from phobos.agents.roles import module_id
from phobos.agents.shared_policy import SharedPolicySpec, load_shared_team
from phobos.agents.teams import TRAINED
from phobos.envs import make

V0, V1 = "orbit-scheduling-v0", "orbit-scheduling-v1"


def test_committed_v0_checkpoint_is_refused_on_v1_naming_both_versions():
    env = make(V1)
    with pytest.raises(ValueError, match=r"trained on orbit-scheduling-v0.*orbit-scheduling-v1"):
        load_shared_team(str(TRAINED / "orbit_scheduling_v0"), env)
    # v1 has its own committed policy, and v0's is refused there by name.
    with pytest.raises(ValueError, match=r"trained on orbit-scheduling-v1.*orbit-scheduling-v0"):
        load_shared_team(str(TRAINED / "orbit_scheduling_v1"), make(V0))
    assert set(make_team("trained", env)) == set(env.possible_agents)


def _shared_policy(folder, env_id: str, env) -> None:
    from safetensors.numpy import save_file

    agents = env.possible_agents
    roles = tuple(dict.fromkeys(module_id(a) for a in agents))
    size = env.observation_space(agents[0])["observations"].shape[0]
    spec = SharedPolicySpec(env_id, roles, size, 7, (4,))
    rng = np.random.default_rng(0)
    tensors = {
        "actor.0.weight": rng.normal(size=(4, spec.input_size)).astype(np.float32),
        "actor.0.bias": np.zeros(4, np.float32),
        "actor.logits.weight": rng.normal(size=(7, 4)).astype(np.float32),
        "actor.logits.bias": np.zeros(7, np.float32),
    }
    folder.mkdir()
    save_file(tensors, str(folder / "policy.safetensors"))
    (folder / "policy.json").write_text(spec.to_json())


@pytest.mark.parametrize(("trained", "offered"), [(V0, V1), (V1, V0)])
def test_shared_policy_of_one_version_is_refused_on_the_other(tmp_path, trained, offered):
    folder = tmp_path / "policy"
    _shared_policy(folder, trained, make(trained))
    assert load_shared_team(str(folder), make(trained))  # it loads where it was trained
    with pytest.raises(ValueError, match=f"trained on {trained}, not on {offered}"):
        load_shared_team(str(folder), make(offered))


def _team_return(env_id: str, seed: int, **overrides) -> tuple[float, list[int]]:
    env = make(env_id, **overrides)
    team = greedy_team(env.config)
    observations, _ = env.reset(seed=seed)
    total, actions_taken = 0.0, []
    while env.agents:
        actions = {a: team[a](observations[a]) for a in env.agents}
        actions_taken += list(actions.values())
        observations, rewards, _, _, infos = env.step(actions)
        total += rewards["yinghuo1"]
        assert not any(info["action_masked"] for info in infos.values())
    return total, actions_taken


def test_greedy_reads_the_lookahead_on_v1_only():
    """v1's greedy acts differently from v0's on the same episode (it plans ahead), and the
    v0 team does not read past v0's layout (its observation vector ends there)."""
    v0 = greedy_team(make(V0).config)["yinghuo1"]
    v1 = greedy_team(make(V1).config)["yinghuo1"]
    assert not v0.lookahead and v1.lookahead
    _, actions0 = _team_return(V0, 800003)
    _, actions1 = _team_return(V1, 800003)
    assert actions0 != actions1
