#!/usr/bin/env bash
# Run vtrack's tests: set up .venv, make sure a Redis answers on 127.0.0.1:6379 and that
# Debian's chromium is installed for the browser tests, run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/ensure-redis.sh
bash scripts/ensure-chromium.sh
exec .venv/bin/python -m pytest "$@"
