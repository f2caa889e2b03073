//! Where each group's replicas live.
//!
//! The rule the cluster map keeps: a group has three replicas, no two in
//! one zone, and every node carries about the same number of replicas and
//! of preferred leaderships. Placement is a pure function of the node list,
//! so every node computes the same answer from the same map.

/// A node's identity in the cluster (never 0: raft-rs reserves it).
pub type NodeId = u64;

/// A replica's identity in its group's Raft: the node that holds it and
/// the incarnation of the group on that node. A replica removed from a
/// node and later added back is a new replica with a new id, so a message
/// still in flight to the old one can never reach the new one (raft-rs
/// would take its commit index for its own, as etcd and TiKV warn).
pub type ReplicaId = u64;

/// Node ids must fit below this, leaving 16 bits for the incarnation.
pub const NODE_ID_LIMIT: NodeId = 1 << 48;

/// The id of incarnation `generation` (1 for a group's first replicas) of
/// a group on `node`.
pub fn replica_id(node: NodeId, generation: u16) -> ReplicaId {
    (node << 16) | u64::from(generation)
}

/// The node that holds a replica.
pub fn node_of(replica: ReplicaId) -> NodeId {
    replica >> 16
}

/// Replicas per group.
pub const REPLICAS: usize = 3;

/// A member of the cluster and its failure domain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Member {
    pub id: NodeId,
    pub zone: String,
}

/// One group's replicas; the first is its preferred leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replicas(pub Vec<NodeId>);

impl Replicas {
    /// The node that should lead the group when all are healthy.
    pub fn preferred_leader(&self) -> Option<NodeId> {
        self.0.first().copied()
    }

    /// Whether `node` holds a replica.
    pub fn contains(&self, node: NodeId) -> bool {
        self.0.contains(&node)
    }
}

/// Why no placement exists.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlacementError {
    #[error("{zones} zone(s): a group needs {REPLICAS} replicas in {REPLICAS} different zones")]
    TooFewZones { zones: usize },
    #[error("node id 0 is reserved")]
    ZeroNodeId,
    #[error("node id {0} is not below 2^48")]
    NodeIdTooLarge(NodeId),
    #[error("node {0} is listed twice")]
    DuplicateNode(NodeId),
}

/// Places `groups` groups on `members`: for each group, the three
/// least-loaded nodes of three different zones (ties to the lower id), and
/// as preferred leader the one of them that leads the fewest groups so far.
pub fn place(members: &[Member], groups: u32) -> Result<Vec<Replicas>, PlacementError> {
    check_members(members)?;
    let mut sorted: Vec<&Member> = members.iter().collect();
    sorted.sort_by_key(|m| m.id);
    let mut load = vec![0u32; sorted.len()];
    let mut chosen_all = Vec::with_capacity(groups as usize);
    for _ in 0..groups {
        let chosen = pick_replicas(&sorted, &load);
        for &i in &chosen {
            load[i] += 1;
        }
        chosen_all.push(chosen);
    }
    let leaders = balance_leaders(&chosen_all, sorted.len());
    Ok(chosen_all
        .iter()
        .zip(leaders)
        .map(|(chosen, leader)| {
            let mut ids = vec![sorted[leader].id];
            ids.extend(
                chosen
                    .iter()
                    .filter(|&&i| i != leader)
                    .map(|&i| sorted[i].id),
            );
            Replicas(ids)
        })
        .collect())
}

/// Picks one leader per group among its replicas so that leaderships per
/// node differ by as little as possible: greedy first, then shifts along
/// augmenting paths (a node that leads too many hands a group to another
/// replica, which may hand one of its own on) until none shortens the
/// spread.
fn balance_leaders(groups: &[Vec<usize>], nodes: usize) -> Vec<usize> {
    let mut leads = vec![0usize; nodes];
    let mut leader: Vec<usize> = groups
        .iter()
        .map(|chosen| {
            let l = chosen
                .iter()
                .copied()
                .min_by_key(|&i| (leads[i], i))
                .unwrap_or(0);
            leads[l] += 1;
            l
        })
        .collect();
    while let Some(path) = augmenting_path(groups, &leader, &leads) {
        for (group, to) in path {
            leads[leader[group]] -= 1;
            leads[to] += 1;
            leader[group] = to;
        }
    }
    leader
}

/// From the node that leads most, a chain of (group, new leader) moves
/// that ends at a node leading at least two fewer; `None` when no chain
/// exists. Breadth first, so chains are short.
fn augmenting_path(
    groups: &[Vec<usize>],
    leader: &[usize],
    leads: &[usize],
) -> Option<Vec<(usize, usize)>> {
    let most = *leads.iter().max()?;
    let start = leads.iter().position(|&l| l == most)?;
    let mut via: Vec<Option<(usize, usize)>> = vec![None; leads.len()];
    let mut seen = vec![false; leads.len()];
    seen[start] = true;
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for (g, chosen) in groups
            .iter()
            .enumerate()
            .filter(|(g, _)| leader[*g] == node)
        {
            for &next in chosen {
                if seen[next] {
                    continue;
                }
                seen[next] = true;
                via[next] = Some((g, node));
                if leads[next] + 2 <= most {
                    return Some(unwind(&via, next));
                }
                queue.push_back(next);
            }
        }
    }
    None
}

