#!/usr/bin/env bash
# Keep only OpenCV's headless build in the environment of the given interpreter (default: python).
#
# trackers depends on opencv-python, the GUI build, which needs libGL. Both builds install
# the same cv2 module, so whichever was installed last wins; uninstalling the GUI build
# also deletes files the headless build shares, hence the forced reinstall. pip check will
# report the missing opencv-python afterwards: that is expected.
set -euo pipefail
python=${1:-python}  # the interpreter whose environment to fix
if "$python" -m pip show --quiet opencv-python >/dev/null 2>&1; then
  headless=$("$python" -m pip show opencv-python-headless | sed -n 's/^Version: //p')
  "$python" -m pip uninstall --quiet -y opencv-python
  "$python" -m pip install --quiet --force-reinstall --no-deps "opencv-python-headless==${headless}"
fi
"$python" -c "import cv2" >/dev/null
