//! The Redis Cluster protocol's replies, from a [`ClusterView`].
//!
//! Formats follow Redis 7.0 as `redis-server --cluster-enabled yes` prints
//! them (`tests/cluster_oracle.rs` compares the two): `CLUSTER SLOTS`
//! nodes are `[ip, port, id, {}]`; `CLUSTER SHARDS` is one map per shard
//! with `slots` and `nodes`; `CLUSTER NODES` and `CLUSTER INFO` are text,
//! a bulk string in RESP2 and a `txt` verbatim string in RESP3.
//!
//! Where our model differs from Redis's: a node leads some groups and
//! follows in others, so in `CLUSTER NODES` every node is a `master` of the
//! slot ranges it is primary for (none, possibly), and `CLUSTER SHARDS`
//! has one shard per group (a group's replicas differ from its
//! neighbours'), with the group's followers as its `replica`s.

use std::fmt::Write as _;

use cluster::view::{ClusterView, NodeView, ShardView};

use crate::resp::encode::{self, Protocol};

/// `CLUSTER SLOTS`: each slot range, its primary, then its replicas.
/// Adjacent ranges with the same primary and replicas are one entry, as
/// Redis lists them.
pub fn slots(view: &ClusterView, protocol: Protocol) -> Vec<u8> {
    let ranges = merged_ranges(&view.shards);
    let mut out = Vec::new();
    encode::array_header(&mut out, ranges.len());
    for (first, last, shard) in ranges {
        let nodes: Vec<&NodeView> = std::iter::once(shard.primary)
            .chain(shard.replicas.iter().copied())
            .filter_map(|id| view.node(id))
            .collect();
        encode::array_header(&mut out, 2 + nodes.len());
        encode::integer(&mut out, i64::from(first));
        encode::integer(&mut out, i64::from(last));
        for node in nodes {
            encode::array_header(&mut out, 4);
            encode::bulk(&mut out, node.ip.as_bytes());
            encode::integer(&mut out, i64::from(node.port));
            encode::bulk(&mut out, node.name.as_bytes());
            encode::map_header(&mut out, 0, protocol);
        }
    }
    out
}

fn merged_ranges(shards: &[ShardView]) -> Vec<(u16, u16, &ShardView)> {
    let mut sorted: Vec<&ShardView> = shards.iter().collect();
    sorted.sort_by_key(|s| s.slots.0);
    let mut ranges: Vec<(u16, u16, &ShardView)> = Vec::new();
    for shard in sorted {
        match ranges.last_mut() {
            Some((_, last, prev))
                if u32::from(*last) + 1 == u32::from(shard.slots.0)
                    && prev.primary == shard.primary
                    && prev.replicas == shard.replicas =>
            {
                *last = shard.slots.1;
            }
            _ => ranges.push((shard.slots.0, shard.slots.1, shard)),
        }
    }
    ranges
}

/// `CLUSTER SHARDS`: per shard its slots and its nodes with their role and
/// health.
pub fn shards(view: &ClusterView, protocol: Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    encode::array_header(&mut out, view.shards.len());
    for shard in &view.shards {
        encode::map_header(&mut out, 2, protocol);
        encode::bulk(&mut out, b"slots");
        encode::array_header(&mut out, 2);
        encode::integer(&mut out, i64::from(shard.slots.0));
        encode::integer(&mut out, i64::from(shard.slots.1));
        encode::bulk(&mut out, b"nodes");
        let members: Vec<(&NodeView, &str)> = std::iter::once((shard.primary, "master"))
            .chain(shard.replicas.iter().map(|&r| (r, "replica")))
            .filter_map(|(id, role)| Some((view.node(id)?, role)))
            .collect();
        encode::array_header(&mut out, members.len());
        for (node, role) in members {
            shard_node(&mut out, node, role, protocol);
        }
    }
    out
}

fn shard_node(out: &mut Vec<u8>, node: &NodeView, role: &str, protocol: Protocol) {
    encode::map_header(out, 7, protocol);
    encode::bulk(out, b"id");
    encode::bulk(out, node.name.as_bytes());
    encode::bulk(out, b"port");
    encode::integer(out, i64::from(node.port));
    encode::bulk(out, b"ip");
    encode::bulk(out, node.ip.as_bytes());
    encode::bulk(out, b"endpoint");
    encode::bulk(out, node.ip.as_bytes());
    encode::bulk(out, b"role");
    encode::bulk(out, role.as_bytes());
    // Raft's applied index is the analogue; clients do not read it.
    encode::bulk(out, b"replication-offset");
    encode::integer(out, 0);
    encode::bulk(out, b"health");
    encode::bulk(
        out,
        if node.up {
            b"online".as_slice()
        } else {
            b"fail"
        },
    );
}

