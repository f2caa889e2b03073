//! The simulator's disk: `MemDisk`, plus a crash in the middle of a flush.
//!
//! A torn flush keeps, for each group, a prefix of that group's writes of
//! the step (each write whole: in the engine a group's write is one frame,
//! verified whole or not at all) and loses the rest; groups tear
//! independently. What the step may send before its flush (a leader's
//! appends) has already left; the node is then crashed before anything it
//! would have sent after the flush leaves, so nothing that depended on the
//! lost writes was seen.

use cluster::storage::{Disk, GroupLog, LogWrite, MemDisk};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

#[derive(Default)]
pub struct SimDisk {
    mem: MemDisk,
    /// Set: the next persist tears, drawing from this seed.
    tear: Option<u64>,
    pub torn: u64,
}

impl SimDisk {
    /// Tears the next flush.
    pub fn arm_tear(&mut self, seed: u64) {
        self.tear = Some(seed);
    }

    /// Forgets an armed tear the step did not spend (it had nothing to
    /// persist): the crash that followed it is then a plain crash.
    pub fn disarm(&mut self) {
        self.tear = None;
    }
}

impl Disk for SimDisk {
    fn load(&self, group: u32) -> Option<GroupLog> {
        self.mem.load(group)
    }

    fn hosted(&self) -> Vec<u32> {
        self.mem.hosted()
    }

    fn is_fresh(&self) -> bool {
        self.mem.is_fresh()
    }

    fn persist(&mut self, writes: &[LogWrite]) {
        let Some(seed) = self.tear.take() else {
            return self.mem.persist(writes);
        };
        self.torn += 1;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut kept = Vec::new();
        let mut groups: Vec<u32> = writes.iter().map(|w| w.group).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            let of_group: Vec<&LogWrite> = writes.iter().filter(|w| w.group == group).collect();
            let keep = rng.random_range(0..=of_group.len());
            kept.extend(of_group.into_iter().take(keep).cloned());
        }
        self.mem.persist(&kept);
    }
}
