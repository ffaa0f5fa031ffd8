"""The flowops command line."""

from __future__ import annotations

import pytest

from flowops import __version__
from flowops.cli import main


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"flowops {__version__}"


def test_no_arguments_prints_help(capsys):
    assert main([]) == 0
    assert "usage: flowops" in capsys.readouterr().out
