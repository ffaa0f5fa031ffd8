"""What flowops will not do: touch another project's deployments, go back in history unasked, deploy files that
are not the commit's, or let two changes to one environment interleave (races and killed deploys included)."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

from flowops.deploy.lock import lock_name
from flowops.local import git
from flowops.render.branches import branch_slug, data_environment_name
from tests.e2e.test_deploy import STAGING_FILE, pool_args, server_state
from tests.helpers import api, deployments, drop_schema, edit_yaml

ECOMMERCE = "ecommerce-events-e2e"  # the e2e copy's flow name (tests/e2e/conftest.py)

CONFIG_FILE = Path("deployments/flowops.yaml")


def clone_of(deployment: dict) -> dict:
    return deployment["pull_steps"][0]["prefect.deployments.steps.git_clone"]


def as_project(repo, project: str, deployment_name: str | None = None) -> str:
    """Commit the repository as if it were another project (another flowops.yaml `project`)."""
    edit_yaml(repo.path / CONFIG_FILE, lambda content: content.update(project=project))
    if deployment_name:
        edit_yaml(repo.path / STAGING_FILE, lambda content: content["deployments"][0].update(name=deployment_name))
    return repo.commit(f"as {project}")


def test_prune_and_teardown_never_touch_another_projects_deployments_and_a_name_it_owns_is_refused(hello_repo):
    pools = pool_args()
    as_project(hello_repo, "other/thing", deployment_name="theirs")
    hello_repo.deploy("feature/x", *pools)
    hello_repo.deploy("main", *pools)
    theirs = server_state(hello_repo)
    slug = branch_slug("feature/x")
    assert sorted(theirs) == [f"{hello_repo.flow_name}/production", f"{hello_repo.flow_name}/theirs-{slug}"]

    git(hello_repo.path, "revert", "--no-edit", "--quiet", "HEAD")  # back to acme/hello, deployment `staging`
    hello_repo.deploy("feature/x", *pools)  # would prune theirs-<slug>: same branch tag, not in our file
    ours = f"{hello_repo.flow_name}/staging-{slug}"
    after = server_state(hello_repo)
    assert {name: after[name] for name in theirs} == theirs
    assert "project:acme/hello" in after[ours]["tags"]

    torn = hello_repo.flowops("teardown", "--branch", "feature/x", "--json")
    assert json.loads(torn.stdout)["deleted"] == [ours]
    assert server_state(hello_repo) == theirs

    refused = hello_repo.flowops(
        "deploy", "--branch", "main", "--repository", hello_repo.origin_url, *pools, check=False
    )
    assert refused.returncode == 1
    assert (
        f"{hello_repo.flow_name}/production already exists on the server and belongs to project:other/thing,"
        " not project:acme/hello: rename it"
    ) in refused.stderr
    assert server_state(hello_repo) == theirs


def test_an_older_commit_is_refused_unless_it_is_a_rollback(hello_repo):
    pools = pool_args()
    first = git(hello_repo.path, "rev-parse", "HEAD")
    hello_repo.deploy("staging", *pools)
    edit_yaml(hello_repo.path / STAGING_FILE, lambda c: c["deployments"][0]["parameters"].update(name="second"))
    second = hello_repo.commit("second", push=["staging"])
    hello_repo.deploy("staging", *pools)
    before = server_state(hello_repo)

    git(hello_repo.path, "checkout", "--quiet", first)
    for command in ("plan", "deploy"):
        refused = hello_repo.flowops(
            command, "--branch", "staging", "--repository", hello_repo.origin_url, *pools, check=False
        )
        assert refused.returncode == 1
        assert f"runs commit {second[:12]}, which comes after {first[:12]}" in refused.stderr
        assert "pass --rollback" in refused.stderr
    assert server_state(hello_repo) == before

    hello_repo.deploy("staging", *pools, "--rollback")
    (staging,) = deployments(hello_repo.api_url, hello_repo.flow_name).values()
    assert clone_of(staging)["commit_sha"] == first
    assert staging["parameters"].get("name") != "second"
    git(hello_repo.path, "checkout", "--quiet", second)
    hello_repo.deploy("staging", *pools)  # forward again: no flag needed
    (staging,) = deployments(hello_repo.api_url, hello_repo.flow_name).values()
    assert clone_of(staging)["commit_sha"] == second


def test_only_the_checked_out_commit_with_a_clean_tree_deploys(hello_repo):
    pools = pool_args()
    parent = git(hello_repo.path, "rev-parse", "HEAD~1")
    other_sha = hello_repo.flowops(
        "deploy", "--branch", "staging", "--sha", parent, "--repository", hello_repo.origin_url, *pools, check=False
    )
    assert other_sha.returncode == 1
    assert f"--sha {parent[:12]} is not the checked-out commit" in other_sha.stderr

    (hello_repo.path / "flows" / "hello.py").write_text("raise SystemExit('not committed')\n")
    dirty = hello_repo.flowops(
        "deploy", "--branch", "staging", "--repository", hello_repo.origin_url, *pools, check=False
    )
    assert dirty.returncode == 1
    assert "has uncommitted changes" in dirty.stderr
    assert deployments(hello_repo.api_url, hello_repo.flow_name) == {}


def take_lock_as(repo, holder: str, seconds: float) -> str:
    """Hold the staging lock as another process would (one that may have been killed since)."""
    name = lock_name("acme/hello", "staging")
    api(repo.api_url, "variables/", {"name": name, "value": {"holder": holder, "seconds": seconds}})
    return name


def lock_exists(repo, name: str) -> bool:
    return any(v["name"] == name for v in api(repo.api_url, "variables/filter", {"limit": 200}))


def test_a_held_lock_makes_a_deploy_wait_then_give_up_naming_its_holder_and_an_expired_one_is_taken_over(hello_repo):
    pools = pool_args()
    name = take_lock_as(hello_repo, "deploy staging @ 0000aaaa (ci run 41)", seconds=600)
    hello_repo.env["FLOWOPS_LOCK_WAIT"] = "2"
    started = time.monotonic()
    busy = hello_repo.flowops(
        "deploy", "--branch", "staging", "--repository", hello_repo.origin_url, *pools, check=False
    )
    assert busy.returncode == 1
    assert time.monotonic() - started >= 2
    assert f"waiting for lock {name}, held by deploy staging @ 0000aaaa (ci run 41)" in busy.stderr
    assert f"error: {name} is held by deploy staging @ 0000aaaa (ci run 41)" in busy.stderr
    assert deployments(hello_repo.api_url, hello_repo.flow_name) == {}
    torn = hello_repo.flowops("teardown", "--branch", "feature/y", check=False)  # same environment: same lock
    assert torn.returncode == 1
    assert "held by deploy staging @ 0000aaaa" in torn.stderr

    api_delete_variable(hello_repo, name)
    take_lock_as(hello_repo, "a deploy that was killed", seconds=1)
    time.sleep(1.5)
    taken = hello_repo.deploy("staging", *pools)
    assert "the lease of a deploy that was killed expired; taking it over" in taken.stderr
    assert list(deployments(hello_repo.api_url, hello_repo.flow_name)) == [f"{hello_repo.flow_name}/staging"]
    assert not lock_exists(hello_repo, name)  # released when done


def api_delete_variable(repo, name: str) -> None:
    import urllib.request

    request = urllib.request.Request(f"{repo.api_url}/variables/name/{name}", method="DELETE")  # noqa: S310
    urllib.request.urlopen(request, timeout=30).close()  # noqa: S310 - the local test server


def three_deployments(content) -> None:
    first = content["deployments"][0]
    content["deployments"] = [{**json.loads(json.dumps(first)), "name": name} for name in ("a", "b", "c")]


def start_deploy(repo, worktree: Path, branch: str, pools: list[str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "flowops", "-C", str(worktree), "deploy", "--branch", branch,
         "--repository", repo.origin_url, *pools],
        env=repo.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )  # fmt: skip


def test_five_deploys_of_five_commits_at_once_leave_one_consistent_state(hello_repo, tmp_path):
    pools = pool_args()
    edit_yaml(hello_repo.path / STAGING_FILE, three_deployments)
    worktrees, commits = [], []
    for number in range(5):
        edit_yaml(
            hello_repo.path / STAGING_FILE, lambda c, n=number: c["deployments"][0]["parameters"].update(count=n + 1)
        )
        commits.append(hello_repo.commit(f"commit {number}"))
        worktree = tmp_path / f"checkout-{number}"
        git(hello_repo.path, "worktree", "add", "--quiet", "--detach", str(worktree), commits[-1])
        worktrees.append(worktree)
    processes = [start_deploy(hello_repo, worktree, "feature/race", pools) for worktree in worktrees]
    outcomes = [(process.wait(timeout=300), *process.communicate()) for process in processes]

    slug = branch_slug("feature/race")
    live = deployments(hello_repo.api_url, hello_repo.flow_name)
    assert sorted(live) == [f"{hello_repo.flow_name}/{name}-{slug}" for name in ("a", "b", "c")], outcomes
    pinned = {clone_of(deployment)["commit_sha"] for deployment in live.values()}
    assert len(pinned) == 1, pinned  # every deployment from one commit
    (winner,) = pinned
    assert {f"commit:{winner[:8]}" in d["tags"] for d in live.values()} == {True}
    for code, _, stderr in outcomes:
        refused = "comes after" in stderr and "pass --rollback" in stderr
        assert code == 0 or refused, stderr  # each one deployed, or was refused with a clear line
    assert outcomes[commits.index(winner)][0] == 0
    # whoever ran last deployed the newest commit it saw; none ran at the same time as another
    assert any("waiting for lock" in stderr for _, _, stderr in outcomes)


def test_deploys_killed_at_random_points_leave_no_orphans_and_the_next_deploy_reaches_the_plan(hello_repo):
    pools = pool_args()
    edit_yaml(hello_repo.path / STAGING_FILE, three_deployments)
    hello_repo.commit("three deployments")
    hello_repo.env["FLOWOPS_LOCK_LEASE"] = "3"
    hello_repo.env["FLOWOPS_LOCK_WAIT"] = "30"
    randomness = random.Random(int(os.environ.get("FLOWOPS_KILL_SEED", "8")))
    for kill in range(10):
        edit_yaml(
            hello_repo.path / STAGING_FILE, lambda c, k=kill: c["deployments"][1]["parameters"].update(count=k + 1)
        )
        hello_repo.commit(f"kill {kill}")
        process = start_deploy(hello_repo, hello_repo.path, "feature/killed", pools)
        time.sleep(randomness.uniform(0.2, 4.0))
        os.killpg(process.pid, signal.SIGKILL)  # prefect deploy included
        process.wait()

    final = hello_repo.deploy("feature/killed", *pools)
    head = git(hello_repo.path, "rev-parse", "HEAD")
    slug = branch_slug("feature/killed")
    live = deployments(hello_repo.api_url, hello_repo.flow_name)
    assert sorted(live) == [f"{hello_repo.flow_name}/{name}-{slug}" for name in ("a", "b", "c")]  # no orphans
    assert {clone_of(d)["commit_sha"] for d in live.values()} == {head}
    assert live[f"{hello_repo.flow_name}/b-{slug}"]["parameters"]["count"] == 10
    plan = hello_repo.flowops(
        "plan", "--branch", "feature/killed", "--repository", hello_repo.origin_url, *pools, "--json"
    )
    assert {change["action"] for change in json.loads(plan.stdout)["changes"]} == {"unchanged"}
    assert not lock_exists(hello_repo, lock_name("acme/hello", "staging"))
    assert "Deployed" in final.stdout


def test_a_lock_that_cannot_be_released_is_only_a_warning_and_stays_until_its_lease_expires(prefect_server):
    """The server is unreachable as a deploy ends: the deploy's own outcome stands, and the lock frees itself
    (tests/unit/flowops/test_operations.py checks the same with a fake; this one, the real client's error)."""
    import contextlib
    import uuid

    from prefect.settings import PREFECT_API_URL, temporary_settings

    from flowops.api import client as prefect_api
    from flowops.deploy.lock import environment_lock
    from flowops.local import free_port

    said: list[str] = []
    held = contextlib.ExitStack()
    dead_url = f"http://127.0.0.1:{free_port()}/api"
    with temporary_settings({PREFECT_API_URL: prefect_server.api_url}), prefect_api.connect() as server:
        lease = held.enter_context(
            environment_lock(server, f"acme/lock-{uuid.uuid4().hex[:6]}", "staging", "a deploy", on_wait=said.append)
        )
        with temporary_settings({PREFECT_API_URL: dead_url}), prefect_api.connect() as unreachable:
            server.drop_lease = unreachable.drop_lease  # the server goes away before the release
            held.close()  # no exception: the release failing is not the deploy failing
        assert len(said) == 1
        assert said[0].startswith(f"warning: releasing the lock {lease.name!r}: cannot reach the Prefect API")
        assert said[0].endswith("; the lock is free again when its lease expires (120 s)")
        assert server.read_lease(lease.name).id == lease.id
        del server.drop_lease
        server.drop_lease(lease)
        assert server.read_lease(lease.name) is None


def test_gc_deletes_only_this_projects_deployments_of_branches_gone_from_origin(hello_repo, tmp_path):
    pools = pool_args()
    origin = str(hello_repo.origin)
    # a project of its own: other tests' acme/hello deployments on this server belong to other origins
    as_project(hello_repo, f"acme/gc-{hello_repo.flow_name}")
    for branch in ("feature/gone", "feature/kept"):
        git(hello_repo.path, "push", "--quiet", origin, f"HEAD:refs/heads/{branch}")
        hello_repo.deploy(branch, *pools)
    hello_repo.deploy("staging", *pools)
    as_project(hello_repo, "other/thing", deployment_name="theirs")
    git(hello_repo.path, "push", "--quiet", origin, "HEAD:refs/heads/feature/theirs")
    hello_repo.deploy("feature/theirs", *pools)  # another project's branch deployment, on the same server
    git(hello_repo.path, "revert", "--no-edit", "--quiet", "HEAD")
    for branch in ("feature/gone", "feature/theirs"):  # their delete events were missed
        git(hello_repo.path, "push", "--quiet", origin, "--delete", branch)
    before = server_state(hello_repo)
    flow = hello_repo.flow_name
    gone = f"{flow}/staging-{branch_slug('feature/gone')}"
    assert sorted(before) == sorted(
        [f"{flow}/staging", gone, f"{flow}/staging-{branch_slug('feature/kept')}",
         f"{flow}/theirs-{branch_slug('feature/theirs')}"]
    )  # fmt: skip

    dry = hello_repo.flowops("gc", "--repository", hello_repo.origin_url, "--dry-run", "--json")
    assert json.loads(dry.stdout)["deleted"] == [gone]
    assert server_state(hello_repo) == before

    done = hello_repo.flowops("gc", "--repository", hello_repo.origin_url)
    assert f"deleted {gone} (its branch is gone from {hello_repo.origin_url})" in done.stdout
    assert server_state(hello_repo) == {name: state for name, state in before.items() if name != gone}

    empty = tmp_path / "empty.git"  # a wrong URL that answers with no branches must not delete everything
    git(tmp_path, "init", "--quiet", "--bare", str(empty))
    git(hello_repo.path, "push", "--quiet", origin, "--delete", "feature/kept")
    for repository, error in (
        (empty.as_uri(), f"error: {empty.as_uri()} has no branch 'main', which deploys an environment"),
        ((tmp_path / "missing.git").as_uri(), "error: cannot list the branches of file://"),
    ):
        refused = hello_repo.flowops("gc", "--repository", repository, check=False)
        assert refused.returncode == 1
        assert error in refused.stderr, refused.stderr
    assert len(server_state(hello_repo)) == 3  # feature/kept is gone too now, but nothing was deleted


def test_canaries_in_the_environment_secret_blocks_a_database_url_a_source_url_and_a_data_file_leak_nowhere(
    ecommerce_repo, postgres_url, sample_month, table_name, tmp_path
):
    """Bootstrap, deploy and three runs with canary secrets everywhere a secret lives; then the server's
    deployments, flow and task runs, logs, artifacts, variables, pools and block documents are dumped, with every
    output, the worker's log and every row the runs wrote, and no canary is found in any of it."""
    import uuid

    import psycopg

    from flowops.local import Worker
    from tests.helpers import flow_run_logs, run_id

    repo = ecommerce_repo
    tag = uuid.uuid4().hex[:8]
    canary = {name: f"canary-{name}-{tag}" for name in ("apikey", "gittoken", "dbpass", "srcpass", "srcsig", "file")}
    database_url = postgres_url.replace("://postgres@", f"://postgres:{canary['dbpass']}@")  # trust auth: ignored
    assert canary["dbpass"] in database_url
    repo.env.update(
        PREFECT_API_KEY=canary["apikey"], FLOWOPS_GIT_TOKEN=canary["gittoken"], ECOMMERCE_DATABASE_URL=database_url
    )
    outputs: list[str] = []

    def flowops(*args: str, check: bool = True):
        result = repo.flowops(*args, check=check)
        outputs.append(result.stdout + result.stderr)
        return result

    pool, branch = f"e2e-{tag}", "feature/canary"
    database_block, git_block = f"db-{tag}", f"git-{tag}"
    edit_yaml(
        repo.path / "deployments" / "flowops.yaml",
        lambda c: c["environments"]["staging"]["secrets"].update({database_block: "ECOMMERCE_DATABASE_URL"}),
    )
    repo.commit("this test's own database block")
    bootstrap = ["bootstrap", "--work-pool", pool, "--type", "process", "--github-block", git_block]
    flowops(*bootstrap, "--environment", "staging")
    git(repo.path, "push", "--quiet", str(repo.origin), f"HEAD:refs/heads/{branch}")
    flowops("deploy", "--branch", branch, "--repository", repo.origin_url, "--work-pool", pool)
    deployment = f"{ECOMMERCE}/staging-{branch_slug(branch)}"
    common = ["--param", f"table={table_name}", "--param", f"database_secret_block={database_block}"]

    source = f"http://reader:{canary['srcpass']}@127.0.0.1:9/2019-Oct.csv?sig={canary['srcsig']}"
    refused = flowops("run", deployment, "--param", f'sources=["{source}"]', *common, check=False)
    assert refused.returncode == 2  # never sent: Prefect would store the parameter as given
    credentials_file = tmp_path / "2019-Nov.csv"  # a credentials file passed as a month
    credentials_file.write_text(f"aws_secret_access_key={canary['file']}\n")
    worker_env = {**repo.env_for_runs, "PREFECT_API_KEY": canary["apikey"]}
    with Worker(repo.api_url, pool, repo.home / "worker", env=worker_env) as worker:
        bad = flowops("run", deployment, "--param", f'sources=["{credentials_file}"]', *common, "--wait",
                      "--timeout", "300", check=False)  # fmt: skip
        good = flowops("run", deployment, "--param", f'sources=["{sample_month}"]', *common, "--wait",
                       "--timeout", "300")  # fmt: skip
        assert bad.returncode == 1
        assert good.stdout.rstrip().endswith(": Completed")
        assert "not a CSV header (not shown)" in flow_run_logs(repo.api_url, run_id(bad.stdout), "not shown")
        flow_run_logs(repo.api_url, run_id(good.stdout), "rows loaded")
    outputs.append(worker.log())

    dumped = [
        api(repo.api_url, path, {"limit": 200})
        for path in ("deployments/filter", "flow_runs/filter", "task_runs/filter", "artifacts/filter",
                     "variables/filter", "work_pools/filter", "block_documents/filter")
    ]  # fmt: skip
    run_ids = [run_id(bad.stdout), run_id(good.stdout)]
    dumped.append(api(repo.api_url, "logs/filter", {"logs": {"flow_run_id": {"any_": run_ids}}, "limit": 200}))
    schema = data_environment_name("branch_", branch)  # the branch's runs load into its own environment
    with psycopg.connect(postgres_url) as connection:
        for table in (table_name, f"{table_name}_files", f"{table_name}_rejects"):
            dumped.append([str(row) for row in connection.execute(f"select * from {schema}.{table}")])
    drop_schema(postgres_url, schema)
    text = json.dumps(dumped) + "\n".join(outputs)
    for expected in (deployment.split("/")[1], database_block, git_block, run_ids[1]):  # the dump holds them
        assert expected in text
    assert len(dumped[-3]) == 50_000
    for name, value in canary.items():
        assert value not in text, name
