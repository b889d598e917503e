#!/usr/bin/env bash
# The catalog's tests also run on PostgreSQL at 127.0.0.1:5432 (user postgres). When none
# answers, start an installed Debian cluster that is down. Never fatal: without PostgreSQL
# those tests skip and say why (SQLite is tested regardless).
set -uo pipefail
answers() {
  python3 - <<'PY'
import socket, sys
try:
    socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
except OSError:
    sys.exit(1)
PY
}
if answers; then
  exit 0
fi
if [ "$(id -u)" = 0 ] && command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters --no-header 2>/dev/null | while read -r version name _ status _; do
    if [ "$status" = "down" ]; then
      echo "starting PostgreSQL cluster $version/$name" >&2
      pg_ctlcluster "$version" "$name" start || true
    fi
  done
fi
answers || echo "no PostgreSQL on 127.0.0.1:5432: its catalog tests will skip" >&2
exit 0
