#!/usr/bin/env bash
# Replicated durable SETs: a 3-node veltrix cluster against a single
# veltrixd, a 3-member etcd cluster (its v3 HTTP/JSON gateway) and a Redis
# Cluster of 3 masters + 3 replicas (appendfsync always, each SET followed
# by WAIT 1 0), all on loopback, started in this run. The same load for each
# (`veltrix bench`): CLIENTS clients, one SET at a time for SECONDS seconds,
# 100-byte values, random keys out of KEYS. Prints one line per run on
# stderr and a Markdown table of medians on stdout; everything it started
# is stopped, and its data removed, on exit.
#
#   scripts/bench-cluster.sh                   # RUNS=3 SECONDS_PER_RUN=10 CLIENTS=64
#   SYSTEMS="veltrix-cluster etcd" RUNS=1 SECONDS_PER_RUN=2 scripts/bench-cluster.sh
#
# Systems (SYSTEMS, in this order by default; the extras on request):
#   veltrix-cluster     3 veltrixd, 3 zones, 64 Raft groups (routed by slot)
#   veltrixd            one veltrixd, plain RESP
#   etcd                3 etcd members, clients spread over the 3 endpoints
#   redis-cluster-wait  Redis Cluster, SET then WAIT 1 0 on the same connection
#   extras: etcd-leader (every client on the leader's endpoint),
#           redis-cluster (no WAIT: acknowledged before any replica has it)
#
# Installs nothing; says what is missing. Ports: PORT_BASE (27000) + 1..3,
# 101..103, 201..203, 301..303 (cluster), 501..503 (veltrixd), 601..603 and
# 611..613 (etcd), 701..706 and +10000 (Redis Cluster bus).
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SECONDS_PER_RUN=${SECONDS_PER_RUN:-10}
WARMUP_SECONDS=${WARMUP_SECONDS:-2}
CLIENTS=${CLIENTS:-64}
KEYS=${KEYS:-100000}
SYSTEMS=${SYSTEMS:-veltrix-cluster veltrixd etcd redis-cluster-wait}
PORT_BASE=${PORT_BASE:-27000}
WORK=${WORK:-/var/tmp/veltrix-bench-cluster}
KEEP=${KEEP:-0} # 1: leave $WORK (logs, data) behind

