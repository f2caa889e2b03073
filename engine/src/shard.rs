//! Keys to shards: Redis Cluster's key-to-slot rule, then 16 slots a shard.
//!
//! This mapping is part of the on-disk format and the wire contract:
//! - slot = CRC16/XMODEM(hash key) mod 16384, where the hash key is the text
//!   between the first `{` and the next `}` when that text is non-empty,
//!   and the whole key otherwise (Redis Cluster's hash tags);
//! - shard = slot / 16, so 1024 shards.

/// Number of logical shards.
pub const SHARD_COUNT: u16 = 1024;
/// Number of Redis Cluster hash slots.
pub const SLOT_COUNT: u16 = 16384;
const SLOTS_PER_SHARD: u16 = SLOT_COUNT / SHARD_COUNT;
const _: () = assert!(SLOTS_PER_SHARD * SHARD_COUNT == SLOT_COUNT);

const XMODEM: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_XMODEM);

/// The part of the key that is hashed: the first non-empty `{...}` tag, or
/// the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        if let Some(len) = key[open + 1..].iter().position(|&b| b == b'}') {
            if len > 0 {
                return &key[open + 1..open + 1 + len];
            }
        }
    }
    key
}

/// The Redis Cluster hash slot of a key.
pub fn slot(key: &[u8]) -> u16 {
    XMODEM.checksum(hash_tag(key)) % SLOT_COUNT
}

/// The shard of a key.
pub fn shard(key: &[u8]) -> u16 {
    slot(key) / SLOTS_PER_SHARD
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_redis_cluster_slots() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(XMODEM.checksum(b"123456789"), 0x31C3);
        assert_eq!(slot(b"foo"), 12182);
        assert_eq!(slot(b"bar"), 5061);
        assert_eq!(slot(b"hello"), 866);
        assert_eq!(slot(b"{user1000}.following"), slot(b"user1000"));
        assert_eq!(slot(b"{user1000}.followers"), slot(b"{user1000}.following"));
        // An empty tag hashes the whole key; only the first tag counts.
        assert_eq!(hash_tag(b"foo{}{bar}"), b"foo{}{bar}");
        assert_eq!(hash_tag(b"foo{{bar}}zap"), b"{bar");
        assert_eq!(hash_tag(b"foo{bar}{zap}"), b"bar");
        assert_eq!(hash_tag(b"{"), b"{");
    }

    #[test]
    fn shards_cover_the_range() {
        let mut seen = vec![false; SHARD_COUNT as usize];
        for i in 0..200_000u32 {
            let s = shard(format!("key:{i}").as_bytes());
            assert!(s < SHARD_COUNT);
            seen[s as usize] = true;
        }
        assert!(seen.iter().all(|&s| s), "every shard receives keys");
    }
}
