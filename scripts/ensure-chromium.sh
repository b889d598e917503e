#!/usr/bin/env bash
# The browser tests drive Debian's chromium (/usr/bin/chromium) with Playwright's Python
# package; Playwright's own browser download is never used. Install chromium with apt-get
# when it is missing. Never fatal: without it the browser tests skip and say why.
set -uo pipefail
if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "chromium missing and apt-get unavailable: the browser tests will skip" >&2
  exit 0
fi
echo "installing chromium with apt-get (browser tests)" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1; then
  apt-get update -qq >/dev/null 2>&1 || true
  apt-get install -y -qq --no-install-recommends chromium >/dev/null 2>&1 \
    || echo "apt-get install chromium failed: the browser tests will skip" >&2
fi
exit 0
