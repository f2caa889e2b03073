#!/usr/bin/env bash
# What TLS costs on the RESP port (docs/BENCHMARKS.md, "TLS on the RESP
# port"): redis-benchmark SET (durable on veltrixd) and GET (cached), against
# veltrixd with `resp = "off"` then `resp = "tls"`, and against redis-server
# (no persistence) on its plain port then its --tls-port, the same client
# line for all four. Certificates come from scripts/tls-test-certs.sh.
#
#   scripts/bench-tls.sh            # VELTRIXD=target/debug/veltrixd N=20000
set -euo pipefail
cd "$(dirname "$0")/.."
veltrixd=${VELTRIXD:-target/debug/veltrixd}
n=${N:-20000}
dir=$(mktemp -d /tmp/veltrix-bench-tls.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null || true; rm -rf "$dir"' EXIT
scripts/tls-test-certs.sh "$dir" >/dev/null

run() { # label, then redis-benchmark's connection arguments
  local label=$1
  shift
  redis-benchmark "$@" -t set,get -n "$n" -c 16 -q 2>/dev/null | tr '\r' '\n' |
    grep -E "^(SET|GET): [0-9.]+ requests per second" | sed "s/^/$label /"
}

veltrix() { # mode
  rm -rf "$dir/data"
  printf '[tls]\ncert_file = "%s"\nkey_file = "%s"\nresp = "%s"\n' \
    "$dir/server.pem" "$dir/server.key" "$1" >"$dir/v.toml"
  "$veltrixd" --config "$dir/v.toml" --data-dir "$dir/data" --listen 127.0.0.1:16400 \
    --native-listen 127.0.0.1:17400 --admin-listen 127.0.0.1:19400 \
    --namespace-size 1GiB --workers 2 --log-level warn >"$dir/veltrixd.log" 2>&1 &
  pid=$!
  sleep 1.5
}

veltrix off
run "veltrixd plain:" -p 16400
kill "$pid" && wait "$pid" || true
veltrix tls
run "veltrixd TLS:  " -p 16400 --tls --cacert "$dir/ca.pem"
kill "$pid" && wait "$pid" || true

redis-server --port 16401 --tls-port 16402 --tls-cert-file "$dir/server.pem" \
  --tls-key-file "$dir/server.key" --tls-ca-cert-file "$dir/ca.pem" --tls-auth-clients no \
  --save "" --appendonly no --bind 127.0.0.1 >"$dir/redis.log" 2>&1 &
pid=$!
sleep 0.5
run "redis plain:   " -p 16401
run "redis TLS:     " -p 16402 --tls --cacert "$dir/ca.pem"
kill "$pid" && wait "$pid" || true
