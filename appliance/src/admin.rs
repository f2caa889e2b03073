//! The admin port: HTTP with Prometheus metrics, health probes and a small
//! JSON API. It runs on its own thread; nothing on it touches the data path
//! except reading counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use engine::stats::Stats;

use crate::server::ServerStats;

/// What the admin port reports on.
pub struct AdminState {
    /// Engine counters.
    pub engine: Arc<dyn Fn() -> Option<EngineView> + Send + Sync>,
    /// Data-port counters.
    pub server: Arc<ServerStats>,
    /// Set once the engine is open and the data port listens.
    pub ready: AtomicBool,
    /// The effective configuration, rendered.
    pub config_text: String,
    /// Namespace descriptions (backend and path).
    pub namespaces: Vec<String>,
    /// Workers.
    pub workers: usize,
}

/// A snapshot handle on the engine's counters.
pub struct EngineView {
    /// The counters.
    pub stats: Arc<Stats>,
}

fn counter(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name}_total {help}\n# TYPE {name}_total counter\n{name}_total {value}"
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// Renders the Prometheus text exposition.
pub fn metrics(stats: &Stats, server: &ServerStats) -> String {
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let u = |a: &std::sync::atomic::AtomicUsize| a.load(Ordering::Relaxed) as u64;
    let mut out = String::new();
    gauge(
        &mut out,
        "veltrix_keys",
        "Keys in the index.",
        l(&stats.keys),
    );
    counter(
        &mut out,
        "veltrix_group_commits",
        "Group commits started.",
        l(&stats.batches),
    );
    counter(
        &mut out,
        "veltrix_records_written",
        "Log records written.",
        l(&stats.records),
    );
    counter(
        &mut out,
        "veltrix_flushes",
        "Flushes that completed.",
        l(&stats.flushes),
    );
    counter(
        &mut out,
        "veltrix_flush_errors",
        "Flushes that failed (writes fenced).",
        l(&stats.flush_errors),
    );
    counter(
        &mut out,
        "veltrix_write_errors",
        "Group commits failed by a write error.",
        l(&stats.write_errors),
    );
    counter(
        &mut out,
        "veltrix_log_written_bytes",
        "Bytes the log submitted for writing.",
        l(&stats.bytes_written),
    );
    counter(
        &mut out,
        "veltrix_get_read_bytes",
        "Bytes read from the namespace for gets.",
        l(&stats.bytes_read),
    );
    counter(
        &mut out,
        "veltrix_gets",
        "Gets that read a record.",
        l(&stats.gets),
    );
    counter(
        &mut out,
        "veltrix_corruption_detected",
        "Records that failed verification (never served).",
        l(&stats.corruption_detected),
    );
    counter(
        &mut out,
        "veltrix_cache_hits",
        "Gets answered from the value cache, without a device read.",
        l(&stats.cache_hits),
    );
    counter(
        &mut out,
        "veltrix_cache_misses",
        "Gets the value cache could not answer.",
        l(&stats.cache_misses),
    );
    counter(
        &mut out,
        "veltrix_cache_evictions",
        "Value cache entries evicted to make room.",
        l(&stats.cache_evictions),
    );
    gauge(
        &mut out,
        "veltrix_cache_bytes",
        "Bytes charged to resident value cache entries.",
        l(&stats.cache_bytes),
    );
    gauge(
        &mut out,
        "veltrix_connections",
        "Client connections open.",
        u(&server.connections),
    );
    counter(
        &mut out,
        "veltrix_connections_accepted",
        "Client connections accepted.",
        l(&server.connections_accepted),
    );
    counter(
        &mut out,
        "veltrix_connections_refused",
        "Connections refused past connections_max.",
        l(&server.connections_refused),
    );
    counter(
        &mut out,
        "veltrix_commands",
        "RESP commands executed.",
        l(&server.commands),
    );
    counter(
        &mut out,
        "veltrix_protocol_errors",
        "Protocol errors (connection closed).",
        l(&server.protocol_errors),
    );
    counter(
        &mut out,
        "veltrix_network_received_bytes",
        "Bytes read from clients.",
        l(&server.bytes_read),
    );
    counter(
        &mut out,
        "veltrix_network_sent_bytes",
        "Bytes written to clients.",
        l(&server.bytes_written),
    );
    out
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Serves the admin port until `stop` is set.
pub fn serve(server: tiny_http::Server, state: Arc<AdminState>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        let request = match server.recv_timeout(std::time::Duration::from_millis(200)) {
            Ok(Some(r)) => r,
            Ok(None) => continue,
            Err(e) => {
                tracing::warn!("admin port: {e}");
                continue;
            }
        };
        let path = request.url().split('?').next().unwrap_or("").to_string();
        let ready = state.ready.load(Ordering::Acquire);
        let (status, content_type, body) = match (request.method(), path.as_str()) {
            (tiny_http::Method::Get, "/livez") => (200, "text/plain", "ok\n".to_string()),
            (tiny_http::Method::Get, "/readyz") if ready => {
                (200, "text/plain", "ready\n".to_string())
            }
            (tiny_http::Method::Get, "/readyz") => (503, "text/plain", "not ready\n".to_string()),
            (tiny_http::Method::Get, "/metrics") => match (state.engine)() {
                Some(view) => (
                    200,
                    "text/plain; version=0.0.4",
                    metrics(&view.stats, &state.server),
                ),
                None => (503, "text/plain", "engine not open\n".to_string()),
            },
            (tiny_http::Method::Get, "/api/status") => {
                let keys = (state.engine)().map_or(0, |v| v.stats.keys.load(Ordering::Relaxed));
                let namespaces: Vec<String> =
                    state.namespaces.iter().map(|n| json_string(n)).collect();
                (
                    200,
                    "application/json",
                    format!(
                        "{{\"version\":{},\"ready\":{},\"workers\":{},\"keys\":{},\"namespaces\":[{}]}}\n",
                        json_string(env!("CARGO_PKG_VERSION")),
                        ready,
                        state.workers,
                        keys,
                        namespaces.join(",")
                    ),
                )
            }
            (tiny_http::Method::Get, "/api/config") => {
                (200, "text/plain", state.config_text.clone())
            }
            _ => (404, "text/plain", "not found\n".to_string()),
        };
        let header = tiny_http::Header::from_bytes(&b"Content-Type"[..], content_type.as_bytes());
        let mut response = tiny_http::Response::from_string(body).with_status_code(status);
        if let Ok(h) = header {
            response = response.with_header(h);
        }
        let _ = request.respond(response);
    }
}
