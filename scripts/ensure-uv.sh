#!/usr/bin/env bash
# Install uv from PyPI when it is missing (astral.sh's installer needs GitHub; PyPI is enough).
# The Makefile then runs `uv` from PATH, or `python3 -m uv` when the install landed off PATH.
set -euo pipefail
if command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1; then
  exit 0
fi
echo "uv not found: installing it from PyPI" >&2
python3 -m pip install --quiet --disable-pip-version-check uv \
  || python3 -m pip install --quiet --disable-pip-version-check --user uv \
  || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages uv
