#!/usr/bin/env bash
# Fresh machine -> tests: install with test extras, then run the whole suite (slow dataset tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
# The search-page test drives a real headless Chromium: Debian's chromium and its driver.
if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver) >/dev/null
fi
# A PostgreSQL server for the click-log tests (conftest.py starts it in a temporary directory): the pgserver wheel
# carries its own binaries. Where it has no wheel those tests skip, saying why.
.venv/bin/python -m pip install -q -c constraints.txt "pgserver>=0.1" || echo "warning: pgserver not installed"
.venv/bin/python -m pytest -q "$@"
