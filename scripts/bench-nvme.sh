#!/usr/bin/env bash
# 4 KiB random reads with O_DIRECT: the nvme crate's backends against fio,
# on the same pre-filled file, at queue depths 1, 32 and 128.
#
# Prints one Markdown table of medians (over BENCH_REPEATS runs of each
# configuration, ours and fio's interleaved so drift hits both alike) with the
# ratio ours / fio. Paste it into docs/BENCHMARKS.md with the command line.
#
#   scripts/bench-nvme.sh                  # defaults below
#   BENCH_SECONDS=10 BENCH_REPEATS=5 scripts/bench-nvme.sh
#
# Environment:
#   BENCH_FILE      the file to read (default /var/tmp/veltrix-bench/randread-1g.img);
#                   created and filled with fio when missing or of another size
#   BENCH_SIZE_MIB  its size (default 1024)
#   BENCH_SECONDS   measured seconds per run (default 5)
#   BENCH_REPEATS   runs per configuration (default 5)
#   BENCH_QDS       queue depths (default "1 32 128")
#   BENCH_RAW       where the per-run results go (default $BENCH_FILE.results.tsv)
#   BENCH_SPIN      1 adds rows where ours reaps SQPOLL completions by spinning on
#                   poll(), as fio does (default 0: ours waits in the kernel)
#
# Needs: cargo, fio, jq, /usr/bin/time (Debian: apt-get install fio jq time).
set -euo pipefail
shopt -s inherit_errexit

cd "$(dirname "$0")/.."

FILE=${BENCH_FILE:-/var/tmp/veltrix-bench/randread-1g.img}
SIZE_MIB=${BENCH_SIZE_MIB:-1024}
SECONDS_EACH=${BENCH_SECONDS:-5}
REPEATS=${BENCH_REPEATS:-5}
QDS=${BENCH_QDS:-"1 32 128"}
RAW=${BENCH_RAW:-$FILE.results.tsv}

for tool in cargo fio jq /usr/bin/time; do
    command -v "$tool" >/dev/null || {
        echo "bench-nvme: $tool is missing (apt-get install fio jq time)" >&2
        exit 1
    }
done

# The file: allocated and non-zero, so every read reaches the device (a read
# of a hole is answered by the file system without I/O).
mkdir -p "$(dirname "$FILE")"
if [[ ! -f $FILE.filled || $(stat -c %s "$FILE" 2>/dev/null || echo 0) -ne $((SIZE_MIB << 20)) ]]; then
    echo "bench-nvme: filling $FILE ($SIZE_MIB MiB) with fio" >&2
    rm -f "$FILE" "$FILE.filled"
    fio --name=fill --filename="$FILE" --rw=write --bs=1M --size="${SIZE_MIB}M" \
        --ioengine=psync --direct=1 --end_fsync=1 --output-format=terse >/dev/null
    touch "$FILE.filled"
fi

echo "bench-nvme: building the example" >&2
cargo build --release -p nvme --example randread >&2

# fio's own CPU figures come from one job thread (RUSAGE_THREAD) and miss the
# SQPOLL kernel thread, so fio's whole process is measured from outside
# instead: user + system time of fio and every thread in it, start to exit.
run_fio() { # engine qd sqpoll
    local engine=$1 qd=$2 sqpoll=$3 json cpu
    json=$(mktemp) cpu=$(mktemp)
    /usr/bin/time -f '%U %S' -o "$cpu" \
        fio --name=randread --filename="$FILE" --ioengine="$engine" --direct=1 \
        --rw=randread --bs=4k --iodepth="$qd" --runtime="$SECONDS_EACH" --time_based \
        $([[ $engine == io_uring ]] && echo "--sqthread_poll=$sqpoll") \
        --lat_percentiles=1 --output-format=json >"$json"
    jq -r --arg cpu "$(awk '{print $1 + $2}' "$cpu")" '.jobs[0].read |
        [(.iops | floor), (.lat_ns.percentile["50.000000"] / 1000 | floor),
         (.lat_ns.percentile["99.000000"] / 1000 | floor),
         ($cpu | tonumber) * 1e6 / .total_ios, .total_ios / ($cpu | tonumber)] | @tsv' "$json"
    rm -f "$json" "$cpu"
}

