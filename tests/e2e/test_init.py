"""`flowops init` against a real Prefect server: the pools' types come from the server, and the repository it
adopted plans against it at once."""

from __future__ import annotations

import uuid

import yaml

from flowops.local import git
from tests.helpers import api, make_repo
from tests.unit.flowops.test_init import FLOW, PREFECT_YAML


def test_init_reads_the_pools_types_from_the_server_and_the_repository_plans_at_once(tmp_path, prefect_server):
    pool = f"weather-{uuid.uuid4().hex[:8]}"
    api(prefect_server.api_url, "work_pools/", {"name": pool, "type": "docker"})
    source = tmp_path / "source"
    (source / "flows").mkdir(parents=True)
    (source / "flows" / "weather.py").write_text(FLOW.replace("weather-summary", f"weather-{pool}"))
    content = yaml.safe_load(yaml.safe_dump(PREFECT_YAML))
    content["deployments"][0]["work_pool"]["name"] = pool
    (source / "prefect.yaml").write_text(yaml.safe_dump(content))
    (source / "Dockerfile").write_text("FROM prefecthq/prefect:3.9.1-python3.11\n")
    repo = make_repo({".": source}, tmp_path, prefect_server, {})

    result = repo.flowops("init", "--name", f"acme/{pool}")
    config = yaml.safe_load((repo.path / "deployments" / "flowops.yaml").read_text())
    assert config["work_pools"] == {pool: {"type": "docker"}, f"{pool}-staging": {"type": "docker"}}  # the server's
    assert config["image"] == {"name": f"ghcr.io/acme/{pool}-flows"}  # a Docker pool and a Dockerfile
    assert "its type is not known here" not in result.stdout
    repo.commit("flowops init", push=["main", "staging"])
    # what init says is still to do: staging's Secret block, saved by bootstrap from the environment's secret
    saved = repo.flowops("bootstrap", "--environment", "staging", env_extra={"WEATHER_DB": "sqlite:///weather.db"})
    assert "block 'weather-db-staging': created from $WEATHER_DB (environment staging)" in saved.stdout
    plan = repo.flowops("plan", "--branch", "staging", "--repository", repo.origin_url, "--image", "example/x:1")
    assert f"create    weather-{pool}/daily-staging" in plan.stdout, plan.stdout
    assert git(repo.path, "status", "--porcelain") == ""
