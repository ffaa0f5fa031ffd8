"""The `flowops` command: GitOps for Prefect deployments.

    flowops validate [--branch B]            check the deployment files; every problem, one line each
    flowops render --branch B [-o FILE]      the exact prefect.yaml deploy hands to Prefect
    flowops plan --branch B                  what deploy would create, update and delete
    flowops deploy --branch B                validate, render, deploy, prune: all or nothing
    flowops teardown --branch B              delete the branch's deployments, and nothing else
    flowops bootstrap                        work pools, the database Secret block, GitHub credentials
    flowops run FLOW/DEPLOYMENT [--param k=v] [--wait]
    flowops image tag | ensure               the flows' image: content tag; build and push only when missing
    flowops github-event                     in GitHub Actions: what the event calls for (see github/events.py)
    flowops schema [--markdown]              flowops.yaml's JSON Schema (for editors), or its reference
    flowops act EVENT [--action A]           run the workflows here with nektos/act, offline, before pushing
    flowops init [--name OWNER/NAME]         adopt flowops in a Prefect repository: flowops.yaml from what is there

Exit status: 0 ok, 1 problems found or operation failed, 2 usage error. Read commands take --json.
Prefect is imported only by the commands that need it, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flowops import __version__
from flowops.api.client import require_api_url  # light: Prefect itself is imported only when it is called
from flowops.errors import FlowopsError, UsageError

if TYPE_CHECKING:
    from flowops.api.http import PlainAPI
    from flowops.config.project import Project
    from flowops.deploy.gitops import GarbageResult, TeardownResult
    from flowops.deploy.plan import Plan
    from flowops.github.pull_request_comment import PullRequestComment
    from flowops.render.image import ImageRef
    from flowops.render.prefect_yaml import Overrides, Rendered

DEFAULT_GITHUB_BLOCK = "flowops-github"
# Where a branch deployment's policy is read when no --policy-ref is given: the remote's default branch, as a
# clone knows it, else the usual names of a default branch. Never anything the checked-out files name.
DEFAULT_POLICY_REFS = ("origin/HEAD", "origin/main", "main", "origin/master", "master")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowops",
        description="GitOps CI/CD for Prefect 3 flows: validate, render, plan, deploy, prune, teardown, bootstrap.",
    )
    parser.add_argument("--version", action="version", version=f"flowops {__version__}")
    parser.add_argument("-C", "--project", default=".", help="the repository root (default: the current directory)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = commands.add_parser("validate", help="check deployments/*/prefect.yaml before anything is deployed")
    validate.add_argument("--branch", help="only the file this branch deploys")
    validate.add_argument("--json", action="store_true")

    for name, help_text in (
        ("render", "write the exact prefect.yaml that deploy hands to Prefect"),
        ("plan", "what deploy would create, update and delete on the server"),
        ("deploy", "validate, render, prefect deploy --all, prune: all or nothing"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--branch", required=True, help="the git branch being deployed")
        command.add_argument("--sha", help="the commit (default: HEAD)")
        command.add_argument(
            "--repository", help="the git URL workers clone (default: GitHub's in Actions, else origin)"
        )
        command.add_argument("--work-pool", help="send every deployment to this work pool")
        command.add_argument("--image", help="the flows' image, for Docker work pools")
        if name == "render":
            command.add_argument("-o", "--output", help="write to this file instead of standard output")
        if name == "plan":
            command.add_argument("--json", action="store_true")
        command.add_argument("--work-pool-type", help="the type of --work-pool (deploy creates it if missing)")
        command.add_argument(
            "--policy-ref",
            help="the protected commit whose flowops.yaml decides what a branch deployment may use (default:"
            f" $FLOWOPS_POLICY_REF, else the first of {', '.join(DEFAULT_POLICY_REFS)} that exists)",
        )
        if name in ("plan", "deploy"):
            command.add_argument(
                "--rollback", action="store_true", help="allow deploying a commit older than the deployed one"
            )
        if name == "deploy":
            command.add_argument("--force", action="store_true", help="run prefect deploy even when nothing changed")
            command.add_argument("-v", "--verbose", action="store_true", help="show prefect deploy's own output")

    teardown = commands.add_parser("teardown", help="delete every deployment of a branch, and nothing else")
    teardown.add_argument("--branch", required=True)
    teardown.add_argument("--force", action="store_true", help="allow tearing down a protected branch (main, staging)")
    teardown.add_argument("--json", action="store_true")

    gc = commands.add_parser("gc", help="delete the branch deployments whose branch is gone from the repository")
    gc.add_argument("--repository", help="the git URL to list branches of (default: GitHub's in Actions, else origin)")
    gc.add_argument("--dry-run", action="store_true", help="only list what would be deleted")
    gc.add_argument("--json", action="store_true")

    bootstrap = commands.add_parser("bootstrap", help="create the work pools and blocks the deployments need")
    bootstrap.add_argument("--work-pool", help="only this work pool (default: every pool flowops.yaml declares)")
    bootstrap.add_argument("--type", dest="pool_type", help="the type of --work-pool (process, docker, ...)")
    bootstrap.add_argument(
        "--default",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a default job variable of a new --work-pool, e.g. network_mode=host (VALUE is JSON if it parses)",
    )
    bootstrap.add_argument("--github-block", default=DEFAULT_GITHUB_BLOCK, help="saved from $FLOWOPS_GIT_TOKEN")
    bootstrap.add_argument(
        "--environment", help="save this environment's Secret blocks (flowops.yaml environments.NAME.secrets)"
    )
    bootstrap.add_argument(
        "--allow-missing", action="store_true", help="save the secrets that are set, skip the others (else: exit 1)"
    )

    image = commands.add_parser("image", help="the flows' image: its content tag; build and push when missing")
    image_commands = image.add_subparsers(dest="image_command", metavar="SUBCOMMAND", required=True)
    image_tag_command = image_commands.add_parser("tag", help="print the content tag (or --ref: name:tag)")
    image_tag_command.add_argument("--ref", action="store_true", help="print the whole reference, name:tag")
    ensure = image_commands.add_parser("ensure", help="build and push the image unless the registry has its tag")
    ensure.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="BASE_IMAGE defaults to $FLOWOPS_BASE_IMAGE",
    )
    ensure.add_argument(
        "--if-declared",
        action="store_true",
        help="without an image in flowops.yaml, say so and succeed (CI's image job)",
    )
    for command in (image_tag_command, ensure):
        command.add_argument("--name", help="registry/repository (default: $FLOWOPS_IMAGE_NAME, else flowops.yaml's)")
        command.add_argument("--json", action="store_true")

    event = commands.add_parser("github-event", help="in GitHub Actions: deploy, tear down or run as the event says")
    event.add_argument(
        "--check", action="store_true", help="only decide: exit 1 if the event is refused; change nothing"
    )
    event.add_argument("--repository", help="the git URL workers clone (default: GitHub's)")
    event.add_argument("--work-pool", help="send every deployment to this work pool")

    run = commands.add_parser("run", help="trigger a run of a deployment; with --wait, follow it to its end")
    run.add_argument("deployment", help="flow/deployment, as Prefect names it")
    run.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="VALUE is JSON if it parses")
    run.add_argument("--wait", action="store_true", help="follow the run; exit 0 only if it Completes")
    run.add_argument("--timeout", type=float, help="with --wait: give up after this many seconds")

    act = commands.add_parser(
        "act", help="run this repository's workflows here with nektos/act, offline, before pushing"
    )
    act.add_argument("event", choices=["push", "pull_request", "delete", "schedule", "workflow_dispatch"])
    act.add_argument("--workflow", default="deploy.yml", help="the file under .github/workflows (default: deploy.yml)")
    act.add_argument("--action", default="opened", help="pull_request: opened, synchronize, reopened or closed")
    act.add_argument("--input", action="append", default=[], metavar="KEY=VALUE", help="workflow_dispatch's inputs")
    act.add_argument("--secret-file", help="KEY=VALUE lines: the secrets the jobs read (PREFECT_API_URL, ...)")
    act.add_argument("--job", help="only this job")

    init = commands.add_parser("init", help="adopt flowops here: write deployments/flowops.yaml from what is there")
    init.add_argument(
        "--name", dest="project_name", help="flowops.yaml's project: owner/name (default: the origin remote's)"
    )
    init.add_argument("--production-branch", default="main")
    init.add_argument("--staging-branch", default="staging")
    init.add_argument("--force", action="store_true", help="overwrite files that are there with other content")

    schema = commands.add_parser("schema", help="flowops.yaml's JSON Schema (for editors), or its reference")
    schema.add_argument("--markdown", action="store_true", help="every key, type, default and meaning, and an example")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    from flowops import timings

    timings.record("start (the interpreter, flowops' imports)", timings.started_seconds_ago())
    try:
        return _command(args)
    finally:
        timings.report(timings.started_seconds_ago())


def _command(args: argparse.Namespace) -> int:
    """Run the command, and turn its failures into one line each and the exit status they mean."""
    from flowops.errors import DeployFailed, ValidationFailed
    from flowops.gitrepo import without_userinfo as shown  # an error may quote a URL with a password: never printed

    try:
        return COMMANDS[args.command](args)
    except UsageError as error:
        print(shown(f"flowops {args.command}: {error}"), file=sys.stderr)
        return error.exit_code
    except ValidationFailed as failure:
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "problems": [shown(str(p)) for p in failure.problems]}, indent=2))
        for problem in failure.problems:
            print(shown(f"error: {problem}"), file=sys.stderr)
        print(f"{len(failure.problems)} problem(s); nothing was changed on the server", file=sys.stderr)
        return failure.exit_code
    except DeployFailed as failure:
        print(shown(failure.output), file=sys.stderr)
        print(shown(f"error: {failure}"), file=sys.stderr)
        return failure.exit_code
    except FlowopsError as error:
        print(shown(f"error: {error}"), file=sys.stderr)
        return error.exit_code


def _project(args: argparse.Namespace) -> Project:
    from flowops.config.project import load_project

    return load_project(Path(args.project))


def _checked_branch(branch: str) -> str:
    from flowops.render.branches import branch_slug

    try:
        branch_slug(branch)
    except ValueError as error:
        raise UsageError(str(error)) from None
    return branch


def _rendered(args: argparse.Namespace, project: Project, deploying: bool = True) -> tuple[Project, Rendered]:
    """The file `--branch` deploys, with the command line's overrides, and the project under its policy (see
    `_render`)."""
    from flowops.render.prefect_yaml import Overrides

    overrides = Overrides(args.repository, args.work_pool, args.image, work_pool_type=args.work_pool_type)
    return _render(project, args.branch, args.sha, overrides, deploying, args.policy_ref)


def _render(
    project: Project,
    branch: str,
    sha: str | None,
    overrides: Overrides,
    deploying: bool = True,
    policy_ref: str | None = None,
) -> tuple[Project, Rendered]:
    """The file the branch deploys, and the project under the policy it deploys by: every check after this
    must be given that project, not the one loaded. When `deploying` (plan and deploy), the files read must be
    exactly the commit's: the tree is clean and `sha`, if given, is the checked-out commit. A branch deployment's
    environment, pools and blocks are the policy's (`policy_ref`, see `_under_policy`)."""
    from dataclasses import replace

    from flowops.gitrepo import GitError, default_repository, head_sha, in_commit, is_clean, resolve_sha
    from flowops.render.prefect_yaml import render

    branch = _checked_branch(branch)
    project = _under_policy(project, branch, policy_ref)
    sha = resolve_sha(project.root, sha)
    if deploying:
        head = head_sha(project.root)
        if sha != head:
            raise GitError(
                f"--sha {sha[:12]} is not the checked-out commit ({(head or 'none')[:12]}): the files deployed would"
                " not be that commit's; check it out first"
            )
        if not is_clean(project.root):
            raise GitError(
                f"{project.root} has uncommitted changes: a deployment pinned to {sha[:12]} would run other code"
                " than it was checked with; commit or stash them"
            )
        deployed_file = project.target(branch).file.path
        if not in_commit(project.root, sha, deployed_file):
            raise GitError(f"{deployed_file} is not in commit {sha[:12]} (untracked?): only committed files deploy")
    repository = overrides.repository or default_repository(project.root)
    return project, render(project, branch, sha, replace(overrides, repository=repository))


