//! The admin port: HTTP with Prometheus metrics, health probes and a small
//! JSON API. It runs on its own thread; nothing on it touches the data path
//! except reading counters.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use crate::server::ServerStats;

/// What the admin port reports on.
pub struct AdminState {
    /// Engine counters.
    pub engine: Arc<dyn Fn() -> Option<Arc<EngineView>> + Send + Sync>,
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
    /// When the daemon started.
    pub started: std::time::Instant,
    /// The token every request that changes state must carry
    /// (`Authorization: Bearer TOKEN`); `None`: none is asked.
    pub token: Option<Vec<u8>>,
    /// A cluster member's state, for `/api/cluster` and `/metrics`.
    pub cluster: Option<Arc<dyn ClusterAdmin>>,
    /// Where every request that changes state is recorded before it runs.
    pub audit: Arc<crate::audit::AuditLog>,
}

/// What the admin port shows of a cluster member.
pub trait ClusterAdmin: Send + Sync {
    /// `GET /api/cluster`'s JSON body.
    fn status_json(&self) -> String;
    /// The member's metrics, in the Prometheus text format.
    fn metrics(&self) -> String;
}

/// Whether `request` may go on: anything but a GET needs the token, when
/// one is configured.
fn authorized(state: &AdminState, request: &tiny_http::Request) -> bool {
    let Some(expected) = &state.token else {
        return true;
    };
    if *request.method() == tiny_http::Method::Get {
        return true;
    }
    request
        .headers()
        .iter()
        .filter(|h| h.field.equiv("Authorization"))
        .filter_map(|h| h.value.as_str().strip_prefix("Bearer "))
        .any(|given| crate::auth::token_matches(expected, given.trim().as_bytes()))
}

/// The audit log's last sequence number: scraped and kept elsewhere, it
/// shows whether entries were later cut off the end of the log, which the
/// log alone cannot show (`docs/security.md`).
fn audit_metrics(state: &AdminState) -> String {
    format!(
        "# HELP veltrix_audit_last_seq The audit log's last entry's sequence number.\n\
         # TYPE veltrix_audit_last_seq gauge\n\
         veltrix_audit_last_seq {}\n",
        state.audit.last_seq()
    )
}

/// What the admin port sees of the open engine.
pub struct EngineView {
    /// Counters, space, shard owners and the GC trigger.
    pub handle: engine::EngineHandle,
    /// What the open found.
    pub report: engine::RecoveryReport,
    /// How long the open took.
    pub recovery_seconds: f64,
}

fn space_json(space: &engine::Space) -> String {
    format!(
        "{{\"segment_bytes\":{},\"segments\":{},\"free\":{},\"reserved\":{},\"checkpoint\":{},\"live_bytes\":{}}}",
        space.segment_bytes, space.segments, space.free, space.reserve, space.checkpoint, space.live_bytes
    )
}

fn gc_json(view: &EngineView) -> String {
    let stats = view.handle.stats();
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "{{\"runs\":{},\"segments_freed\":{},\"records_relocated\":{},\"read_bytes\":{},\"victims_blocked\":{},\"victims_damaged\":{},\"space\":{}}}",
        l(&stats.gc_runs),
        l(&stats.gc_segments_freed),
        l(&stats.gc_records_relocated),
        l(&stats.gc_bytes_read),
        l(&stats.gc_victims_blocked),
        l(&stats.gc_victims_damaged),
        space_json(&view.handle.space())
    )
}

fn checkpoint_json(view: &EngineView) -> String {
    let stats = view.handle.stats();
    let l = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "{{\"checkpoints\":{},\"failures\":{},\"bytes\":{},\"segments\":{},\"recovered_from\":{},\"segments_skipped_at_open\":{}}}",
        l(&stats.checkpoints),
        l(&stats.checkpoint_failures),
        l(&stats.checkpoint_bytes),
        view.handle.space().checkpoint,
        view.report
            .checkpoint
            .map_or_else(|| "null".to_string(), |g| g.to_string()),
        view.report.segments_skipped
    )
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