fn unwind(via: &[Option<(usize, usize)>], mut node: usize) -> Vec<(usize, usize)> {
    let mut path = Vec::new();
    while let Some((group, from)) = via[node] {
        path.push((group, node));
        node = from;
    }
    path
}

fn check_members(members: &[Member]) -> Result<(), PlacementError> {
    let mut ids: Vec<NodeId> = members.iter().map(|m| m.id).collect();
    ids.sort_unstable();
    if ids.first() == Some(&0) {
        return Err(PlacementError::ZeroNodeId);
    }
    if let Some(&big) = ids.last().filter(|&&id| id >= NODE_ID_LIMIT) {
        return Err(PlacementError::NodeIdTooLarge(big));
    }
    if let Some(pair) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(PlacementError::DuplicateNode(pair[0]));
    }
    let mut zones: Vec<&str> = members.iter().map(|m| m.zone.as_str()).collect();
    zones.sort_unstable();
    zones.dedup();
    if zones.len() < REPLICAS {
        return Err(PlacementError::TooFewZones { zones: zones.len() });
    }
    Ok(())
}

/// Indices into `sorted` of three nodes in three zones, least loaded first.
fn pick_replicas(sorted: &[&Member], load: &[u32]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sorted.len()).collect();
    order.sort_by_key(|&i| (load[i], sorted[i].id));
    let mut chosen: Vec<usize> = Vec::with_capacity(REPLICAS);
    for i in order {
        if chosen.iter().all(|&c| sorted[c].zone != sorted[i].zone) {
            chosen.push(i);
            if chosen.len() == REPLICAS {
                break;
            }
        }
    }
    chosen
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn members(zones: &[usize]) -> Vec<Member> {
        zones
            .iter()
            .enumerate()
            .map(|(i, z)| Member {
                id: i as u64 + 1,
                zone: format!("z{z}"),
            })
            .collect()
    }

    #[test]
    fn two_zones_are_refused() {
        assert_eq!(
            place(&members(&[0, 1, 0, 1]), 4),
            Err(PlacementError::TooFewZones { zones: 2 })
        );
    }

    #[test]
    fn bad_node_ids_are_refused() {
        let mut m = members(&[0, 1, 2]);
        m[0].id = 0;
        assert_eq!(place(&m, 1), Err(PlacementError::ZeroNodeId));
        m[0].id = 2;
        assert_eq!(place(&m, 1), Err(PlacementError::DuplicateNode(2)));
    }

    #[test]
    fn three_nodes_lead_a_third_each() {
        let placed = place(&members(&[0, 1, 2]), 64).expect("placement");
        for node in 1..=3 {
            let leads = placed
                .iter()
                .filter(|r| r.preferred_leader() == Some(node))
                .count();
            assert!((21..=22).contains(&leads), "node {node} leads {leads}");
        }
    }

    proptest! {
        #[test]
        fn replicas_span_three_zones(
            zones in prop::collection::vec(0usize..5, 3..12),
            groups in 1u32..130,
        ) {
            let m = members(&zones);
            let distinct = { let mut z = zones.clone(); z.sort_unstable(); z.dedup(); z.len() };
            prop_assume!(distinct >= 3);
            let placed = place(&m, groups).expect("placement");
            prop_assert_eq!(placed.len(), groups as usize);
            for r in &placed {
                prop_assert_eq!(r.0.len(), REPLICAS);
                let mut zs: Vec<&str> = r.0.iter().map(|&id| m[id as usize - 1].zone.as_str()).collect();
                zs.sort_unstable();
                zs.dedup();
                prop_assert_eq!(zs.len(), REPLICAS, "two replicas in one zone: {:?}", r);
            }
        }

        /// With zones of equal size every node carries the same share of
        /// replicas and of leaderships, give or take one.
        #[test]
        fn balanced_zones_get_even_load_and_leaders(
            zone_count in 3usize..6,
            per_zone in 1usize..4,
            groups in 1u32..130,
        ) {
            let zones: Vec<usize> = (0..zone_count * per_zone).map(|i| i % zone_count).collect();
            let m = members(&zones);
            let placed = place(&m, groups).expect("placement");
            let count = |f: &dyn Fn(&Replicas, u64) -> bool, id| placed.iter().filter(|r| f(r, id)).count();
            let replicas: Vec<usize> = m.iter().map(|n| count(&|r, id| r.contains(id), n.id)).collect();
            let leads: Vec<usize> = m.iter().map(|n| count(&|r, id| r.preferred_leader() == Some(id), n.id)).collect();
            let spread = |v: &[usize]| v.iter().max().copied().unwrap_or(0) - v.iter().min().copied().unwrap_or(0);
            prop_assert!(spread(&replicas) <= 1, "replicas per node {:?}", replicas);
            prop_assert!(spread(&leads) <= 1, "leaderships per node {:?}", leads);
        }
    }
}
