#!/usr/bin/env bash
# System packages Engram needs on a fresh machine: redis-server (the local online store when
# REDIS_URL is unset). Everything else comes from PyPI into the virtualenv.
set -euo pipefail
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && apt-get install -y -qq redis-server
  else
    echo "redis-server is missing: install it (apt-get install redis-server) or set REDIS_URL" >&2
    exit 1
  fi
fi