def _under_policy(project: Project, branch: str, policy_ref: str | None) -> Project:
    """`project` as `branch` deploys it. The policy, read from a protected commit, says whether `branch` is
    protected: a protected branch deploys with its own files (it is reviewed), any other under the policy."""
    from flowops.gitrepo import GitError, first_commit_of

    candidates = [policy_ref] if policy_ref else [os.environ.get("FLOWOPS_POLICY_REF") or "", *DEFAULT_POLICY_REFS]
    ref = first_commit_of(project.root, [c for c in candidates if c])
    if ref is None:
        raise GitError(
            f"no protected commit to read the policy from ({', '.join(c for c in candidates if c)} do not exist):"
            " pass --policy-ref with the default branch (e.g. origin/main); nothing was changed"
        )
    governed = project.with_policy_from(ref)
    if branch not in governed.protected_branches():
        return governed
    own = project.target(branch)
    if own.is_branch_deployment or own.environment != governed.target(branch).environment:
        raise GitError(
            f"branch {branch!r} deploys environment {governed.target(branch).environment!r} by {ref}'s flowops.yaml,"
            " but not by the checked-out one: merge the change of environments first; nothing was changed"
        )
    return project


def cmd_validate(args: argparse.Namespace) -> int:
    from flowops.checks.validate import validate_project

    project = _project(args)
    branch = _checked_branch(args.branch) if args.branch else None
    problems = validate_project(project, branch)
    files = [project.target(branch).file.path] if branch else [file.path for file in project.files()]
    automations_file = project.automations_file()
    if not branch and automations_file:
        files.append(automations_file)
    if args.json:
        print(json.dumps({"ok": not problems, "files": files, "problems": [str(p) for p in problems]}, indent=2))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not args.json:
        verdict = f"{len(problems)} problem(s)" if problems else "ok"
        print(f"{verdict}: {', '.join(files)}", file=sys.stderr if problems else sys.stdout)
    return 1 if problems else 0


