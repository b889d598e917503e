"""docker-compose.yml checked by Docker Compose itself (``config -q``), where it is installed.

No Docker engine runs here; ``docker-compose config`` only parses and validates the file
against the Compose specification, which it can do without one. CI does not install it:
the test skips with the reason when the command is absent.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

COMPOSE_COMMANDS = (("docker-compose",), ("docker", "compose"))


def compose_command() -> tuple[str, ...] | None:
    for command in COMPOSE_COMMANDS:
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return command
    return None


def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    command = compose_command()
    if command is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    # A copy beside an operator's .env (the example), so the checkout is left untouched.
    shutil.copy(REPO_ROOT / "docker-compose.yml", tmp_path / "docker-compose.yml")
    shutil.copy(REPO_ROOT / ".env.example", tmp_path / ".env")
    shutil.copy(REPO_ROOT / "Dockerfile", tmp_path / "Dockerfile")
    result = subprocess.run(
        [*command, "-f", "docker-compose.yml", "config", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr


def test_docker_compose_refuses_a_broken_file(tmp_path: Path) -> None:
    """The check above can fail: a service with an unknown key is refused."""
    command = compose_command()
    if command is None:
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    text = (REPO_ROOT / "docker-compose.yml").read_text()
    broken = text.replace("services:\n", "services:\n  oops:\n    imagee: redis\n", 1)
    assert broken != text
    (tmp_path / "docker-compose.yml").write_text(broken)
    shutil.copy(REPO_ROOT / ".env.example", tmp_path / ".env")
    result = subprocess.run(
        [*command, "-f", "docker-compose.yml", "config", "-q"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
