"""A newcomer's mistakes with the ``phobos`` command: one line naming the culprit, exit 2.

Each case runs the real command in a subprocess, as a user would, and checks that it exits 2
with a single ``phobos <command>: error:`` line on stderr and no traceback.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from importlib import metadata

import pytest


def _phobos(*argv, cwd, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "phobos.cli", *argv],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def _refused(done, command, culprit):
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"phobos {command}: error:"), done.stderr
    assert culprit in lines[0], lines[0]


def test_version_prints_the_package_version(tmp_path):
    done = _phobos("--version", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"phobos {metadata.version('phobos-autonomy')}"


def test_an_unquoted_date_is_accepted(tmp_path):
    (tmp_path / "c.yaml").write_text("start: 2013-02-01T00:00:00\nhorizon_steps: 4\n")
    done = _phobos("run", "--config", "c.yaml", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    done = _phobos(
        "run", "--set", "start=2013-02-01T00:00:00", "--set", "horizon_steps=4", cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr


def test_an_impossible_date_names_its_field(tmp_path):
    done = _phobos("run", "--set", "start=2013-02-30T00:00:00", cwd=tmp_path)
    _refused(done, "run", "start: '2013-02-30T00:00:00' is not a valid date-time")


@pytest.mark.parametrize("command", ["run", "train"])
def test_malformed_yaml_is_one_line(tmp_path, command):
    (tmp_path / "bad.yaml").write_text("horizon_steps: [4,\nstart: 2\n")
    _refused(_phobos(command, "--config", "bad.yaml", cwd=tmp_path), command, "not valid YAML")


@pytest.mark.parametrize(
    ("argv", "culprit"),
    [
        (["run", "--seed", "-1"], "--seed must be >= 0"),
        (["bench", "env", "--seconds", "0"], "--seconds must be positive"),
        (["bench", "env", "--seconds", "-1"], "--seconds must be positive"),
        (["agent", "--id", "yinghuo1", "--world", "127.0.0.1:5555", "--keys", "."], "tcp://"),
        (["demo", "--seed", "-1"], "--seed must be >= 0"),
    ],
)
def test_bad_flags_exit_2_naming_them(tmp_path, argv, culprit):
    _refused(_phobos(*argv, cwd=tmp_path), argv[0], culprit)


@pytest.mark.parametrize(
    ("seeds", "culprit"),
    [("1,,2", "empty item"), ("5-1", "reversed"), ("1,2,", "empty item")],
)
def test_evaluate_refuses_bad_seed_lists(tmp_path, seeds, culprit):
    done = _phobos(
        "evaluate",
        "--policy",
        "greedy",
        "--seeds",
        seeds,
        "--out",
        "out",
        "--no-progress",
        cwd=tmp_path,
    )
    _refused(done, "evaluate", culprit)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("flag", ["--port", "--http-port"])
def test_demo_refuses_a_port_in_use(tmp_path, flag):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = _phobos("demo", flag, str(port), "--steps", "1", cwd=tmp_path, timeout=60)
    _refused(done, "demo", f"{flag} {port}")
    assert "already in use" in done.stderr


EVALUATE = [
    "evaluate",
    "--policy",
    "greedy",
    "--episodes",
    "1",
    "--set",
    "horizon_steps=4",
    "--workers",
    "0",
    "--no-progress",
]


def test_evaluate_checks_out_is_writable_before_any_episode(tmp_path):
    (tmp_path / "a-file").write_text("")
    done = _phobos(*EVALUATE, "--out", "a-file/report", cwd=tmp_path)
    _refused(done, "evaluate", "--out a-file/report cannot be written")


def test_evaluate_refuses_an_existing_report_unless_forced(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    _refused(_phobos(*EVALUATE, "--out", "out", cwd=tmp_path), "evaluate", "--force")
    assert (out / "summary.json").read_text() == "{}"
    done = _phobos(*EVALUATE, "--out", "out", "--force", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "teams" in json.loads((out / "summary.json").read_text())


def test_keys_refuses_to_overwrite_secrets_unless_forced(tmp_path):
    assert _phobos("keys", "k", "world", cwd=tmp_path).returncode == 0
    secret = (tmp_path / "k" / "world.key_secret").read_text()
    _refused(_phobos("keys", "k", "world", cwd=tmp_path), "keys", "world.key")
    assert (tmp_path / "k" / "world.key_secret").read_text() == secret
    assert _phobos("keys", "k", "world", "--force", cwd=tmp_path).returncode == 0
    assert (tmp_path / "k" / "world.key_secret").read_text() != secret
