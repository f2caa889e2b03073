//! Moving a group's replicas, always online: decide the next step from
//! where the group is (its applied configuration) and where it should be
//! (the target replica set).
//!
//! The steps, one at a time, each a Raft configuration change:
//! 1. add each new replica as a **learner** (it receives a snapshot and
//!    the log, and votes in nothing);
//! 2. once a learner has caught up, **promote it and remove the replica
//!    it replaces in one joint change** (joint consensus, left
//!    automatically once committed), so every quorum along the way
//!    overlaps the old one;
//! 3. if the leader is itself to be removed, it first **transfers
//!    leadership** to a voter that stays.
//!
//! The decision is a pure function of the configuration, so whichever
//! replica leads (a leader can change mid-move) takes the same next step.

use crate::placement::NodeId;

/// The next configuration step for a group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Step {
    /// Add this node as a learner.
    AddLearner(NodeId),
    /// One joint change: promote `add` (caught-up learners) and remove
    /// `remove` (voters not in the target).
    Swap {
        add: Vec<NodeId>,
        remove: Vec<NodeId>,
    },
    /// The leader is to be removed: hand leadership to this voter first.
    TransferLeader(NodeId),
    /// Learners not in the target (a move abandoned halfway): remove them.
    DropLearners(Vec<NodeId>),
}

/// Where a group is, as its leader sees it.
pub struct Current<'a> {
    pub leader: NodeId,
    pub voters: &'a [NodeId],
    pub learners: &'a [NodeId],
    /// Whether the configuration is joint (or a change is still pending):
    /// then nothing more is proposed until it settles.
    pub settling: bool,
    /// Whether a learner has caught up with the leader's log.
    pub caught_up: &'a dyn Fn(NodeId) -> bool,
}

/// The next step towards `target`, or `None` when the group is there (or
/// must wait: a change settling, a learner catching up).
pub fn next_step(current: &Current, target: &[NodeId]) -> Option<Step> {
    if current.settling || target.is_empty() {
        return None;
    }
    let stray: Vec<NodeId> = current
        .learners
        .iter()
        .copied()
        .filter(|l| !target.contains(l))
        .collect();
    if !stray.is_empty() {
        return Some(Step::DropLearners(stray));
    }
    let missing = target
        .iter()
        .copied()
        .find(|t| !current.voters.contains(t) && !current.learners.contains(t));
    if let Some(node) = missing {
        return Some(Step::AddLearner(node));
    }
    let remove: Vec<NodeId> = current
        .voters
        .iter()
        .copied()
        .filter(|v| !target.contains(v))
        .collect();
    let add: Vec<NodeId> = current
        .learners
        .iter()
        .copied()
        .filter(|l| (current.caught_up)(*l))
        .collect();
    if remove.is_empty() && add.is_empty() {
        return None;
    }
    if remove.contains(&current.leader) {
        let heir = current
            .voters
            .iter()
            .copied()
            .find(|v| target.contains(v) && *v != current.leader);
        return heir.map(Step::TransferLeader);
    }
    // Promote only with a learner ready; remove only as many as are
    // replaced, so the group never shrinks below its target size.
    let remove: Vec<NodeId> = remove.into_iter().take(add.len()).collect();
    (!add.is_empty()).then_some(Step::Swap { add, remove })
}

/// Leader balancing: once the group is where it should be, the leader
/// hands leadership to the group's preferred leader (placement spreads
/// those evenly), if that replica is a voter that has caught up.
pub fn hand_over_to(current: &Current, preferred: Option<NodeId>) -> Option<NodeId> {
    let preferred = preferred.filter(|&p| p != current.leader)?;
    (!current.settling && current.voters.contains(&preferred) && (current.caught_up)(preferred))
        .then_some(preferred)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn current<'a>(
        leader: NodeId,
        voters: &'a [NodeId],
        learners: &'a [NodeId],
        caught_up: &'a dyn Fn(NodeId) -> bool,
    ) -> Current<'a> {
        Current {
            leader,
            voters,
            learners,
            settling: false,
            caught_up,
        }
    }

    #[test]
    fn a_move_goes_learner_then_swap() {
        let never = |_| false;
        let always = |_| true;
        let target = [1, 2, 4];
        assert_eq!(
            next_step(&current(1, &[1, 2, 3], &[], &never), &target),
            Some(Step::AddLearner(4))
        );
        assert_eq!(
            next_step(&current(1, &[1, 2, 3], &[4], &never), &target),
            None,
            "wait for the catch-up"
        );
        assert_eq!(
            next_step(&current(1, &[1, 2, 3], &[4], &always), &target),
            Some(Step::Swap {
                add: vec![4],
                remove: vec![3]
            })
        );
        assert_eq!(
            next_step(&current(1, &[1, 2, 4], &[], &always), &target),
            None,
            "arrived"
        );
    }

    #[test]
    fn a_leader_that_leaves_hands_over_first() {
        let always = |_| true;
        assert_eq!(
            next_step(&current(3, &[1, 2, 3], &[4], &always), &[1, 2, 4]),
            Some(Step::TransferLeader(1))
        );
    }

    #[test]
    fn nothing_is_proposed_while_a_change_settles() {
        let always = |_| true;
        let c = Current {
            leader: 1,
            voters: &[1, 2, 3],
            learners: &[4],
            settling: true,
            caught_up: &always,
        };
        assert_eq!(next_step(&c, &[1, 2, 4]), None);
    }

    #[test]
    fn leadership_goes_back_to_a_caught_up_preferred_voter() {
        let always = |_| true;
        let never = |_| false;
        assert_eq!(
            hand_over_to(&current(2, &[1, 2, 3], &[], &always), Some(1)),
            Some(1)
        );
        assert_eq!(
            hand_over_to(&current(2, &[1, 2, 3], &[], &never), Some(1)),
            None,
            "lagging"
        );
        assert_eq!(
            hand_over_to(&current(1, &[1, 2, 3], &[], &always), Some(1)),
            None,
            "already"
        );
        assert_eq!(
            hand_over_to(&current(2, &[2, 3, 4], &[], &always), Some(1)),
            None,
            "not a voter"
        );
    }

    #[test]
    fn an_abandoned_learner_is_dropped() {
        let never = |_| false;
        assert_eq!(
            next_step(&current(1, &[1, 2, 3], &[5], &never), &[1, 2, 3]),
            Some(Step::DropLearners(vec![5]))
        );
    }

    #[test]
    fn the_group_never_shrinks_below_its_target() {
        let only_4 = |n| n == 4;
        // Two replicas to replace, one learner ready: swap one for one.
        assert_eq!(
            next_step(&current(1, &[1, 2, 3], &[4, 5], &only_4), &[1, 4, 5]),
            Some(Step::Swap {
                add: vec![4],
                remove: vec![2]
            })
        );
    }
}
