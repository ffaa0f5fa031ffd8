"""What a deployment's entrypoint is, read from its source: the module is parsed, not run. Prefect's parameter
schema does import the module's own imports (to evaluate defaults such as MONTH_FILES), as `prefect deploy` does."""

from __future__ import annotations

import ast
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any


class EntrypointError(Exception):
    """The entrypoint cannot be a flow; the message says why in one line."""


@dataclass(frozen=True)
class FlowEntrypoint:
    entrypoint: str
    flow_name: str
    parameter_schema: dict[str, Any]
    description: str | None = None  # the flow's own: what `prefect deploy` gives a deployment that sets none


@functools.lru_cache(maxsize=64)
def inspect_entrypoint(root: Path, entrypoint: str) -> FlowEntrypoint:
    """The flow behind `path/to/file.py:function`, relative to the project root (where Prefect resolves it)."""
    if not isinstance(entrypoint, str) or entrypoint.count(":") != 1:
        raise EntrypointError(f"{entrypoint!r} is not of the form path/to/file.py:flow_function")
    relative_path, function = entrypoint.split(":")
    path = root / relative_path
    # inside the repository, symlinks followed: Prefect imports the module's own imports to read its parameters
    if not path.resolve().is_relative_to(root.resolve()):
        raise EntrypointError(f"{relative_path} is outside the repository (nothing outside it is read or imported)")
    if not path.is_file():
        raise EntrypointError(f"{relative_path} does not exist")
    try:
        tree = ast.parse(path.read_text(), filename=relative_path)
    except SyntaxError as error:
        raise EntrypointError(f"{relative_path}:{error.lineno}: syntax error: {error.msg}") from None
    definition = next(
        (
            node
            for node in tree.body
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == function
        ),
        None,
    )
    if definition is None:
        raise EntrypointError(f"{relative_path} defines no function {function!r}")
    if not any(_is_flow_decorator(decorator) for decorator in definition.decorator_list):
        raise EntrypointError(f"{relative_path}:{definition.lineno}: {function} is not decorated with @flow")

    from prefect.flows import load_flow_arguments_from_entrypoint
    from prefect.utilities.callables import parameter_schema_from_entrypoint

    absolute = f"{path}:{function}"
    arguments = load_flow_arguments_from_entrypoint(absolute, arguments={"name", "description"})
    schema = parameter_schema_from_entrypoint(absolute).model_dump_for_openapi()
    # as Prefect's Flow does: the decorator's description, else the function's docstring (cleaned as getdoc does)
    description = arguments.get("description") or ast.get_docstring(definition, clean=True)
    # Prefect's reader sees `@flow(name=...)` only, not `@prefect.flow(name=...)`: `prefect deploy` (which imports
    # the flow) would name it, and so its deployments, by the decorator's name all the same
    name = _decorator_name(definition) or arguments["name"]
    return FlowEntrypoint(entrypoint, name, schema, description)


def _decorator_name(definition: ast.FunctionDef | ast.AsyncFunctionDef) -> str | None:
    """The literal `name=` of the function's flow decorator, whichever way the decorator is spelt."""
    for decorator in definition.decorator_list:
        if isinstance(decorator, ast.Call) and _is_flow_decorator(decorator):
            for keyword in decorator.keywords:
                if keyword.arg == "name" and isinstance(keyword.value, ast.Constant):
                    return str(keyword.value.value)
    return None


def _is_flow_decorator(decorator: ast.expr) -> bool:
    target = decorator.func if isinstance(decorator, ast.Call) else decorator
    if isinstance(target, ast.Name):
        return target.id == "flow"
    return isinstance(target, ast.Attribute) and target.attr == "flow"
