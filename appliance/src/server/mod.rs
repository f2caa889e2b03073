//! The RESP data port: one event loop per engine worker.

mod connection;
mod frontend;

pub use frontend::{bind_reuseport, RespFrontend, ServerLimits, ServerStats};
