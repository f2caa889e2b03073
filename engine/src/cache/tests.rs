//! Unit and property tests of the value caches.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

use std::collections::BTreeMap;

use proptest::prelude::*;

use super::{Lirs, LirsConfig, Lru, ValueCache};

fn key(i: u32) -> Vec<u8> {
    format!("key{i}").into_bytes()
}

fn lirs(capacity_bytes: usize, small_bytes_max: usize) -> Lirs<u32> {
    Lirs::new(&LirsConfig {
        capacity_bytes,
        hir_percent: 5,
        nonresident_ratio: 2,
        small_bytes_max,
        entry_bytes_max: capacity_bytes / 4,
    })
}

/// Reads `key`, inserting on a miss (read-through, as the engine does).
fn access<C: ValueCache<u32>>(cache: &mut C, key: &[u8], value: u32, charge: usize) -> bool {
    if cache.get(key).is_some() {
        return true;
    }
    cache.insert(key, value, charge);
    false
}

#[test]
fn lirs_keeps_a_reused_set_through_a_scan() {
    let mut cache = lirs(100_000, 0);
    // 500 entries of 100 bytes, each read twice: the LIR set.
    for round in 0..2 {
        for i in 0..500 {
            access(&mut cache, &key(i), round, 100);
        }
    }
    // A scan of 10,000 keys read once each: ten times the cache.
    for i in 10_000..20_000 {
        access(&mut cache, &key(i), 0, 100);
        cache.check_invariants().unwrap();
    }
    let kept = (0..500).filter(|&i| cache.get(&key(i)).is_some()).count();
    assert_eq!(kept, 500, "the scan evicted part of the reused set");

    // The same under LRU loses everything: the test can tell the two apart.
    let mut lru = Lru::new(100_000, 25_000);
    for round in 0..2 {
        for i in 0..500 {
            access(&mut lru, &key(i), round, 100);
        }
    }
    for i in 10_000..20_000 {
        access(&mut lru, &key(i), 0, 100);
    }
    assert_eq!((0..500).filter(|&i| lru.get(&key(i)).is_some()).count(), 0);
}

#[test]
fn a_quick_return_after_eviction_promotes_to_lir() {
    let mut cache = lirs(10_000, 0);
    for i in 0..95 {
        cache.insert(&key(i), i, 100);
    }
    assert_eq!(cache.lir_bytes(), 9_500);
    // New entries are resident HIR now; the first is evicted to make room
    // and stays as a non-resident entry in S.
    for i in 1000..1010 {
        cache.insert(&key(i), i, 100);
    }
    assert!(cache.get(&key(1000)).is_none());
    assert!(cache.nonresident_count() > 0);
    let lir_before = cache.lir_bytes();
    cache.insert(&key(1000), 1000, 100);
    assert_eq!(cache.get(&key(1000)), Some(&1000));
    // It became LIR, and an LIR entry was demoted to make room.
    assert_eq!(cache.lir_bytes(), lir_before);
    assert!(
        cache.get(&key(0)).is_some(),
        "the demoted entry stays resident as HIR"
    );
    cache.check_invariants().unwrap();
}

/// The tweak's purpose: a burst of large values, each read back once, must
/// not wipe out a hot set of small keys.
fn hot_small_after_burst(small_bytes_max: usize) -> usize {
    let mut cache = lirs(1 << 20, small_bytes_max);
    let hot = 2_000u32; // 2,000 × 200 B = 400 KB of a 1 MiB cache
    for _ in 0..3 {
        for i in 0..hot {
            access(&mut cache, &key(i), i, 200);
        }
    }
    for burst in 0..64u32 {
        let large = key(1_000_000 + burst);
        cache.insert(&large, burst, 64 << 10);
        // The hot set keeps being read while the burst goes on.
        for i in (burst * 31..burst * 31 + 31).map(|i| i % hot) {
            access(&mut cache, &key(i), i, 200);
        }
        access(&mut cache, &large, burst, 64 << 10);
        cache.check_invariants().unwrap();
    }
    (0..hot).filter(|&i| cache.get(&key(i)).is_some()).count()
}

#[test]
fn the_tweak_keeps_hot_small_keys_through_a_burst_of_large_values() {
    let with_tweak = hot_small_after_burst(1024);
    let plain = hot_small_after_burst(0);
    assert!(
        with_tweak >= 1_900,
        "the tweak kept only {with_tweak} of 2000 hot small keys"
    );
    assert!(
        plain < 1_000,
        "plain LIRS kept {plain} of 2000: the burst no longer threatens it, so this test proves nothing"
    );
}

