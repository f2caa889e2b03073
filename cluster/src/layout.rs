//! Shards to replication groups.
//!
//! Keys hash to 1024 shards (`engine::shard`, Redis Cluster's slot rule);
//! consecutive shards form a group, so a group is a contiguous slot range
//! and `CLUSTER SLOTS` can name it as one. The group count is fixed when
//! the cluster is created (default 64 groups of 16 shards).

use engine::shard::{shard, SHARD_COUNT};

/// A replication group: one Raft group.
pub type GroupId = u32;

/// Default number of groups: 64 groups of 16 shards.
pub const DEFAULT_GROUPS: u32 = 64;

/// How the 1024 shards are split into groups.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GroupLayout {
    groups: u32,
}

/// Why a group count cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0} groups: the group count must divide the {SHARD_COUNT} shards (1, 2, 4, ..., 1024)")]
pub struct BadGroupCount(pub u32);

impl GroupLayout {
    /// A layout of `groups` groups; it must divide the shard count evenly.
    pub fn new(groups: u32) -> Result<Self, BadGroupCount> {
        if groups == 0 || groups > u32::from(SHARD_COUNT) || u32::from(SHARD_COUNT) % groups != 0 {
            return Err(BadGroupCount(groups));
        }
        Ok(Self { groups })
    }

    /// Number of groups.
    pub fn groups(&self) -> u32 {
        self.groups
    }

    /// Shards per group.
    pub fn shards_per_group(&self) -> u32 {
        u32::from(SHARD_COUNT) / self.groups
    }

    /// The group that owns `shard`.
    pub fn group_of_shard(&self, shard: u16) -> GroupId {
        u32::from(shard) / self.shards_per_group()
    }

    /// The group that owns `key`.
    pub fn group_of_key(&self, key: &[u8]) -> GroupId {
        self.group_of_shard(shard(key))
    }
}

impl Default for GroupLayout {
    fn default() -> Self {
        Self {
            groups: DEFAULT_GROUPS,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_that_do_not_divide_the_shards_are_refused() {
        assert_eq!(GroupLayout::new(0), Err(BadGroupCount(0)));
        assert_eq!(GroupLayout::new(3), Err(BadGroupCount(3)));
        assert_eq!(GroupLayout::new(2048), Err(BadGroupCount(2048)));
        assert!(GroupLayout::new(1024).is_ok());
    }

    #[test]
    fn groups_are_contiguous_shard_ranges() {
        let layout = GroupLayout::default();
        assert_eq!(layout.shards_per_group(), 16);
        assert_eq!(layout.group_of_shard(0), 0);
        assert_eq!(layout.group_of_shard(15), 0);
        assert_eq!(layout.group_of_shard(16), 1);
        assert_eq!(layout.group_of_shard(1023), 63);
        // Hash tags keep keys together, so they share a group too.
        assert_eq!(
            layout.group_of_key(b"{user:1}.name"),
            layout.group_of_key(b"{user:1}.lang")
        );
    }
}
