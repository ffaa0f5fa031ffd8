#!/usr/bin/env bash
# Install Debian's chromium and its matching chromedriver if missing: the UI test (tests/e2e/test_ui.py) drives
# them headless. Debian builds both from one source, so their versions always match.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
echo "ensure-browser: installing chromium and chromium-driver (Debian packages)"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver \
  fonts-dejavu-core >/dev/null
