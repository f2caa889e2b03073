//! The VeltrixDB appliance: the daemon's data port (RESP), its admin port
//! (HTTP: metrics, health, a JSON API) and its startup.
//!
//! The data port runs on the engine's worker threads: each worker owns a
//! listening socket (SO_REUSEPORT) and the connections the kernel gives it,
//! parses their commands, and submits them through the engine's
//! [`engine::Submitter`]: requests for the worker's own shards run right
//! there, others hop to the owning worker and back.
#![forbid(unsafe_code)]

pub mod admin;
pub mod commands;
pub mod daemon;
pub mod metrics;
pub mod resp;
pub mod server;