/// `/api/shards`: each shard's owning worker, and how many shards each
/// worker owns. Per-shard key counts are not tracked by the engine yet, so
/// `keys` is null per shard; the total is in `keys` at the top.
pub fn shards_json(view: &EngineView) -> String {
    let handle = &view.handle;
    let keys = handle.stats().keys.load(Ordering::Relaxed);
    let owners = handle;
    let mut per_worker = vec![0u32; owners.workers()];
    let mut out = String::new();
    let _ = write!(
        out,
        "{{\"shard_count\":{},\"workers\":{},\"keys\":{keys},\"shards\":[",
        engine::shard::SHARD_COUNT,
        owners.workers()
    );
    for shard in 0..engine::shard::SHARD_COUNT {
        let worker = owners.shard_owner(shard);
        if let Some(n) = per_worker.get_mut(usize::from(worker)) {
            *n += 1;
        }
        if shard > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"shard\":{shard},\"worker\":{worker},\"keys\":{}}}",
            handle.shard_keys(shard)
        );
    }
    out.push_str("],\"shards_per_worker\":[");
    for (worker, n) in per_worker.iter().enumerate() {
        if worker > 0 {
            out.push(',');
        }
        let _ = write!(out, "{n}");
    }
    out.push_str("]}\n");
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
        let allowed = authorized(&state, &request);
        if *request.method() != tiny_http::Method::Get {
            // Recorded before it runs (or is refused): one that cannot be
            // recorded does not run.
            let event = crate::audit::Event {
                actor: if state.token.is_some() {
                    "admin-token"
                } else {
                    "anonymous"
                }
                .into(),
                action: format!("admin {} {}", request.method(), request.url()),
                detail: format!(
                    "from {}: {}",
                    request
                        .remote_addr()
                        .map_or("the TLS relay".to_string(), |a| a.ip().to_string()),
                    if allowed {
                        "accepted"
                    } else {
                        "refused: no valid admin token"
                    }
                ),
            };
            if let Err(e) = state.audit.append(event) {
                tracing::error!("audit log: {e}; the admin request is refused");
                let _ = request.respond(
                    tiny_http::Response::from_string(format!(
                        "the audit log cannot record this request ({e}): refused\n"
                    ))
                    .with_status_code(503),
                );
                continue;
            }
        }
        if !allowed {
            let mut response = tiny_http::Response::from_string(
                "this request changes state: it needs the admin token (Authorization: Bearer TOKEN)\n",
            )
            .with_status_code(401);
            if let Ok(h) = tiny_http::Header::from_bytes(&b"WWW-Authenticate"[..], &b"Bearer"[..]) {
                response = response.with_header(h);
            }
            let _ = request.respond(response);
            continue;
        }
        let path = request.url().split('?').next().unwrap_or("").to_string();
        if path.starts_with("/api/update") {
            crate::update::respond(request, &path);
            continue;
        }
        let ready = state.ready.load(Ordering::Acquire);
        let (status, content_type, body) = match (request.method(), path.as_str()) {
            (tiny_http::Method::Get, "/livez") => (200, "text/plain", "ok\n".to_string()),
            (tiny_http::Method::Get, "/readyz") if ready => {
                (200, "text/plain", "ready\n".to_string())
            }
            (tiny_http::Method::Get, "/readyz") => (503, "text/plain", "not ready\n".to_string()),
            (tiny_http::Method::Get, "/metrics") if state.cluster.is_some() => {
                let text = state
                    .cluster
                    .as_ref()
                    .map(|c| c.metrics())
                    .unwrap_or_default();
                (
                    200,
                    "text/plain; version=0.0.4",
                    text + &audit_metrics(&state),
                )
            }
            (tiny_http::Method::Get, "/metrics") => match (state.engine)() {
                Some(view) => (
                    200,
                    "text/plain; version=0.0.4",
                    crate::metrics::render(
                        &view,
                        &state.server,
                        state.started.elapsed().as_secs_f64(),
                        ready,
                    ) + &audit_metrics(&state),
                ),
                None => (503, "text/plain", "engine not open\n".to_string()),
            },
            (tiny_http::Method::Get, "/api/status") => {
                let view = (state.engine)();
                let keys = view
                    .as_ref()
                    .map_or(0, |v| v.handle.stats().keys.load(Ordering::Relaxed));
                let space = view
                    .as_ref()
                    .map_or("null".to_string(), |v| space_json(&v.handle.space()));
                let namespaces: Vec<String> =
                    state.namespaces.iter().map(|n| json_string(n)).collect();
                (
                    200,
                    "application/json",
                    format!(
                        "{{\"version\":{},\"ready\":{},\"workers\":{},\"keys\":{},\"space\":{},\"namespaces\":[{}]}}\n",
                        json_string(env!("CARGO_PKG_VERSION")),
                        ready,
                        state.workers,
                        keys,
                        space,
                        namespaces.join(",")
                    ),
                )
            }
            (tiny_http::Method::Get, "/api/gc") => match (state.engine)() {
                Some(view) => (200, "application/json", format!("{}\n", gc_json(&view))),
                None => (503, "text/plain", "engine not open\n".to_string()),
            },
            // Starts a GC storm: every worker collects every segment of its
            // stream that holds garbage, under the I/O budget. Returns at
            // once; GET /api/gc shows the progress.
            (tiny_http::Method::Post, "/api/gc") => match (state.engine)() {
                Some(view) => {
                    view.handle.gc_storm();
                    tracing::info!("GC storm requested on the admin port");
                    (
                        202,
                        "application/json",
                        format!("{{\"started\":true,\"gc\":{}}}\n", gc_json(&view)),
                    )
                }
                None => (503, "text/plain", "engine not open\n".to_string()),
            },
            (tiny_http::Method::Get, "/api/checkpoint") => match (state.engine)() {
                Some(view) => (
                    200,
                    "application/json",
                    format!("{}\n", checkpoint_json(&view)),
                ),
                None => (503, "text/plain", "engine not open\n".to_string()),
            },
            // Takes an index checkpoint on a thread of its own (this port
            // answers one request at a time, and /livez must not wait for
            // it). Returns at once; GET /api/checkpoint shows the result.
            (tiny_http::Method::Post, "/api/checkpoint") => match (state.engine)() {
                Some(view) => {
                    let handle = view.handle.clone();
                    let started = std::thread::Builder::new()
                        .name("veltrix-admin-checkpoint".into())
                        .spawn(move || {
                            if let Err(e) = handle.checkpoint() {
                                tracing::error!("checkpoint requested on the admin port: {e}");
                            }
                        });
                    match started {
                        Ok(_) => {
                            tracing::info!("index checkpoint requested on the admin port");
                            (
                                202,
                                "application/json",
                                format!(
                                    "{{\"started\":true,\"checkpoint\":{}}}\n",
                                    checkpoint_json(&view)
                                ),
                            )
                        }
                        Err(e) => (500, "text/plain", format!("cannot start a thread: {e}\n")),
                    }
                }
                None => (503, "text/plain", "engine not open\n".to_string()),
            },
            (tiny_http::Method::Get, "/api/shards") => match (state.engine)() {
                Some(view) => (200, "application/json", shards_json(&view)),
                None => (
                    503,
                    "application/json",
                    "{\"error\":\"engine not open\"}\n".into(),
                ),
            },
            (tiny_http::Method::Get, "/api/cluster") => match &state.cluster {
                Some(cluster) => (200, "application/json", cluster.status_json()),
                None => (
                    404,
                    "text/plain",
                    "not a cluster member (no [cluster] in the configuration)\n".to_string(),
                ),
            },
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
