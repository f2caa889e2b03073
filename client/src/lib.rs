//! The VeltrixDB native binary protocol (`docs/protocol.md`).
//!
//! - [`protocol`]: the frame codec, used by the server (`appliance`) and by
//!   [`Client`]. It never panics, and never allocates in proportion to a
//!   length it has not checked against its limits.
//! - [`Client`]: a blocking client with pipelining: `send` many requests,
//!   then `recv` their replies, matched by request id.
#![forbid(unsafe_code)]

mod client;
pub mod protocol;

pub use client::{found, ok, Client, ClientError, Transport, PIPELINE_WINDOW};
pub use protocol::{BatchOp, Request, Response, Status};