#[test]
fn too_large_entries_are_refused_and_drop_the_older_value() {
    let mut cache = lirs(10_000, 0);
    cache.insert(b"k", 1, 100);
    cache.insert(b"k", 2, 5_000);
    assert_eq!(cache.get(b"k"), None);
    assert_eq!(cache.resident_bytes(), 0);
    let mut lru = Lru::new(10_000, 2_500);
    lru.insert(b"k", 1, 100);
    lru.insert(b"k", 2, 5_000);
    assert_eq!(lru.get(b"k"), None);
}

#[test]
fn lru_evicts_the_least_recently_used() {
    let mut lru = Lru::new(300, 300);
    lru.insert(b"a", 1, 100);
    lru.insert(b"b", 2, 100);
    lru.insert(b"c", 3, 100);
    assert_eq!(lru.get(b"a"), Some(&1));
    lru.insert(b"d", 4, 100);
    assert_eq!(lru.get(b"b"), None);
    assert_eq!(lru.get(b"a"), Some(&1));
    assert_eq!(lru.evictions(), 1);
    assert!(lru.remove(b"a"));
    assert_eq!(lru.get(b"a"), None);
    assert_eq!(lru.resident_bytes(), 200);
}

#[derive(Clone, Debug)]
enum CacheOp {
    Get(u8),
    Insert(u8, u16),
    Remove(u8),
}

fn cache_op() -> impl Strategy<Value = CacheOp> {
    prop_oneof![
        4 => (0u8..48).prop_map(CacheOp::Get),
        4 => (0u8..48, 1u16..400).prop_map(|(k, c)| CacheOp::Insert(k, c)),
        1 => (0u8..48).prop_map(CacheOp::Remove),
    ]
}

/// Runs `ops` against `cache` and a map of the latest values, checking after
/// every step that a get returns the latest value or nothing, and `check`.
fn run_against_model<C: ValueCache<u32>>(
    cache: &mut C,
    ops: &[CacheOp],
    check: impl Fn(&C) -> Result<(), String>,
) -> Result<(), TestCaseError> {
    let mut model: BTreeMap<u8, u32> = BTreeMap::new();
    for (step, op) in ops.iter().enumerate() {
        let step = step as u32;
        match *op {
            CacheOp::Get(k) => {
                let got = cache.get(&[k]).copied();
                if let Some(v) = got {
                    prop_assert_eq!(Some(&v), model.get(&k), "stale or invented value");
                }
            }
            CacheOp::Insert(k, charge) => {
                cache.insert(&[k], step, usize::from(charge));
                model.insert(k, step);
                let got = cache.get(&[k]).copied();
                prop_assert!(got.is_none() || got == Some(step), "insert left {:?}", got);
            }
            CacheOp::Remove(k) => {
                cache.remove(&[k]);
                model.remove(&k);
                prop_assert_eq!(cache.get(&[k]), None);
            }
        }
        prop_assert!(cache.resident_bytes() <= cache.capacity_bytes());
        check(cache).map_err(TestCaseError::fail)?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn lirs_matches_the_model(
        ops in proptest::collection::vec(cache_op(), 1..400),
        capacity_bytes in 200usize..4000,
        hir_percent in 1u8..=50,
        nonresident_ratio in 0usize..4,
        small_bytes_max in 0usize..200,
    ) {
        let mut cache = Lirs::new(&LirsConfig {
            capacity_bytes,
            hir_percent,
            nonresident_ratio,
            small_bytes_max,
            entry_bytes_max: capacity_bytes / 2,
        });
        run_against_model(&mut cache, &ops, |c| {
            c.check_invariants()?;
            if c.nonresident_count() > nonresident_ratio * c.resident_count() {
                return Err("non-resident bound exceeded".into());
            }
            Ok(())
        })?;
    }

    #[test]
    fn lru_matches_the_model(
        ops in proptest::collection::vec(cache_op(), 1..400),
        capacity_bytes in 200usize..4000,
    ) {
        let mut cache = Lru::new(capacity_bytes, capacity_bytes / 2);
        run_against_model(&mut cache, &ops, |_| Ok(()))?;
    }
}
