"""``evaluate --save-episodes`` files: a seeded episode re-simulates to the same rewards; a
tampered, malformed or oversized file is refused naming its line, step and field."""

from __future__ import annotations

import json

import pytest

from phobos.agents.team_spec import TeamSpec
from phobos.envs import make_config, recording
from phobos.evaluation.rollout import EpisodeSpec, run_episode
from tests.test_cli_errors import _phobos, _refused

CASES = [("orbit-scheduling-v0", {"horizon_steps": 48}, 1), ("phobos-sampling-v0", {}, 2)]


def _saved(tmp_path, env_id="orbit-scheduling-v0", overrides=None, seed=1, team="greedy"):
    config = make_config(env_id, **(overrides if overrides is not None else {"horizon_steps": 48}))
    result = run_episode(EpisodeSpec(env_id, config, TeamSpec.parse(team), seed, record=True))
    assert result.status == "ok", result.error
    path = tmp_path / recording.file_name(result.team, seed)
    recording.write(path, result.episode)
    return path, result


@pytest.mark.parametrize(("env_id", "overrides", "seed"), CASES)
def test_a_saved_episode_resimulates_to_its_rewards(tmp_path, env_id, overrides, seed):
    path, result = _saved(tmp_path, env_id, overrides, seed)
    saved = recording.read(path)
    assert (saved.env_id, saved.seed, saved.team) == (env_id, seed, "greedy")
    assert len(saved.steps) == result.metrics["steps"]
    assert recording.check(saved) == pytest.approx(result.metrics["team_return"], abs=1e-9)
    assert result.metrics["team_return"] != 0.0  # a case whose rewards say something
    delivered = sum(len(step["messages"]) for step in saved.steps)
    assert delivered == result.metrics["messages_delivered"]


