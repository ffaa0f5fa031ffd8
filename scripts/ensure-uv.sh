#!/usr/bin/env bash
# Install the uv that pyproject.toml requires ([tool.uv] required-version) when it is missing or another
# version (astral.sh's installer needs GitHub; PyPI is enough). The Makefile then runs `uv` from PATH, or
# `python3 -m uv` when the install landed off PATH.
set -euo pipefail
cd "$(dirname "$0")/.."
wanted=$(sed -n 's/^required-version = "==\(.*\)"$/\1/p' pyproject.toml)
have=$( (uv --version || python3 -m uv --version) 2>/dev/null | awk '{print $2}' || true)
if [ -n "$have" ] && { [ -z "$wanted" ] || [ "$have" = "$wanted" ]; }; then
  exit 0
fi
echo "uv ${wanted:-(any)} not found${have:+ (found $have)}: installing it from PyPI" >&2
spec=uv${wanted:+==$wanted}
python3 -m pip install --quiet --disable-pip-version-check "$spec" \
  || python3 -m pip install --quiet --disable-pip-version-check --user "$spec" \
  || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "$spec"