missing=()
command -v etcd >/dev/null || missing+=("etcd (apt-get install etcd-server)")
command -v redis-server >/dev/null || missing+=("redis-server (apt-get install redis-server)")
command -v redis-cli >/dev/null || missing+=("redis-cli (apt-get install redis-tools)")
command -v curl >/dev/null || missing+=("curl (apt-get install curl)")
command -v cargo >/dev/null || missing+=("cargo")
if ((${#missing[@]})); then
  printf 'needs: %s\n' "${missing[@]}" >&2
  exit 1
fi
etcd_version=$(etcd --version | awk '/etcd Version/ { print $3 }')
redis_version=$(redis-server --version | sed -n 's/.* v=\([^ ]*\).*/\1/p')

cargo build --release -p appliance --bins >&2
VELTRIX=target/release/veltrix
VELTRIXD=target/release/veltrixd

pids=()
cluster_pid=
cleanup() {
  # Disowned, so the shell does not report the ones that need a SIGKILL.
  disown -a 2>/dev/null || true
  # The local cluster's parent stops its nodes on SIGTERM.
  for pid in $cluster_pid "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for _ in $(seq 100); do
    local alive=0
    for pid in $cluster_pid "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in $cluster_pid "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  if [[ $KEEP != 1 ]]; then rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$WORK" && mkdir -p "$WORK/results"
say() { echo "$*" >&2; }
# Polls `$@` every 0.2 s for up to $1 seconds.
wait_for() {
  local seconds=$1 what=$2
  shift 2
  for _ in $(seq $((seconds * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  say "gave up waiting for $what; logs in $WORK" && KEEP=1 && exit 1
}

# --- the 3-node veltrix cluster (release build, 64 groups) ---
VC_BASE=$((PORT_BASE + 1))
say "starting the veltrix cluster on 127.0.0.1:$VC_BASE-$((VC_BASE + 2))"
$VELTRIX cluster local --dir "$WORK/veltrix-cluster" --base-port $VC_BASE > "$WORK/veltrix-cluster.out" 2>&1 &
cluster_pid=$!
wait_for 120 "the veltrix cluster's leaders" grep -q 'every group has a leader' "$WORK/veltrix-cluster.out"

# --- one veltrixd, the embedded default namespace ---
VD_PORT=$((PORT_BASE + 501))
mkdir -p "$WORK/veltrixd"
$VELTRIXD --data-dir "$WORK/veltrixd" --listen 127.0.0.1:$VD_PORT \
  --native-listen 127.0.0.1:$((PORT_BASE + 502)) --admin-listen 127.0.0.1:$((PORT_BASE + 503)) \
  --log-level warn > "$WORK/veltrixd.out" 2>&1 &
pids+=($!)
veltrixd_pid=$!
wait_for 30 veltrixd redis-cli -p $VD_PORT ping

# --- 3 etcd members, each its own data dir, default fsync behaviour ---
etcd_pids=()
etcd_cluster=
etcd_endpoints=
for i in 1 2 3; do
  etcd_cluster+="${etcd_cluster:+,}e$i=http://127.0.0.1:$((PORT_BASE + 610 + i))"
  etcd_endpoints+="${etcd_endpoints:+,}127.0.0.1:$((PORT_BASE + 600 + i))"
done
for i in 1 2 3; do
  client=http://127.0.0.1:$((PORT_BASE + 600 + i))
  peer=http://127.0.0.1:$((PORT_BASE + 610 + i))
  etcd --name "e$i" --data-dir "$WORK/etcd-$i" \
    --listen-client-urls "$client" --advertise-client-urls "$client" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "$etcd_cluster" --initial-cluster-state new \
    --initial-cluster-token veltrix-bench --logger zap --log-level warn \
    > "$WORK/etcd-$i.out" 2>&1 &
  pids+=($!)
  etcd_pids+=($!)
done
for i in 1 2 3; do
  wait_for 60 "etcd member $i" curl -sf "http://127.0.0.1:$((PORT_BASE + 600 + i))/health"
done
# The leader's client endpoint, for the etcd-leader variant.
etcd_leader=
for i in 1 2 3; do
  status=$(curl -s -X POST "http://127.0.0.1:$((PORT_BASE + 600 + i))/v3/maintenance/status" -d '{}')
  member=$(sed -n 's/.*"member_id":"\([0-9]*\)".*/\1/p' <<< "$status")
  leader=$(sed -n 's/.*"leader":"\([0-9]*\)".*/\1/p' <<< "$status")
  if [[ -n $member && $member == "$leader" ]]; then etcd_leader=127.0.0.1:$((PORT_BASE + 600 + i)); fi
done

# --- Redis Cluster: 3 masters + 3 replicas, AOF fsynced per write ---
redis_nodes=()
redis_pids=()
for i in 1 2 3 4 5 6; do
  port=$((PORT_BASE + 700 + i))
  mkdir -p "$WORK/redis-$port"
  redis-server --port $port --bind 127.0.0.1 --dir "$WORK/redis-$port" \
    --cluster-enabled yes --cluster-config-file nodes.conf \
    --appendonly yes --appendfsync always --save '' --daemonize no \
    > "$WORK/redis-$port.out" 2>&1 &
  pids+=($!)
  redis_pids+=($!)
  redis_nodes+=("127.0.0.1:$port")
done
for node in "${redis_nodes[@]}"; do wait_for 30 "redis $node" redis-cli -p "${node#*:}" ping; done
redis-cli --cluster create "${redis_nodes[@]}" --cluster-replicas 1 --cluster-yes > "$WORK/redis-create.out" 2>&1
RC_PORT=$((PORT_BASE + 701))
redis_ready() {
  redis-cli -p $RC_PORT cluster info | grep -q 'cluster_state:ok' || return 1
  # Every master has its replica attached (else WAIT 1 0 would block).
  [[ $(for n in "${redis_nodes[@]}"; do redis-cli -p "${n#*:}" info replication; done |
    grep -c 'connected_slaves:1') == 3 ]]
}
wait_for 60 "the Redis Cluster's replicas" redis_ready

# --- the load ---
bench() { # system seconds -> veltrix bench's output
  local common=(--ratio 0:1 --clients "$CLIENTS" --seconds "$2" --keys "$KEYS" --value-bytes 100)
  case $1 in
    veltrix-cluster) $VELTRIX --resp 127.0.0.1:$VC_BASE bench --protocol resp-cluster "${common[@]}" ;;
    veltrixd) $VELTRIX --resp 127.0.0.1:$VD_PORT bench --protocol resp "${common[@]}" ;;
    etcd) $VELTRIX bench --protocol etcd --etcd "$etcd_endpoints" "${common[@]}" ;;
    etcd-leader) $VELTRIX bench --protocol etcd --etcd "$etcd_leader" "${common[@]}" ;;
    redis-cluster-wait) $VELTRIX --resp 127.0.0.1:$RC_PORT bench --protocol resp-cluster --wait 1 "${common[@]}" ;;
    redis-cluster) $VELTRIX --resp 127.0.0.1:$RC_PORT bench --protocol resp-cluster "${common[@]}" ;;
    *) say "unknown system $1" && exit 2 ;;
  esac
}
label() {
  case $1 in
    veltrix-cluster) echo "veltrix cluster (3 nodes, RESP, routed)" ;;
    veltrixd) echo "veltrixd (1 node, RESP)" ;;
    etcd) echo "etcd $etcd_version (3 members, gateway, all endpoints)" ;;
    etcd-leader) echo "etcd $etcd_version (3 members, gateway, leader only)" ;;
    redis-cluster-wait) echo "Redis $redis_version Cluster 3+3, always + WAIT 1 0" ;;
    redis-cluster) echo "Redis $redis_version Cluster 3+3, always, no WAIT" ;;
  esac
}
# Reads veltrix bench's two summary lines: ops/s, p50, p99, p999 (us),
# errors, redirects, requests.
summary() {
  awk '/ requests in / {
         requests = $1; ops = $6
         for (i = 1; i <= NF; i++) {
           if ($(i + 1) ~ /^errors/) errs = $i
           if ($(i + 1) ~ /^redirects/) moved = $i
         }
       }
       /^latency \(us\)/ { p50 = $4; p99 = $8; p999 = $10 }
       END { printf "%s %s %s %s %s %s %s\n", ops, p50, p99, p999, errs, moved, requests }' "$1"
}
# The sum of the Raft terms of the 64 groups, as node 1 (which hosts them
# all) reports them: its growth over a run counts elections and leadership
# transfers, which is what the cluster's redirects and tail latency follow.
cluster_terms() {
  curl -s "http://127.0.0.1:$((VC_BASE + 200))/api/cluster" | grep -o '"term":[0-9]*' | cut -d: -f2 |
    awk '{ s += $1 } END { print s + 0 }'
}
# The servers' processes of a system (the cluster's nodes are the local
# cluster's children).
server_pids() {
  case $1 in
    veltrix-cluster) pgrep -P "$cluster_pid" ;;
    veltrixd) echo "$veltrixd_pid" ;;
    etcd*) echo "${etcd_pids[@]}" ;;
    redis*) echo "${redis_pids[@]}" ;;
  esac
}
# User + system CPU time of those processes so far, in clock ticks.
cpu_ticks() {
  local total=0 pid
  for pid in $(server_pids "$1"); do
    total=$((total + $(awk '{ print $14 + $15 }' "/proc/$pid/stat")))
  done
  echo $total
}
# The whole machine's CPU so far, in clock ticks: user + nice + system
# (what processes are charged), irq + softirq (this kernel accounts them
# apart; mostly this benchmark's loopback traffic), steal.
machine_ticks() { awk '/^cpu / { print $2 + $3 + $4, $7 + $8, $9 }' /proc/stat; }
# CPU time of this shell's waited-for children so far (the load generator),
# in clock ticks. `times` must run in this shell, not in a $(...) subshell,
# whose children are not these.
children_ticks() {
  times > "$WORK/times.txt"
  awk -v hz="$(getconf CLK_TCK)" 'NR == 2 {
    split($1, u, /[ms]/); split($2, s, /[ms]/)
    printf "%.0f\n", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * hz }' "$WORK/times.txt"
}
median() { sort -g | awk '{ a[NR] = $1 } END { print a[int((NR + 1) / 2)] }'; }

