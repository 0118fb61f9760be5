#!/usr/bin/env bash
# House rules that the compiler does not check: no banned string functions in the product
# code, and no binary floating point in billing/.
set -euo pipefail
cd "$(dirname "$0")/.."
status=0
banned='\b(sprintf|vsprintf|strcpy|strcat|strncpy|strtok|atoi|atol|atoll|gets)[[:space:]]*\('
dirs=()
for d in common billing meter runtime reports schema; do [ -d "$d" ] && dirs+=("$d"); done
if grep -rnE "$banned" --include='*.c' --include='*.h' "${dirs[@]}"; then
  echo "lint: banned functions above (use snprintf, memcpy with checked lengths, strtoll)" >&2
  status=1
fi
if grep -rnwE 'float|double' --include='*.c' --include='*.h' billing; then
  echo "lint: floating point in billing/ above: money must be exact" >&2
  status=1
fi
[ $status -eq 0 ] && echo "lint: ok"
exit $status
