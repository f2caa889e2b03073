#!/usr/bin/env bash
# VeltrixDB against its peers, in one command: the engine in process,
# RocksDB (plain and BlobDB), fjall, veltrixd and Redis over loopback, and
# fio on the engine's file. Writes target/bench-results/{results.json,
# table.md, *.svg} and prints the table (docs/BENCHMARKS.md explains it).
#
#   scripts/bench-all.sh                         # everything, 3 runs (1.5–2 h, extrapolated)
#   scripts/bench-all.sh --quick                 # tiny data, seconds
#   scripts/bench-all.sh --runs 3 --value-bytes 1024 --datasets cached
#   scripts/bench-all.sh --help                  # every option of `bench all`
#
# Needs fio and redis-server (apt-get install fio redis-server redis-tools);
# for RocksDB, Debian's librocksdb-dev 7.8 and libclang-dev (bindgen reads
# the system's rocksdb/c.h): without them RocksDB is skipped, out loud.
set -euo pipefail
cd "$(dirname "$0")/.."

for tool in fio redis-server; do
    command -v "$tool" >/dev/null || echo "SKIPPED: $tool is not installed; its rows will be missing (apt-get install fio redis-server)" >&2
done

features=()
# The rocksdb crate 0.20 (librocksdb-sys 0.10, written for RocksDB 7.9) links
# the system's librocksdb 7.8 dynamically: bindgen generates the bindings from
# the installed header, so they match the library, and nothing is compiled
# from RocksDB's source.
lib=$(dpkg -L librocksdb-dev 2>/dev/null | grep '/librocksdb\.so$' | head -n1 || true)
if [[ -n $lib ]] && dpkg -s libclang-dev >/dev/null 2>&1; then
    export ROCKSDB_LIB_DIR=${lib%/*} ROCKSDB_INCLUDE_DIR=/usr/include
    features=(--features rocksdb)
else
    echo "SKIPPED: RocksDB: needs librocksdb-dev and libclang-dev (apt-get install librocksdb-dev libclang-dev)" >&2
fi

nice -n 19 cargo build --release -p appliance --bin veltrixd >&2
nice -n 19 cargo build --release -p bench "${features[@]}" >&2
exec target/release/bench all "$@"
