#!/usr/bin/env bash
# Starts the local Redis and PostgreSQL the tests use when they are not already running.
# Tests that need them also start their own (test-owned ports) where they must stop them.
set -uo pipefail
if command -v redis-cli >/dev/null && ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  echo "starting redis on 127.0.0.1:6379"
  mkdir -p /tmp/bml-redis
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
    --dir /tmp/bml-redis --logfile /tmp/bml-redis/redis.log || true
fi
if command -v pg_isready >/dev/null && ! pg_isready -h 127.0.0.1 -p 5432 -q; then
  if command -v pg_ctlcluster >/dev/null && [ -d /etc/postgresql ]; then
    echo "starting postgresql"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
exit 0
