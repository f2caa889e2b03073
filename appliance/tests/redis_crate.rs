//! The real daemon driven by the `redis` crate, the client most Rust
//! applications would point at it: commands, pipelines, SCAN, RESP3 and
//! Redis's error conventions, as that client sees them.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::collections::BTreeSet;

use common::Daemon;
use redis::Commands;

fn connect(daemon: &Daemon, resp3: bool) -> redis::Connection {
    let protocol = if resp3 { "?protocol=resp3" } else { "" };
    let url = format!("redis://127.0.0.1:{}/{protocol}", daemon.port);
    redis::Client::open(url).unwrap().get_connection().unwrap()
}

#[test]
fn the_redis_crate_works_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut con = connect(&daemon, false);

    let _: () = con.set("greeting", "hello").unwrap();
    let got: String = con.get("greeting").unwrap();
    assert_eq!(got, "hello");
    let missing: Option<String> = con.get("absent").unwrap();
    assert_eq!(missing, None);
    let binary: Vec<u8> = (0..=255).collect();
    let _: () = con.set("binary", &binary).unwrap();
    let back: Vec<u8> = con.get("binary").unwrap();
    assert_eq!(back, binary);

    // SET NX / XX / GET.
    let applied: bool = redis::cmd("SET")
        .arg("greeting")
        .arg("other")
        .arg("NX")
        .query::<Option<String>>(&mut con)
        .unwrap()
        .is_some();
    assert!(!applied, "NX on an existing key does nothing");
    let old: Option<String> = redis::cmd("SET")
        .arg("greeting")
        .arg("hi")
        .arg("GET")
        .query(&mut con)
        .unwrap();
    assert_eq!(old.as_deref(), Some("hello"));
    let old: Option<String> = redis::cmd("SET")
        .arg("fresh")
        .arg("1")
        .arg("GET")
        .query(&mut con)
        .unwrap();
    assert_eq!(old, None);
    let _: usize = con.del("fresh").unwrap();

    // MSET is atomic; MGET, EXISTS, DEL, DBSIZE.
    let _: () = con.mset(&[("a", "1"), ("b", "2"), ("c", "3")]).unwrap();
    let values: Vec<Option<String>> = con.mget(&["a", "b", "nope", "c"]).unwrap();
    assert_eq!(
        values,
        vec![Some("1".into()), Some("2".into()), None, Some("3".into())]
    );
    let exists: usize = con.exists(&["a", "b", "nope"]).unwrap();
    assert_eq!(exists, 2);
    let deleted: usize = con.del(&["a", "nope"]).unwrap();
    assert_eq!(deleted, 1);
    let size: usize = redis::cmd("DBSIZE").query(&mut con).unwrap();
    assert_eq!(size, 4, "greeting, binary, b, c");

    // A pipeline of 500 commands, answered in order.
    let mut pipe = redis::pipe();
    for i in 0..250 {
        pipe.set(format!("p{i}"), i).ignore();
        pipe.get(format!("p{i}"));
    }
    let answers: Vec<i64> = pipe.query(&mut con).unwrap();
    assert_eq!(answers, (0..250).collect::<Vec<i64>>());

    // SCAN walks every key exactly once.
    let scanned: BTreeSet<String> = con
        .scan::<String>()
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(scanned.len(), 254, "{scanned:?}");
    assert!(scanned.contains("p249") && scanned.contains("greeting"));

    // Errors keep Redis's conventions and leave the connection usable.
    let err = redis::cmd("NOSUCHCOMMAND")
        .arg("x")
        .query::<()>(&mut con)
        .unwrap_err();
    assert!(err.to_string().contains("unknown command"), "{err}");
    let err = redis::cmd("GET").query::<()>(&mut con).unwrap_err();
    assert!(
        err.to_string().contains("wrong number of arguments"),
        "{err}"
    );
    let info: String = redis::cmd("INFO").query(&mut con).unwrap();
    assert!(info.contains("redis_version"), "{info}");
    let pong: String = redis::cmd("PING").query(&mut con).unwrap();
    assert_eq!(pong, "PONG");
}

#[test]
fn the_redis_crate_speaks_resp3_after_hello() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut con = connect(&daemon, true);
    let _: () = con.set("k", "v").unwrap();
    let v: String = con.get("k").unwrap();
    assert_eq!(v, "v");
    let none: Option<String> = con.get("absent").unwrap();
    assert_eq!(none, None);
    let values: Vec<Option<String>> = con.mget(&["k", "absent"]).unwrap();
    assert_eq!(values, vec![Some("v".into()), None]);
}
