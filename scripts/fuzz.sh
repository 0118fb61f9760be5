#!/usr/bin/env bash
# Run the fuzz targets of build/fuzz/bin (tests/fuzz/fuzz_*.c), each from its seeds:
# tests/fuzz/corpus/<target>/, and the catalog's files for plans and servers.
#
#   scripts/fuzz.sh --check   every seed, then FUZZ_RUNS (default 50000) inputs made from
#                             them with a fixed random seed; a fresh corpus, kept nowhere
#   scripts/fuzz.sh           FUZZ_SECONDS (default 60) per target, growing the corpus kept
#                             in build/fuzz/corpus/<target>
#
# A crash, or an input that takes more than 10 s, stops the target; its input is saved under build/fuzz/crashes/<target>/ and the
# script fails. Once fixed, the input belongs in tests/fuzz/corpus/<target>/, so that the
# check replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[ "${1:-}" = --check ] && check=true

seeds_of() {
  local target=$1
  echo "tests/fuzz/corpus/$target"
  case $target in
    fuzz_plan) echo billing/catalog/plans ;;
    fuzz_servers) echo billing/catalog/servers ;;
  esac
}

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
failed=()
for src in tests/fuzz/fuzz_*.c; do
  target=$(basename "$src" .c)
  bin="build/fuzz/bin/$target"
  crashes="build/fuzz/crashes/$target"
  mkdir -p "$crashes"
  seeds=()
  for d in $(seeds_of "$target"); do
    [ -d "$d" ] && seeds+=("$d")
  done
  if $check; then
    corpus=$(mktemp -d)
    args=(-seed=1 -runs="${FUZZ_RUNS:-50000}")
  else
    corpus="build/fuzz/corpus/$target"
    mkdir -p "$corpus"
    args=(-max_total_time="${FUZZ_SECONDS:-60}")
  fi
  log=$(mktemp)
  # An input that takes a parser more than 10 s is a hang, and fails like a crash.
  if "$bin" "${args[@]}" -timeout=10 -artifact_prefix="$crashes/" "$corpus" "${seeds[@]}" \
    >"$log" 2>&1; then
    echo "fuzz: $target: $(grep -Eo 'Done [0-9]+ runs.*' "$log" | tail -n 1 || echo done)"
  else
    cat "$log" >&2
    echo "fuzz: $target FAILED; its input is in $crashes/" >&2
    failed+=("$target")
  fi
  rm -f "$log"
  $check && rm -rf "$corpus"
done
[ ${#failed[@]} -eq 0 ] || { echo "fuzz: failed: ${failed[*]}" >&2; exit 1; }