def cmd_render(args: argparse.Namespace) -> int:
    from flowops.deploy.gitops import check_rendered
    from flowops.errors import ValidationFailed

    project, rendered = _rendered(args, _project(args), deploying=False)
    problems = check_rendered(project, rendered)
    if problems:
        raise ValidationFailed(problems)
    if args.output:
        Path(args.output).write_text(rendered.as_yaml())
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(rendered.as_yaml())
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from flowops.timings import phase

    with phase("render"):
        project, rendered = _rendered(args, _project(args))
    return _plan(project, rendered, args.rollback, args.json)


def _plan(project: Project, rendered: Rendered, rollback: bool = False, as_json: bool = False) -> int:
    """Plan and report. "Nothing to change" is answered without Prefect when the record of the last deploy says so
    (deploy/unchanged.py); a rollback's plan and the JSON one always read the server in full."""
    from flowops.timings import phase

    plain = _plain_api()
    if plain and not (rollback or as_json):
        with phase("nothing-changed check"):
            count = _unchanged_count(plain, project, rendered)
        if count is not None:
            _report_unchanged(
                f"Plan for branch {rendered.target.branch!r} @ {rendered.sha[:8]}: nothing to change", count
            )
            return 0
    with phase("importing Prefect"):
        import prefect  # noqa: F401 - here, to count it: connect() would import it anyway

    from flowops.api.client import connect
    from flowops.deploy.gitops import plan
    from flowops.deploy.report import append_step_summary, plan_markdown, plan_text

    with connect() as server:
        the_plan = plan(server, project, rendered, rollback)
    print(json.dumps(the_plan.as_dict(), indent=2) if as_json else plan_text(the_plan))
    append_step_summary(plan_markdown(the_plan, f"flowops plan: {the_plan.branch}"))
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from flowops.timings import phase

    with phase("render"):
        project, rendered = _rendered(args, _project(args))
    return _deploy_commit(project, rendered, args.force, args.verbose, args.rollback)


