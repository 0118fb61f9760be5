#!/usr/bin/env bash
# make bench: run every benchmark program in bin/bench/ (tests/bench/*.c). Each prints its
# figures and its ratios against a baseline measured in the same run. Timings are never
# pass/fail. Benchmarks that replay the Azure Functions trace use $FAASMETER_WORKLOADS, or
# ../shared/workloads beside the checkout when present.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ -z "${FAASMETER_DB:-}" ]; then
  scripts/pgcluster.sh status >/dev/null || trap 'scripts/pgcluster.sh stop' EXIT
  FAASMETER_DB=$(scripts/pgcluster.sh start)
  export FAASMETER_DB
fi
export FAASMETER_BIN="$PWD/bin"
if [ -z "${FAASMETER_WORKLOADS:-}" ] && [ -d ../shared/workloads ]; then
  FAASMETER_WORKLOADS=$(cd ../shared/workloads && pwd)
  export FAASMETER_WORKLOADS
fi

shopt -s nullglob
benches=(bin/bench/*)
if [ ${#benches[@]} -eq 0 ]; then
  echo "bench: no benchmarks built"
  exit 0
fi
for b in "${benches[@]}"; do
  [ -n "${1:-}" ] && [[ "$(basename "$b")" != *"$1"* ]] && continue
  printf '\n== %s\n' "$(basename "$b")"
  "$b"
done

# The Azure Functions 2019 sample, replayed as a month and priced under every plan.
if [ -n "${FAASMETER_WORKLOADS:-}" ] && [ -d "$FAASMETER_WORKLOADS/azure-functions-2019-sample" ]; then
  printf '\n== simulate (Azure Functions 2019 trace sample, one day as a month)\n'
  start=$(date +%s%N)
  out=$(bin/faasbill simulate --trace "$FAASMETER_WORKLOADS/azure-functions-2019-sample")
  echo "replayed and priced in $(( ($(date +%s%N) - start) / 1000000 )) ms"
  printf '%s\n' "$out" | sed -n '1,13p'

fi
