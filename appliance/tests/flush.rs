//! FLUSHDB, FLUSHALL and RANDOMKEY on the real daemon: a flush of more keys
//! than one round deletes empties the store, durably (nothing comes back
//! after SIGKILL and a restart); RANDOMKEY answers nil on an empty store
//! and a live key otherwise.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use appliance::commands::FLUSH_DELETES_PER_ROUND;
use appliance::resp::Reply;
use common::{bulk, Client, Daemon};

/// Writes `count` keys `key:0`.. with MSETs of 500 pairs.
fn fill(client: &mut Client, prefix: &str, count: usize) {
    let keys: Vec<Vec<u8>> = (0..count)
        .map(|i| format!("{prefix}:{i}").into_bytes())
        .collect();
    for chunk in keys.chunks(500) {
        let mut args: Vec<&[u8]> = vec![b"MSET"];
        for key in chunk {
            args.push(key);
            args.push(b"v");
        }
        assert_eq!(client.call(&args), Reply::Simple("OK".into()));
    }
}

#[test]
fn flushdb_empties_the_store_durably() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut client = daemon.client();
    assert_eq!(client.call(&[b"RANDOMKEY"]), Reply::Bulk(None));
    assert_eq!(client.call(&[b"FLUSHDB"]), Reply::Simple("OK".into()));
    // More keys than one round deletes, so the flush scans again.
    let count = FLUSH_DELETES_PER_ROUND * 2 + 500;
    fill(&mut client, "key", count);
    client.call(&[b"SET", b"expiring", b"v", b"PXAT", b"4102444800000"]);
    assert_eq!(client.call(&[b"DBSIZE"]), Reply::Integer(count as i64 + 1));
    let Reply::Bulk(Some(key)) = client.call(&[b"RANDOMKEY"]) else {
        panic!("RANDOMKEY of a full store")
    };
    assert_eq!(client.call(&[b"EXISTS", &key]), Reply::Integer(1));
    assert_eq!(
        client.call(&[b"FLUSHDB", b"ASYNC"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(client.call(&[b"DBSIZE"]), Reply::Integer(0));
    assert_eq!(client.call(&[b"GET", b"key:7"]), Reply::Bulk(None));
    assert_eq!(client.call(&[b"RANDOMKEY"]), Reply::Bulk(None));
    assert_eq!(
        client.call(&[b"FLUSHDB", b"LATER"]),
        Reply::Error("ERR syntax error".into())
    );

    client.call(&[b"SET", b"only", b"one"]);
    assert_eq!(client.call(&[b"RANDOMKEY"]), bulk(b"only"));
    assert_eq!(
        client.call(&[b"RANDOMKEY", b"x"]),
        Reply::Error("ERR wrong number of arguments for 'randomkey' command".into())
    );
    assert_eq!(client.call(&[b"FLUSHALL"]), Reply::Simple("OK".into()));
    fill(&mut client, "again", 100);
    assert_eq!(
        client.call(&[b"FLUSHALL", b"sync"]),
        Reply::Simple("OK".into())
    );
    drop(client);
    daemon.kill9();

    let daemon = Daemon::start(dir.path());
    let mut client = daemon.client();
    assert_eq!(
        client.call(&[b"DBSIZE"]),
        Reply::Integer(0),
        "a flushed key came back after SIGKILL"
    );
    assert_eq!(client.call(&[b"RANDOMKEY"]), Reply::Bulk(None));
    drop(client);
    assert!(daemon.sigterm().success());
}
