"""flowops imports Prefect and its own heavier modules inside functions, so `flowops --help` answers at once. Such an
import runs only when its command does: this test resolves every one of them, so a moved name fails here and not
in a user's deploy."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SOURCES = sorted((Path(__file__).resolve().parents[3] / "src" / "flowops").glob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda path: path.name)
def test_every_name_a_module_imports_from_flowops_exists(path):
    missing = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            module = importlib.import_module(f"flowops.{node.module}" if node.module else "flowops")
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{module.__name__}.{alias.name}")
                    except ImportError:
                        missing.append(f"line {node.lineno}: {alias.name} from .{node.module or ''}")
    assert missing == []
