#!/usr/bin/env bash
# make loadtest: installs k6 from the Go module proxy when missing, starts
# etalage (embedded store and a throwaway Redis) and the hello baseline
# pinned to one core, runs the k6 scenarios on the other, prints one table,
# and stops everything it started. Options: see `go run ./loadtest/runner -h`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./loadtest/runner "$@"
