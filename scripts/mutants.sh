#!/usr/bin/env bash
# Proves the simulator by mutation: breaks the engine on purpose, one named
# mutation at a time, and checks that the deterministic simulator (and the
# tests named for that mutation) fail. See docs/simulator.md.
#
#   scripts/mutants.sh                 every mutation, the suite's own seeds
#   scripts/mutants.sh --quick         50 seeds: small enough for CI
#   scripts/mutants.sh --only NAME     one mutation (repeatable)
#   scripts/mutants.sh --seeds N       VELTRIX_SIM_SEEDS=N for the simulator
#   scripts/mutants.sh --crate NAME    only the mutations of one crate (engine, cluster)
#
# A mutation of engine/ is judged by the engine's simulator (tests/simulator.rs
# there); a mutation of cluster/ by the cluster simulator and its
# linearizability checker (cluster/tests/simulator.rs, VELTRIX_CLUSTER_SEEDS,
# 300 seeds unless set).
#   scripts/mutants.sh --list          the mutations and what they break
#   scripts/mutants.sh --no-baseline   skip the unmutated run
#
# Each mutation is applied to a scratch copy of the working tree (never to
# the tree itself), built with its own CARGO_TARGET_DIR (reused across
# mutations and runs, so only the engine recompiles), and tested. The
# unmutated copy runs first: if it fails, nothing else means anything.
#
# Exit status: 0 when every mutation run was caught; 1 when any survived, no
# longer applies (its anchor is not found exactly as often as declared) or
# does not build; 2 on a usage error or a failing baseline.
#
# Environment: VELTRIX_MUTANTS_DIR (default <repo>/target/mutants) holds the
# scratch tree, its target dir and the logs; VELTRIX_MUTANTS_TIMEOUT_S
# (default 900) bounds each simulator run (a hang counts as caught, marked).

set -euo pipefail

# ---------------------------------------------------------------------------
# The mutations. One call each:
#
#   mutation NAME FILE COUNT ANCHOR REPLACEMENT EXTRA_TESTS DESCRIPTION
#
# ANCHOR is literal text (not a regex) that must occur exactly COUNT times in
# FILE; every occurrence is replaced by REPLACEMENT (literal too). Keep
# anchors short and distinctive: other work moves the code around them, and
# re-anchoring one is then a one-line change here.
#
# EXTRA_TESTS are run besides the simulator, space-separated: `lib` (the
# engine's unit tests) or an engine/tests/*.rs file name, each optionally
# `=FILTER` (a libtest name filter), e.g. `lib=format::record engine_file`.
# ---------------------------------------------------------------------------
MUTATION_NAMES=()
declare -A M_FILE M_COUNT M_ANCHOR M_REPLACEMENT M_EXTRA M_DESCRIPTION

mutation() {
    local name=$1
    if [[ -n ${M_FILE[$name]+set} ]]; then
        echo "mutants: mutation $name is defined twice" >&2
        exit 2
    fi
    MUTATION_NAMES+=("$name")
    M_FILE[$name]=$2
    M_COUNT[$name]=$3
    M_ANCHOR[$name]=$4
    M_REPLACEMENT[$name]=$5
    M_EXTRA[$name]=$6
    M_DESCRIPTION[$name]=$7
}

