#!/usr/bin/env bash
# Server-path benchmark: redis-benchmark against veltrixd and against Redis
# with appendfsync always (the durable peer), in the same run, on the same
# disk. Prints a Markdown table with medians of RUNS runs and the ratios.
#
#   scripts/bench-resp.sh            # RUNS=3 REQUESTS=100000
#   TESTS=incr scripts/bench-resp.sh # only INCR (a durable read-modify-write)
#
# INCR has no value size: it runs once per pipeline depth, in the 100-byte
# rows, on redis-benchmark's random counters (-r 100000).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
REQUESTS=${REQUESTS:-100000}
CLIENTS=${CLIENTS:-50}
TESTS=${TESTS:-set get incr}
WORK=${WORK:-/var/tmp/veltrix-bench-resp}
VPORT=16379
RPORT=16380

command -v redis-server >/dev/null || { echo "needs redis-server (apt-get install redis-server)"; exit 1; }
command -v redis-benchmark >/dev/null || { echo "needs redis-benchmark (apt-get install redis-tools)"; exit 1; }
cargo build --release -p appliance --bin veltrixd >/dev/null

rm -rf "$WORK" && mkdir -p "$WORK/veltrix" "$WORK/redis"
target/release/veltrixd --data-dir "$WORK/veltrix" --listen 127.0.0.1:$VPORT \
  --native-listen 127.0.0.1:0 --admin-listen 127.0.0.1:0 --log-level warn > "$WORK/veltrixd.out" 2>&1 &
VPID=$!
redis-server --port $RPORT --dir "$WORK/redis" --appendonly yes --appendfsync always \
  --save '' --daemonize no > "$WORK/redis.out" 2>&1 &
RPID=$!
trap 'kill $VPID $RPID 2>/dev/null || true' EXIT
for p in $VPORT $RPORT; do
  for _ in $(seq 100); do redis-cli -p $p ping >/dev/null 2>&1 && break; sleep 0.1; done
done

rps() { # port test size pipeline -> requests per second
  redis-benchmark -p "$1" -t "$2" -n "$REQUESTS" -c "$CLIENTS" -d "$3" -P "$4" -r 100000 --csv 2>/dev/null \
    | awk -F'","' 'NR==2 { gsub(/"/, "", $2); print int($2) }'
}
median() { sort -n | awk '{a[NR]=$1} END { print a[int((NR+1)/2)] }'; }

echo "| test | value bytes | pipeline | veltrixd ops/s | Redis (appendfsync always) ops/s | ratio |"
echo "|---|---:|---:|---:|---:|---:|"
for size in 100 4096; do
  for pipeline in 1 16; do
    for test in $TESTS; do
      [ "$test" = incr ] && [ "$size" != 100 ] && continue
      v=$(for _ in $(seq "$RUNS"); do rps $VPORT $test $size $pipeline; done | median)
      r=$(for _ in $(seq "$RUNS"); do rps $RPORT $test $size $pipeline; done | median)
      ratio=$(awk -v v="$v" -v r="$r" 'BEGIN { if (r > 0) printf "%.2f", v / r; else print "n/a" }')
      echo "| ${test^^} | $size | $pipeline | $v | $r | $ratio |"
    done
  done
done
