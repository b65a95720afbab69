#!/usr/bin/env bash
# System packages Engram needs on a fresh machine: redis-server (the local online store when
# REDIS_URL is unset), and chromium with chromium-driver (the inspector's browser tests,
# tests/serving/test_inspector.py). Everything else comes from PyPI into the virtualenv.
# Idempotent: nothing is installed, and nothing printed, when they are already there.
set -euo pipefail

missing=()
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ "${#missing[@]}" -eq 0 ] && exit 0

if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
for package in "${missing[@]}"; do
  case "$package" in
    redis-server)
      echo "redis-server is missing: install it (apt-get install redis-server) or set REDIS_URL" >&2
      exit 1 ;;
    *)
      echo "$package is missing (apt-get install chromium chromium-driver): the inspector's" \
        "browser tests will be skipped" >&2 ;;
  esac
done