def _deploy_commit(
    project: Project, rendered: Rendered, force: bool = False, verbose: bool = False, rollback: bool = False
) -> int:
    """Deploy by the shortest way that leaves the server as the whole way would: without Prefect when the record
    of the last deploy shows nothing changed (deploy/unchanged.py) or only the commit moves (deploy/pin_moves.py),
    else the whole way (validate, plan, `prefect deploy`, under the lock). Forced deploys and rollbacks always go
    the whole way. `flowops deploy`, and the GitHub events that deploy without a pull request, come here."""
    from flowops.timings import phase

    plain = _plain_api()
    if plain and not (force or rollback):
        with phase("nothing-changed check"):
            count = _unchanged_count(plain, project, rendered)
        if count is not None:
            _report_unchanged(
                f"Deployed branch {rendered.target.branch!r} @ {rendered.sha[:8]}: nothing changed", count
            )
            print("nothing to deploy: the server already matches this commit")
            return 0
        if _move_pins(plain, project, rendered) is not None:
            return 0
    return _deploy(project, rendered, force, verbose, rollback=rollback)


def _move_pins(plain: PlainAPI, project: Project, rendered: Rendered) -> int | None:
    """A commit that changes no deployment's definition, deployed without Prefect (deploy/pin_moves.py): how many
    moved, said on the terminal and in the step summary; None when it takes the whole way."""
    from flowops.deploy.pin_moves import move_pins

    moved = move_pins(plain, project, rendered, os.environ, on_moved=lambda: _record_deploy(project, rendered))
    if moved is None:
        return None
    _report_without_prefect(
        f"Deployed branch {rendered.target.branch!r} @ {rendered.sha[:8]}: {moved} deployment(s) moved",
        f"{moved} deployment(s) only moved to this commit (their pin, tags and version, written without Prefect):"
        " nothing that defines them changed since the last deploy",
    )
    return moved


def _report_unchanged(headline: str, count: int) -> None:
    """What the nothing-changed path says, on the terminal and in the job's step summary."""
    _report_without_prefect(
        headline, f"{count} deployment(s) as the last deploy of this commit left them (read without Prefect)"
    )


def _report_without_prefect(headline: str, detail: str) -> None:
    """What a path that took no plan says, on the terminal and in the job's step summary."""
    from flowops.deploy.report import append_step_summary

    print(f"{headline}\n{detail}")
    append_step_summary(f"### {headline}\n\n{detail}.\n")


def _plain_api() -> PlainAPI | None:
    """The API without Prefect when the environment configures it plainly (see api/http.py); else Prefect's
    settings must name one (`require_api_url`), as for every command that acts on a server."""
    from flowops.api.http import plain_api

    plain = plain_api()
    if plain is None:
        require_api_url()
    return plain


def _unchanged_count(plain: PlainAPI, project: Project, rendered: Rendered) -> int | None:
    from flowops.deploy.unchanged import unchanged_count

    return unchanged_count(plain, project, rendered, os.environ)


def _record_deploy(project: Project, rendered: Rendered) -> None:
    """Record the deploy for the next one's "nothing changed" (deploy/unchanged.py); a failure only warns: the
    next deploy then takes the whole way."""
    from flowops.api.http import plain_api
    from flowops.api.server import PrefectAPIError
    from flowops.deploy.unchanged import record_deploy
    from flowops.timings import phase

    plain = plain_api()
    if plain is None:
        return
    try:
        with phase("recording the deploy"):
            record_deploy(plain, project, rendered, os.environ)
    except PrefectAPIError as error:
        print(f"warning: recording the deploy for the next one: {error}", file=sys.stderr)


