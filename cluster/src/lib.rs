//! The VeltrixDB cluster.
//!
//! The 1024 shards form replication groups; each group is one Raft group
//! (raft-rs) of three voters in three zones. Everything here is a state
//! machine that a loop drives (ticks, messages, proposals in; messages,
//! replies out): it owns no thread, clock, socket or random source, so the
//! cluster simulator (`tests/simulator.rs`) steps whole clusters from one
//! seed. See `docs/cluster.md`.
#![forbid(unsafe_code)]

mod bytes;
pub mod entry;
pub mod group;
pub mod history;
pub mod journal;
pub mod layout;
pub mod map;
pub mod membership;
pub mod node;
pub mod placement;
pub mod runtime;
pub mod state;
pub mod storage;
pub mod view;
pub mod wire;
