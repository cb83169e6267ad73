"""Pickle-based checkpoints run code when loaded: without ``--trust-checkpoint`` none loads.

Each crafted checkpoint holds a pickle whose ``__reduce__`` creates a marker file. Untrusted,
the loaders refuse it before anything is unpickled (no marker, an error naming the flag);
trusted, the same file does run (the marker appears), which shows that the payload is live
and that the flag is all that stands between it and the process.
"""

from __future__ import annotations

import base64
import json
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from phobos.agents.team_spec import TeamSpec, build_team
from phobos.envs import make

REPO = Path(__file__).resolve().parents[2]
ENV = "orbit-scheduling-v0"


class _Payload:
    """Unpickling it opens (creates) ``marker``: code run by loading."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def crafted_sb3_zip(folder: Path, marker: Path) -> Path:
    """An SB3 zip whose ``data`` holds a serialized (pickled) object, as SB3 writes them."""
    serialized = base64.b64encode(pickle.dumps(_Payload(marker))).decode()
    data = {"policy_class": {":type:": "<class 'type'>", ":serialized:": serialized}}
    path = folder / "model.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("data", json.dumps(data))
        archive.writestr("_stable_baselines3_version", "2.0.0")
    return path


def crafted_rllib_folder(folder: Path, marker: Path) -> Path:
    """An RLModule checkpoint folder whose constructor pickle is the payload."""
    path = folder / "module"
    path.mkdir()
    (path / "class_and_ctor_args.pkl").write_bytes(pickle.dumps(_Payload(marker)))
    return path


@pytest.mark.parametrize("kind", ["sb3", "rllib"])
def test_untrusted_pickle_checkpoints_are_refused_before_any_code_runs(tmp_path, kind):
    marker = tmp_path / "ran"
    make_checkpoint = crafted_sb3_zip if kind == "sb3" else crafted_rllib_folder
    path = make_checkpoint(tmp_path, marker)
    env = make(ENV)
    for spec in (f"greedy,phobos_grunt={kind}:{path}", f"{kind}:{path}"):
        if kind == "sb3" and not spec.startswith("greedy"):
            continue  # sb3: is an override only
        with pytest.raises(ValueError, match="is a pickle.*--trust-checkpoint"):
            build_team(TeamSpec.parse(spec), env)
        assert not marker.exists(), f"{spec} ran code without --trust-checkpoint"
    # Trusted, the same checkpoint does run its code: the refusal above is what guards.
    with pytest.raises(ValueError):
        build_team(TeamSpec.parse(f"greedy,phobos_grunt={kind}:{path}", trust=True), env)
    assert marker.exists()


def test_phobos_evaluate_refuses_an_untrusted_checkpoint_with_exit_2(tmp_path):
    marker = tmp_path / "ran"
    path = crafted_sb3_zip(tmp_path, marker)
    result = subprocess.run(
        [sys.executable, "-m", "phobos.cli", "evaluate", "--policy"]
        + [f"greedy,phobos_grunt=sb3:{path}", "--episodes", "1", "--workers", "0"]
        + ["--out", str(tmp_path / "out"), "--no-progress"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--trust-checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists() and not (tmp_path / "out").exists()


def test_the_committed_trained_team_still_loads_untrusted_flags():
    # The package's own trained policies ship with the code and load without the flag.
    env = make(ENV)
    team = build_team(TeamSpec.parse("trained"), env)
    assert set(team) == set(env.possible_agents)


def test_phobos_agent_refuses_an_untrusted_checkpoint_it_is_told_to_fly(tmp_path):
    import threading

    from phobos.comms.security import generate_keys
    from phobos.live.world import WorldServer, WorldSettings

    keys = tmp_path / "keys"
    for name in ("world", *make(ENV).possible_agents):
        generate_keys(keys, name)
    marker = tmp_path / "ran"
    path = crafted_sb3_zip(tmp_path, marker)
    settings = WorldSettings(join_timeout=30.0, relay="memory")
    world = WorldServer(ENV, keys=keys, settings=settings, telemetry_address=None)
    thread = threading.Thread(target=world.run, kwargs={"steps": 1}, daemon=True)
    thread.start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "phobos.cli", "agent", "--id", "yinghuo1"]
            + ["--world", world.address, "--keys", str(keys), "--connect-timeout", "20"]
            + ["--policy", f"greedy,yinghuo1=sb3:{path}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        world.stop()
        thread.join(40)
        world.close()
    assert result.returncode == 2, result.stderr[-2000:]
    assert "--trust-checkpoint" in result.stderr and "Traceback" not in result.stderr
    assert not marker.exists()
