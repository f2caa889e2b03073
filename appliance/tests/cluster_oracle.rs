//! The Redis Cluster replies against the oracle: a real
//! `redis-server --cluster-enabled yes` holding all 16384 slots, and our
//! formatting of the same one-node cluster, compared byte for byte in
//! RESP2 and RESP3 (`CLUSTER SLOTS`, `SHARDS`, `NODES`, `INFO`, `MYID`,
//! `KEYSLOT`). Skips loudly without redis-server; fails under `CI=true`.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::time::{Duration, Instant};

use appliance::cluster_reply;
use appliance::resp::encode::{self, Protocol};
use appliance::resp::Reply;
use cluster::view::{ClusterView, NodeView, ShardView};
use common::{Client, RedisServer};

/// A one-node cluster owning every slot, up once its state is ok, and its
/// cluster bus port.
fn oracle() -> Option<(RedisServer, Client, u16)> {
    if !common::tool("redis-server") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is missing under CI=true: .ci/run installs it"
        );
        return None;
    }
    // The cluster bus port defaults to the data port + 10000, which may
    // be above 65535 or taken: name a free one.
    let (reserved, bus) = common::refusing_port();
    drop(reserved);
    let server = RedisServer::start(&[
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        &bus.to_string(),
    ]);
    let mut client = Client::connect(server.port);
    assert_eq!(
        client.call(&[b"CLUSTER", b"ADDSLOTSRANGE", b"0", b"16383"]),
        Reply::Simple("OK".into())
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let Reply::Bulk(Some(info)) = client.call(&[b"CLUSTER", b"INFO"]) else {
            panic!("CLUSTER INFO")
        };
        if info.starts_with(b"cluster_state:ok") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the oracle cluster did not come up"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some((server, client, bus))
}

/// Our view of the same cluster: its one node (Redis shows an empty ip for
/// itself until a peer tells it its address), primary of every slot.
fn same_view(client: &mut Client, port: u16, bus_port: u16) -> ClusterView {
    let Reply::Bulk(Some(name)) = client.call(&[b"CLUSTER", b"MYID"]) else {
        panic!("CLUSTER MYID")
    };
    let name = String::from_utf8(name).unwrap();
    ClusterView {
        myself: 1,
        epoch: 0,
        nodes: vec![NodeView {
            id: 1,
            name,
            ip: String::new(),
            port,
            bus_port,
            up: true,
        }],
        shards: vec![ShardView {
            slots: (0, 16383),
            primary: 1,
            replicas: vec![],
        }],
    }
}

fn text(text: &str, protocol: Protocol) -> Vec<u8> {
    let mut out = Vec::new();
    cluster_reply::text(&mut out, text, protocol);
    out
}

#[test]
fn cluster_replies_match_redis_byte_for_byte() {
    let Some((server, mut client, bus)) = oracle() else {
        return;
    };
    let view = same_view(&mut client, server.port, bus);
    for (protocol, hello) in [(Protocol::Resp2, b"2"), (Protocol::Resp3, b"3")] {
        client.call(&[b"HELLO", hello]);
        let theirs = |client: &mut Client, sub: &[u8]| client.raw(&[b"CLUSTER", sub]);
        assert_eq!(
            String::from_utf8_lossy(&theirs(&mut client, b"SLOTS")),
            String::from_utf8_lossy(&cluster_reply::slots(&view, protocol)),
            "CLUSTER SLOTS, {protocol:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&theirs(&mut client, b"SHARDS")),
            String::from_utf8_lossy(&cluster_reply::shards(&view, protocol)),
            "CLUSTER SHARDS, {protocol:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&theirs(&mut client, b"NODES")),
            String::from_utf8_lossy(&text(&cluster_reply::nodes_text(&view), protocol)),
            "CLUSTER NODES, {protocol:?}"
        );
        assert_eq!(
            String::from_utf8_lossy(&theirs(&mut client, b"INFO")),
            String::from_utf8_lossy(&text(&cluster_reply::info_text(&view, (0, 0)), protocol)),
            "CLUSTER INFO, {protocol:?}"
        );
    }
    for key in [&b"foo"[..], b"{user:1}.name", b"", b"{}x", b"a{b}c{d}"] {
        let mut ours = Vec::new();
        encode::integer(&mut ours, i64::from(engine::shard::slot(key)));
        assert_eq!(
            client.raw(&[b"CLUSTER", b"KEYSLOT", key]),
            ours,
            "CLUSTER KEYSLOT {key:?}"
        );
    }
}
