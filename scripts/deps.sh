#!/usr/bin/env bash
# Install the Debian packages faasmeter needs, only those that are missing.
# Runs apt-get through sudo when not root. Prints nothing when all are present.
set -euo pipefail

packages=(
  build-essential pkg-config
  libpq-dev postgresql postgresql-client
  libmicrohttpd-dev libcjson-dev libcurl4-openssl-dev libssl-dev
  check libsubunit-dev
  clang libclang-rt-dev
  curl
  chromium
  prometheus
)

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
  [ "$status" = installed ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "deps: missing packages (${missing[*]}) and neither root nor sudo available" >&2
  exit 1
fi

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -q >/dev/null
"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
