#!/usr/bin/env bash
# The batch job of a deployment, on one host at a time (cron, a scheduler): ingest the new
# signals into the shared offline store, load the features into Redis, train a model into the
# shared registry. Arguments go to `engram ingest` (a file or directory, --catalog, --as-of).
# Extra: ENGRAM_MATERIALIZE_END (default now) and ENGRAM_TRAIN_ARGS (e.g. --max-users 5000).
set -euo pipefail
engram ingest "$@" --json
engram materialize ${ENGRAM_MATERIALIZE_END:+--end "$ENGRAM_MATERIALIZE_END"} --json
# shellcheck disable=SC2086  # ENGRAM_TRAIN_ARGS is a list of options
engram train ${ENGRAM_TRAIN_ARGS:-} --json