def _deploy(
    project: Project,
    rendered: Rendered,
    force: bool = False,
    verbose: bool = False,
    comment: PullRequestComment | None = None,
    rollback: bool = False,
    samples: bool = False,
) -> int:
    """Deploy and report: terminal, step summary and, given a PullRequestComment, the plan then the result on it.
    With `samples` (a pull request's deploy), then run its sample runs (samples.py): a failed one fails it."""
    from flowops.timings import phase

    with phase("importing Prefect"):
        import prefect  # noqa: F401 - here, to count it: connect() would import it anyway

    from flowops.api.client import connect
    from flowops.deploy.gitops import deploy
    from flowops.deploy.report import append_step_summary, failure_markdown, plan_markdown, plan_text
    from flowops.errors import DeployFailed, ValidationFailed

    where = f"{rendered.target.branch} @ {rendered.sha[:8]}"

    def show_plan(the_plan: Plan) -> None:
        _comment(comment, plan_markdown(the_plan, f"flowops plan: {where}") + "Deploying...\n")

    try:
        with connect() as server:
            result = deploy(
                server, project, rendered, force, show_plan if comment else None, rollback,
                on_deployed=lambda: _record_deploy(project, rendered),
            )  # fmt: skip
    except ValidationFailed as failure:
        problems = [str(problem) for problem in failure.problems]
        _comment(comment, failure_markdown(f"flowops deploy refused: {where}", problems, "Nothing was changed."))
        raise
    except DeployFailed as failure:  # its message says whether the server was put back
        _comment(comment, failure_markdown(f"flowops deploy failed: {where}", [str(failure)], "See the job's log."))
        raise
    if verbose and result.prefect_output:
        print(result.prefect_output, file=sys.stderr)
    for pool in result.pools_created:
        print(f"created work pool {pool!r}")
    print(plan_text(result.plan).replace("Plan for", "Deployed", 1))
    if result.moved:
        print(f"{result.moved} deployment(s) only moved to this commit: their pin, tags and version, through the API")
    if not result.deployed:
        print("nothing to deploy: the server already matches this commit")
    summary = plan_markdown(result.plan, f"flowops deploy: {where}")
    if not samples:
        append_step_summary(summary)
        _comment(comment, summary + "\nDeployed.\n")
        return 0
    return _sample_runs(project, rendered, result.plan, summary + "\nDeployed.\n", comment)


def _sample_runs(
    project: Project, rendered: Rendered, plan: Plan, deployed: str, comment: PullRequestComment | None
) -> int:
    """Run the sample runs of a branch deploy's `plan` and show them under `deployed` (the deploy's markdown)."""
    from prefect.settings import PREFECT_UI_URL

    from flowops.api.client import connect
    from flowops.deploy.report import append_step_summary, samples_markdown, samples_text
    from flowops.deploy.samples import run_samples

    def show_start(names: list[str]) -> None:
        print(f"sample runs: {', '.join(names)}", flush=True)
        _comment(comment, deployed + f"\nSample runs of {', '.join(f'`{n}`' for n in names)}: running...\n")

    with connect() as server:
        report = run_samples(server, project, rendered, plan, on_start=show_start)
    if not report.runs and report.reset is None:
        append_step_summary(deployed)
        _comment(comment, deployed)
        return 0
    markdown = deployed + "\n" + samples_markdown(report, PREFECT_UI_URL.value() or None)
    append_step_summary(markdown)
    _comment(comment, markdown)
    print(samples_text(report))
    if not report.succeeded:
        print("error: a sample run of the pull request did not succeed (see above)", file=sys.stderr)
        return 1
    return 0


def _comment(comment: PullRequestComment | None, markdown: str) -> None:
    """Show `markdown` on the pull request. A comment that cannot be written warns: the deploy is what matters."""
    from flowops.github.pull_request_comment import CommentError

    if comment is None:
        return
    try:
        comment.show(markdown)
    except CommentError as error:
        print(f"warning: {error}", file=sys.stderr)


def cmd_teardown(args: argparse.Namespace) -> int:
    require_api_url()
    return _teardown(_project(args), args.branch, args.force, args.json)


def _teardown(
    project: Project, branch: str, force: bool = False, as_json: bool = False, policy_ref: str | None = None
) -> int:
    from flowops.api.client import connect
    from flowops.deploy.gitops import teardown

    # what a branch's data environment is called, and how it is dropped, are the policy's to say
    project = _under_policy(project, _checked_branch(branch), policy_ref)
    with connect() as server:
        result = teardown(server, project, branch, force=force)
    names = sorted(d.full_name for d in result.deleted)
    if as_json:
        print(json.dumps({"branch": branch, "deleted": names, **_cleanup_report(result)}, indent=2))
    else:
        _print_cleanups(result)
        for name in names:
            print(f"deleted {name}")
        print(f"{len(names)} deployment(s) of branch {branch!r} deleted")
    return 0 if result.complete else 1


def _cleanup_report(result: TeardownResult | GarbageResult) -> dict[str, Any]:
    return {
        "data": [
            {"environment": c.environment, "deployment": c.deployment, "dropped": c.dropped, "message": c.message}
            for c in result.cleanups
        ],
        "kept": sorted(d.full_name for d in result.kept),
        "cancelled_runs": result.cancelled,
        "problems": result.problems,
    }


