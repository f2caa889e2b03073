//! The Prometheus text exposition of the admin port's `/metrics`.
//!
//! Every family has HELP and TYPE lines; counters end in `_total`;
//! latencies are histograms in seconds and sizes in bytes, as Prometheus's
//! naming conventions ask (`promtool check metrics` passes). The families
//! are listed in `docs/metrics.md`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use engine::stats::{Histogram, IoKind, OpKind, OpResult, Stats};

use crate::admin::EngineView;
use crate::server::ServerStats;

/// Builds the exposition text one family at a time.
#[derive(Default)]
pub(crate) struct Exposition {
    pub(crate) out: String,
}

fn load(a: &AtomicU64) -> u64 {
    a.load(Ordering::Relaxed)
}

fn load_usize(a: &AtomicUsize) -> u64 {
    a.load(Ordering::Relaxed) as u64
}

impl Exposition {
    pub(crate) fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    pub(crate) fn counter(&mut self, name: &str, help: &str, value: u64) {
        let name = format!("{name}_total");
        self.family(&name, "counter", help);
        let _ = writeln!(self.out, "{name} {value}");
    }

    pub(crate) fn gauge(&mut self, name: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, "gauge", help);
        let _ = writeln!(self.out, "{name} {value}");
    }

    /// A counter family with one label, from (label value, count) pairs.
    fn labeled_counter<'a>(
        &mut self,
        name: &str,
        help: &str,
        label: &str,
        values: impl IntoIterator<Item = (&'a str, u64)>,
    ) {
        let name = format!("{name}_total");
        self.family(&name, "counter", help);
        for (value, count) in values {
            let _ = writeln!(self.out, "{name}{{{label}=\"{value}\"}} {count}");
        }
    }

    /// One histogram series. `scale` converts the recorded unit to the
    /// exposed one (µs to seconds: 1e-6).
    fn histogram_series(&mut self, name: &str, labels: &str, h: &Histogram, scale: f64) {
        let (cumulative, count, sum) = h.snapshot();
        let sep = if labels.is_empty() { "" } else { "," };
        for (bound, c) in h.bounds().iter().zip(&cumulative) {
            let le = *bound as f64 * scale;
            let _ = writeln!(self.out, "{name}_bucket{{{labels}{sep}le=\"{le}\"}} {c}");
        }
        let _ = writeln!(
            self.out,
            "{name}_bucket{{{labels}{sep}le=\"+Inf\"}} {count}"
        );
        let braces = if labels.is_empty() {
            String::new()
        } else {
            format!("{{{labels}}}")
        };
        let _ = writeln!(self.out, "{name}_sum{braces} {}", sum as f64 * scale);
        let _ = writeln!(self.out, "{name}_count{braces} {count}");
    }

    fn histogram(&mut self, name: &str, help: &str, h: &Histogram, scale: f64) {
        self.family(name, "histogram", help);
        self.histogram_series(name, "", h, scale);
    }
}

const MICROS: f64 = 1e-6;

