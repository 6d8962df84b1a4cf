#!/usr/bin/env bash
# Fresh machine -> demo: install, write the demo corpus, index it, search "patagonia japan".
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/rerank demo "$@"
