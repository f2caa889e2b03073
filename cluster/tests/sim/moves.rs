//! Replica moves during the run: the simulator plays the operator over the
//! cluster map (`cluster::map`, not yet in its own Raft group), moving
//! one replica of a group to a node the map's rules allow while faults go
//! on. A move is: the new node hosts an empty
//! replica under a new replica id; every replica is told the target; the
//! leader adds a learner, swaps it in by joint consensus (handing over
//! leadership first if it is the one leaving); once a leader's applied
//! configuration is the target, the old node forgets its replica. A
//! replica left behind (its forget lost in a crash) is forgotten when seen.

use std::collections::BTreeMap;

use cluster::map::{ClusterMap, Command};
use cluster::placement::{node_of, NodeId, ReplicaId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Slot;

pub struct Move {
    pub from: ReplicaId,
    pub to: ReplicaId,
}

pub struct Moves {
    /// The cluster map: each group's target replicas and preferred leader.
    pub map: ClusterMap,
    pub active: BTreeMap<u32, Move>,
    pub completed: u64,
}

impl Moves {
    pub fn new(map: ClusterMap) -> Self {
        Self {
            map,
            active: BTreeMap::new(),
            completed: 0,
        }
    }

    /// Maybe starts a move of a random group not already moving, to a
    /// node the map's rules allow.
    pub fn maybe_start(&mut self, rng: &mut ChaCha8Rng, ppm: u32) {
        if rng.random_range(0..1_000_000) >= ppm {
            return;
        }
        let groups: Vec<u32> = (0..self.map.groups.len() as u32)
            .filter(|g| !self.active.contains_key(g))
            .collect();
        if groups.is_empty() {
            return;
        }
        let group = groups[rng.random_range(0..groups.len())];
        let replicas = self.map.groups[group as usize].replicas.clone();
        let from = replicas[rng.random_range(0..replicas.len())];
        let nodes: Vec<NodeId> = self.map.members.keys().copied().collect();
        let allowed: Vec<NodeId> = nodes
            .into_iter()
            .filter(|&n| self.map.check_move(group, from, n).is_ok())
            .collect();
        if allowed.is_empty() {
            return;
        }
        let to = allowed[rng.random_range(0..allowed.len())];
        self.map
            .apply(&Command::Move { group, from, to })
            .expect("a checked move applies");
        let to = *self.map.groups[group as usize]
            .replicas
            .iter()
            .find(|&&r| node_of(r) == to)
            .expect("the new replica");
        self.active.insert(group, Move { from, to });
    }

    /// Tells the running nodes what they need to know, and finishes the
    /// moves whose group has arrived.
    pub fn drive(&mut self, slots: &mut [Slot], ids: &[NodeId]) {
        for (group, entry) in (0..).zip(&self.map.groups) {
            let target = &entry.replicas;
            let active = self.active.get(&group);
            for (i, slot) in slots.iter_mut().enumerate() {
                let Slot::Up(node) = slot else { continue };
                let hosted = node.group(group).map(|g| g.replica());
                match active {
                    Some(m) if node_of(m.to) == ids[i] && hosted != Some(m.to) => {
                        node.host(group, m.to).expect("host a new replica");
                    }
                    _ => {
                        let leftover = hosted
                            .filter(|r| !target.contains(r) && active.is_none_or(|m| m.from != *r));
                        if leftover.is_some() {
                            node.forget(group);
                        }
                    }
                }
                node.set_target(group, target.clone());
                node.set_preferred(group, Some(entry.preferred));
            }
        }
        let done: Vec<u32> = self
            .active
            .iter()
            .filter(|(&group, m)| {
                arrived(slots, group, &self.map.groups[group as usize].replicas)
                    && forget(slots, ids, group, m.from)
            })
            .map(|(&g, _)| g)
            .collect();
        for group in done {
            self.active.remove(&group);
            self.completed += 1;
        }
    }
}

/// Whether some running leader of `group` has applied exactly `target`.
fn arrived(slots: &[Slot], group: u32, target: &[ReplicaId]) -> bool {
    slots.iter().any(|slot| {
        let Slot::Up(node) = slot else { return false };
        node.group(group).is_some_and(|g| {
            let conf = g.configuration();
            let mut voters = conf.voters.clone();
            voters.sort_unstable();
            g.is_leader()
                && voters == target
                && conf.outgoing.is_empty()
                && conf.learners.is_empty()
        })
    })
}

/// Has the old node forget its replica; false while that node is down.
fn forget(slots: &mut [Slot], ids: &[NodeId], group: u32, from: ReplicaId) -> bool {
    let Some(i) = ids.iter().position(|&n| n == node_of(from)) else {
        return true;
    };
    match &mut slots[i] {
        Slot::Up(node) => {
            if node.group(group).is_some_and(|g| g.replica() == from) {
                node.forget(group);
            }
            true
        }
        Slot::Down(_) => false,
    }
}
