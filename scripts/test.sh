#!/usr/bin/env bash
# Run vtrack's tests: set up .venv, make sure a Redis answers on 127.0.0.1:6379 and the
# Pub/Sub emulator is installed (when apt-get can), run pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/ensure-redis.sh
bash scripts/ensure-pubsub-emulator.sh
exec .venv/bin/python -m pytest "$@"
