"""Production on Kubernetes, as far as it goes without a cluster: the pool flowops bootstrap makes has
prefect-kubernetes's own job template, validate checks the example file's job variables against that template,
and deploy puts the example on a real Prefect server's Kubernetes pool with the flows' image."""

from __future__ import annotations

import uuid

import httpx
import yaml
from prefect_kubernetes.worker import KubernetesWorker

from tests.helpers import ROOT, make_repo

EXAMPLE = "examples/production-on-kubernetes.yaml"
PRODUCTION = "main/prefect.yaml"
POOL = "ecommerce-production-k8s"


def kubernetes_repo(tmp_path, prefect_server, broken: dict[str, str] | None = None):
    """This repository with production moved to the Kubernetes example, as the README says to do it, on a pool
    of its own; `broken`: replacements in the example's text."""
    sources = {path: ROOT / path for path in ("flows", "deployments", "Dockerfile", "pyproject.toml", "uv.lock")}
    repo = make_repo(sources, tmp_path, prefect_server, {})
    repo.pool = f"{POOL}-{uuid.uuid4().hex[:8]}"
    text = (repo.path / "deployments" / EXAMPLE).read_text().replace(f"name: {POOL}", f"name: {repo.pool}")
    for old, new in (broken or {}).items():
        text = text.replace(old, new)
    (repo.path / "deployments" / PRODUCTION).write_text(text)
    config_path = repo.path / "deployments" / "flowops.yaml"
    config = yaml.safe_load(config_path.read_text())
    config["work_pools"][repo.pool] = {"type": "kubernetes"}
    config_path.write_text(yaml.safe_dump(config))
    repo.commit("production on kubernetes", push=["main"])
    return repo


def test_the_kubernetes_example_validates_bootstraps_its_pool_and_deploys_with_the_flows_image(
    tmp_path, prefect_server, postgres_url
):
    repo = kubernetes_repo(tmp_path, prefect_server)
    validated = repo.flowops("validate")
    assert f"ok: deployments/{PRODUCTION}" in validated.stdout

    bootstrap = repo.flowops(
        "bootstrap", "--work-pool", repo.pool, "--type", "kubernetes", "--environment", "production",
        env_extra={"ECOMMERCE_DATABASE_URL": postgres_url},
    )  # fmt: skip
    assert f"work pool {repo.pool!r} (kubernetes): created" in bootstrap.stdout
    pool = httpx.get(f"{repo.api_url}/work_pools/{repo.pool}", timeout=30).json()
    assert pool["type"] == "kubernetes"
    assert pool["base_job_template"] == KubernetesWorker.get_default_base_job_template()

    image_tag = repo.flowops("image", "tag").stdout.strip()
    repo.deploy("main")
    production = httpx.get(f"{repo.api_url}/deployments/name/ecommerce-events/production", timeout=30).json()
    assert production["work_pool_name"] == repo.pool
    variables = production["job_variables"]
    assert variables["image"] == f"ghcr.io/flowops-dev/flowops-flows:{image_tag}"  # filled in, as for Docker
    assert (variables["namespace"], variables["service_account_name"], variables["backoff_limit"]) == (
        "flows",
        "flows-runner",
        0,
    )
    assert variables["env"] == {
        "PREFECT_FLOWS_HEARTBEAT_FREQUENCY": "30",
        "FLOWOPS_PROJECT": "flowops-dev/flowops",
        "FLOWOPS_BRANCH": "main",
        "FLOWOPS_ENVIRONMENT": "production",
        "FLOWOPS_BRANCH_DEPLOYMENT": "false",
    }


def test_validate_checks_kubernetes_job_variables_against_prefect_kubernetes_template(tmp_path, prefect_server):
    broken = {
        "image_pull_policy: IfNotPresent": "image_pull_policy: Sometimes",
        "backoff_limit: 0": "backoff_limit: -1",
    }
    repo = kubernetes_repo(tmp_path, prefect_server, broken)

    for command in (["validate"], ["deploy", "--branch", "main", "--repository", repo.origin_url]):
        result = repo.flowops(*command, check=False)
        assert result.returncode == 1
        where = f"error: deployments/{PRODUCTION}: production: work_pool.job_variables"
        assert (
            f"{where}.image_pull_policy: 'Sometimes' is not one of ['IfNotPresent', 'Always', 'Never']"
            " (a kubernetes pool's job variables)" in result.stderr
        )
        assert f"{where}.backoff_limit: -1 is less than the minimum of 0 (a kubernetes pool's job variables)" in (
            result.stderr
        )
    assert httpx.get(f"{repo.api_url}/work_pools/{repo.pool}", timeout=30).status_code == 404  # deploy made nothing
