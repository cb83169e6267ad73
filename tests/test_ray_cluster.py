"""The environment training processes get: torch's huge-page allocation reaches Ray's workers."""

from __future__ import annotations

import os
import subprocess
import sys

from phobos.ray_cluster import TORCH_ENV, use_torch_env

WORKER_SEES = """
import os, ray
from phobos.ray_cluster import init_ray
init_ray(1)
seen = ray.get(ray.remote(num_cpus=1)(lambda: os.environ.get("THP_MEM_ALLOC_ENABLE")).remote())
print("worker:", seen)
ray.shutdown()
"""


def test_a_local_rays_workers_get_torchs_huge_page_allocation():
    env = {k: v for k, v in os.environ.items() if k not in TORCH_ENV}
    done = subprocess.run(
        [sys.executable, "-c", WORKER_SEES], env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "worker: 1" in done.stdout


def test_a_value_the_user_set_wins(monkeypatch):
    monkeypatch.setenv("THP_MEM_ALLOC_ENABLE", "0")
    assert use_torch_env() == {"THP_MEM_ALLOC_ENABLE": "0"}
    monkeypatch.delenv("THP_MEM_ALLOC_ENABLE")
    assert use_torch_env() == {"THP_MEM_ALLOC_ENABLE": "1"}
