#!/usr/bin/env bash
# Usage: apt-install-missing.sh COMMAND PACKAGE WHAT
# Install Debian's PACKAGE with apt-get unless COMMAND (a name on PATH or a path) is
# already there. Never fatal: when it cannot be installed, says that WHAT will skip.
set -uo pipefail
command_name=$1 package=$2 what=$3
if command -v "$command_name" >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "$package missing and apt-get unavailable: $what will skip" >&2
  exit 0
fi
echo "installing $package with apt-get ($what)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends "$package" >/dev/null 2>&1 \
    || echo "apt-get install $package failed: $what will skip" >&2
fi
exit 0
