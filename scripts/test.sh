#!/usr/bin/env bash
# Run vtrack's tests: set up .venv, make sure a Redis answers on 127.0.0.1:6379, that an
# installed PostgreSQL runs (catalog tests), and that Debian's chromium (browser tests),
# the Pub/Sub emulator (listen tests) and docker-compose (compose file tests) are installed
# when apt-get can, run pytest in two processes.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
bash scripts/ensure-redis.sh
bash scripts/ensure-pubsub-emulator.sh
bash scripts/ensure-postgres.sh
bash scripts/ensure-chromium.sh
bash scripts/ensure-docker-compose.sh
# Two test processes, a module each at a time (module fixtures start workers and servers);
# VTRACK_TEST_PROCESSES=0 runs the tests in this process alone.
exec .venv/bin/python -m pytest -n "${VTRACK_TEST_PROCESSES:-2}" --dist loadfile "$@"
