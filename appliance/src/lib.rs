//! The VeltrixDB appliance: the daemon's data port (RESP and the native
//! protocol), its admin port (HTTP: metrics, health, a JSON API), its
//! startup, and the `veltrix` operator CLI's commands ([`cli`]).
//!
//! The data port runs on the engine's worker threads: each worker owns a
//! listening socket (SO_REUSEPORT) and the connections the kernel gives it,
//! parses their commands, and submits them through the engine's
//! [`engine::Submitter`]: requests for the worker's own shards run right
//! there, others hop to the owning worker and back.
#![forbid(unsafe_code)]

pub mod admin;
pub mod audit;
pub mod auth;
pub mod cli;
pub mod cluster_mode;
pub mod cluster_reply;
pub mod command_table;
pub mod commands;
pub mod daemon;
pub mod metrics;
pub mod resp;
pub mod server;
pub mod tls;
pub mod update;