run_ours() { # backend qd reap
    local line
    line=$(cargo run --quiet --release -p nvme --example randread -- --path "$FILE" \
        --backend "$1" --qd "$2" --reap "$3" --seconds "$SECONDS_EACH" | grep '^RESULT ')
    # RESULT key=value ... -> iops p50 p99 cpu_us_per_io iops_per_core
    awk '{for (i = 2; i <= NF; i++) { split($i, kv, "="); v[kv[1]] = kv[2] }
          printf "%d\t%d\t%d\t%s\t%d\n", v["iops"], v["p50_us"], v["p99_us"], v["cpu_us_per_io"], v["iops_per_core"]}' <<<"$line"
}

# Configurations: label, our backend, our reaping, fio engine, fio sqpoll.
configs=()
for qd in $QDS; do
    # sync runs one command at a time whatever the depth: QD1 only.
    [[ $qd == 1 ]] && configs+=("sync|$qd|sync|block|psync|0")
    configs+=("uring|$qd|uring|block|io_uring|0")
    configs+=("uring + SQPOLL|$qd|uring-sqpoll|block|io_uring|1")
    # fio reaps by spinning on the CQ when SQPOLL is on; ours waits in the
    # kernel unless told to spin. On two cores two spinners starve the kernel
    # workers and both collapse at random, so this row is opt-in.
    if [[ ${BENCH_SPIN:-0} == 1 ]]; then
        configs+=("uring + SQPOLL, poll spins|$qd|uring-sqpoll|spin|io_uring|1")
    fi
done

: >"$RAW"
for repeat in $(seq "$REPEATS"); do
    for config in "${configs[@]}"; do
        IFS='|' read -r label qd backend reap engine sqpoll <<<"$config"
        echo "bench-nvme: run $repeat/$REPEATS: $label, QD$qd" >&2
        # A failed run stops the script (set -e): no zeros in the medians.
        fio_result=$(run_fio "$engine" "$qd" "$sqpoll")
        our_result=$(run_ours "$backend" "$qd" "$reap")
        printf '%s\t%s\tfio\t%s\n' "$label" "$qd" "$fio_result" >>"$RAW"
        printf '%s\t%s\tours\t%s\n' "$label" "$qd" "$our_result" >>"$RAW"
    done
done

# Median of one column for one (label, qd, tool).
median() { # label qd tool column
    awk -F'\t' -v l="$1" -v q="$2" -v t="$3" -v c="$4" '$1 == l && $2 == q && $3 == t {print $c}' "$RAW" |
        sort -g | awk '{a[NR] = $1} END {if (NR % 2) print a[(NR + 1) / 2]; else print (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

echo
echo "| Backend (fio peer) | QD | fio IOPS | ours IOPS | ours / fio | fio P50 / P99 µs | ours P50 / P99 µs | fio CPU µs/IO | ours CPU µs/IO | fio IOPS/core | ours IOPS/core |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for config in "${configs[@]}"; do
    IFS='|' read -r label qd backend reap engine sqpoll <<<"$config"
    peer=$engine
    [[ $sqpoll == 1 ]] && peer="io_uring, sqthread_poll"
    fio_iops=$(median "$label" "$qd" fio 4)
    our_iops=$(median "$label" "$qd" ours 4)
    printf '| %s (%s) | %s | %.0f | %.0f | %.0f%% | %.0f / %.0f | %.0f / %.0f | %.1f | %.1f | %.0f | %.0f |\n' \
        "$label" "$peer" "$qd" "$fio_iops" "$our_iops" "$(awk -v a="$our_iops" -v b="$fio_iops" 'BEGIN {print 100 * a / b}')" \
        "$(median "$label" "$qd" fio 5)" "$(median "$label" "$qd" fio 6)" \
        "$(median "$label" "$qd" ours 5)" "$(median "$label" "$qd" ours 6)" \
        "$(median "$label" "$qd" fio 7)" "$(median "$label" "$qd" ours 7)" \
        "$(median "$label" "$qd" fio 8)" "$(median "$label" "$qd" ours 8)"
done
echo
echo "Medians of $REPEATS runs of ${SECONDS_EACH} s each; raw results in $RAW."
