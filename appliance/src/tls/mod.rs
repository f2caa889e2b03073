//! TLS 1.3 (rustls with the ring provider) on the daemon's ports.
//!
//! [`load`] turns the `[tls]` section into one server configuration per
//! port, reading every file it names first: anything it cannot honour stops
//! the start with an error naming the setting, so a port never falls back
//! to plain text. [`Transport`] drives a rustls connection over the data
//! port's nonblocking socket; [`admin`] puts TLS in front of the admin
//! port's HTTP server; [`Reloader`] reads the certificates and CRLs again
//! without a restart (SIGHUP).

pub mod admin;
mod load;
mod reload;
mod transport;

pub use load::{load, ring_provider, PortsTls};
pub use reload::Reloader;
pub(crate) use transport::Transport;