/// `CLUSTER NODES`' text: one line per node, ending in `\n`.
pub fn nodes_text(view: &ClusterView) -> String {
    let mut text = String::new();
    for node in &view.nodes {
        let mut flags = String::new();
        if node.id == view.myself {
            flags.push_str("myself,");
        }
        flags.push_str("master");
        if !node.up {
            flags.push_str(",fail");
        }
        let link = if node.up { "connected" } else { "disconnected" };
        let _ = write!(
            text,
            "{} {}:{}@{} {flags} - 0 0 {} {link}",
            node.name, node.ip, node.port, node.bus_port, view.epoch
        );
        for (first, last, _) in merged_ranges(&view.shards)
            .into_iter()
            .filter(|(_, _, s)| s.primary == node.id)
        {
            if first == last {
                let _ = write!(text, " {first}");
            } else {
                let _ = write!(text, " {first}-{last}");
            }
        }
        text.push('\n');
    }
    text
}

/// `CLUSTER INFO`'s text: `field:value` lines ending in `\r\n`.
/// `messages` is (sent, received) between nodes.
pub fn info_text(view: &ClusterView, messages: (u64, u64)) -> String {
    let assigned = view.slots_assigned();
    let failed: u32 = view
        .shards
        .iter()
        .filter(|s| !view.node(s.primary).is_some_and(|n| n.up))
        .map(|s| u32::from(s.slots.1 - s.slots.0) + 1)
        .sum();
    let state = if assigned == 16384 && failed == 0 {
        "ok"
    } else {
        "fail"
    };
    let size = view
        .nodes
        .iter()
        .filter(|n| view.primaries_of(n.id).next().is_some())
        .count();
    let fields: [(&str, String); 12] = [
        ("cluster_state", state.to_string()),
        ("cluster_slots_assigned", assigned.to_string()),
        ("cluster_slots_ok", (assigned - failed).to_string()),
        ("cluster_slots_pfail", "0".to_string()),
        ("cluster_slots_fail", failed.to_string()),
        ("cluster_known_nodes", view.nodes.len().to_string()),
        ("cluster_size", size.to_string()),
        ("cluster_current_epoch", view.epoch.to_string()),
        ("cluster_my_epoch", view.epoch.to_string()),
        ("cluster_stats_messages_sent", messages.0.to_string()),
        ("cluster_stats_messages_received", messages.1.to_string()),
        ("total_cluster_links_buffer_limit_exceeded", "0".to_string()),
    ];
    let mut text = String::new();
    for (field, value) in fields {
        let _ = write!(text, "{field}:{value}\r\n");
    }
    text
}

/// Text replies: a bulk string in RESP2, a `txt` verbatim string in RESP3.
pub fn text(out: &mut Vec<u8>, text: &str, protocol: Protocol) {
    encode::verbatim(out, *b"txt", text.as_bytes(), protocol);
}

/// The `-MOVED` error text for `slot`, served by `node`.
pub fn moved(slot: u16, node: &NodeView) -> String {
    format!("MOVED {slot} {}:{}", node.ip, node.port)
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster::view::node_name;

    fn node(id: u64, up: bool) -> NodeView {
        NodeView {
            id,
            name: node_name(1, id),
            ip: "10.0.0.1".into(),
            port: 7000 + id as u16,
            bus_port: 17000,
            up,
        }
    }

    fn view() -> ClusterView {
        ClusterView {
            myself: 1,
            epoch: 5,
            nodes: vec![node(1, true), node(2, true), node(3, false)],
            shards: vec![
                ShardView {
                    slots: (0, 99),
                    primary: 1,
                    replicas: vec![2, 3],
                },
                ShardView {
                    slots: (100, 199),
                    primary: 1,
                    replicas: vec![2, 3],
                },
                ShardView {
                    slots: (200, 16383),
                    primary: 3,
                    replicas: vec![1, 2],
                },
            ],
        }
    }

    #[test]
    fn nodes_lists_each_primarys_merged_ranges() {
        let text = nodes_text(&view());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].ends_with("myself,master - 0 0 5 connected 0-199"),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].ends_with(" master - 0 0 5 connected"),
            "{}",
            lines[1]
        );
        assert!(
            lines[2].ends_with("master,fail - 0 0 5 disconnected 200-16383"),
            "{}",
            lines[2]
        );
    }

    #[test]
    fn info_counts_the_slots_of_a_failed_primary() {
        let text = info_text(&view(), (1, 2));
        assert!(text.starts_with("cluster_state:fail\r\n"));
        assert!(text.contains("cluster_slots_fail:16184\r\n"));
        assert!(text.contains("cluster_slots_ok:200\r\n"));
        assert!(text.contains("cluster_size:2\r\n"));
    }

    #[test]
    fn slots_merges_adjacent_ranges_of_one_primary() {
        let reply = slots(&view(), Protocol::Resp2);
        assert!(reply.starts_with(b"*2\r\n*5\r\n:0\r\n:199\r\n*4\r\n$8\r\n10.0.0.1\r\n:7001\r\n"));
    }

    #[test]
    fn moved_names_the_node() {
        assert_eq!(moved(12182, &node(2, true)), "MOVED 12182 10.0.0.1:7002");
    }
}
