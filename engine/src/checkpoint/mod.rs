//! Index checkpoints: a copy of the whole index on the namespace, so that
//! an open replays only the log written after it.
//!
//! A checkpoint is taken in three phases:
//!
//! 1. **Collect.** Every worker copies the shards it owns, a few per turn of
//!    its loop, each with a *watermark*: every record of the shard at or
//!    below it is reflected in the copy (the worker's last applied sequence
//!    number: one before its batch in flight, or the engine's last issued
//!    one when it has none). Shards that move meanwhile are copied by
//!    whoever owns them when their turn comes.
//! 2. **Write the body** (every shard's section, then the segment table)
//!    into free segments, each behind a header of kind checkpoint, and
//!    flush.
//! 3. **Write the root** into slot `generation % 2` of segment 0 (blocks 2
//!    and 3) and flush. Only then does the checkpoint count: GC honours it,
//!    and the segments of the checkpoint that slot held before are freed.
//!
//! A crash before the root is durable leaves the other slot in force. See
//! `docs/format/checkpoint.md` for the bytes and the rules recovery and GC
//! follow.
//!
//! # A failed flush
//!
//! No flush is retried (`blocking::flush`), and a flush counts as proof only
//! while no flush on the namespace has failed since the engine opened
//! (`Shared::flush_failed`, which every path that flushes sets): a
//! flush is one command for the whole namespace, so a worker's failed flush
//! may have dropped this checkpoint's writes, and this flush's own success
//! would prove nothing about them.
//!
//! - The body's flush fails: the checkpoint does not count (`fail`, counted
//!   in `checkpoint_failures_total`), and its segments go back to the free
//!   list. No checkpoint is taken again until the next open (the workers'
//!   writes are fenced as well); that open's first checkpoint takes segments
//!   afresh and writes a whole body, so no body part whose flush failed is
//!   ever relied on.
//! - The root's flush fails (or its write): the slot it was written to, slot
//!   `g % 2` for generation `g`, now holds the new root, the old one, or a
//!   torn block, and nobody can tell which until an open reads it back. So
//!   the checkpointer fences (`fence`): nothing is published, GC keeps
//!   honouring both slots as they were, the segments of the old root in that
//!   slot stay reserved, and no further checkpoint is taken until the next
//!   open. That last rule is what keeps the other slot, holding `g - 1`, safe:
//!   the next checkpoint would be `g + 1` (had `g` been counted) and would
//!   overwrite slot `(g + 1) % 2`, the one holding `g - 1`, while `g`'s slot
//!   may hold nothing usable; a crash tearing that write would leave no
//!   usable root at all. Had the failed root flush been retried and counted,
//!   exactly that could happen. After the fence, the next open reads both
//!   slots back and takes the newest whose body verifies, and its first
//!   checkpoint goes into the slot that does not hold the one it loaded
//!   ([`Found::next_generation`]), even when the other slot holds a newer
//!   root that could not be loaded.

mod find;
mod writer;

pub(crate) use find::{discard, find, Found, Loaded, Slot};
pub use writer::Checkpointer;
