"""The private Docker engine the tests share, started (if needed) by scripts/ensure-docker.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from tests.fleet_support import REPO

DOCKER_DIR = Path(os.environ.get("DEPLOYER_TEST_DOCKER_DIR", "/var/lib/deployer-test-docker"))
ENGINE_URL = os.environ.get("DEPLOYER_TEST_DOCKER_URL", f"unix://{DOCKER_DIR / 'docker.sock'}")
BASE_IMAGE = os.environ.get("DEPLOYER_TEST_BASE_IMAGE", "local/python-base:bookworm")


def docker_cli(*args: str, check: bool = True) -> str:
    """Run the docker command line against the test engine; returns its output."""
    binary = shutil.which("docker")
    if binary is None:
        raise AssertionError("the docker command line is missing; run scripts/ensure-docker.sh")
    done = subprocess.run([binary, "-H", ENGINE_URL, *args], capture_output=True, text=True, timeout=300)
    if check and done.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout.strip()


def ensure_engine() -> str:
    """Start the private engine and build the base image if either is missing; returns the engine URL."""
    env = {**os.environ, "DEPLOYER_TEST_DOCKER_DIR": str(DOCKER_DIR), "DEPLOYER_TEST_BASE_IMAGE": BASE_IMAGE}
    done = subprocess.run([str(REPO / "scripts" / "ensure-docker.sh")], env=env, capture_output=True, text=True,
                          timeout=900)
    if done.returncode != 0:
        raise AssertionError(f"scripts/ensure-docker.sh failed:\n{done.stdout}\n{done.stderr}")
    return ENGINE_URL
