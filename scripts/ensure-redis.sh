#!/usr/bin/env bash
# Make sure a Redis answers on 127.0.0.1:6379; start one (installing it with apt-get when
# missing) if none does. A Redis this script starts keeps nothing on disk.
set -euo pipefail
host=127.0.0.1
port=${VTRACK_TEST_REDIS_PORT:-6379}

answers() {
  python3 - "$host" "$port" <<'PY'
import socket, sys
try:
    with socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1) as s:
        s.sendall(b"PING\r\n")
        sys.exit(0 if s.recv(16).startswith(b"+PONG") else 1)
except OSError:
    sys.exit(1)
PY
}

if answers; then
  exit 0
fi
if ! command -v redis-server >/dev/null 2>&1; then
  echo "installing redis-server with apt-get" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
echo "starting redis-server on $host:$port" >&2
redis-server --daemonize yes --bind "$host" --port "$port" --save "" --appendonly no \
  --dir /tmp --logfile /tmp/vtrack-redis.log
for _ in $(seq 1 50); do
  answers && exit 0
  sleep 0.1
done
echo "redis-server did not answer on $host:$port (see /tmp/vtrack-redis.log)" >&2
exit 1
