//! The VeltrixDB storage engine.
//!
//! Keys hash to 1024 shards ([`shard`]); shards are spread over workers.
//! Each worker ([`WorkerCore`]) owns its shards' index, one queue pair and
//! one log stream on the namespace, and commits writes in groups: one frame
//! and one flush per batch, acknowledged only after the flush. Values are
//! written once, inside their log records; the index points at them.
//! Recovery replays the log streams ([`recovery`]).
//!
//! The engine sees storage only through `nvme::Namespace`. It owns no clock
//! and no random source: the driver passes time in, and the caller supplies
//! the UUID at format time. [`Engine`] drives workers on threads; tests
//! drive [`WorkerCore`]s directly from one thread on the simulated
//! namespace.
#![forbid(unsafe_code)]

mod blocking;
pub mod cache;
mod checkpoint;
pub mod config;
pub mod error;
pub mod format;
pub mod index;
pub mod inspect;
pub mod layout;
mod log;
pub mod modify;
mod open;
pub mod recovery;
mod runtime;
pub mod shard;
pub mod stats;
mod store;
mod worker;

pub use checkpoint::Checkpointer;
pub use config::{EngineConfig, FormatOptions};
pub use error::{EngineError, Location, OpenError};
pub use layout::{format, Layout};
pub use modify::{Modify, ModifyError};
pub use open::{open_workers, Opened, RecoveryReport};
pub use recovery::{Damage, TornTail};
pub use runtime::mover;
pub use runtime::{wall_clock_ms, Engine, EngineHandle, Frontend, Submitter, Wake, WorkerThread};
pub use store::Space;
pub use worker::{BatchOp, CacheReader, Condition, Op, Reply, RequestId, WorkerCore};
