//! The cluster map: the members, where each group's replicas should be,
//! and an epoch that every change raises.
//!
//! The map is a deterministic state machine: commands are validated
//! against it and applied in order, so every replica of the map (it will
//! live in its own Raft group) holds the same map at the same epoch. The
//! nodes reconcile towards it: a node hosts the replicas the map gives it,
//! a group's leader moves the group's replicas to the map's target
//! (`membership`), and a replica the map no longer names is forgotten once
//! the move has finished.
//!
//! The rules every command keeps: three replicas per group, in three
//! different zones, on members that are not draining; a replica added to
//! a node gets an incarnation never used there before for that group.

use std::collections::BTreeMap;

use crate::layout::GroupId;
use crate::placement::{
    node_of, place, replica_id, Member, NodeId, PlacementError, ReplicaId, REPLICAS,
};

/// One group in the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupEntry {
    /// Where the replicas should be, sorted.
    pub replicas: Vec<ReplicaId>,
    /// The replica that should lead when it can.
    pub preferred: ReplicaId,
}

/// The cluster map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterMap {
    pub epoch: u64,
    pub members: BTreeMap<NodeId, Member>,
    /// Members that replicas are being moved off (drain).
    pub draining: Vec<NodeId>,
    pub groups: Vec<GroupEntry>,
    /// The last incarnation used per (group, node).
    generations: BTreeMap<(GroupId, NodeId), u16>,
}

/// A change to the map.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Command {
    AddNode(Member),
    /// Move every replica off this node (then it can be removed).
    Drain(NodeId),
    /// Remove a node that holds no replica.
    RemoveNode(NodeId),
    /// Move one replica of a group to another node.
    Move {
        group: GroupId,
        from: ReplicaId,
        to: NodeId,
    },
}

/// Why a command is refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum MapError {
    #[error("node {0} is already a member")]
    AlreadyMember(NodeId),
    #[error("node {0} is not a member")]
    NotMember(NodeId),
    #[error("node {0} still holds {1} replica(s): drain it first")]
    StillHolds(NodeId, usize),
    #[error("group {0} does not exist")]
    NoGroup(GroupId),
    #[error("replica {1:#x} is not one of group {0}'s")]
    NotAReplica(GroupId, ReplicaId),
    #[error("node {1} already holds a replica of group {0}")]
    AlreadyHolds(GroupId, NodeId),
    #[error("node {0} is draining: nothing moves onto it")]
    Draining(NodeId),
    #[error("group {0} would have two replicas in zone {1}")]
    SameZone(GroupId, String),
    #[error("node {0}: {1} incarnations of group {2} used up")]
    Incarnations(NodeId, u16, GroupId),
    #[error(transparent)]
    Placement(#[from] PlacementError),
}

impl ClusterMap {
    /// A new cluster's map: `place`'s placement, incarnation 1 everywhere.
    pub fn bootstrap(members: &[Member], groups: u32) -> Result<Self, MapError> {
        let placed = place(members, groups)?;
        let mut generations = BTreeMap::new();
        let groups = (0..)
            .zip(placed)
            .map(|(group, replicas)| {
                for &n in &replicas.0 {
                    generations.insert((group, n), 1);
                }
                let preferred = replica_id(replicas.0[0], 1);
                let mut replicas: Vec<ReplicaId> =
                    replicas.0.iter().map(|&n| replica_id(n, 1)).collect();
                replicas.sort_unstable();
                GroupEntry {
                    replicas,
                    preferred,
                }
            })
            .collect();
        let members = members.iter().map(|m| (m.id, m.clone())).collect();
        Ok(Self {
            epoch: 1,
            members,
            draining: Vec::new(),
            groups,
            generations,
        })
    }

    /// Replicas each member holds in the map (members with none included).
    pub fn load(&self) -> BTreeMap<NodeId, usize> {
        let mut load: BTreeMap<NodeId, usize> = self.members.keys().map(|&n| (n, 0)).collect();
        for entry in &self.groups {
            for &r in &entry.replicas {
                *load.entry(node_of(r)).or_default() += 1;
            }
        }
        load
    }

    /// Validates and applies `command`; the epoch rises by one.
    pub fn apply(&mut self, command: &Command) -> Result<(), MapError> {
        match command {
            Command::AddNode(member) => {
                if self.members.contains_key(&member.id) {
                    return Err(MapError::AlreadyMember(member.id));
                }
                self.members.insert(member.id, member.clone());
            }
            Command::Drain(node) => {
                self.member(*node)?;
                if !self.draining.contains(node) {
                    self.draining.push(*node);
                }
            }
            Command::RemoveNode(node) => {
                self.member(*node)?;
                let held = self.load().get(node).copied().unwrap_or(0);
                if held > 0 {
                    return Err(MapError::StillHolds(*node, held));
                }
                self.members.remove(node);
                self.draining.retain(|n| n != node);
            }
            Command::Move { group, from, to } => self.move_replica(*group, *from, *to)?,
        }
        self.epoch += 1;
        Ok(())
    }

    fn member(&self, node: NodeId) -> Result<&Member, MapError> {
        self.members.get(&node).ok_or(MapError::NotMember(node))
    }