def _print_cleanups(result: TeardownResult | GarbageResult, dry_run: bool = False) -> None:
    for run in result.cancelled:
        print(f"would cancel {run}: it has not ended" if dry_run else f"cancelled {run}: it had not ended")
    for problem in result.problems:
        print(f"error: {problem}", file=sys.stderr)
    for cleanup in result.cleanups:
        if cleanup.dropped:
            print(f"dropped data environment {cleanup.environment} ({cleanup.deployment}: {cleanup.message})")
        else:
            print(f"error: data environment {cleanup.environment} NOT dropped: {cleanup.message}", file=sys.stderr)
    for deployment in result.kept:
        print(f"kept {deployment.full_name}: `flowops gc` runs it again once the branch is gone", file=sys.stderr)


def cmd_gc(args: argparse.Namespace) -> int:
    require_api_url()
    return _gc(_project(args), args.repository, args.dry_run, args.json)


def _gc(project: Project, repository: str | None, dry_run: bool, as_json: bool) -> int:
    from flowops.api.client import connect
    from flowops.deploy.gitops import collect_garbage
    from flowops.gitrepo import default_repository, without_userinfo

    repository = repository or default_repository(project.root) or "origin"
    # a private repository's branches: the token workers clone with (in Actions, the job's own token will do)
    with connect() as server:
        result = collect_garbage(server, project, repository, dry_run, os.environ.get("FLOWOPS_GIT_TOKEN") or None)
    names = sorted(deployment.full_name for deployment in result.deleted)
    shown = without_userinfo(repository)
    if as_json:
        report = {"repository": shown, "dry_run": dry_run, "deleted": names, "would_drop": result.would_drop}
        print(json.dumps({**report, **_cleanup_report(result)}, indent=2))
        return 0 if result.complete else 1
    for environment in result.would_drop:
        print(f"would drop data environment {environment} (its branch is gone from {shown})")
    _print_cleanups(result, dry_run)
    for name in names:
        print(f"{'would delete' if dry_run else 'deleted'} {name} (its branch is gone from {shown})")
    done = "would be deleted (dry run)" if dry_run else "deleted"
    print(f"{len(names)} branch deployment(s) whose branch is gone {done}")
    return 0 if result.complete else 1


def cmd_bootstrap(args: argparse.Namespace) -> int:
    project = _project(args)
    if bool(args.work_pool) != bool(args.pool_type):
        raise UsageError("--work-pool and --type go together")
    defaults = parse_pairs(args.default, "--default")
    if defaults and not args.work_pool:
        raise UsageError("--default goes with --work-pool")
    if args.allow_missing and not args.environment:
        raise UsageError("--allow-missing goes with --environment")
    pools = {args.work_pool: args.pool_type} if args.work_pool else None
    return _bootstrap(project, pools, defaults, args.github_block, args.environment, args.allow_missing)


def _bootstrap(
    project: Project,
    pools: dict[str, str] | None,
    defaults: dict[str, Any],
    github_block: str,
    environment: str | None = None,
    allow_missing: bool = False,
) -> int:
    from flowops.api.client import connect
    from flowops.deploy.gitops import bootstrap

    environ = _with_passed_secrets(project, os.environ)
    with connect() as server:
        for line in bootstrap(server, project, pools, defaults, github_block, environ, environment, allow_missing):
            print(line)
    return 0


def _with_passed_secrets(project: Project, environ: Mapping[str, str]) -> dict[str, str]:
    """`environ`, plus each secret a dispatched bootstrap was given in $FLOWOPS_SECRETS (the job's secrets as JSON,
    flowops.yml's manual job) that flowops.yaml names as a Secret block's variable and the environment lacks. No
    other name is taken from it, and $FLOWOPS_SECRETS itself is dropped."""
    merged = {key: value for key, value in environ.items() if key != "FLOWOPS_SECRETS"}
    passed = environ.get("FLOWOPS_SECRETS") or ""
    if not passed:
        return merged
    try:
        secrets = json.loads(passed)
    except json.JSONDecodeError:
        raise UsageError("$FLOWOPS_SECRETS is not JSON (flowops.yml passes toJSON(secrets))") from None
    declared = {variable for env in project.config.environments.values() for variable in env.secrets.values()}
    for variable in sorted(declared):
        value = secrets.get(variable) if isinstance(secrets, dict) else None
        if isinstance(value, str) and value and not merged.get(variable):
            merged[variable] = value
    return merged


def _image_ref(args: argparse.Namespace, project: Project) -> ImageRef:
    from flowops.render.image import ImageRef, default_image_ref

    ref = default_image_ref(project)
    return ImageRef(args.name.lower(), ref.tag) if args.name else ref


