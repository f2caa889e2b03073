//! The RESP wire codec of the data port: requests in, replies out.
//!
//! - [`Parser`] reads client commands (multibulk `*N\r\n$len\r\n...` and
//!   inline `SET a b\r\n`) from the front of a connection's read buffer. It
//!   is resumable: a command that arrives a byte at a time costs O(bytes) in
//!   total, not O(bytes²). Arguments come back as byte ranges into that
//!   buffer, so parsing allocates nothing per command.
//! - [`encode`] appends replies (RESP2 or RESP3, per [`Protocol`]) and
//!   client commands to an output `Vec<u8>`.
//! - [`parse_reply`] is the client side: it reads one reply into a [`Reply`]
//!   tree, for our CLI, benchmarks and tests.
//!
//! Every input is untrusted. No byte sequence makes this module panic,
//! allocate in proportion to a length it declares, or wait for bytes it has
//! already refused: an oversized length is an error as soon as its digits
//! show it. The wire format, limits and error strings are documented in
//! `docs/resp.md`.
// Zero-panic is a promise of this module, so the compiler checks it: no
// indexing, no unchecked arithmetic, no unwrap, no explicit panics outside
// tests.
#![deny(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::unreachable,
    clippy::todo,
    clippy::unimplemented
)]

pub mod encode;
mod error;
mod inline;
mod limits;
mod reply;
mod request;

pub use encode::Protocol;
pub use error::ParseError;
pub use limits::Limits;
pub use reply::{parse_reply, Reply, REPLY_DEPTH_MAX};
pub use request::{arg_bytes, parse_command, Parser};

#[cfg(test)]
#[allow(
    clippy::arithmetic_side_effects,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]
mod proptests;