    /// Whether moving `from` of `group` to `to` keeps the map's rules.
    pub fn check_move(&self, group: GroupId, from: ReplicaId, to: NodeId) -> Result<(), MapError> {
        let zone = &self.member(to)?.zone;
        if self.draining.contains(&to) {
            return Err(MapError::Draining(to));
        }
        let entry = self
            .groups
            .get(group as usize)
            .ok_or(MapError::NoGroup(group))?;
        if !entry.replicas.contains(&from) {
            return Err(MapError::NotAReplica(group, from));
        }
        let mut staying = entry
            .replicas
            .iter()
            .filter(|&&r| r != from)
            .map(|&r| node_of(r));
        if node_of(from) == to || staying.clone().any(|n| n == to) {
            return Err(MapError::AlreadyHolds(group, to));
        }
        if staying.any(|n| self.members.get(&n).is_some_and(|m| &m.zone == zone)) {
            return Err(MapError::SameZone(group, zone.clone()));
        }
        if self.generations.get(&(group, to)) == Some(&u16::MAX) {
            return Err(MapError::Incarnations(to, u16::MAX, group));
        }
        Ok(())
    }

    fn move_replica(
        &mut self,
        group: GroupId,
        from: ReplicaId,
        to: NodeId,
    ) -> Result<(), MapError> {
        self.check_move(group, from, to)?;
        let generation = self.generations.entry((group, to)).or_insert(0);
        *generation += 1;
        let new = replica_id(to, *generation);
        let entry = &mut self.groups[group as usize];
        entry.replicas.retain(|&r| r != from);
        entry.replicas.push(new);
        entry.replicas.sort_unstable();
        if entry.preferred == from {
            entry.preferred = new;
        }
        Ok(())
    }

    /// Moves that bring the map closer to balance: replicas off draining
    /// nodes first, then from the most loaded node to the least loaded one
    /// that a group's zones allow; at most one move per group, and at most
    /// `limit` moves.
    pub fn plan_rebalance(&self, limit: usize) -> Vec<Command> {
        let mut trial = self.clone();
        let mut planned = Vec::new();
        let mut moved: Vec<GroupId> = Vec::new();
        while planned.len() < limit {
            let Some(command) = trial.next_balancing_move(&moved) else {
                break;
            };
            if let Command::Move { group, .. } = command {
                moved.push(group);
            }
            if trial.apply(&command).is_err() {
                break;
            }
            planned.push(command);
        }
        planned
    }

    fn next_balancing_move(&self, skip: &[GroupId]) -> Option<Command> {
        let load = self.load();
        let takers: Vec<(NodeId, usize)> = {
            let mut t: Vec<(NodeId, usize)> = load
                .iter()
                .filter(|(n, _)| !self.draining.contains(n))
                .map(|(&n, &l)| (n, l))
                .collect();
            t.sort_by_key(|&(n, l)| (l, n));
            t
        };
        let min = takers.first().map(|&(_, l)| l)?;
        let mut givers: Vec<(NodeId, usize)> = load.iter().map(|(&n, &l)| (n, l)).collect();
        // Draining nodes give first, whatever their load; then the fullest.
        givers.sort_by_key(|&(n, l)| (!self.draining.contains(&n), std::cmp::Reverse(l), n));
        for (giver, giver_load) in givers {
            let draining = self.draining.contains(&giver);
            if !draining && giver_load <= min + 1 {
                continue;
            }
            for (group, entry) in (0..).zip(&self.groups).filter(|(g, _)| !skip.contains(g)) {
                let Some(&from) = entry.replicas.iter().find(|&&r| node_of(r) == giver) else {
                    continue;
                };
                for &(to, to_load) in &takers {
                    if to == giver || (!draining && to_load + 1 >= giver_load) {
                        continue;
                    }
                    if self.check_move(group, from, to).is_ok() {
                        return Some(Command::Move { group, from, to });
                    }
                }
            }
        }
        None
    }

