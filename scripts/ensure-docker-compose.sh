#!/usr/bin/env bash
# tests/unit/test_compose_config.py validates docker-compose.yml with Debian's
# docker-compose (`config -q`; no Docker engine needed). Install it with apt-get when it
# is missing. Never fatal: without it those tests skip and say why.
exec bash "$(dirname "$0")/apt-install-missing.sh" docker-compose docker-compose "the compose file tests"
