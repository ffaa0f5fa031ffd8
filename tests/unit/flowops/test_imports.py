"""flowops imports Prefect and its own heavier modules inside functions, so `flowops --help` answers at once. Such an
import runs only when its command does: this test resolves every one of them, so a moved name fails here and not
in a user's deploy."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "flowops"
SOURCES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_every_name_a_module_imports_from_flowops_exists(path):
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "flowops":
            try:
                module = importlib.import_module(node.module)
            except ImportError:
                missing.append(f"line {node.lineno}: no module {node.module}")
                continue
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{module.__name__}.{alias.name}")
                    except ImportError:
                        missing.append(f"line {node.lineno}: {alias.name} from {node.module}")
    assert missing == []


def test_the_check_reads_the_packages_modules():
    """Every layer's modules are among those checked (a glob of the top folder alone once missed them all)."""
    checked = {str(path.relative_to(PACKAGE)) for path in SOURCES}
    assert {"cli.py", "deploy/gitops.py", "config/project.py", "github/act.py", "api/client.py"} <= checked
