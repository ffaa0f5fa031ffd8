"""The documentation site builds with every link resolved (`mkdocs build --strict`), and its generated reference of
the command is what the parser says now."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from flowops.reference import CLI_DOC, cli_markdown
from tests.helpers import ROOT


def test_the_documentation_site_builds_strictly(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    result = subprocess.run(
        [str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False,
        env={"PATH": "/usr/bin:/bin", "NO_MKDOCS_2_WARNING": "1", "HOME": str(tmp_path)},
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "flowops-yaml" / "index.html").is_file()
    assert (tmp_path / "site" / "concepts" / "branch-environments" / "index.html").is_file()


def test_the_commands_reference_is_what_the_parser_says_now():
    regenerate = (
        'uv run python -c "from flowops.reference import *; print(cli_markdown(), end=\\"\\")" > docs/reference/cli.md'
    )
    assert (ROOT / CLI_DOC).read_text() == cli_markdown(), regenerate