# shellcheck disable=SC2016 # the anchors and replacements are Rust, not shell
{
mutation ack-before-flush engine/src/worker/commit/mod.rs 1 \
    'core.commit.state = State::Flushing;' \
    'core.replies.append(&mut core.commit.answers); core.commit.state = State::Flushing;' \
    '' \
    'write_done answers the batch'"'"'s writers when its writes complete, before the flush'

mutation fua-ack-without-fua engine/src/worker/commit/mod.rs 1 \
    'Self::submit_write(core, lba, buf, fua);' \
    'let _ = fua; Self::submit_write(core, lba, buf, false);' \
    '' \
    'a batch answered when its one write completes is written without FUA: acknowledged before anything made it durable'

mutation skip-record-checksum engine/src/format/record.rs 1 \
    'check_crc_seeded(u32_at(bytes, 0), seed, &[&bytes[4..len]])?;' \
    'let _ = check_crc_seeded(u32_at(bytes, 0), seed, &[&bytes[4..len]]);' \
    'lib=format::record engine_file=a_flipped_bit' \
    'decode_record accepts a record whose crc does not hold'

mutation truncate-instead-of-report engine/src/log/walk.rs 1 \
    'if let Some(pending) = self.pending.take() {' \
    'if self.pending.is_some() { return; } if let Some(pending) = self.pending.take() {' \
    'inspect' \
    'recovery treats damage in the middle of a log as a torn tail: cuts the log there (and erases past it)'

mutation gc-free-before-durable engine/src/worker/gc.rs 1 \
    'core.gc.state = State::Relocating {' \
    'Self::erase(core, victim, 0); return; core.gc.state = State::Relocating {' \
    'gc' \
    'GC erases and releases its victim as soon as it has queued the relocations, before they are durable'

mutation retry-failed-flush engine/src/worker/commit/mod.rs 1 \
    'if let Err(error) = result {' \
    'if let Err(error) = result { if true { tracing::warn!("retrying a failed flush: {error}"); core.submit(token(TAG_FLUSH, 0), Command::Flush); return; }' \
    '' \
    'flush_done resubmits a failed flush instead of fencing; a later success acknowledges the batch'

mutation skip-frame-checksum engine/src/format/record.rs 1 \
    'check_crc_seeded(u32_at(bytes, 4), seed, &[&bytes[8..len]])?;' \
    'let _ = check_crc_seeded(u32_at(bytes, 4), seed, &[&bytes[8..len]]);' \
    'lib=format::record inspect' \
    'verify_frame accepts a frame whose crc does not hold (torn frames pass as whole)'

mutation keep-torn-tails engine/src/open.rs 1 \
    'erase_torn_tails(namespace.as_ref(), queue.as_mut(), &layout, &recovered)?;' \
    'let _ = erase_torn_tails;' \
    'inspect' \
    'open leaves the torn remains past each log tail (and orphan segment headers) in place'

mutation reuse-generation engine/src/recovery.rs 1 \
    'superblock_generation + 1' \
    '1 + 0 * superblock_generation' \
    '' \
    'recovery ignores the superblock'"'"'s generation claim: a new life reuses generations the last one may have written'

mutation gc-relocate-stale engine/src/worker/commit/plan.rs 1 \
    'WriteKind::Relocate(pointer) => current == Some(pointer),' \
    'WriteKind::Relocate(_) => current.is_some(),' \
    'gc' \
    'the commit path writes a GC relocation without checking the index still points at the copied record'

mutation checkpoint-watermark-off-by-one engine/src/recovery.rs 1 \
    'seq <= self.watermarks[usize::from(shard(key))]' \
    'seq <= self.watermarks[usize::from(shard(key))] + 1' \
    'checkpoint' \
    'recovery from a checkpoint skips the first record above each shard'"'"'s watermark'

mutation read-serves-unverified engine/src/worker/read.rs 1 \
    'Err(e) => Err(e.to_string()),' \
    'Err(_) => Ok(Some(data[in_block + 24 + key.len()..record_end].to_vec())),' \
    'engine_file=a_flipped_bit' \
    'the read path serves the value bytes of a record that fails to decode (bad crc)'

mutation read-skips-sequence-check engine/src/worker/read.rs 1 \
    'record.seq as u32 != pointer.sequence_low' \
    'record.seq as u32 != record.seq as u32' \
    'engine_file' \
    'the read path accepts a record whose sequence number is not the one the index expects (stale or misdirected)'

mutation cut-tail-silently engine/src/recovery.rs 1 \
    'if let Some(torn) = end.torn.as_ref().filter(|_| end.torn_written) {' \
    'if let Some(torn) = end.torn.as_ref().filter(|_| false) {' \
    '' \
    'recovery cuts a log end that holds something written (maybe a damaged last acknowledged frame) without reporting it'
mutation erase-cut-evidence engine/src/recovery.rs 1 \
    'let keep = if end.torn_written {' \
    'let keep = if false {' \
    '' \
    'open erases all of a reported cut, so an open that fails after its erase leaves the next one nothing to report'
mutation orphan-damaged-first-frame engine/src/log/walk.rs 1 \
    '|| !first.is_unwritten()' \
    '|| false' \
    '' \
    'after a clean end of a segment, a next segment whose first frame is damaged is taken for an orphan (its header erased)'
mutation index-failed-flush engine/src/worker/commit/mod.rs 1 \
    'core.shared.flush_failure();' \
    'core.shared.flush_failure(); for u in core.commit.updates.drain(..) { if let (Some(art), Some(p), None) = (core.shards.get_mut(&u.shard), u.pointer, u.expected) { let _ = art.insert(&u.key, p); } }' \
    '' \
    'a failed flush still indexes its batch'"'"'s puts: reads serve writes that were never durable'

mutation modify-ack-before-flush engine/src/worker/mod.rs 1 \
    'self.commit.enqueue_modified(id, ops, answer(a), now_us);' \
    'self.replies.push((id, answer(a))); self.commit.enqueue(id, ops, commit::WriteKind::Plain, now_us);' \
    'modify=a_crash_before_the_flush' \
    'a read-modify-write (INCR, GETDEL, SET ... GET) is answered when its write is queued, before the flush'

mutation modify-skips-waiting engine/src/worker/mod.rs 1 \
    'if other_waits || self.commit.touches_key(&key) {' \
    'if (other_waits || self.commit.touches_key(&key)) && false {' \
    'modify' \
    'a read-modify-write reads its key while a write of it is still queued: two INCRs read the same value'

mutation read-serves-expired engine/src/index/tree.rs 1 \
    'Some(deadline) if now_ms > deadline => None,' \
    'Some(deadline) if now_ms > deadline && key.is_empty() => None,' \
    'lib=index' \
    'the index'"'"'s lookup for reads (Art::get_live) ignores deadlines: GET, EXISTS and read-modify-writes see an expired key'

mutation recovery-ignores-expiry engine/src/recovery.rs 1 \
    'art.insert_expiring(&update.key, pointer, update.deadline);' \
    'art.insert(&update.key, pointer);' \
    'expiry' \
    'recovery replays a put record without its deadline: after a restart the key never expires'

mutation cluster-ack-before-commit cluster/src/group.rs 1 \
    'self.writes.insert(index, request);' \
    'replies.push((request, Reply::Written));' \
    '' \
    'the leader acknowledges a write as soon as it is proposed, before a majority has it'
mutation cluster-ack-before-flush cluster/src/group.rs 1 \
    'self.send(ready.take_messages(), out);' \
    'self.send(ready.take_messages(), out); self.send(ready.take_persisted_messages(), out);' \
    '' \
    'what must wait for the flush (a follower'"'"'s acknowledgement, a vote) leaves before it, with the leader'"'"'s appends'
mutation cluster-follower-read cluster/src/group.rs 1 \
    '        if stale {' \
    '        if stale || !self.is_leader() {' \
    '' \
    'a follower answers a linearizable read from its own applied state instead of redirecting to the leader'
mutation cluster-read-without-readindex cluster/src/group.rs 1 \
    'index: None,' \
    'index: Some(0),' \
    '' \
    'the leader answers a read at once, without confirming with a quorum that it still leads (a deposed leader serves stale values)'
mutation cluster-apply-uncommitted cluster/src/group.rs 1 \
    'write.entries = ready.take_entries();' \
    'write.entries = ready.take_entries(); for e in write.entries.clone() { if let Ok(p) = Proposal::decode(&e.data) { self.kv.apply(p.write); } }' \
    '' \
    'a replica applies entries to its state as soon as they are appended, before they are committed'
mutation cluster-stale-incarnation cluster/src/node.rs 1 \
    '.filter(|g| g.replica() == message.to)' \
    '' \
    '' \
    'a message to a replica removed from a node reaches the replica added back there later (raft-rs takes its commit index for its own)'
mutation cluster-removed-leader-stays cluster/src/group.rs 1 \
    'self.raw.raft.become_follower(term, 0);' \
    'let _ = term;' \
    '' \
    'a leader that applies its own removal keeps leading (raft-rs then panics at its next append)'
mutation cluster-sleep-through-silence cluster/src/node.rs 1 \
    'if group.is_hibernating() &&' \
    'if false && group.is_hibernating() &&' \
    '' \
    'a sleeping group does not wake when a peer holding one of its replicas goes silent (a dead leader is never replaced)'
mutation cluster-rmw-applied-twice cluster/src/group.rs 1 \
    'let applied = self.kv.apply(p.write);' \
    'let applied = { self.kv.apply(p.write.clone()); self.kv.apply(p.write) };' \
    '' \
    'a replica applies each committed entry twice (as a replay that does not skip applied entries would): idempotent for puts, so only the counter oracle sees it'
}

