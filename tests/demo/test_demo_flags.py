"""``phobos demo``'s joining flags: bad values get one line naming the flag, exit 2."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(
    ("flag", "value"), [("--grace", "-1"), ("--join-timeout", "-5"), ("--grace", "nan")]
)
def test_a_negative_or_nan_wait_is_refused_naming_the_flag(tmp_path, flag, value) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "phobos.cli", "demo", flag, value, "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("phobos demo: error:"), done.stderr
    assert f"{flag} must be at least 0 seconds, got {value}" in lines[0], lines[0]
