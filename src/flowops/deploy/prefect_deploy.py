"""The only place that runs `prefect deploy`: Prefect's own deploy of a rendered file, in this process.

Two ways, the same code of Prefect's writing every deployment:

- the command itself, `prefect --no-prompt deploy --all --prefect-file F`, through Prefect's CLI entry point
  (`FLOWOPS_PREFECT_DEPLOY=cli`, or when Prefect's internals are not those of the 3.9 series this was measured on);
- by default, Prefect's `_run_single_deploy` for each deployment of the file, two at a time on one client,
  with what Prefect recomputes for every deployment computed once: the flow of an entrypoint (its script run again
  each time), its parameter schema (three times per deployment), the version inferred from git or CI, the work
  pool and its workers (read twice per deployment), the flow's id; and the file is parsed by libyaml rather than
  by PyYAML's Python parser (0.2 s at 100 deployments). `prefect deploy --all` makes a client per call
  (five per deployment, each loading the CA bundle: 30% of its time here). What the server stores is the same:
  tests/e2e/test_deploy.py compares every field with a bare `prefect deploy --all` of the same file.
  Two at a time (DEPLOYS_AT_ONCE), one at a time when the file has build or push steps. Not more: on SQLite (the
  embedded default) 4 at a time took 6.2 s for 11 deployments against 1.6 s one by one (the server answers 503 to
  writes that queue up, and the client's retries wait).

Either way it runs in this process rather than in a child: flowops has already imported Prefect and the flows'
modules to validate them, and a second interpreter would pay those imports again (about 2 s here).
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
from collections.abc import Awaitable, Callable
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Deployments Prefect's deploy writes at once: the client's own work for one overlaps the server's for the other.
# Measured at 101 deployments, runs alternating: on PostgreSQL 9.6 s two at a time against 11.4 s one at a time
# (medians of 7; three at a time no better); on SQLite 15.6 s against 19.7 s (medians of 3). Four at a time drew
# SQLite's 503s (its server refuses writes that queue up).
DEPLOYS_AT_ONCE = 2


@dataclass(frozen=True)
class DeployOutcome:
    exit_code: int
    output: str

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0


def prefect_deploy_all(prefect_file: Path, project_root: Path) -> DeployOutcome:
    """Deploy every deployment of `prefect_file` as `prefect --no-prompt deploy --all --prefect-file F` would, from
    the project root (entrypoints resolve against the working directory). Prefect's console output is captured and
    returned (the caller decides where it goes)."""
    output = io.StringIO()
    saved_argv, saved_cwd = sys.argv, Path.cwd()
    exit_code = 0
    try:
        os.chdir(project_root)
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            if os.environ.get("FLOWOPS_PREFECT_DEPLOY") == "cli" or not _internals_known():
                sys.argv = ["prefect", "--no-prompt", "deploy", "--all", "--prefect-file", str(prefect_file)]
                from prefect.cli import app

                app()
            else:
                exit_code = _deploy_each_once(prefect_file, output)
    except SystemExit as exit:
        exit_code = exit.code if isinstance(exit.code, int) else (0 if exit.code is None else 1)
    except Exception as error:  # noqa: BLE001 - any failure inside Prefect's deploy is a failed deploy
        exit_code = 1
        output.write(f"{type(error).__name__}: {error}\n")
    finally:
        sys.argv = saved_argv
        os.chdir(saved_cwd)
    return DeployOutcome(exit_code, output.getvalue())


def _internals_known() -> bool:
    """Whether Prefect's deploy internals are the ones `_deploy_each_once` calls (the 3.9 series')."""
    try:
        import prefect.cli._app
        import prefect.cli.deploy._config as deploy_config
        import prefect.cli.deploy._core as core
        from prefect.client.orchestration import PrefectClient
        from prefect.deployments import runner
    except ImportError:
        return False
    names = ("_run_single_deploy", "load_flow_from_entrypoint", "parameter_schema")
    methods = ("read_work_pool", "read_workers_for_work_pool", "create_flow_from_name")
    return (
        all(hasattr(core, name) for name in names)
        and all(hasattr(runner, name) for name in ("parameter_schema", "get_inferred_version_info"))
        and all(hasattr(PrefectClient, name) for name in methods)
        and hasattr(prefect.cli._app, "console")
        and hasattr(deploy_config, "_load_deploy_configs_and_actions")
        and hasattr(getattr(deploy_config, "yaml", None), "safe_load")  # how it reads the file
    )


def _deploy_each_once(prefect_file: Path, output: io.StringIO) -> int:
    """Prefect's deploy of each deployment of the file on one client, each thing Prefect would compute again for
    every deployment computed once (see the module's docstring); one that fails is tried once more. 0, or 1 when
    any failed twice (each failure is written to `output`; the caller undoes what the others wrote)."""
    import asyncio

    import prefect.cli._app as cli
    import prefect.cli.deploy._config as deploy_config
    import prefect.cli.deploy._core as core
    from prefect._internal.versioning import get_inferred_version_info
    from prefect.cli.deploy._config import _load_deploy_configs_and_actions
    from prefect.context import AsyncClientContext
    from prefect.deployments import runner
    from prefect.flows import load_flow_from_entrypoint
    from prefect.utilities.callables import parameter_schema
    from rich.console import Console

    console = Console(highlight=False, color_system=None, force_interactive=False, file=output, width=200)
    once = _Once()

    patches = [  # the names Prefect's deploy calls them by, in the modules that call them
        (core, "load_flow_from_entrypoint", once.sync(load_flow_from_entrypoint, copy=False)),
        (core, "parameter_schema", once.by_identity(parameter_schema)),
        (runner, "parameter_schema", once.by_identity(parameter_schema)),
        (runner, "get_inferred_version_info", once.coroutine(get_inferred_version_info)),
        (cli, "console", console),  # Prefect's deploy reads the CLI's console (prompts, panels)
        (deploy_config, "yaml", _LibYAML),  # the file parsed by libyaml: 0.2 s less at 100 deployments
    ]

    async def deploy_all() -> list[Exception]:
        configs, actions = _load_deploy_configs_and_actions(prefect_file=prefect_file, console=console)
        failures = []
        async with AsyncClientContext() as context:  # every get_client() inside answers this one client
            client = context.client
            for method in ("read_work_pool", "read_workers_for_work_pool", "create_flow_from_name"):
                setattr(client, method, once.coroutine(getattr(client, method)))
            turns = asyncio.Semaphore(1 if _runs_steps(actions, configs) else DEPLOYS_AT_ONCE)

            async def deploy_one(config: dict[str, Any]) -> None:
                async with turns:
                    for attempt in (1, 2):  # a busy server's refusal gets one more try: a deploy creates or updates
                        try:
                            await core._run_single_deploy(
                                config, actions, client=client, prefect_file=prefect_file, console=console,
                                is_interactive=lambda: False,
                            )  # fmt: skip
                            return
                        except Exception as failure:  # noqa: BLE001 - reported with the others, then undone
                            if attempt == 2:
                                failures.append(failure)

            await asyncio.gather(*(deploy_one(config) for config in configs))
        return failures

    saved = [(module, name, getattr(module, name)) for module, name, _ in patches]
    try:
        for module, name, value in patches:
            setattr(module, name, value)
        failures = asyncio.run(deploy_all())
    finally:
        for module, name, value in saved:
            setattr(module, name, value)
    output.writelines(f"{type(failure).__name__}: {failure}\n" for failure in failures)
    return 1 if failures else 0


def _runs_steps(actions: dict[str, Any], configs: list[dict[str, Any]]) -> bool:
    """Whether the file has build or push steps, which Prefect's deploy runs for each deployment (a Docker build,
    a push): those run one deployment at a time, as `prefect deploy` runs them."""
    return any(section.get(kind) for section in (actions, *configs) for kind in ("build", "push"))


class _LibYAML:
    """PyYAML as Prefect's deploy reads the file (`yaml.safe_load`), with libyaml's parser: the same safe
    constructor builds the same objects from the file flowops rendered, ten times faster."""

    @staticmethod
    def safe_load(stream: Any) -> Any:
        import yaml

        from flowops.config.project import SAFE_LOADER

        return yaml.load(stream, Loader=SAFE_LOADER)  # noqa: S506 - a safe loader, libyaml's or PyYAML's own


class _Once:
    """Memos of what one deploy asks Prefect for again and again, each answer kept for this deploy only. Answers
    that Prefect changes after it gets them are handed out as copies."""

    def __init__(self) -> None:
        self._answers: dict[tuple[Any, ...], Any] = {}

    def sync(self, function: Callable[..., Any], copy: bool = True) -> Callable[..., Any]:
        def remembered(*args: Any, **kwargs: Any) -> Any:
            key = (function, args, tuple(sorted(kwargs.items())))
            if key not in self._answers:
                self._answers[key] = function(*args, **kwargs)
            return deepcopy(self._answers[key]) if copy else self._answers[key]

        return remembered

    def by_identity(self, function: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """For an argument that is not hashable by value (a flow): the same object, the same answer."""

        def remembered(argument: Any) -> Any:
            key = (function, id(argument))
            if key not in self._answers:
                self._answers[key] = (argument, function(argument))  # the argument kept: its id stays its own
            return deepcopy(self._answers[key][1])

        return remembered

    def coroutine(self, function: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
        async def remembered(*args: Any, **kwargs: Any) -> Any:
            key = (function, repr(args), repr(sorted(kwargs.items())))  # filters are pydantic models: by value
            if key not in self._answers:
                self._answers[key] = await function(*args, **kwargs)
            return deepcopy(self._answers[key])

        return remembered


def inferred_version(project_root: Path, version_type: str | None = None) -> str | None:
    """The version `prefect deploy` gives a deployment whose file sets none: what Prefect's own inference reads from
    the CI's environment (GitHub's GITHUB_SHA, GitLab's, ...) or from git in the project root; None when it finds
    nothing (then Prefect leaves the version to the server)."""
    from prefect._internal.versioning import get_inferred_version_info
    from prefect.utilities.asyncutils import run_coro_as_sync

    saved_cwd = Path.cwd()
    try:
        os.chdir(project_root)  # as prefect_deploy_all runs: git answers for the project's repository
        info = run_coro_as_sync(get_inferred_version_info(version_type))
    finally:
        os.chdir(saved_cwd)
    version = getattr(info, "version", None)  # a VersionInfo, or None when nothing was found
    return str(version) if version else None
