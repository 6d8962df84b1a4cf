#!/usr/bin/env bash
# Fresh machine -> tests: install with test extras, then run the whole suite (slow dataset tests included).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh test
.venv/bin/python -m pytest -q "$@"
