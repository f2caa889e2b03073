//! Key expiry on a file-backed store, through the threaded runtime (whose
//! workers are given the system's clock): deadlines survive restarts, with
//! and without a checkpoint; expired keys stay gone; the background
//! reclaimer deletes them durably; the read-modify-writes keep, carry or
//! clear a deadline as Redis does.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use engine::modify::{ExpireIf, Expiry};
use engine::{Engine, EngineConfig, Modify};

const NAMESPACE_BYTES: u64 = 64 << 20;
const SEGMENT_BYTES: u64 = 1 << 20;
const HOUR_MS: u64 = 3_600_000;

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64
}

/// No automatic checkpoints (nor one at shutdown): the tests take them.
fn config() -> EngineConfig {
    EngineConfig {
        workers: 2,
        value_bytes_max: 64 << 10,
        checkpoint_records: 0,
        ..EngineConfig::default()
    }
}

fn reopen(path: &Path) -> Engine {
    Engine::open(common::file_namespace(path, NAMESPACE_BYTES), &config()).unwrap()
}

/// Waits (bounded) until `done` holds.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Writes the keys the restart tests check: one far ahead, one long past,
/// one that expires in a moment, one whose deadline EXPIRE set and one
/// PERSIST cleared. Returns the far deadline.
fn write_keys(engine: &Engine) -> u64 {
    let far = now_ms() + HOUR_MS;
    engine.put_until(b"far", b"v-far", far).unwrap();
    engine
        .put_until(b"past", b"v-past", now_ms() - 1_000)
        .unwrap();
    engine
        .put_until(b"soon", b"v-soon", now_ms() + 200)
        .unwrap();
    engine.put(b"expired-by-command", b"v").unwrap();
    let at = (far + HOUR_MS) as i64;
    let expire = Modify::Expire {
        at,
        condition: ExpireIf::default(),
    };
    engine.modify(b"expired-by-command", expire).unwrap();
    engine.put_until(b"persisted", b"v", far).unwrap();
    engine.modify(b"persisted", Modify::Persist).unwrap();
    far
}

fn check_keys(engine: &Engine, far: u64) {
    assert_eq!(engine.get(b"far").unwrap(), Some(b"v-far".to_vec()));
    assert_eq!(engine.deadline(b"far").unwrap(), far as i64);
    assert_eq!(engine.get(b"past").unwrap(), None, "an expired key is gone");
    assert_eq!(engine.deadline(b"past").unwrap(), -2);
    assert!(!engine.exists(b"past").unwrap());
    assert_eq!(engine.get(b"soon").unwrap(), None, "expired since");
    let changed = engine.deadline(b"expired-by-command").unwrap();
    assert_eq!(changed, (far + HOUR_MS) as i64);
    assert_eq!(engine.deadline(b"persisted").unwrap(), -1);
    assert_eq!(engine.get(b"persisted").unwrap(), Some(b"v".to_vec()));
}

#[test]
fn deadlines_survive_restarts_and_expired_keys_stay_gone() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let ns = common::formatted_namespace(&path, NAMESPACE_BYTES, SEGMENT_BYTES);
    let engine = Engine::open(ns, &config()).unwrap();
    let far = write_keys(&engine);
    std::thread::sleep(Duration::from_millis(300));
    check_keys(&engine, far);
    // The reclaimer deletes both expired keys, durably, in the background.
    eventually("reclamation", || {
        engine.stats().expired_reclaimed.load(Ordering::Relaxed) >= 2
    });
    assert!(
        engine
            .stats()
            .expired_bytes_reclaimed
            .load(Ordering::Relaxed)
            > 0
    );
    engine.shutdown();

    // Replayed from the log alone.
    let engine = reopen(&path);
    check_keys(&engine, far);
    // From a checkpoint (version 2 bodies carry the deadlines), and the log
    // written after it.
    engine.checkpoint().unwrap();
    engine.put_until(b"after", b"v", far).unwrap();
    engine.shutdown();
    let engine = reopen(&path);
    check_keys(&engine, far);
    assert_eq!(engine.deadline(b"after").unwrap(), far as i64);
    assert_eq!(engine.stats().keys.load(Ordering::Relaxed), 4);
    engine.shutdown();
}

#[test]
fn modifications_keep_carry_or_clear_a_deadline_as_redis_does() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns");
    let ns = common::formatted_namespace(&path, NAMESPACE_BYTES, SEGMENT_BYTES);
    let engine = Engine::open(ns, &config()).unwrap();
    let far = now_ms() + HOUR_MS;
    // INCR and APPEND keep it; RENAME carries it; a plain SET clears it;
    // SET ... KEEPTTL keeps it.
    engine.put_until(b"{a}.n", b"41", far).unwrap();
    engine.modify(b"{a}.n", Modify::IncrBy(1)).unwrap();
    engine
        .modify(b"{a}.n", Modify::Append(b"0".to_vec()))
        .unwrap();
    assert_eq!(engine.deadline(b"{a}.n").unwrap(), far as i64);
    let rename = Modify::Rename {
        to: b"{a}.m".to_vec(),
        if_absent: false,
    };
    engine.modify(b"{a}.n", rename).unwrap();
    assert_eq!(engine.deadline(b"{a}.m").unwrap(), far as i64);
    assert_eq!(engine.get(b"{a}.m").unwrap(), Some(b"420".to_vec()));
    let keep = Modify::Exchange {
        value: b"kept".to_vec(),
        condition: None,
        expiry: Expiry::Keep,
    };
    engine.modify(b"{a}.m", keep).unwrap();
    assert_eq!(engine.deadline(b"{a}.m").unwrap(), far as i64);
    engine.put(b"{a}.m", b"plain").unwrap();
    assert_eq!(engine.deadline(b"{a}.m").unwrap(), -1);
    // INCR of an expired key starts from 0, and the result does not expire.
    engine.put_until(b"gone", b"7", now_ms() - 10).unwrap();
    let sum = engine.modify(b"gone", Modify::IncrBy(1)).unwrap();
    assert_eq!(sum, engine::modify::Answer::Integer(1));
    assert_eq!(engine.deadline(b"gone").unwrap(), -1);
    // EXPIRE in the past deletes the key.
    let past = Modify::Expire {
        at: now_ms() as i64 - 5,
        condition: ExpireIf::default(),
    };
    let answer = engine.modify(b"gone", past).unwrap();
    assert_eq!(answer, engine::modify::Answer::Integer(1));
    assert_eq!(engine.get(b"gone").unwrap(), None);
    engine.shutdown();
}