def cmd_image(args: argparse.Namespace) -> int:
    from flowops.render.image import ImageError, base_image_override, ensure_image

    project = _project(args)
    if project.config.image is None and getattr(args, "if_declared", False):
        print("flowops.yaml declares no image: nothing to build")
        return 0
    if project.config.image is None:
        raise ImageError("flowops.yaml declares no image")
    if args.image_command != "tag":
        from flowops.extras import require

        require("docker", "flowops image ensure (builds and pushes with prefect-docker)")
    ref = _image_ref(args, project)
    if args.image_command == "tag":
        if args.json:
            print(json.dumps({"name": ref.name, "tag": ref.tag, "ref": str(ref)}))
        else:
            print(str(ref) if args.ref else ref.tag)
        return 0
    base_image = base_image_override()
    build_args = {"BASE_IMAGE": base_image} if base_image else {}
    build_args.update(parse_pairs(args.build_arg, "--build-arg", json_values=False))
    username, password = _registry_login(project, ref)
    result = ensure_image(project.root, ref, project.config.image.dockerfile, build_args, username, password)
    if args.json:
        print(json.dumps({"ref": str(result.ref), "built": result.built}))
    else:
        print(f"built and pushed {result.ref}" if result.built else f"present: {result.ref} (nothing built)")
    return 0


def _registry_login(project: Project, ref: ImageRef) -> tuple[str | None, str | None]:
    """$REGISTRY_USERNAME / $REGISTRY_PASSWORD; without them, the block workers pull with (flowops.yaml
    image.registry_credentials), when a Prefect server is configured: one source of credentials serves both."""
    from flowops.api.client import connect
    from flowops.render.image import ImageError

    username, password = os.environ.get("REGISTRY_USERNAME"), os.environ.get("REGISTRY_PASSWORD")
    block = project.config.image.registry_credentials if project.config.image else None
    if username or password or not block:
        return username, password
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return None, None
    with connect() as server:
        login = server.read_registry_credentials(block)
    if login is None:
        return None, None
    if login.registry_url.removeprefix("https://").rstrip("/") != ref.login_registry:
        raise ImageError(
            f"block {block!r} holds credentials for {login.registry_url}, not {ref.login_registry}: they were not"
            " sent; run `flowops bootstrap` with the image's registry credentials"
        )
    print(f"registry credentials: block {block!r}", file=sys.stderr)
    return login.username, login.password


def parse_pairs(pairs: list[str], option: str, json_values: bool = True) -> dict[str, Any]:
    """The `KEY=VALUE` arguments of `option`. With `json_values`, VALUE is read as JSON when it parses (`2`,
    `["a"]`, `null`), else taken as a string; without, it is always the string."""
    parsed: dict[str, Any] = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise UsageError(f"{option} {pair!r}: expected KEY=VALUE")
        try:
            parsed[key] = json.loads(value) if json_values else value
        except json.JSONDecodeError:
            parsed[key] = value
    return parsed


def cmd_run(args: argparse.Namespace) -> int:
    from flowops.config.project import CONFIG_FILE

    # in a flowops repository, a run of its deployments is held to their environment's blocks
    project = _project(args) if (Path(args.project) / "deployments" / CONFIG_FILE).exists() else None
    return _run(args.deployment, parse_pairs(args.param, "--param"), args.wait, args.timeout, project)


def _run(
    deployment: str, parameters: dict[str, Any], wait: bool, timeout: float | None, project: Project | None = None
) -> int:
    from flowops.api.client import connect
    from flowops.checks.validate import run_parameter_problems
    from flowops.deploy.gitops import refuse_other_environments_blocks

    if deployment.count("/") != 1:
        raise UsageError(f"{deployment!r}: expected FLOW/DEPLOYMENT, e.g. ecommerce-events/production")
    problems = run_parameter_problems(parameters)
    if problems:
        raise UsageError(
            f"parameter {problems[0]}: Prefect stores run parameters in plain text; give the flow its credentials"
            " through a Secret block or the worker's environment (nothing was started)"
        )

    def show(run_name: str, state: str) -> None:
        print(f"{run_name}: {state}", flush=True)

    with connect() as server:
        if project is not None:
            refuse_other_environments_blocks(server, project, deployment, parameters)
        result = server.run_deployment(deployment, parameters, wait, timeout, on_state=show)
    print(f"flow run {result.flow_run_name} ({result.flow_run_id}): {result.state_name}")
    if not wait:
        return 0
    if not result.completed and result.message:  # one line, however Prefect or the worker wrapped it
        print(f"error: {' '.join(result.message.split())}", file=sys.stderr)
    return 0 if result.completed else 1


def cmd_init(args: argparse.Namespace) -> int:
    from flowops.init import init

    root = Path(args.project).resolve()
    result = init(root, args.project_name, _server_pool_type(), args.force, args.production_branch, args.staging_branch)
    for path in result.written:
        print(f"wrote {path}")
    for path in result.unchanged:
        print(f"unchanged {path}")
    for path in result.kept:
        print(f"error: {path} is there with other content: kept (pass --force to overwrite it)", file=sys.stderr)
    print("\nStill to do, which only you can:" if result.todo else "")
    for line in result.todo:
        print(f"- {line}")
    if result.complete:
        print("\nthen: flowops validate")
    return 0 if result.complete else 1


def _server_pool_type() -> Callable[[str], str | None]:
    """A work pool's type as the configured Prefect server has it; without a reachable server, unknown."""
    from prefect.settings import PREFECT_API_URL

    if not PREFECT_API_URL.value():
        return lambda pool: None
    from flowops.api.client import connect
    from flowops.api.server import PrefectAPIError

    types: dict[str, str | None] = {}

    def pool_type(pool: str) -> str | None:
        if pool not in types:
            try:
                with connect() as server:
                    found = server.read_work_pool(pool)
                types[pool] = found.type if found else None
            except PrefectAPIError as error:
                print(f"warning: {error}", file=sys.stderr)
                types[pool] = None
        return types[pool]

    return pool_type


