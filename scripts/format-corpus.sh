#!/usr/bin/env bash
# Regenerates engine/testdata/format-corpus/: small namespaces written by
# every on-disk format version the engine has shipped, opened by
# `cargo test -p engine --test format_corpus` (README.md there).
#
# Each version is written by an engine that wrote it: version 1 by the last
# commit before key expiry raised the format to 2, built from a temporary
# worktree under /tmp (debug profile); today's version by this checkout.
# Usage: scripts/format-corpus.sh  (from anywhere in the repository)
set -euo pipefail

# The last commit whose engine wrote superblock, checkpoint and record
# format version 1 (c203433, its child, introduced version 2).
V1_COMMIT=6aa40f2fab02c92f6a04eb6e87605623c167a532

root=$(git rev-parse --show-toplevel)
corpus="$root/engine/testdata/format-corpus"
writer="$root/engine/examples/format_corpus"
scratch=$(mktemp -d /tmp/veltrix-format-corpus.XXXXXX)
old_tree="$scratch/v1-tree"
cleanup() {
    git -C "$root" worktree remove --force "$old_tree" 2>/dev/null || true
    rm -rf "$scratch"
}
trap cleanup EXIT

echo "== version 1: engine at $V1_COMMIT"
git -C "$root" worktree add --quiet --detach "$old_tree" "$V1_COMMIT"
mkdir -p "$old_tree/engine/examples/format_corpus_v1"
cp "$writer/common.rs" "$old_tree/engine/examples/format_corpus_v1/common.rs"
cp "$writer/v1.rs" "$old_tree/engine/examples/format_corpus_v1/main.rs"
# Its own target directory: an old commit's dependency versions must not
# disturb this checkout's build. Kept between runs to save the rebuild.
(cd "$old_tree" && CORPUS_COMMIT="$V1_COMMIT" \
    CARGO_TARGET_DIR=/tmp/veltrix-format-corpus-target-v1 \
    cargo run --quiet -p engine --example format_corpus_v1 -- "$corpus" "$scratch/v1")

echo "== version 2: this checkout ($(git -C "$root" rev-parse --short HEAD))"
(cd "$root" && CORPUS_COMMIT="$(git rev-parse HEAD)" \
    cargo run --quiet -p engine --example format_corpus -- "$corpus" "$scratch/v2")

echo "== an older engine meets newer formats: the version 1 engine must refuse"
# v2-log as written, and v1-log after today's engine opened (upgraded) it.
(cd "$root" && cargo run --quiet -p engine --example format_corpus -- \
    --materialize "$corpus/v2-log/namespace.vxc" "$scratch/v2-log.img" &&
  cargo run --quiet -p engine --example format_corpus -- \
    --materialize "$corpus/v1-log/namespace.vxc" "$scratch/v1-upgraded.img" --open)
(cd "$old_tree" && CARGO_TARGET_DIR=/tmp/veltrix-format-corpus-target-v1 \
    cargo run --quiet -p engine --example format_corpus_v1 -- \
    --open "$scratch/v2-log.img" "$scratch/v1-upgraded.img")

du -sh "$corpus"
