#!/usr/bin/env bash
# Usage: fetch-test-photos.sh [FOLDER]
# Put the photos Debian's darknet package ships (dog.jpg, person.jpg, horses.jpg, eagle.jpg,
# giraffe.jpg...) into FOLDER (default $VTRACK_TEST_PHOTOS, else ~/.cache/vtrack/test-photos)
# for the detector-family tests. Downloads the package with `apt-get download` (Debian's
# archive only; nothing is installed). Never fatal: without apt the tests skip.
set -uo pipefail
folder=${1:-${VTRACK_TEST_PHOTOS:-${XDG_CACHE_HOME:-$HOME/.cache}/vtrack/test-photos}}
if [ -f "$folder/dog.jpg" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "apt-get unavailable: the detector photo tests will skip" >&2
  exit 0
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if ! (cd "$work" && apt-get download darknet >/dev/null 2>&1); then
  apt-get update -qq >/dev/null 2>&1 || true
  (cd "$work" && apt-get download darknet >/dev/null 2>&1) \
    || { echo "apt-get download darknet failed: the detector photo tests will skip" >&2; exit 0; }
fi
dpkg-deb -x "$work"/darknet_*.deb "$work/x" \
  && mkdir -p "$folder" \
  && cp "$work"/x/usr/share/darknet/data/*.jpg "$folder"/ \
  && echo "test photos in $folder" >&2
exit 0