for system in $SYSTEMS; do
  bench "$system" "$WARMUP_SECONDS" > "$WORK/results/$system-warmup.txt" 2>&1 || {
    say "$system: the warm-up failed:" && cat "$WORK/results/$system-warmup.txt" >&2 && exit 1
  }
done
say "load average before the runs: $(cut -d' ' -f1-3 /proc/loadavg)"
# Systems alternate within each run, so drift on the shared disk spreads
# over all of them.
for run in $(seq "$RUNS"); do
  for system in $SYSTEMS; do
    out="$WORK/results/$system-$run.txt"
    terms_before=$(cluster_terms)
    ticks_before=$(cpu_ticks "$system")
    read -r busy_before irq_before steal_before <<< "$(machine_ticks)"
    children_ticks > "$WORK/client-before.txt"
    client_before=$(< "$WORK/client-before.txt")
    started=$(date +%s.%N)
    bench "$system" "$SECONDS_PER_RUN" > "$out" 2>&1 || { say "$system run $run failed:" && cat "$out" >&2 && exit 1; }
    ticks=$(($(cpu_ticks "$system") - ticks_before))
    children_ticks > "$WORK/client-after.txt"
    client=$(($(< "$WORK/client-after.txt") - client_before))
    read -r busy irq steal <<< "$(machine_ticks)"
    # What the rest of the machine used meanwhile (other work, not this
    # benchmark), and what the hypervisor stole, as shares of all CPUs.
    others=$(awk -v b="$((busy - busy_before))" -v t="$ticks" -v c="$client" -v st="$((steal - steal_before))" \
      -v i="$((irq - irq_before))" -v s="$started" -v e="$(date +%s.%N)" -v n="$(nproc)" -v hz="$(getconf CLK_TCK)" \
      'BEGIN { all = (e - s) * n * hz; o = b - t - c; if (o < 0) o = 0
               printf "of %d CPUs: other processes %.0f%%, interrupts %.0f%%, steal %.0f%%", n, 100 * o / all, 100 * i / all, 100 * st / all }')
    terms=$(($(cluster_terms) - terms_before))
    read -r ops p50 p99 p999 errs moved requests <<< "$(summary "$out")"
    # Server CPU per SET, in microseconds (clock ticks are 1/CLK_TCK s).
    cpu_us=$(awk -v t="$ticks" -v hz="$(getconf CLK_TCK)" -v n="$requests" 'BEGIN { printf "%.0f", (n > 0 ? t / hz * 1e6 / n : 0) }')
    say "run $run $system: $ops ops/s, p50 $p50 us, p99 $p99 us, p999 $p999 us, $errs errors, $moved redirects, server CPU $cpu_us us/SET, client CPU $((client * 1000000 / $(getconf CLK_TCK) / (requests > 0 ? requests : 1))) us/SET, veltrix cluster terms +$terms, $others"
    echo "$system $ops $p50 $p99 $p999 $errs $cpu_us" >> "$WORK/results/all.txt"
  done
done
say "load average after the runs: $(cut -d' ' -f1-3 /proc/loadavg)"

col() { awk -v s="$1" -v c="$2" '$1 == s { print $c }' "$WORK/results/all.txt" | median; }
total() { awk -v s="$1" -v c="$2" '$1 == s { t += $c } END { print t + 0 }' "$WORK/results/all.txt"; }
ms() { awk -v us="$1" 'BEGIN { printf "%.2f", us / 1000 }'; }
base=$(col veltrix-cluster 2)
echo "| system | ops/s | P50 ms | P99 ms | P99.9 ms | errors (all runs) | server CPU µs/SET | ops/s vs the veltrix cluster |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|"
for system in $SYSTEMS; do
  ops=$(col "$system" 2)
  ratio=$(awk -v a="$ops" -v b="${base:-0}" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "n/a" }')
  echo "| $(label "$system") | $ops | $(ms "$(col "$system" 3)") | $(ms "$(col "$system" 4)") | $(ms "$(col "$system" 5)") | $(total "$system" 6) | $(col "$system" 7) | $ratio |"
done
echo
echo "Medians of $RUNS runs of $SECONDS_PER_RUN s per system (each column's own median), $CLIENTS clients, one SET at a time, 100-byte values, $KEYS keys."
