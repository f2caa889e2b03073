//! Replica moves during the run: the simulator plays the operator (and,
//! later, the cluster map), moving one replica of a group to a node in a
//! free zone while faults go on. A move is: the new node hosts an empty
//! replica under a new replica id; every replica is told the target; the
//! leader adds a learner, swaps it in by joint consensus (handing over
//! leadership first if it is the one leaving); once a leader's applied
//! configuration is the target, the old node forgets its replica. A
//! replica left behind (its forget lost in a crash) is forgotten when seen.

use std::collections::BTreeMap;

use cluster::placement::{node_of, replica_id, NodeId, ReplicaId};
use rand::Rng;
use rand_chacha::ChaCha8Rng;

use super::Slot;

pub struct Move {
    pub from: ReplicaId,
    pub to: ReplicaId,
}

pub struct Moves {
    /// Each group's target replicas.
    pub targets: BTreeMap<u32, Vec<ReplicaId>>,
    pub active: BTreeMap<u32, Move>,
    pub zones: BTreeMap<NodeId, usize>,
    /// Each group's preferred leader (follows a move of that replica).
    pub preferred: BTreeMap<u32, ReplicaId>,
    /// The last incarnation used per (group, node).
    generations: BTreeMap<(u32, NodeId), u16>,
    pub completed: u64,
}

impl Moves {
    /// `placed`: each group's first replicas (nodes), incarnation 1.
    /// `placed`: each group's first replicas (nodes, the preferred leader
    /// first), incarnation 1.
    pub fn new(placed: BTreeMap<u32, Vec<NodeId>>, zones: BTreeMap<NodeId, usize>) -> Self {
        let mut generations = BTreeMap::new();
        let mut targets = BTreeMap::new();
        let mut preferred = BTreeMap::new();
        for (group, nodes) in placed {
            preferred.insert(group, replica_id(nodes[0], 1));
            for &n in &nodes {
                generations.insert((group, n), 1);
            }
            let mut replicas: Vec<ReplicaId> = nodes.iter().map(|&n| replica_id(n, 1)).collect();
            replicas.sort_unstable();
            targets.insert(group, replicas);
        }
        Self {
            targets,
            active: BTreeMap::new(),
            zones,
            preferred,
            generations,
            completed: 0,
        }
    }

    /// Maybe starts a move of a random group not already moving.
    pub fn maybe_start(&mut self, rng: &mut ChaCha8Rng, ppm: u32) {
        if rng.random_range(0..1_000_000) >= ppm {
            return;
        }
        let groups: Vec<u32> = self
            .targets
            .keys()
            .copied()
            .filter(|g| !self.active.contains_key(g))
            .collect();
        if groups.is_empty() {
            return;
        }
        let group = groups[rng.random_range(0..groups.len())];
        let target = self.targets[&group].clone();
        let from = target[rng.random_range(0..target.len())];
        let staying: Vec<NodeId> = target
            .iter()
            .filter(|&&r| r != from)
            .map(|&r| node_of(r))
            .collect();
        let staying_zones: Vec<usize> = staying.iter().map(|n| self.zones[n]).collect();
        let candidates: Vec<NodeId> = self
            .zones
            .iter()
            .filter(|(n, z)| {
                !target.iter().any(|&r| node_of(r) == **n) && !staying_zones.contains(z)
            })
            .map(|(&n, _)| n)
            .collect();
        if candidates.is_empty() {
            return;
        }
        let node = candidates[rng.random_range(0..candidates.len())];
        let generation = self.generations.entry((group, node)).or_insert(0);
        *generation += 1;
        let to = replica_id(node, *generation);
        let mut next: Vec<ReplicaId> = target.into_iter().filter(|&r| r != from).collect();
        next.push(to);
        next.sort_unstable();
        self.targets.insert(group, next);
        if self.preferred.get(&group) == Some(&from) {
            self.preferred.insert(group, to);
        }
        self.active.insert(group, Move { from, to });
    }

    /// Tells the running nodes what they need to know, and finishes the
    /// moves whose group has arrived.
    pub fn drive(&mut self, slots: &mut [Slot], ids: &[NodeId]) {
        for (&group, target) in &self.targets {
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
                node.set_preferred(group, self.preferred.get(&group).copied());
            }
        }
        let done: Vec<u32> = self
            .active
            .iter()
            .filter(|(&group, m)| {
                arrived(slots, group, &self.targets[&group]) && forget(slots, ids, group, m.from)
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
