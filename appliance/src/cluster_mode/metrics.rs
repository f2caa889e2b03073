//! A cluster member's `/metrics`: the node, each hosted group, the
//! transport and the journal (`docs/metrics.md`, "Cluster member").

use std::fmt::Write as _;

use cluster::runtime::{GroupStatus, NodeStatus};

use crate::metrics::Exposition;

/// The exposition text of a member's state.
pub(super) fn render(
    node: u64,
    status: &NodeStatus,
    messages: (u64, u64, u64),
    stopped: bool,
    uptime_seconds: f64,
) -> String {
    let mut e = Exposition::default();
    e.gauge(
        "veltrix_uptime_seconds",
        "Seconds since the daemon started.",
        format!("{uptime_seconds:.3}"),
    );
    e.gauge("veltrix_cluster_node", "This member's node id.", node);
    e.gauge(
        "veltrix_cluster_node_stopped",
        "1 when the node's loop stopped (a failed journal write or sync); the member serves nothing then.",
        u8::from(stopped),
    );
    let groups = &status.groups;
    e.gauge(
        "veltrix_cluster_groups_hosted",
        "Group replicas this member holds.",
        groups.len(),
    );
    e.gauge(
        "veltrix_cluster_groups_led",
        "Groups this member leads.",
        groups.iter().filter(|g| g.is_leader).count(),
    );
    e.gauge(
        "veltrix_cluster_groups_leaderless",
        "Hosted groups that know no leader (an election in progress, or no quorum reachable).",
        groups.iter().filter(|g| g.leader.is_none()).count(),
    );
    e.gauge(
        "veltrix_cluster_groups_hibernating",
        "Hosted groups asleep (idle: no heartbeats).",
        groups.iter().filter(|g| g.hibernating).count(),
    );
    per_group(&mut e, groups);
    e.counter(
        "veltrix_cluster_envelopes_sent",
        "Envelopes (all groups' messages for one peer in one step) sent to peers.",
        messages.0,
    );
    e.counter(
        "veltrix_cluster_envelopes_received",
        "Envelopes received from peers.",
        messages.1,
    );
    e.counter(
        "veltrix_cluster_envelopes_dropped",
        "Envelopes dropped: a full queue, no connection, or an injected loss.",
        messages.2,
    );
    e.counter(
        "veltrix_cluster_journal_written_bytes",
        "Bytes appended to the cluster journal (rewrites included).",
        status.disk_bytes,
    );
    e.counter(
        "veltrix_cluster_journal_flushes",
        "Journal frames made durable, one fdatasync each (one per node step with something to persist).",
        status.disk_flushes,
    );
    e.out
}

/// One series per hosted group for each per-group family.
fn per_group(e: &mut Exposition, groups: &[GroupStatus]) {
    type Field = fn(&GroupStatus) -> Option<u64>;
    let families: [(&str, &str, &str, Field); 8] = [
        (
            "veltrix_cluster_group_term",
            "gauge",
            "The group's Raft term as this replica knows it.",
            |g| Some(g.term),
        ),
        (
            "veltrix_cluster_group_commit_index",
            "gauge",
            "The highest log index this replica knows committed.",
            |g| Some(g.commit),
        ),
        (
            "veltrix_cluster_group_applied_index",
            "gauge",
            "The highest log index applied here.",
            |g| Some(g.applied),
        ),
        (
            "veltrix_cluster_group_is_leader",
            "gauge",
            "1 when this replica leads the group.",
            |g| Some(u64::from(g.is_leader)),
        ),
        (
            "veltrix_cluster_group_replication_lag_entries",
            "gauge",
            "On the leader: entries the furthest-behind replica lacks.",
            |g| g.lag,
        ),
        (
            "veltrix_cluster_group_leader_changes_total",
            "counter",
            "Times the leader this replica knows of changed since the daemon started.",
            |g| Some(g.leader_changes),
        ),
        (
            "veltrix_cluster_group_snapshots_sent_total",
            "counter",
            "Snapshots this replica sent to followers.",
            |g| Some(g.snapshots_sent),
        ),
        (
            "veltrix_cluster_group_snapshots_installed_total",
            "counter",
            "Snapshots installed on this replica.",
            |g| Some(g.snapshots_installed),
        ),
    ];
    for (name, kind, help, field) in families {
        e.family(name, kind, help);
        for g in groups {
            if let Some(value) = field(g) {
                let _ = writeln!(e.out, "{name}{{group=\"{}\"}} {value}", g.group);
            }
        }
    }
}
