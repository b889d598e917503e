#!/usr/bin/env bash
# The browser tests drive Debian's chromium (/usr/bin/chromium) with Playwright's Python
# package; Playwright's own browser download is never used. Install chromium with apt-get
# when it is missing. Never fatal: without it the browser tests skip and say why.
exec bash "$(dirname "$0")/apt-install-missing.sh" /usr/bin/chromium chromium "the browser tests"
