from __future__ import annotations

import pytest

from phobos.envs import registered
from phobos.envs.conformance import check_environment


@pytest.mark.parametrize("env_id", registered())
def test_registered_environment_conforms(env_id: str) -> None:
    check_environment(env_id)


@pytest.mark.parametrize("env_id", registered())
def test_registered_environment_conforms_with_message_loss(env_id: str) -> None:
    check_environment(env_id, message_loss=0.3, message_buffer=4)
