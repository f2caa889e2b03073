//! What clients are told about the cluster: the nodes, and which node
//! serves each slot range, in the terms of the Redis Cluster protocol
//! (`CLUSTER SLOTS`, `CLUSTER SHARDS`, `CLUSTER NODES`, `-MOVED`).
//!
//! A group is a contiguous slot range (`layout`), so the view has one
//! shard per group: its primary and its replicas. Which replica is named
//! primary is the caller's choice: the committed map's preferred leader
//! for the listing commands (so every node answers the same), the current
//! leader for redirects.

use engine::shard::SLOT_COUNT;

use crate::layout::GroupLayout;
use crate::placement::{NodeId, Replicas};

/// A node as clients reach it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeView {
    pub id: NodeId,
    /// The 40-hex-digit name Redis Cluster clients key nodes by.
    pub name: String,
    pub ip: String,
    /// The data port (RESP).
    pub port: u16,
    /// The port peers reach the node on (Redis's cluster bus port).
    pub bus_port: u16,
    /// Whether the node is believed up.
    pub up: bool,
}

/// One group's slot range and who serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ShardView {
    /// First and last slot, inclusive.
    pub slots: (u16, u16),
    pub primary: NodeId,
    pub replicas: Vec<NodeId>,
}

/// The whole cluster as one node answers for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterView {
    pub myself: NodeId,
    /// The map's epoch (Redis's config epoch).
    pub epoch: u64,
    pub nodes: Vec<NodeView>,
    pub shards: Vec<ShardView>,
}

/// The name clients know node `id` of cluster `cluster` by: 40 hex digits,
/// the cluster's id then the node's, so names never collide across
/// clusters and stay the same across restarts.
pub fn node_name(cluster: u128, id: NodeId) -> String {
    format!("{:024x}{:016x}", cluster & ((1u128 << 96) - 1), id)
}

impl ClusterView {
    /// The view of a placement: one shard per group, its primary the first
    /// of `primary_of(group)` (the caller's choice of leader) and the
    /// preferred leader.
    pub fn new(
        myself: NodeId,
        epoch: u64,
        nodes: Vec<NodeView>,
        layout: GroupLayout,
        placement: &[Replicas],
        primary_of: impl Fn(u32) -> Option<NodeId>,
    ) -> Self {
        let slots_per_group = u32::from(SLOT_COUNT) / layout.groups();
        let shards = (0..layout.groups())
            .zip(placement)
            .filter_map(|(group, replicas)| {
                let primary = primary_of(group).or_else(|| replicas.preferred_leader())?;
                let first = group * slots_per_group;
                Some(ShardView {
                    slots: (first as u16, (first + slots_per_group - 1) as u16),
                    primary,
                    replicas: replicas
                        .0
                        .iter()
                        .copied()
                        .filter(|&n| n != primary)
                        .collect(),
                })
            })
            .collect();
        Self {
            myself,
            epoch,
            nodes,
            shards,
        }
    }

    /// The node with id `id`.
    pub fn node(&self, id: NodeId) -> Option<&NodeView> {
        self.nodes.iter().find(|n| n.id == id)
    }

    /// The shard that serves `slot`.
    pub fn shard_of_slot(&self, slot: u16) -> Option<&ShardView> {
        self.shards
            .iter()
            .find(|s| (s.slots.0..=s.slots.1).contains(&slot))
    }

    /// Slots covered by some shard.
    pub fn slots_assigned(&self) -> u32 {
        self.shards
            .iter()
            .map(|s| u32::from(s.slots.1 - s.slots.0) + 1)
            .sum()
    }

    /// The shards `node` is primary of.
    pub fn primaries_of(&self, node: NodeId) -> impl Iterator<Item = &ShardView> {
        self.shards.iter().filter(move |s| s.primary == node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::placement::{place, Member};

    fn view() -> ClusterView {
        let members: Vec<Member> = (1..=3)
            .map(|i| Member {
                id: i,
                zone: format!("z{i}"),
            })
            .collect();
        let placement = place(&members, 64).expect("placement");
        let nodes = (1..=3)
            .map(|i| NodeView {
                id: i,
                name: node_name(7, i),
                ip: "127.0.0.1".into(),
                port: 6379 + i as u16,
                bus_port: 16379 + i as u16,
                up: true,
            })
            .collect();
        ClusterView::new(1, 3, nodes, GroupLayout::default(), &placement, |_| None)
    }

    #[test]
    fn every_slot_has_exactly_one_shard() {
        let v = view();
        assert_eq!(v.slots_assigned(), 16384);
        for slot in 0..SLOT_COUNT {
            assert_eq!(
                v.shards
                    .iter()
                    .filter(|s| (s.slots.0..=s.slots.1).contains(&slot))
                    .count(),
                1
            );
        }
        assert_eq!(v.shard_of_slot(0).map(|s| s.slots), Some((0, 255)));
        assert_eq!(
            v.shard_of_slot(16383).map(|s| s.slots),
            Some((16128, 16383))
        );
    }

    #[test]
    fn primaries_are_not_listed_as_replicas() {
        for s in &view().shards {
            assert_eq!(s.replicas.len(), 2);
            assert!(!s.replicas.contains(&s.primary));
        }
    }

    #[test]
    fn names_are_forty_hex_digits_and_distinct() {
        let a = node_name(u128::MAX, 1);
        assert_eq!(a.len(), 40);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(a, node_name(u128::MAX, 2));
        assert_ne!(node_name(1, 1), node_name(2, 1));
    }
}
