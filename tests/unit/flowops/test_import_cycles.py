"""flowops' modules import each other without a cycle at import time (a cycle made automations and validate
import each other inside functions, and any new one would be a trap for the next change)."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[3] / "src" / "flowops"


def top_level_imports() -> dict[str, set[str]]:
    """Each module -> the flowops modules it imports at its top level (not inside functions or TYPE_CHECKING)."""
    graph = {}
    for path in PACKAGE.glob("*.py"):
        imported = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    imported.add(node.module.split(".")[0])
                else:  # `from . import x`
                    imported |= {alias.name for alias in node.names}
        graph[path.stem] = imported & {p.stem for p in PACKAGE.glob("*.py")}
    return graph


def test_no_module_imports_itself_back_through_others():
    graph = top_level_imports()
    assert {"validate", "automations", "problems"} <= set(graph)
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
