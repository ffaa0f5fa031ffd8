"""flowops' modules import each other without a cycle at import time (a cycle made automations and validate
import each other inside functions, and any new one would be a trap for the next change), and its packages keep
to their layers: what a package may import at its top level is written down here, so the layout shows the
architecture and a change that crosses it has to say so."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "flowops"

# Each package -> the packages its modules may import at their top level. Modules outside packages (errors,
# gitrepo, extras: the base; cli, init, reference, local: the commands) are free of this table, as is an import
# inside a function, which is where the client imports the automations it creates, for example.
LAYERS = {
    "config": {"errors"},
    "render": {"errors", "config", "api.server"},
    "checks": {"errors", "gitrepo", "extras", "config", "render", "api.server", "api.pool_types"},
    "deploy": {
        "errors",
        "gitrepo",
        "extras",
        "timings",
        "config",
        "render",
        "checks",
        "api.server",
        "api.http",
        "deploy",
    },
    "api": {"errors", "api"},
    "github": {"errors", "gitrepo"},
}


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def top_level_imports() -> dict[str, set[str]]:
    """Each module (`deploy.gitops`) -> the flowops modules it imports at its top level (not inside functions or
    TYPE_CHECKING)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        imported = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowops."):
                imported.add(node.module.removeprefix("flowops."))
            elif isinstance(node, ast.ImportFrom) and node.level:
                raise AssertionError(f"{path}: a relative import; flowops imports itself by absolute names")
        graph[name] = imported & set(modules)
    return graph


def test_no_module_imports_itself_back_through_others():
    graph = top_level_imports()
    assert {"checks.validate", "render.automations", "config.problems"} <= set(graph)
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            module, path = stack.pop()
            for imported in graph[module]:
                if imported == start:
                    cycles.append(" -> ".join([*path, start]))
                elif imported not in path:
                    stack.append((imported, [*path, imported]))
    assert cycles == []


def test_each_package_imports_only_the_layers_below_it():
    crossings = []
    for module, imported in top_level_imports().items():
        package = module.split(".")[0]
        if package not in LAYERS:
            continue
        allowed = LAYERS[package]
        for name in imported:
            if name not in allowed and name.split(".")[0] not in allowed and name.split(".")[0] != package:
                crossings.append(f"{module} imports {name}")
    assert crossings == []


def test_the_layer_check_sees_a_crossing(tmp_path, monkeypatch):
    """The check itself fails on a config module that imports the deploy package."""
    tree = tmp_path / "flowops"
    for folder in ("config", "deploy"):
        (tree / folder).mkdir(parents=True)
    (tree / "deploy" / "plan.py").write_text("")
    (tree / "config" / "project.py").write_text("from flowops.deploy.plan import x\n")
    monkeypatch.setitem(globals(), "PACKAGE", tree)
    assert top_level_imports() == {"deploy.plan": set(), "config.project": {"deploy.plan"}}
    with pytest.raises(AssertionError, match=r"config\.project imports deploy\.plan"):
        test_each_package_imports_only_the_layers_below_it()
