#!/usr/bin/env bash
# make demo: the whole path on a private PostgreSQL. Runs the sample image pipeline under
# faasrun, meters every step into meterd, and prints the tenant's invoice. Stops what it
# started.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
bin=$root/bin
work=$root/var/demo
rm -rf "$work"
mkdir -p "$work/spool" "$work/store"

meterd_pid=
faasrun_pid=
cleanup() {
  [ -n "$faasrun_pid" ] && kill -TERM "$faasrun_pid" 2>/dev/null && wait "$faasrun_pid" 2>/dev/null
  [ -n "$meterd_pid" ] && kill -TERM "$meterd_pid" 2>/dev/null && wait "$meterd_pid" 2>/dev/null
  [ -n "${stop_cluster:-}" ] && scripts/pgcluster.sh stop
  return 0
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }

if [ -z "${FAASMETER_DB:-}" ]; then
  scripts/pgcluster.sh status >/dev/null || stop_cluster=1
  step "private PostgreSQL under var/pg, database faasmeter_demo (made anew each run)"
  cluster=$(scripts/pgcluster.sh start)
  PGOPTIONS='-c client_min_messages=warning' psql "$cluster" -Xq \
    -c "DROP DATABASE IF EXISTS faasmeter_demo WITH (FORCE)" -c "CREATE DATABASE faasmeter_demo"
  FAASMETER_DB=${cluster/dbname=faasmeter/dbname=faasmeter_demo}
  export FAASMETER_DB
  echo "$FAASMETER_DB"
fi

step "schema, tenant and keys"
"$bin/faasbill" migrate
"$bin/faasbill" tenant add acme --plan aws-lambda-x86
ingest_key=$("$bin/faasbill" key create --role ingest | tail -n 1)
echo "ingest key created (kept only as a hash in the database)"

step "meterd"
"$bin/meterd" --listen 127.0.0.1:0 >"$work/meterd.out" 2>"$work/meterd.log" &
meterd_pid=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$work/meterd.out" 2>/dev/null && break
  sleep 0.05
done
meter_url="http://$(sed -n 's/^meterd listening on //p' "$work/meterd.out")"
[ "$meter_url" != "http://" ] || { cat "$work/meterd.log" >&2; exit 1; }
echo "meterd at $meter_url"

step "the image pipeline over HTTP: thumbnail -> watermark -> store, each step metered"
cat >"$work/manifest.json" <<EOF
{"functions": [
  {"tenant": "acme", "name": "thumbnail", "command": ["$bin/fn/thumbnail", "--width", "128"],
   "mode": "warm", "memory_mb": 256, "timeout_ms": 3000, "concurrency": 4},
  {"tenant": "acme", "name": "watermark", "command": ["$bin/fn/watermark"],
   "mode": "warm", "memory_mb": 128, "timeout_ms": 3000, "concurrency": 4},
  {"tenant": "acme", "name": "store", "command": ["$bin/fn/store", "$work/store"],
   "mode": "exec", "memory_mb": 128, "timeout_ms": 3000, "concurrency": 4}
 ],
 "pipelines": [{"tenant": "acme", "name": "upload", "steps": ["thumbnail", "watermark", "store"]}]}
EOF
"$bin/faasrun" serve --manifest "$work/manifest.json" --spool "$work/spool" \
  --meter "$meter_url" --meter-key "$ingest_key" --listen 127.0.0.1:0 \
  >"$work/faasrun.out" 2>"$work/faasrun.log" &
faasrun_pid=$!
for _ in $(seq 1 100); do
  grep -q 'listening on' "$work/faasrun.out" 2>/dev/null && break
  sleep 0.05
done
faasrun_url="http://$(sed -n 's/^faasrun listening on //p' "$work/faasrun.out")"
[ "$faasrun_url" != "http://" ] || { cat "$work/faasrun.log" >&2; exit 1; }
echo "faasrun at $faasrun_url"
for i in $(seq 1 12); do
  "$bin/fn/mkimage" $((640 + 32 * i)) 480 >"$work/upload-$i.ppm"
  curl -sS --fail-with-body --max-time 30 -D "$work/headers-$i.txt" \
    --data-binary "@$work/upload-$i.ppm" "$faasrun_url/invoke/acme/upload" >"$work/receipt-$i.json"
done
echo "12 uploads processed over HTTP; receipts in var/demo/, thumbnails in var/demo/store/"
head -c 300 "$work/receipt-1.json"; echo
grep -i '^x-' "$work/headers-1.txt"
# SIGTERM: finish what runs, ship the spool to meterd, exit.
kill -TERM "$faasrun_pid" && wait "$faasrun_pid"
faasrun_pid=

step "what meterd stored"
psql "$FAASMETER_DB" -X -q -P pager=off -c \
  "SELECT function, count(*) AS invocations, sum(duration_us) AS duration_us,
          max(max_rss_kb) AS peak_rss_kb, count(*) FILTER (WHERE status <> 'ok') AS errors
     FROM invocations WHERE tenant = 'acme' GROUP BY function ORDER BY function"

period=$(date -u +%Y-%m)
step "invoice for acme, $period (aws-lambda-x86, free tier applied)"
"$bin/faasbill" invoice --tenant acme --period "$period"
mean_ms=$(psql "$FAASMETER_DB" -XAtc "SELECT round(avg(duration_us) / 1000.0, 3)
                                        FROM invocations WHERE tenant = 'acme'")
step "at 10 million uploads a month (30 million steps of the observed mean ${mean_ms} ms)"
"$bin/faasbill" quote --plan aws-lambda-x86 --memory-mb 256 --invocations 30000000 \
  --avg-duration-ms "$mean_ms"

step "functions or servers: the comparison report for acme and for every tenant"
"$bin/faasbill" compare --tenant acme --period "$period"
"$bin/faasbill" compare --tenant acme --period "$period" --format html -o "$work/compare-acme.html"
"$bin/faasbill" report --period "$period" -o "$work/report.html"
echo "reports written: var/demo/compare-acme.html (acme) and var/demo/report.html (every tenant)"
