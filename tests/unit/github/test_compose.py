"""compose.yaml: the production shape (PostgreSQL, a Prefect server backed by it, a worker on the flows' image),
healthy before its dependants start, with no secret written in it."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE = yaml.safe_load((ROOT / "compose.yaml").read_text())
SERVICES = COMPOSE["services"]


def test_it_has_postgres_a_prefect_server_on_it_and_a_worker_on_the_flows_image():
    always = {name for name, service in SERVICES.items() if not service.get("profiles")}
    assert always == {"postgres", "prefect-server", "worker"}
    assert SERVICES["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].startswith(
        "postgresql+asyncpg://prefect:"
    )
    assert SERVICES["prefect-server"]["environment"]["PREFECT_API_DATABASE_CONNECTION_URL"].endswith(
        "@postgres:5432/prefect"
    )
    assert SERVICES["worker"]["build"]["dockerfile"] == "Dockerfile"
    assert SERVICES["worker"]["environment"]["PREFECT_API_URL"] == "${WORKER_API_URL:-http://prefect-server:4200/api}"


def test_every_service_that_others_wait_for_has_a_health_check_and_they_wait_for_it():
    for name in ("postgres", "prefect-server"):
        assert SERVICES[name]["healthcheck"]["test"]
    assert SERVICES["prefect-server"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["worker"]["depends_on"]["prefect-server"]["condition"] == "service_healthy"
    for name in ("redis", "prefect-api"):
        assert SERVICES[name]["healthcheck"]["test"]
    assert SERVICES["prefect-api"]["depends_on"] == {
        "prefect-migrate": {"condition": "service_completed_successfully"},
        "redis": {"condition": "service_healthy"},
    }
    assert SERVICES["prefect-migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert SERVICES["proxy"]["depends_on"] == {"prefect-api": {"condition": "service_healthy"}}


def test_no_secret_is_written_in_the_file_and_a_missing_one_stops_compose_with_a_message():
    text = (ROOT / "compose.yaml").read_text()
    for service in SERVICES.values():
        for key, value in (service.get("environment") or {}).items():
            if re.search(r"PASSWORD|SECRET|TOKEN|KEY", key):
                assert re.fullmatch(r"\$\{[A-Z_]+:\?[^}]+\}", str(value)), f"{key} must come from the environment"
    for url in re.findall(r"postgres(?:ql)?(?:\+asyncpg)?://[^\s\"']+", text):
        assert re.match(r"postgres(?:ql)?(?:\+asyncpg)?://prefect:\$\{POSTGRES_PASSWORD:\?", url), url
    assert "${POSTGRES_PASSWORD:?" in text


def test_the_server_is_only_published_on_loopback():
    assert SERVICES["prefect-server"]["ports"] == ["127.0.0.1:${PREFECT_PORT:-4200}:4200"]
    assert "ports" not in SERVICES["postgres"]


def test_the_flows_database_is_created_beside_prefects():
    assert "create database ecommerce;" in (ROOT / "compose" / "initdb" / "ecommerce.sql").read_text()
    assert SERVICES["worker"]["environment"]["ECOMMERCE_DATABASE_URL"].endswith("@postgres:5432/ecommerce")


def test_the_images_are_the_official_ones_unless_a_variable_names_others():
    assert SERVICES["postgres"]["image"] == "${POSTGRES_IMAGE:-postgres:15}"
    assert SERVICES["prefect-server"]["image"] == "${PREFECT_IMAGE:-prefecthq/prefect:3.9.1-python3.11}"
    assert (
        SERVICES["worker"]["build"]["args"]["BASE_IMAGE"] == "${FLOWS_BASE_IMAGE:-prefecthq/prefect:3.9.1-python3.11}"
    )


def test_the_local_profile_serves_git_and_the_sample_months_only_when_asked_for():
    assert {name for name, service in SERVICES.items() if "local" in service.get("profiles", [])} == {
        "git-origin",
        "samples",
    }


def test_the_ha_profile_runs_two_api_replicas_without_services_and_the_services_apart_on_redis():
    ha = {name for name, service in SERVICES.items() if "ha" in service.get("profiles", [])}
    assert ha == {"redis", "prefect-migrate", "prefect-api", "prefect-services", "proxy"}
    assert SERVICES["prefect-api"]["deploy"]["replicas"] == 2
    assert "--no-services" in SERVICES["prefect-api"]["command"]
    assert SERVICES["prefect-services"]["command"] == ["prefect", "server", "services", "start"]
    environment = SERVICES["prefect-services"]["environment"]
    assert environment == SERVICES["prefect-api"]["environment"] == SERVICES["prefect-migrate"]["environment"]
    setup = SERVICES["prefect-migrate"]["command"][-1]
    assert setup.startswith("prefect server database upgrade --yes && python -c")
    assert "await run_block_auto_registration(session=session)" in setup
    assert environment["PREFECT_SERVER_EVENTS_MESSAGING_BROKER"] == "prefect_redis.messaging"
    assert SERVICES["proxy"]["ports"] == ["127.0.0.1:${PREFECT_PORT:-4200}:4200"]


def leaves(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from leaves(item)
    else:
        yield value


def test_every_server_setting_the_ha_profile_gives_is_one_prefect_reads(monkeypatch):
    """Each PREFECT_SERVER_* value, set alone in the environment, shows up in Prefect's settings: a misspelt
    name would be ignored silently, and the replicas would each keep their events in memory."""
    from prefect.settings import Settings

    environment = SERVICES["prefect-api"]["environment"]
    names = [key for key in environment if key.startswith("PREFECT_SERVER_") and "redis" in str(environment[key])]
    assert len(names) == 5
    for name in names:
        with monkeypatch.context() as patched:
            patched.setenv(name, environment[name])
            assert environment[name] in set(map(str, leaves(Settings().model_dump()))), name
    # the replicas must not migrate nor register block types as they start (prefect-migrate does, once)
    assert Settings().server.database.migrate_on_start is True
    assert Settings().server.register_blocks_on_start is True
    for name in ("PREFECT_SERVER_DATABASE_MIGRATE_ON_START", "PREFECT_SERVER_REGISTER_BLOCKS_ON_START"):
        monkeypatch.setenv(name, environment[name])
    assert Settings().server.database.migrate_on_start is False
    assert Settings().server.register_blocks_on_start is False
    assert Settings().server.database.connection_timeout == 5.0
    monkeypatch.setenv(
        "PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT", environment["PREFECT_SERVER_DATABASE_CONNECTION_TIMEOUT"]
    )
    assert Settings().server.database.connection_timeout == 30.0
