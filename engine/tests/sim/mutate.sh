#!/usr/bin/env bash
# Proves the simulator's oracle strict by mutation: breaks the engine on
# purpose, one mutant at a time, and expects the simulator to fail with a
# printed seed. Restores engine/src afterwards (it refuses to run when
# engine/src has uncommitted changes, so nothing of yours is lost).
#
#   engine/tests/sim/mutate.sh          # from the workspace root
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
if ! git diff --quiet -- engine/src; then
    echo "engine/src has uncommitted changes; commit or stash them first" >&2
    exit 2
fi
trap 'git checkout -- engine/src' EXIT

survived=0
run() { # name, test filter, seeds
    local name=$1 filter=$2 seeds=$3 out
    out=$(VELTRIX_SIM_ALL=1 VELTRIX_SIM_SEEDS=$seeds cargo test -q -p engine --test simulator "$filter" 2>&1 || true)
    if grep -q '^VELTRIX_SIM_SEED=' <<<"$out"; then
        echo "killed: $name ($(grep -c '^VELTRIX_SIM_SEED=' <<<"$out") of $seeds seeds); first:"
        grep -m1 '^VELTRIX_SIM_SEED=' <<<"$out" | cut -c1-240
    else
        echo "SURVIVED: $name"
        survived=1
    fi
    git checkout -- engine/src
}

# 1. Recovery truncates the log at the first damaged frame instead of
#    reporting the damage and walking on (recovery.rs, the `Some(next)` arm).
sed -i 's/^                    match next {$/                    match next.filter(|\&n| damage_start.is_none() \&\& clean_switch(n)) {/' \
    engine/src/recovery.rs
git diff --quiet -- engine/src/recovery.rs && { echo "mutant 1 no longer applies" >&2; exit 2; }
run "recovery truncates at damage" faults_are_detected 100

# 2. Group commit acknowledges a batch before its flush (commit.rs).
perl -0pi -e 's/(        Self::submit_chunks\(core\);\n    \}\n)/        Self::submit_chunks(core);\n        core.replies.extend(core.commit.answers.iter().cloned());\n    }\n/' \
    engine/src/worker/commit.rs
git diff --quiet -- engine/src/worker/commit.rs && { echo "mutant 2 no longer applies" >&2; exit 2; }
run "acknowledge before the flush" crash_states_respect 40

exit $survived
