#!/usr/bin/env bash
# The CPU cost of key expiry, veltrixd against Redis in the same run: KEYS
# keys (default 10 million) whose deadlines fall uniformly over WINDOW
# seconds (default 60), loaded with SET ... PXAT through `redis-cli --pipe`,
# then reclaimed by each server's background expiry (nobody reads them).
# Per system it prints the server's CPU seconds while idle before the
# window, from the first deadline until every key is reclaimed, the part of
# that above idle (the cost of expiry) and the cost per million keys.
#
#   scripts/bench-expiry.sh                 # KEYS=10000000 WINDOW=60
#   KEYS=1000000 LEAD=60 scripts/bench-expiry.sh    # a quicker look
#   SYSTEMS=redis LEAD=120 scripts/bench-expiry.sh   # one system
#
# Redis runs with appendonly yes and appendfsync always, as veltrixd is
# durable per write; its expiry also appends a DEL per key to its AOF.
set -euo pipefail
cd "$(dirname "$0")/.."
KEYS=${KEYS:-10000000}
WINDOW=${WINDOW:-60}
# Seconds from the start of loading to the first deadline: loading must
# finish before it (the script checks).
LEAD=${LEAD:-300}
WORK=${WORK:-/var/tmp/veltrix-bench-expiry}
PORT=${PORT:-16391}
SYSTEMS=${SYSTEMS:-veltrixd redis}

command -v redis-cli >/dev/null || { echo "needs redis-cli (apt-get install redis-tools)"; exit 1; }
command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)"; exit 1; }
cargo build --release -p appliance --bin veltrixd >/dev/null

PID=
trap 'kill $PID 2>/dev/null || true; rm -rf "$WORK"' EXIT

cpu() { # the server's user + system CPU seconds so far
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f\n", ($14 + $15) / hz }' "/proc/$PID/stat"
}
keyspace() { redis-cli -p "$PORT" info keyspace | tr -d '\r' | grep '^db0:' || echo "db0:keys=0,expires=0"; }
now_ms() { date +%s%3N; }

load() { # first_ms: SET exp:I v PXAT deadline for every key, pipelined
  python3 - "$KEYS" "$1" "$WINDOW" <<'EOF' | redis-cli -p "$PORT" --pipe > "$WORK/load.out"
import sys
keys, first, window = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
out = sys.stdout.buffer
span = window * 1000
chunk = []
for i in range(keys):
    key = b"exp:%d" % i
    at = b"%d" % (first + (i * 7919) % span)
    chunk.append(b"*5\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$1\r\nv\r\n$4\r\nPXAT\r\n$%d\r\n%s\r\n" % (len(key), key, len(at), at))
    if len(chunk) == 10000:
        out.write(b"".join(chunk))
        chunk = []
out.write(b"".join(chunk))
EOF
}

measure() { # system: start it, load, measure, print one table row
  local system=$1
  rm -rf "$WORK" && mkdir -p "$WORK"
  case $system in
    veltrixd)
      target/release/veltrixd --data-dir "$WORK" --namespace-size 8GiB --listen 127.0.0.1:$PORT \
        --native-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-level warn > "$WORK/server.out" 2>&1 &
      ;;
    redis)
      redis-server --port $PORT --dir "$WORK" --appendonly yes --appendfsync always \
        --save '' --daemonize no > "$WORK/server.out" 2>&1 &
      ;;
  esac
  PID=$!
  for _ in $(seq 100); do redis-cli -p $PORT ping >/dev/null 2>&1 && break; sleep 0.1; done

  local start_ms first_ms loaded_ms
  start_ms=$(now_ms)
  first_ms=$((start_ms + LEAD * 1000))
  load "$first_ms"
  loaded_ms=$(now_ms)
  grep -q "errors: 0, replies: $KEYS" "$WORK/load.out" \
    || { echo "$system: loading failed: $(tail -1 "$WORK/load.out")" >&2; exit 1; }
  echo "$system: loaded in $(( (loaded_ms - start_ms) / 1000 )) s: $(keyspace)" >&2
  if [ "$loaded_ms" -ge $((first_ms - 25000)) ]; then
    echo "$system: loading took too long for LEAD=$LEAD (it must end 25 s before the first deadline): raise LEAD" >&2
    exit 1
  fi

  # Idle: 20 s before the window, nothing expiring yet.
  sleep 2
  local c0 c1 idle_rate
  c0=$(cpu); sleep 20; c1=$(cpu)
  idle_rate=$(awk -v a="$c0" -v b="$c1" 'BEGIN { printf "%.4f", (b - a) / 20 }')

  # From the first deadline until every key is reclaimed.
  while [ "$(now_ms)" -lt "$first_ms" ]; do sleep 0.2; done
  local w0 t0 line
  w0=$(cpu); t0=$(now_ms)
  while :; do
    line=$(keyspace)
    case "$line" in *"keys=0,expires=0"*) break ;; esac
    if [ $(( $(now_ms) - t0 )) -gt $(( (WINDOW + 600) * 1000 )) ]; then
      echo "$system: not reclaimed 10 minutes after the window: $line" >&2; exit 1
    fi
    sleep 0.5
  done
  local w1 t1 seconds after_last used extra per_million share
  w1=$(cpu); t1=$(now_ms)
  kill $PID; wait $PID 2>/dev/null || true
  seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", (b - a) / 1000 }')
  after_last=$(awk -v s="$seconds" -v w="$WINDOW" 'BEGIN { printf "%.1f", s - w }')
  used=$(awk -v a="$w0" -v b="$w1" 'BEGIN { printf "%.2f", b - a }')
  extra=$(awk -v u="$used" -v r="$idle_rate" -v s="$seconds" 'BEGIN { printf "%.2f", u - r * s }')
  per_million=$(awk -v e="$extra" -v k="$KEYS" 'BEGIN { printf "%.2f", e / (k / 1000000) }')
  share=$(awk -v u="$used" -v s="$seconds" 'BEGIN { printf "%.1f", 100 * u / s }')
  echo "| $system | $KEYS | $WINDOW | $after_last | $used | $idle_rate | $extra | $per_million | $share% of one core |"
}

rows=()
for system in $SYSTEMS; do
  rows+=("$(measure $system)")
done
echo
echo "| system | keys | window s | reclaimed after the last deadline s | CPU s from the first deadline | idle CPU s/s | CPU s for expiry | per million keys | mean CPU share |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
printf '%s\n' "${rows[@]}"
