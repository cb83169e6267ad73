"""A task is one folder plus one registration: the tiny task of ``tests/tiny_task.py`` runs
through ``phobos run``, ``phobos evaluate``, ``phobos train`` and the live world with agent
processes, touching no file of the package; bad registrations and keywords are refused.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from phobos import config as config_tools
from phobos.agents import make_team, policy_names
from phobos.envs import (
    TaskSpec,
    config_class,
    make,
    register,
    register_task,
    registered,
    task_spec,
)
from phobos.envs.conformance import check_environment
from phobos.envs.task import EnvSpec
from phobos.live.world.views import view_for
from tests import tiny_task
from tests.tiny_task import QUALIFIED_ID, SPEC, TinyConfig, TinyView

REPO = Path(__file__).resolve().parent.parent


def phobos(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """The ``phobos`` CLI in a subprocess that can import ``tests`` (the repository root)."""
    path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env = dict(os.environ, PYTHONPATH=path, RAY_AUTH_MODE="disabled")
    return subprocess.run(
        [sys.executable, "-m", "phobos.cli", *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
    )


def test_the_tiny_task_is_registered_and_passes_the_conformance_checks() -> None:
    assert tiny_task.ID in registered()
    assert task_spec(QUALIFIED_ID) is SPEC and config_class(QUALIFIED_ID) is TinyConfig
    check_environment(QUALIFIED_ID)
    env = make(QUALIFIED_ID)
    assert policy_names(env) == ["greedy", "random"]
    assert set(make_team("greedy", env)) == {"scout", "base"}
    assert isinstance(view_for(env), TinyView)


def test_phobos_run_flies_it() -> None:
    result = phobos(
        "run", "--env", QUALIFIED_ID, "--set", "horizon_steps=8", "--set", "message_loss=0"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"{QUALIFIED_ID} | greedy team | seed 0 | team return 4.00" in result.stdout
    assert "scout: report 4, idle 4" in result.stdout
    missing = phobos("run", "--env", "tests.no_such_module:tiny-relay-v0")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert "cannot import 'tests.no_such_module'" in missing.stderr


def test_phobos_evaluate_writes_its_metrics_and_headline(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = phobos(
        "evaluate",
        "--env",
        QUALIFIED_ID,
        "--policy",
        "greedy",
        "--policy",
        "random",
        "--episodes",
        "3",
        "--workers",
        "0",
        "--no-progress",
        "--set",
        "message_loss=0",
        "--out",
        str(out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    greedy = summary["teams"]["greedy"]["metrics"]
    assert greedy["acknowledged"]["estimate"] == 6.0 and greedy["ack_share"]["estimate"] == 1.0
    assert greedy["messages_delivered"]["estimate"] == 12.0
    report = (out / "report.md").read_text()
    assert "| team | episodes | team_return | reports | acknowledged | messages_delivered |" in (
        report
    )


def test_a_few_steps_of_phobos_train_and_its_policy_flies(tmp_path: Path) -> None:
    out = tmp_path / "train"
    settings = [
        f"env={QUALIFIED_ID}",
        "framework=sb3",
        "learner=scout",
        "train_batch_size=32",
        "minibatch_size=16",
        "num_epochs=1",
        "hidden=[8]",
        "total_env_steps=64",
        "trial_seeds=[0]",
    ]
    result = phobos("train", "--out", str(out), *[a for s in settings for a in ("--set", s)])
    assert result.returncode == 0, result.stderr[-3000:]
    info = json.loads((out / "policy" / "phobos.json").read_text())
    assert info["env"] == QUALIFIED_ID and info["env_steps"] == 64
    model = out / "policy" / "model.zip"
    result = phobos(
        "evaluate",
        "--env",
        QUALIFIED_ID,
        "--policy",
        f"greedy,scout=sb3:{model}",
        "--trust-checkpoint",
        "--episodes",
        "2",
        "--workers",
        "0",
        "--no-progress",
        "--out",
        str(tmp_path / "eval"),
    )
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.network
@pytest.mark.timeout(120)
def test_the_world_server_serves_it_to_agent_processes() -> None:
    result = phobos(
        "demo", "--env", QUALIFIED_ID, "--steps", "24", "--speed", "0", "--no-dashboard",
        timeout=100,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "24 steps in" in result.stdout
    agents = [line for line in result.stdout.splitlines() if "safe defaults" in line]
    assert len(agents) == 2
    assert all("actions 24, safe defaults 0, errors 0" in line for line in agents)


def test_registering_a_task_twice_or_without_a_part_is_refused(monkeypatch) -> None:
    from phobos.envs import registry

    # What this test registers is gone after it (other modules parametrise over the ids).
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_TASKS", dict(registry._TASKS))
    with pytest.raises(ValueError, match="task 'tiny-relay' is already registered"):
        register_task(SPEC)
    other = dataclasses.replace(SPEC, name="tiny-relay-copy", envs=(
        EnvSpec("tiny-relay-copy-v0", SPEC.envs[0].entry_point, SPEC.envs[0].config_entry_point),
    ))
    for part in ("metrics", "single_agent_view"):
        culprit = f"task 'tiny-relay-copy': TaskSpec.{part} is required"
        with pytest.raises(ValueError, match=culprit):
            dataclasses.replace(other, **{part: ""})
    with pytest.raises(ValueError, match="TaskSpec.teams is required"):
        dataclasses.replace(other, teams={})
    with pytest.raises(ValueError, match="TaskSpec.envs is required"):
        dataclasses.replace(other, envs=())
    with pytest.raises(ValueError, match="'metrics' is not a 'module:attribute' entry point"):
        dataclasses.replace(other, metrics="metrics")
    with pytest.raises(TypeError, match="metrics"):
        TaskSpec(name="x", envs=other.envs, teams=other.teams, single_agent_view="a:b")  # type: ignore[call-arg]
    taken = dataclasses.replace(SPEC.envs[0], id="tiny-relay-taken-v0", task=None)
    register(taken)  # an id registered on its own, then claimed by a task
    with pytest.raises(ValueError, match="'tiny-relay-taken-v0' is already registered"):
        register_task(dataclasses.replace(other, name="tiny-relay-taken", envs=(taken,)))


def test_make_passes_constructor_arguments_and_refuses_a_keyword_it_cannot_place() -> None:
    from phobos.comms.router import Router

    built = []

    def bus(*args):
        built.append(args)
        return Router(*args)

    env = make(QUALIFIED_ID, horizon_steps=3, message_bus=bus)
    env.reset(seed=0)
    assert env.config.horizon_steps == 3 and len(built) == 1
    with pytest.raises(config_tools.ConfigError, match=r"unknown key 'colour'.*horizon_steps.*"
                       r"constructor arguments: render_mode, message_bus"):
        make(QUALIFIED_ID, colour="red")
    with pytest.raises(ValueError, match="cannot import 'tests.no_such_module'"):
        make("tests.no_such_module:tiny-relay-v0")
    with pytest.raises(ValueError, match="must look like 'package.module:name-v0'"):
        make("../tests/tiny_task:tiny-relay-v0")


def test_task_ids_are_spelled_only_in_their_task_folders_and_the_registry() -> None:
    import ast

    from phobos.envs import registered_tasks, task_named

    package = REPO / "phobos"
    homes = {}
    for name in registered_tasks():
        task = task_named(name)
        module = task.envs[0].entry_point.partition(":")[0]
        if not module.startswith("phobos."):
            continue  # a task registered from outside the package (the tiny one)
        folder = package.parent.joinpath(*module.split(".")[:-1])
        homes.update({env_id: folder for env_id in task.ids})
    assert homes, "no package task found"
    allowed = {package / "envs" / "registry.py"}
    spelled = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                for env_id, folder in homes.items():
                    if env_id in node.value and folder not in path.parents and path not in allowed:
                        spelled.append(f"{path.relative_to(REPO)}:{node.lineno}: {env_id}")
    assert not spelled, (
        "task ids outside their task folders (import the id from the task's task.py, e.g. "
        "phobos.envs.orbit_scheduling.task.ID_V0, or read it from the registry):\n"
        + "\n".join(spelled)
    )
