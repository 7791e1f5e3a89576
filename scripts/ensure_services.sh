#!/usr/bin/env bash
# Make sure the servers the integration tests use answer on 127.0.0.1, starting them where they are
# installed but stopped. On a machine without them the integration tests skip with a message.
set -u
if command -v pg_isready >/dev/null 2>&1; then
  if ! pg_isready -h 127.0.0.1 -p 5432 -q; then
    if [ -d /etc/postgresql ]; then
      pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    fi
  fi
  pg_isready -h 127.0.0.1 -p 5432 -q && echo "postgres: up" || echo "postgres: DOWN"
fi
if command -v redis-cli >/dev/null 2>&1; then
  if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no >/dev/null || true
    sleep 1
  fi
  redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1 && echo "redis: up" || echo "redis: DOWN"
fi
exit 0