def test_evaluate_writes_one_file_per_team_and_seed(tmp_path):
    done = _phobos(
        "evaluate", "--policy", "greedy", "--policy", "random", "--seeds", "1-2",
        "--set", "horizon_steps=24", "--workers", "0", "--no-progress", "--out", "out",
        "--save-episodes", cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    names = sorted(p.name for p in (tmp_path / "out" / "episodes").iterdir())
    assert names == ["greedy-seed1.jsonl", "greedy-seed2.jsonl", "random-seed1.jsonl",
                     "random-seed2.jsonl"]
    summary = json.loads((tmp_path / "out" / "episodes.json").read_text())
    returns = {(row["team"], row["seed"]): row["team_return"] for row in summary}
    for name in names:
        saved = recording.read(tmp_path / "out" / "episodes" / name)
        assert recording.check(saved) == pytest.approx(returns[saved.team, saved.seed])


def _tamper(path, line, change):
    lines = path.read_text().splitlines()
    record = json.loads(lines[line])
    change(record)
    lines[line] = json.dumps(record)
    path.write_text("\n".join(lines) + "\n")


def _first_rewarded_line(path):
    for number, line in enumerate(path.read_text().splitlines()[1:], 1):
        if any(json.loads(line)["rewards"].values()):
            return number
    raise AssertionError("no step with a reward")


def test_an_altered_reward_is_refused_naming_its_step(tmp_path):
    path, _ = _saved(tmp_path)
    line = _first_rewarded_line(path)
    _tamper(path, line, lambda r: r["rewards"].update(yinghuo1=r["rewards"]["yinghuo1"] + 1))
    with pytest.raises(ValueError, match=rf"step {line - 1}: rewards.yinghuo1: the file says"):
        recording.check(recording.read(path))


@pytest.mark.parametrize(
    ("line", "change", "culprit"),
    [
        (0, lambda r: r.update(seed=-1), "line 1: seed: -1 is no seed"),
        (0, lambda r: r.update(env="nope-v0"), "line 1: unknown environment id 'nope-v0'"),
        (0, lambda r: r["config"].update(horizon_steps="many"), "horizon_steps"),
        (0, lambda r: r.update(format=9), "line 1: format: 9"),
        (3, lambda r: r.update(step=7), "line 4: step: 7, expected 2"),
        (3, lambda r: r["actions"].update(yinghuo1=True), "line 4: actions"),
        (3, lambda r: r["actions"].update(yinghuo1=10**30), "line 4: actions"),
        (3, lambda r: r["rewards"].update(yinghuo1="x"), "line 4: rewards"),
        (3, lambda r: r.update(messages={"a": 1}), "line 4: messages"),
    ],
)
def test_a_malformed_record_is_refused_naming_its_field(tmp_path, line, change, culprit):
    path, _ = _saved(tmp_path)
    _tamper(path, line, change)
    with pytest.raises(ValueError, match=culprit.replace("(", r"\(")):
        recording.read(path)


def test_an_action_outside_its_space_or_a_cut_file_is_refused(tmp_path):
    path, _ = _saved(tmp_path)
    _tamper(path, 2, lambda r: r["actions"].update(yinghuo1=999))
    with pytest.raises(ValueError, match="step 1: actions.yinghuo1: 999 is outside"):
        recording.check(recording.read(path))
    path, _ = _saved(tmp_path)
    path.write_text("\n".join(path.read_text().splitlines()[:10]) + "\n")
    with pytest.raises(ValueError, match="ends after step 8; the episode goes on"):
        recording.check(recording.read(path))


def test_a_file_too_large_or_not_json_is_refused(tmp_path, monkeypatch):
    path, _ = _saved(tmp_path)
    monkeypatch.setattr(recording, "MAX_BYTES", 1000)
    with pytest.raises(ValueError, match="more than the 1,000 a file may have"):
        recording.read(path)
    monkeypatch.undo()
    path.write_text(path.read_text().splitlines()[0] + "\n{not json\n")
    with pytest.raises(ValueError, match="line 2: not JSON"):
        recording.read(path)


def test_demo_replay_refuses_a_tampered_file_exit_2(tmp_path):
    path, _ = _saved(tmp_path)
    line = _first_rewarded_line(path)
    _tamper(path, line, lambda r: r["rewards"].update(yinghuo1=-5.0))
    done = _phobos("demo", "--replay", str(path), "--episodes", "1", cwd=tmp_path)
    _refused(done, "demo", f"step {line - 1}: rewards.yinghuo1")


@pytest.mark.network
def test_demo_replay_serves_the_episode_on_the_dashboard(tmp_path):
    import subprocess
    import sys
    import time
    import urllib.request

    path, result = _saved(tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "phobos.cli", "demo", "--replay", str(path), "--speed", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
    )
    try:
        first = process.stdout.readline()
        assert first.startswith(f"phobos demo: replaying {path}"), first
        url = process.stdout.readline().strip().removeprefix("dashboard: ")
        base, token = url.split("?token=")

        def get(what):
            request = urllib.request.Request(
                base + what, headers={"Authorization": f"token {token}"}
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                return json.loads(response.read())

        deadline = time.monotonic() + 60
        state = {}
        while state.get("step") != result.metrics["steps"]:  # the whole episode, then held
            assert time.monotonic() < deadline, f"replay did not finish: {state}"
            time.sleep(0.1)  # polling interval; the deadline bounds the wait
            state = get("api/state").get("state", {})
        assert state["team_return"] == pytest.approx(result.metrics["team_return"], abs=1e-3)
        assert state["seed"] == 1 and set(state["agents"]) == set(recording.read(path).agents)
        episode = get("api/episode")
        assert episode["replay"] == {"file": str(path), "team": "greedy"}
        assert episode["activities"]["names"][0] == "idle"  # the timeline's legend, as live
    finally:
        process.terminate()
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("extra", "culprit"),
    [
        (["--set", "horizon_steps=3"], "drop --set"),
        (["--policy", "random"], "drop --policy"),
        (["--speed", "-1"], "--speed must be at least 0"),
    ],
)
def test_demo_replay_refuses_flags_that_would_change_the_episode(tmp_path, extra, culprit):
    path, _ = _saved(tmp_path)
    done = _phobos("demo", "--replay", str(path), "--episodes", "1", *extra, cwd=tmp_path)
    _refused(done, "demo", culprit)


def test_demo_replay_of_a_missing_file_names_it(tmp_path):
    done = _phobos("demo", "--replay", "nope.jsonl", "--episodes", "1", cwd=tmp_path)
    _refused(done, "demo", "nope.jsonl: no such file")