    /// Whether every group has its three replicas in three zones.
    pub fn is_valid(&self) -> bool {
        self.groups.iter().all(|e| {
            let mut zones: Vec<&str> = e
                .replicas
                .iter()
                .filter_map(|&r| self.members.get(&node_of(r)))
                .map(|m| m.zone.as_str())
                .collect();
            zones.sort_unstable();
            zones.dedup();
            e.replicas.len() == REPLICAS && zones.len() == REPLICAS
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn member(id: NodeId, zone: usize) -> Member {
        Member {
            id,
            zone: format!("zone-{zone}"),
        }
    }

    fn three() -> ClusterMap {
        ClusterMap::bootstrap(&[member(1, 0), member(2, 1), member(3, 2)], 64).expect("bootstrap")
    }

    /// Applies rebalancing plans until none is left (bounded).
    fn settle(map: &mut ClusterMap) {
        for _ in 0..1000 {
            let plan = map.plan_rebalance(8);
            if plan.is_empty() {
                return;
            }
            for c in plan {
                map.apply(&c).expect("a planned move applies");
            }
        }
        panic!("rebalancing did not settle");
    }

    #[test]
    fn a_new_node_gets_its_share() {
        let mut map = three();
        let epoch = map.epoch;
        map.apply(&Command::AddNode(member(4, 0))).expect("add");
        assert!(map.epoch > epoch);
        settle(&mut map);
        assert!(map.is_valid());
        // Zone 0 holds one replica of each group: nodes 1 and 4 share it.
        let load = map.load();
        assert_eq!(load[&1] + load[&4], 64);
        assert!(load[&1].abs_diff(load[&4]) <= 1, "{load:?}");
    }

    #[test]
    fn a_drained_node_can_be_removed() {
        let mut map = three();
        map.apply(&Command::AddNode(member(4, 1))).expect("add");
        assert_eq!(
            map.apply(&Command::RemoveNode(2)),
            Err(MapError::StillHolds(2, 64))
        );
        map.apply(&Command::Drain(2)).expect("drain");
        settle(&mut map);
        assert_eq!(map.load()[&2], 0);
        map.apply(&Command::RemoveNode(2)).expect("remove");
        assert!(map.is_valid());
        assert_eq!(map.load()[&4], 64);
    }

    #[test]
    fn moves_that_break_the_rules_are_refused() {
        let mut map = three();
        map.apply(&Command::AddNode(member(4, 0))).expect("add");
        map.apply(&Command::AddNode(member(5, 1))).expect("add");
        let from = *map.groups[0]
            .replicas
            .iter()
            .find(|&&r| node_of(r) == 2)
            .expect("a replica on 2");
        assert_eq!(
            map.apply(&Command::Move {
                group: 0,
                from,
                to: 4
            }),
            Err(MapError::SameZone(0, "zone-0".into()))
        );
        assert_eq!(
            map.apply(&Command::Move {
                group: 0,
                from,
                to: 3
            }),
            Err(MapError::AlreadyHolds(0, 3))
        );
        assert_eq!(
            map.apply(&Command::Move {
                group: 0,
                from: 7,
                to: 5
            }),
            Err(MapError::NotAReplica(0, 7))
        );
        assert_eq!(
            map.apply(&Command::Move {
                group: 99,
                from,
                to: 5
            }),
            Err(MapError::NoGroup(99))
        );
        map.apply(&Command::Drain(5)).expect("drain");
        assert_eq!(
            map.apply(&Command::Move {
                group: 0,
                from,
                to: 5
            }),
            Err(MapError::Draining(5))
        );
    }

    #[test]
    fn a_replica_added_back_gets_a_new_incarnation() {
        let mut map = three();
        map.apply(&Command::AddNode(member(4, 0))).expect("add");
        let on_1 = *map.groups[0]
            .replicas
            .iter()
            .find(|&&r| node_of(r) == 1)
            .expect("on 1");
        map.apply(&Command::Move {
            group: 0,
            from: on_1,
            to: 4,
        })
        .expect("1 -> 4");
        let on_4 = *map.groups[0]
            .replicas
            .iter()
            .find(|&&r| node_of(r) == 4)
            .expect("on 4");
        map.apply(&Command::Move {
            group: 0,
            from: on_4,
            to: 1,
        })
        .expect("4 -> 1");
        let back = *map.groups[0]
            .replicas
            .iter()
            .find(|&&r| node_of(r) == 1)
            .expect("on 1 again");
        assert_ne!(back, on_1, "the old incarnation's id was reused");
        assert_eq!(back, replica_id(1, 2));
    }

    proptest! {
        /// Whatever nodes join and drain, rebalancing keeps every group in
        /// three zones, leaves nothing on draining nodes, and ends with the
        /// loads of a zone's nodes within one of each other.
        #[test]
        fn rebalancing_keeps_the_rules(steps in prop::collection::vec((0usize..3, any::<bool>()), 1..8)) {
            let mut map = three();
            let mut next_id = 4;
            for (zone, drain) in steps {
                if drain && map.members.len() - map.draining.len() > 3 {
                    let victim = *map.members.keys().find(|n| !map.draining.contains(n)).expect("a member");
                    let zone_of = map.members[&victim].zone.clone();
                    let others = map.members.values().filter(|m| m.zone == zone_of && !map.draining.contains(&m.id)).count();
                    if others > 1 {
                        map.apply(&Command::Drain(victim)).expect("drain");
                    }
                } else {
                    map.apply(&Command::AddNode(member(next_id, zone))).expect("add");
                    next_id += 1;
                }
                settle(&mut map);
                prop_assert!(map.is_valid());
                for d in &map.draining {
                    prop_assert_eq!(map.load()[d], 0, "replicas left on draining node {}", d);
                }
            }
            // With one zone's nodes all equal, loads within a zone differ by
            // at most one.
            let load = map.load();
            for zone in 0..3 {
                let z: Vec<usize> = map.members.values()
                    .filter(|m| m.zone == format!("zone-{zone}") && !map.draining.contains(&m.id))
                    .map(|m| load[&m.id]).collect();
                let (max, min) = (z.iter().max().copied().unwrap_or(0), z.iter().min().copied().unwrap_or(0));
                prop_assert!(max - min <= 1, "zone {} loads {:?}", zone, z);
            }
        }
    }
}
