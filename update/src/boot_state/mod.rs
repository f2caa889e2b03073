//! The A/B boot-state record and the boot-counting rules
//! (`docs/upgrades.md`, "Boot counting").
//!
//! [`record`] is the bytes: two copies, each checksummed and numbered, so
//! that a torn write of one leaves the other in force. [`rules`] is what a
//! boot, a health verdict, an install and a rollback do to the state. Both
//! are pure: the caller reads and writes the partition.

pub mod record;
pub mod rules;

pub use record::{read, write_next, Loaded, RecordError, COPY_BYTES, RECORD_BYTES};
pub use rules::{BootDecision, BootState, Slot, TRIES_DEFAULT, TRIES_MAX};
