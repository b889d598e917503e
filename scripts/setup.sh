#!/usr/bin/env bash
# Set up vtrack in ./.venv: the package with its test and monitoring extras, and the
# default detector model. Safe to run again; it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test,monitor]"
echo "vtrack installed in $(pwd)/.venv: run it as .venv/bin/vtrack or activate the venv" >&2
