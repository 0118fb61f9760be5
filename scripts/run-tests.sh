#!/usr/bin/env bash
# Run every suite against the sanitizer build in $1, with the private PostgreSQL unless
# FAASMETER_DB names one already. A cluster this script started is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
bindir=${1:-build/test/bin}
shift || true

if [ -z "${FAASMETER_DB:-}" ]; then
  if ! scripts/pgcluster.sh status >/dev/null; then
    trap 'scripts/pgcluster.sh stop' EXIT
  fi
  FAASMETER_DB=$(scripts/pgcluster.sh start)
  export FAASMETER_DB
fi
export FAASMETER_BIN="$PWD/$bindir"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
"$bindir/faasmeter-tests" "$@"