def cmd_act(args: argparse.Namespace) -> int:
    import subprocess

    from flowops.github.act import act_command, find_act, installed_reusable_workflows, new_folder, prepare

    root = Path(args.project).resolve()
    inputs = {key: str(value) for key, value in parse_pairs(args.input, "--input", json_values=False).items()}
    folder = new_folder()
    server, mappings, payload = prepare(root, args.event, folder, args.action, inputs, installed_reusable_workflows())
    command = act_command(find_act(), args.event, args.workflow, server, mappings, payload)
    if args.secret_file:
        command += ["--secret-file", str(Path(args.secret_file).resolve())]
    if args.job:
        command += ["-j", args.job]
    print(
        f"flowops act: {args.event} on {args.workflow}, offline (payload, mirror and stand-ins in {folder})", flush=True
    )
    return subprocess.run(command, cwd=root, check=False).returncode


def cmd_schema(args: argparse.Namespace) -> int:
    from flowops.reference import json_schema_text, reference_markdown

    sys.stdout.write(reference_markdown() if args.markdown else json_schema_text())
    return 0


def cmd_github_event(args: argparse.Namespace) -> int:
    """Do what the GitHub Actions event in GITHUB_EVENT_NAME / GITHUB_EVENT_PATH calls for (see github/events.py)."""
    from flowops.github.events import (
        BOOTSTRAP,
        DEPLOY,
        GC,
        PLAN,
        ROLLBACK,
        RUN,
        SKIP,
        TEARDOWN,
        EventError,
        decide,
        read_event,
    )

    project = _project(args)
    event, payload = read_event()
    decision = decide(
        event,
        payload,
        project.protected_branches(),
        lambda branch: project.target(branch).environment,
        project.config.branch_deployments_from,
    )
    subject = decision.branch or decision.deployment or ""
    print(f"{event}: {decision.operation} {subject} ({decision.reason})".replace("  ", " "), flush=True)
    if args.check or decision.operation == SKIP:
        return 0  # SKIP: the decision line above says why
    _plain_api()  # a server must be named, as for every command that acts on one (without Prefect when plain)
    from flowops.render.prefect_yaml import Overrides

    overrides = Overrides(args.repository, args.work_pool)

    def given(value: str | None, what: str) -> str:
        if not value:  # decide() always sets what its operation needs: this guards a change to it
            raise EventError(f"{event}: {decision.operation} without a {what}")
        return value

    policy = decision.policy_ref
    if decision.operation == PLAN:
        return _plan(*_render(project, given(decision.branch, "branch"), decision.sha, overrides, True, policy))
    if decision.operation == DEPLOY:
        from flowops.github.pull_request_comment import PullRequestComment

        governed, rendered = _render(project, given(decision.branch, "branch"), decision.sha, overrides, True, policy)
        if decision.pull_request is None:  # a push to a protected branch, a dispatched deploy
            return _deploy_commit(governed, rendered)
        # A pull request's deploy always goes the whole way: its comment shows the plan, and its sample runs
        # follow from what the plan created or updated.
        comment = PullRequestComment.from_environment(decision.pull_request)
        if comment is None:
            print(
                f"pull request #{decision.pull_request}: no comment (GITHUB_TOKEN is not set: give the step"
                " `GITHUB_TOKEN: ${{ github.token }}` and the job `pull-requests: write`); the step summary has it all",
                flush=True,
            )
        return _deploy(governed, rendered, comment=comment, samples=True)
    if decision.operation == ROLLBACK:
        from flowops.gitrepo import require_commit_of_branch

        branch, sha = given(decision.branch, "branch"), given(decision.sha, "commit")
        require_commit_of_branch(project.root, sha, branch)
        return _deploy(*_render(project, branch, sha, overrides, True, policy), rollback=True)
    if decision.operation == TEARDOWN:
        return _teardown(project, given(decision.branch, "branch"), policy_ref=policy)
    if decision.operation == GC:
        return _gc(project, args.repository, dry_run=False, as_json=False)
    if decision.operation == RUN:
        return _run(given(decision.deployment, "deployment"), decision.parameters, decision.wait, None, project)
    if decision.operation == BOOTSTRAP:
        return _bootstrap(project, None, {}, DEFAULT_GITHUB_BLOCK, decision.environment)
    return 0


COMMANDS = {
    "validate": cmd_validate,
    "render": cmd_render,
    "plan": cmd_plan,
    "deploy": cmd_deploy,
    "teardown": cmd_teardown,
    "gc": cmd_gc,
    "bootstrap": cmd_bootstrap,
    "image": cmd_image,
    "run": cmd_run,
    "github-event": cmd_github_event,
    "schema": cmd_schema,
    "init": cmd_init,
    "act": cmd_act,
}


if __name__ == "__main__":
    sys.exit(main())