/// Renders every metric family.
pub fn render(view: &EngineView, server: &ServerStats, uptime_seconds: f64, ready: bool) -> String {
    let mut e = Exposition { out: String::new() };
    engine_families(&mut e, view);
    nvme_families(&mut e, view.handle.stats());
    network_families(&mut e, server);
    e.family(
        "veltrix_build_info",
        "gauge",
        "Always 1; the version is a label.",
    );
    let _ = writeln!(
        e.out,
        "veltrix_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
    e.gauge(
        "veltrix_uptime_seconds",
        "Seconds since the daemon started.",
        uptime_seconds,
    );
    e.gauge(
        "veltrix_ready",
        "1 once the store is open and the data port serves.",
        u8::from(ready),
    );
    e.out
}

fn engine_families(e: &mut Exposition, view: &EngineView) {
    let stats = view.handle.stats();
    let space = view.handle.space();
    e.gauge("veltrix_keys", "Keys in the index.", load(&stats.keys));
    e.gauge(
        "veltrix_expiring_keys",
        "Keys in the index with a deadline (expired ones not yet reclaimed included).",
        load(&stats.expiring_keys),
    );
    e.family(
        "veltrix_ops_total",
        "counter",
        "Requests answered by the engine, by kind and result.",
    );
    for kind in OpKind::ALL {
        for result in OpResult::ALL {
            let count = load(&stats.ops[kind as usize][result as usize]);
            let _ = writeln!(
                e.out,
                "veltrix_ops_total{{op=\"{}\",result=\"{}\"}} {count}",
                kind.name(),
                result.name()
            );
        }
    }
    e.family(
        "veltrix_op_duration_seconds",
        "histogram",
        "Request latency from arrival at its worker to its answer, by kind.",
    );
    for kind in OpKind::ALL {
        e.histogram_series(
            "veltrix_op_duration_seconds",
            &format!("op=\"{}\"", kind.name()),
            &stats.op_latency[kind as usize],
            MICROS,
        );
    }
    e.histogram(
        "veltrix_flush_duration_seconds",
        "Latency of group-commit flushes.",
        &stats.flush_latency,
        MICROS,
    );
    e.histogram(
        "veltrix_batch_records",
        "Records per group commit.",
        &stats.batch_records,
        1.0,
    );
    e.histogram(
        "veltrix_batch_bytes",
        "Bytes per group commit (the frame, padded to blocks).",
        &stats.batch_bytes,
        1.0,
    );
    e.counter(
        "veltrix_group_commits",
        "Group commits started.",
        load(&stats.batches),
    );
    e.counter(
        "veltrix_records_written",
        "Log records written.",
        load(&stats.records),
    );
    e.counter(
        "veltrix_flushes",
        "Flushes that completed.",
        load(&stats.flushes),
    );
    e.counter(
        "veltrix_flush_errors",
        "Flushes that failed (writes fenced).",
        load(&stats.flush_errors),
    );
    e.counter(
        "veltrix_write_errors",
        "Group commits failed by a write error.",
        load(&stats.write_errors),
    );
    e.gauge(
        "veltrix_fenced_workers",
        "Workers whose writes are fenced after a failed flush (until restart).",
        load(&stats.fenced_workers),
    );
    e.counter(
        "veltrix_out_of_space",
        "Writes refused because the namespace is full.",
        load(&stats.out_of_space),
    );
    e.counter(
        "veltrix_log_written_bytes",
        "Bytes the log submitted for writing.",
        load(&stats.bytes_written),
    );
    e.counter(
        "veltrix_get_read_bytes",
        "Bytes read from the namespace for gets.",
        load(&stats.bytes_read),
    );
    e.counter(
        "veltrix_gets",
        "Gets that read a record from the namespace.",
        load(&stats.gets),
    );
    e.counter(
        "veltrix_corruption_detected",
        "Records that failed verification (never served).",
        load(&stats.corruption_detected),
    );
    e.counter(
        "veltrix_cache_hits",
        "Gets answered from the value cache, without a device read.",
        load(&stats.cache_hits),
    );
    e.counter(
        "veltrix_cache_misses",
        "Gets the value cache could not answer.",
        load(&stats.cache_misses),
    );
    e.counter(
        "veltrix_cache_evictions",
        "Value cache entries evicted to make room.",
        load(&stats.cache_evictions),
    );
    e.gauge(
        "veltrix_cache_bytes",
        "Bytes charged to resident value cache entries.",
        load(&stats.cache_bytes),
    );
    let located = stats.corruption_locations.lock().map_or(0, |l| l.len());
    e.gauge(
        "veltrix_corruption_locations",
        "Corrupt locations recorded for the operator (the first 1024).",
        located,
    );
    e.counter(
        "veltrix_shard_moves",
        "Shards moved between workers.",
        load(&stats.shard_moves),
    );
    e.counter(
        "veltrix_gc_runs",
        "GC victims started.",
        load(&stats.gc_runs),
    );
    e.counter(
        "veltrix_gc_segments_freed",
        "Segments GC freed.",
        load(&stats.gc_segments_freed),
    );
    e.counter(
        "veltrix_gc_read_bytes",
        "Bytes GC read from victims.",
        load(&stats.gc_bytes_read),
    );
    e.counter(
        "veltrix_gc_records_relocated",
        "Live records GC rewrote.",
        load(&stats.gc_records_relocated),
    );
    e.counter(
        "veltrix_expired_keys_reclaimed",
        "Expired keys deleted durably (by the reclaimer, or by GC in place of relocating them).",
        load(&stats.expired_reclaimed),
    );
    e.counter(
        "veltrix_expired_reclaimed_bytes",
        "Bytes of expired records those deletes made garbage.",
        load(&stats.expired_bytes_reclaimed),
    );
    e.counter(
        "veltrix_gc_victims_blocked",
        "Victims left in use: records of shards owned by other workers remained.",
        load(&stats.gc_victims_blocked),
    );
    e.counter(
        "veltrix_gc_victims_damaged",
        "Victims left in use: GC found damage in them.",
        load(&stats.gc_victims_damaged),
    );
    e.counter(
        "veltrix_checkpoints",
        "Index checkpoints made durable.",
        load(&stats.checkpoints),
    );
    e.counter(
        "veltrix_checkpoint_failures",
        "Index checkpoints that failed (the log still holds everything).",
        load(&stats.checkpoint_failures),
    );
    e.counter(
        "veltrix_checkpoint_bytes",
        "Bytes of index checkpoint bodies written.",
        load(&stats.checkpoint_bytes),
    );
    e.gauge(
        "veltrix_segments",
        "Segments for data on the namespace.",
        space.segments,
    );
    e.gauge(
        "veltrix_segments_checkpoint",
        "Segments holding index checkpoints.",
        space.checkpoint,
    );
    e.gauge("veltrix_segments_free", "Segments free now.", space.free);
    e.gauge(
        "veltrix_segments_reserved",
        "Free segments kept for GC and deletes.",
        space.reserve,
    );
    e.gauge(
        "veltrix_segment_bytes",
        "Bytes per segment.",
        space.segment_bytes,
    );
    e.gauge(
        "veltrix_namespace_data_bytes",
        "Bytes of the namespace that hold segments for data.",
        u64::from(space.segments) * space.segment_bytes,
    );
    e.gauge(
        "veltrix_live_bytes",
        "Bytes of records the index points at.",
        space.live_bytes,
    );
    e.gauge("veltrix_workers", "Worker threads.", view.handle.workers());
    e.gauge(
        "veltrix_shards",
        "Logical shards (fixed by the format).",
        engine::shard::SHARD_COUNT,
    );
    e.gauge(
        "veltrix_recovery_duration_seconds",
        "How long the last open took to recover the store.",
        view.recovery_seconds,
    );
    e.gauge(
        "veltrix_recovery_records",
        "Log records the last open replayed.",
        view.report.records,
    );
    e.gauge(
        "veltrix_recovery_damaged_ranges",
        "Damaged log ranges the last open reported.",
        view.report.damage.len(),
    );
    e.gauge(
        "veltrix_recovery_torn_tails",
        "Log ends the last open cut: group commits in flight at the crash, or damaged last acknowledged frames.",
        view.report.torn_tails.len(),
    );
    e.gauge(
        "veltrix_recovery_checkpoint",
        "Generation of the index checkpoint the last open started from (0: none).",
        view.report.checkpoint.unwrap_or(0),
    );
    e.gauge(
        "veltrix_recovery_segments_skipped",
        "Log segments the last open did not read: its checkpoint covered them.",
        view.report.segments_skipped,
    );
}

fn nvme_families(e: &mut Exposition, stats: &Stats) {
    let by_kind = |counters: &[AtomicU64; IoKind::COUNT]| {
        IoKind::ALL
            .into_iter()
            .map(|k| (k.name(), load(&counters[k as usize])))
            .collect::<Vec<_>>()
    };
    e.labeled_counter(
        "veltrix_nvme_submissions",
        "Block-layer commands submitted, by kind.",
        "kind",
        by_kind(&stats.io_submitted),
    );
    e.labeled_counter(
        "veltrix_nvme_completions",
        "Block-layer commands completed, by kind.",
        "kind",
        by_kind(&stats.io_completed),
    );
    e.labeled_counter(
        "veltrix_nvme_errors",
        "Block-layer commands that completed with an error, by kind.",
        "kind",
        by_kind(&stats.io_failed),
    );
    e.gauge(
        "veltrix_nvme_in_flight",
        "Block-layer commands in flight on every worker's queue pair.",
        load(&stats.io_in_flight),
    );
    e.counter(
        "veltrix_nvme_queue_full",
        "Submissions a full queue pair refused (retried later).",
        load(&stats.io_queue_full),
    );
}

fn network_families(e: &mut Exposition, server: &ServerStats) {
    e.gauge(
        "veltrix_connections",
        "Client connections open.",
        load_usize(&server.connections),
    );
    e.counter(
        "veltrix_connections_accepted",
        "Client connections accepted.",
        load(&server.connections_accepted),
    );
    e.counter(
        "veltrix_connections_refused",
        "Connections refused past connections_max.",
        load(&server.connections_refused),
    );
    e.counter(
        "veltrix_commands",
        "RESP commands executed.",
        load(&server.commands),
    );
    e.counter(
        "veltrix_protocol_errors",
        "Protocol errors (connection closed).",
        load(&server.protocol_errors),
    );
    e.counter(
        "veltrix_tls_refused",
        "TLS connections refused: a failed handshake (no, untrusted, expired or revoked client certificate) or a bad record (plain text on a TLS port).",
        load(&server.tls_refused),
    );
    e.counter(
        "veltrix_auth_failures",
        "Logins refused: a wrong password or an unknown user (counted alike), or too many logins in progress.",
        load(&server.auth_failures),
    );
    e.counter(
        "veltrix_auth_throttled",
        "Logins refused unchecked because their source failed too often lately (also in veltrix_auth_failures_total).",
        load(&server.auth_throttled),
    );
    e.counter(
        "veltrix_network_received_bytes",
        "Bytes read from clients.",
        load(&server.bytes_read),
    );
    e.counter(
        "veltrix_network_sent_bytes",
        "Bytes written to clients.",
        load(&server.bytes_written),
    );
}