# ---------------------------------------------------------------------------

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed -e '/^set -euo/d' -e 's/^# \{0,1\}//'
}

ONLY=()
CRATES_WANTED=()
SEEDS=""
QUICK=0
BASELINE=1
LIST=0
while (($#)); do
    case $1 in
    --list) LIST=1 ;;
    --crate)
        (($# >= 2)) || { echo "mutants: --crate needs a name" >&2; exit 2; }
        CRATES_WANTED+=("$2")
        shift
        ;;
    --only)
        (($# >= 2)) || { echo "mutants: --only needs a name" >&2; exit 2; }
        ONLY+=("$2")
        shift
        ;;
    --seeds)
        if (($# < 2)) || ! [[ $2 =~ ^[0-9]+$ ]]; then
            echo "mutants: --seeds needs a number" >&2
            exit 2
        fi
        SEEDS=$2
        shift
        ;;
    --quick) QUICK=1 ;;
    --no-baseline) BASELINE=0 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "mutants: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

if ((LIST)); then
    for name in "${MUTATION_NAMES[@]}"; do
        printf '%-32s %s\n' "$name" "${M_DESCRIPTION[$name]}"
        printf '%-32s   in %s; also: %s\n' "" "${M_FILE[$name]}" "${M_EXTRA[$name]:-simulator only}"
    done
    exit 0
fi

SELECTED=()
if ((${#ONLY[@]})); then
    for name in "${ONLY[@]}"; do
        if [[ -z ${M_FILE[$name]+set} ]]; then
            echo "mutants: no mutation named $name (see --list)" >&2
            exit 2
        fi
        SELECTED+=("$name")
    done
else
    SELECTED=("${MUTATION_NAMES[@]}")
fi

# --quick: a few seeds of the simulator, for CI. The seeds at which the full
# run catches each mutation are in docs/simulator.md.
if ((${#CRATES_WANTED[@]})); then
    kept=()
    for name in "${SELECTED[@]}"; do
        for crate in "${CRATES_WANTED[@]}"; do
            [[ ${M_FILE[$name]%%/*} == "$crate" ]] && kept+=("$name")
        done
    done
    ((${#kept[@]})) || { echo "mutants: no mutation in crate(s) ${CRATES_WANTED[*]}" >&2; exit 2; }
    SELECTED=("${kept[@]}")
fi

if ((QUICK)) && [[ -z $SEEDS ]]; then
    SEEDS=50
fi

REPO=$(cd "$(dirname "$0")/.." && pwd)
WORK=${VELTRIX_MUTANTS_DIR:-$REPO/target/mutants}
TREE=$WORK/tree
LOGS=$WORK/logs
SIM_TIMEOUT_S=${VELTRIX_MUTANTS_TIMEOUT_S:-900}
export CARGO_TARGET_DIR=$WORK/target
unset VELTRIX_SIM_SEED VELTRIX_SIM_TRACE
if [[ -n $SEEDS ]]; then
    export VELTRIX_SIM_SEEDS=$SEEDS
else
    unset VELTRIX_SIM_SEEDS
fi

mkdir -p "$WORK" "$LOGS"
rm -f "$LOGS"/*.log

# The scratch copy: the working tree as it is (uncommitted edits included),
# without build output. Modification times are kept, so cargo rebuilds only
# what changed since the last run.
rm -rf "$TREE"
mkdir -p "$TREE"
tar -C "$REPO" --exclude=./target --exclude=./.git --exclude=./fuzz/target \
    --exclude=./firmware-config/fuzz/target --exclude=./veltrix-data -cf - . |
    tar -C "$TREE" -xpf -
# The copy keeps the working tree's modification times, older than the last
# build in the reused target dir, which may have been of a mutant: make every
# crate a mutation touches newer, so cargo rebuilds it from this copy.
for name in "${MUTATION_NAMES[@]}"; do
    printf '%s\n' "${M_FILE[$name]%%/*}"
done | sort -u | while read -r crate; do
    find "$TREE/$crate" -type f -exec touch {} +
done

# Applies a mutation's substitution to the scratch tree, or fails with its
# name when the anchor does not occur exactly COUNT times.
apply() {
    local name=$1
    perl -e '
        my ($name, $file, $count, $anchor, $replacement) = @ARGV;
        open(my $in, "<", $file) or die "mutants: $name: cannot read $file: $!\n";
        local $/;
        my $text = <$in>;
        close($in);
        my $found = () = $text =~ /\Q$anchor\E/g;
        if ($found != $count) {
            print STDERR "mutants: $name: anchor found $found times in $file, expected $count: $anchor\n";
            exit 3;
        }
        $text =~ s/\Q$anchor\E/$replacement/g;
        open(my $out, ">", $file) or die "mutants: $name: cannot write $file: $!\n";
        print $out $text;
        close($out) or die "mutants: $name: cannot write $file: $!\n";
    ' "$name" "$TREE/${M_FILE[$name]}" "${M_COUNT[$name]}" "${M_ANCHOR[$name]}" "${M_REPLACEMENT[$name]}"
}

# Puts a mutated file back as it is in the working tree, with a fresh
# modification time so that cargo rebuilds from it.
restore() {
    local file=$1
    cp "$REPO/$file" "$TREE/$file"
    touch "$TREE/$file"
}

# The cargo target arguments for a list of extra tests.
targets_of() {
    local spec target
    # One flag per target: several specs may name one with different
    # filters (lib=format::record, lib=index), and cargo refuses a second
    # --lib.
    for spec in "$@"; do
        printf '%s\n' "${spec%%=*}"
    done | sort -u | while read -r target; do
        case $target in
        lib) printf '%s\n' --lib ;;
        *) printf '%s\n' --test "$target" ;;
        esac
    done
}

# Builds the simulator and the given extra tests; records each test binary's
# path in BIN[target]. Returns non-zero when the build fails.
declare -A BIN
build() {
    local log=$1
    shift
    local -a args
    mapfile -t args < <(targets_of "$@")
    BIN=()
    if ! (cd "$TREE" && cargo test -p "$CRATE" --test simulator "${args[@]}" --no-run) >"$log" 2>&1; then
        return 1
    fi
    # "  Executable unittests src/lib.rs (/…/engine-hash)" and
    # "  Executable tests/simulator.rs (/…/simulator-hash)".
    local line source path
    while read -r line; do
        source=$(sed -E 's/^Executable (unittests )?([^ ]+) \((.*)\)$/\2/' <<<"$line")
        path=$(sed -E 's/^Executable (unittests )?([^ ]+) \((.*)\)$/\3/' <<<"$line")
        [[ $path == /* ]] || path=$TREE/$path
        case $source in
        src/lib.rs) BIN[lib]=$path ;;
        tests/*.rs) source=${source#tests/}; BIN[${source%.rs}]=$path ;;
        esac
    done < <(grep -E '^ *Executable ' "$log" | sed 's/^ *//')
    [[ -n ${BIN[simulator]:-} ]]
}

# Runs one test binary (from engine/, as cargo does). Sets RUN_STATUS to
# passed, failed or timeout, and RUN_FAILED to the failing tests' names.
run_test() {
    local binary=$1 filter=$2 log=$3 timeout_s=$4
    local -a filter_args=()
    [[ -n $filter ]] && filter_args=("$filter")
    local status=0
    (cd "$TREE/$CRATE" && timeout -k 10 "$timeout_s" "$binary" "${filter_args[@]}") >"$log" 2>&1 || status=$?
    RUN_FAILED=$(sed -nE 's/^---- (.*) stdout ----$/\1/p' "$log" | paste -sd, -)
    if ((status == 0)); then
        RUN_STATUS=passed
    elif ((status == 124 || status == 137)); then
        RUN_STATUS=timeout
    else
        RUN_STATUS=failed
        [[ -n $RUN_FAILED ]] || RUN_FAILED="exit $status"
    fi
}

# What a failed simulator run says: the explorations that failed (shortened
# to crash-only and faults) with the seed each printed, and how many of the
# frozen regression seeds failed.
sim_summary() {
    awk '
        /^test regression_/ { frozen++ }
        /^---- .* stdout ----$/ {
            name = $2
            if (name ~ /^regression_/) { frozen_failed++; name = "" ; next }
            seed[name] = ""; order[++n] = name; next
        }
        /^failures:$/ { name = "" }
        name != "" && seed[name] == "" && match($0, /VELTRIX_(SIM|CLUSTER)_SEED=[0-9]+/) {
            s = substr($0, RSTART, RLENGTH); sub(/.*=/, "", s); seed[name] = s
        }
        END {
            for (i = 1; i <= n; i++) {
                t = order[i]
                if (t == "crash_states_respect_the_model") t = "crash-only"
                else if (t == "faults_are_detected_and_never_served") t = "faults"
                else if (t == "faulty_clusters_stay_linearizable") t = "cluster"
                out = out (out == "" ? "" : ", ") t (seed[order[i]] == "" ? "" : " seed " seed[order[i]])
            }
            if (frozen_failed) out = out (out == "" ? "" : ", ") frozen_failed " of " frozen " frozen seeds"
            print out
        }' "$1"
}
# The first violation (or panic message) a failed run printed.
sim_detail() {
    local line
    line=$(grep -m1 -E '^seed [0-9]+: ' "$1" || true)
    if [[ -z $line ]]; then
        line=$(grep -m1 -A1 -E "^thread '.*' panicked at" "$1" | tail -n1 || true)
    fi
    line=$(printf '%s' "$line" | tr -cd '[:print:]' | tr '|' '/')
    printf '%s' "${line:0:100}"
}

fmt_s() {
    printf '%dm%02ds' $(($1 / 60)) $(($1 % 60))
}

ROWS=()
FAILURES=()
START_S=$SECONDS
echo "mutants: scratch tree $TREE, target $CARGO_TARGET_DIR, logs $LOGS"
echo "mutants: simulator seeds: ${VELTRIX_SIM_SEEDS:-the suite default (500)}"

# The unmutated tree must pass everything the selected mutations run: a test
# that fails without a mutation proves nothing by failing with one.
if ((BASELINE)); then
    mapfile -t BASE_CRATES < <(for name in "${SELECTED[@]}"; do printf '%s\n' "${M_FILE[$name]%%/*}"; done | sort -u)
    for CRATE in "${BASE_CRATES[@]}"; do
        t0=$SECONDS
        mapfile -t all_extras < <(for name in "${SELECTED[@]}"; do
            [[ ${M_FILE[$name]%%/*} == "$CRATE" ]] || continue
            read -r -a e <<<"${M_EXTRA[$name]}"
            ((${#e[@]})) && printf '%s\n' "${e[@]}"
        done | sort -u)
        if ! build "$LOGS/baseline.$CRATE.build.log" "${all_extras[@]}"; then
            echo "mutants: the unmutated tree does not build: $LOGS/baseline.$CRATE.build.log" >&2
            exit 2
        fi
        for spec in simulator "${all_extras[@]}"; do
            target=${spec%%=*}
            filter=""
            [[ $spec == *=* ]] && filter=${spec#*=}
            log=$LOGS/baseline.$CRATE.$target${filter:+.$filter}.log
            run_test "${BIN[$target]}" "$filter" "$log" "$SIM_TIMEOUT_S"
            if [[ $RUN_STATUS != passed ]]; then
                echo "mutants: unmutated $CRATE, $spec $RUN_STATUS ($(sim_summary "$log")): $log" >&2
                exit 2
            fi
        done
        echo "mutants: baseline passes: $CRATE simulator ${all_extras[*]} ($(fmt_s $((SECONDS - t0))))"
    done
fi

for name in "${SELECTED[@]}"; do
    t0=$SECONDS
    file=${M_FILE[$name]}
    CRATE=${file%%/*}
    read -r -a extras <<<"${M_EXTRA[$name]}"
    echo "mutants: $name: ${M_DESCRIPTION[$name]}"
    if ! apply "$name" 2>"$LOGS/$name.apply.log"; then
        cat "$LOGS/$name.apply.log" >&2
        restore "$file"
        ROWS+=("| $name | ANCHOR NOT FOUND | - | $(head -c 110 "$LOGS/$name.apply.log" | tr '\n|' ' /') | 0m00s |")
        FAILURES+=("$name (anchor not found)")
        continue
    fi
    if ! build "$LOGS/$name.build.log" "${extras[@]}"; then
        restore "$file"
        echo "mutants: $name: build failed: $LOGS/$name.build.log" >&2
        ROWS+=("| $name | BUILD FAILED | - | see $name.build.log | $(fmt_s $((SECONDS - t0))) |")
        FAILURES+=("$name (does not build)")
        continue
    fi
    by=()
    detail=""
    run_test "${BIN[simulator]}" "" "$LOGS/$name.simulator.log" "$SIM_TIMEOUT_S"
    case $RUN_STATUS in
    failed)
        by+=("simulator: $(sim_summary "$LOGS/$name.simulator.log")")
        detail=$(sim_detail "$LOGS/$name.simulator.log")
        ;;
    timeout) by+=("simulator: timeout after ${SIM_TIMEOUT_S}s") ;;
    esac
    for spec in "${extras[@]}"; do
        target=${spec%%=*}
        filter=""
        [[ $spec == *=* ]] && filter=${spec#*=}
        run_test "${BIN[$target]}" "$filter" "$LOGS/$name.$target.log" "$SIM_TIMEOUT_S"
        case $RUN_STATUS in
        failed) by+=("$target: $RUN_FAILED") ;;
        timeout) by+=("$target: timeout") ;;
        esac
        if [[ $RUN_STATUS != passed && -z $detail ]]; then
            detail=$(sim_detail "$LOGS/$name.$target.log")
        fi
    done
    restore "$file"
    elapsed=$(fmt_s $((SECONDS - t0)))
    if ((${#by[@]})); then
        verdict=caught
        caught_by=$(printf '%s; ' "${by[@]}")
        caught_by=${caught_by%; }
    else
        verdict="NOT CAUGHT"
        caught_by="- (ran: simulator${M_EXTRA[$name]:+ ${M_EXTRA[$name]}})"
        FAILURES+=("$name (not caught)")
    fi
    echo "mutants: $name: $verdict ${caught_by} [$elapsed]"
    ROWS+=("| $name | $verdict | $caught_by | ${detail:--} | $elapsed |")
done

echo
echo "| mutation | result | caught by (test, failing seed) | first violation | time |"
echo "|---|---|---|---|---|"
printf '%s\n' "${ROWS[@]}"
echo
echo "mutants: ${#SELECTED[@]} mutations in $(fmt_s $((SECONDS - START_S))), simulator seeds ${VELTRIX_SIM_SEEDS:-default}; logs in $LOGS"
if ((${#FAILURES[@]})); then
    echo "mutants: FAILED: ${FAILURES[*]}" >&2
    exit 1
fi
echo "mutants: every mutation was caught"
