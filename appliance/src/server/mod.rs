//! The data port (RESP and the native protocol): one event loop per
//! engine worker.

mod connection;
mod frontend;
mod native;

pub use frontend::{bind_reuseport, ensure_free, RespFrontend, ServerLimits, ServerStats};
