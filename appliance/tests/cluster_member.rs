//! veltrixd as a cluster member, in real processes: three veltrixd on
//! loopback in three zones, driven by real Redis Cluster clients (the
//! `redis` crate's cluster client and `redis-cli -c`), with `kill -9` of a
//! node under load and of every node at once.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::cluster::{ClusterClient, ClusterClientBuilder};

/// One member's ports and process.
struct Node {
    id: u64,
    data: u16,
    admin: u16,
    dir: PathBuf,
    child: Option<Child>,
}

struct Cluster {
    nodes: Vec<Node>,
    _root: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    /// Three members in three zones, each with its own data directory.
    fn start() -> Cluster {
        let root = tempfile::tempdir().unwrap();
        let ports: Vec<(u16, u16, u16, u16)> = (0..3)
            .map(|_| (free_port(), free_port(), free_port(), free_port()))
            .collect();
        let id: u128 = rand::random();
        let mut members = String::new();
        for (i, (data, peer, _, _)) in ports.iter().enumerate() {
            members.push_str(&format!(
                "\n[[member]]\nnode = {}\nzone = \"z{}\"\npeer = \"127.0.0.1:{peer}\"\ndata = \"127.0.0.1:{data}\"\n",
                i + 1,
                i + 1
            ));
        }
        let nodes = ports
            .iter()
            .enumerate()
            .map(|(i, &(data, _, admin, native))| {
                let dir = root.path().join(format!("node-{}", i + 1));
                std::fs::create_dir_all(&dir).unwrap();
                let config = format!(
                    "[server]\ndata_dir = \"{}\"\nlisten = \"127.0.0.1:{data}\"\nadmin_listen = \"127.0.0.1:{admin}\"\nnative_listen = \"127.0.0.1:{native}\"\nlog_level = \"warn\"\n\n[cluster]\nid = \"{id:032x}\"\nnode = {}\n{members}",
                    dir.join("data").display(),
                    i + 1
                );
                std::fs::write(dir.join("veltrix.toml"), config).unwrap();
                Node {
                    id: i as u64 + 1,
                    data,
                    admin,
                    dir,
                    child: None,
                }
            })
            .collect();
        let mut cluster = Cluster { nodes, _root: root };
        for i in 0..3 {
            cluster.launch(i);
        }
        cluster.wait_for_leaders();
        cluster
    }

    fn launch(&mut self, i: usize) {
        let node = &mut self.nodes[i];
        let child = Command::new(env!("CARGO_BIN_EXE_veltrixd"))
            .arg("--config")
            .arg(node.dir.join("veltrix.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    /// Until every running member's groups all know a leader.
    fn wait_for_leaders(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let ready = self.nodes.iter().filter(|n| n.child.is_some()).all(|n| {
                std::net::TcpStream::connect(("127.0.0.1", n.admin)).is_ok() && {
                    let (status, body) = common::http(n.admin, "GET", "/api/cluster");
                    status == 200 && !body.contains("\"leader\":null")
                }
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "groups without a leader after 60 s"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}/", n.data))
            .collect()
    }

    fn client(&self) -> ClusterClient {
        ClusterClientBuilder::new(self.urls())
            .retries(30)
            .min_retry_wait(50)
            .max_retry_wait(500)
            .connection_timeout(Duration::from_secs(2))
            .response_timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill9(i);
        }
    }
}

/// A key for every one of the 16384 slots (`{tag}` picks the slot).
fn key_per_slot() -> Vec<String> {
    let mut keys = vec![String::new(); 16384];
    let mut missing = 16384;
    let mut i = 0u64;
    while missing > 0 {
        let tag = format!("t{i}");
        let slot = usize::from(engine::shard::slot(tag.as_bytes()));
        if keys[slot].is_empty() {
            keys[slot] = format!("{{{tag}}}:k");
            missing -= 1;
        }
        i += 1;
    }
    keys
}

/// The redis crate's cluster client writes and reads a key in every slot
/// (over 32,000 operations), from several threads; `redis-cli -c` then
/// reads a sample back and writes through redirects.
#[test]
fn real_cluster_clients_cover_every_slot() {
    let cluster = Cluster::start();
    let client = cluster.client();
    let keys = Arc::new(key_per_slot());
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (client, keys) = (client.clone(), Arc::clone(&keys));
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                for (slot, key) in keys.iter().enumerate().skip(t).step_by(8) {
                    let value = format!("v{slot}");
                    let _: () = redis::cmd("SET")
                        .arg(key)
                        .arg(&value)
                        .query(&mut con)
                        .unwrap();
                    let back: String = redis::cmd("GET").arg(key).query(&mut con).unwrap();
                    assert_eq!(back, value, "slot {slot}");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    // Every node answers every slot's map alike once leaderships settle,
    // and the whole key space is assigned.
    for node in &cluster.nodes {
        let mut con = redis::Client::open(format!("redis://127.0.0.1:{}/", node.data))
            .unwrap()
            .get_connection()
            .unwrap();
        let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut con).unwrap();
        assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
        assert!(info.contains("cluster_state:ok"), "{info}");
        let myid: String = redis::cmd("CLUSTER").arg("MYID").query(&mut con).unwrap();
        assert!(myid.ends_with(&format!("{:016x}", node.id)), "{myid}");
    }
    metrics_and_write_amplification(&cluster, &keys);
    if !common::tool("redis-cli") {
        return;
    }
    let port = cluster.nodes[0].data.to_string();
    for slot in (0..16384).step_by(997) {
        let key = &keys[slot];
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &port, "GET", key])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            format!("v{slot}")
        );
        let out = Command::new("redis-cli")
            .args(["-c", "-p", &port, "SET", key, "cli"])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "OK",
            "slot {slot}"
        );
    }
    // Without -c, a key led elsewhere is a redirect, as Redis writes it.
    let led_elsewhere = (0..16384)
        .step_by(256)
        .map(|slot| {
            let out = Command::new("redis-cli")
                .args(["-p", &port, "GET", &keys[slot]])
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).trim().to_string()
        })
        .find(|reply| reply.starts_with("MOVED"));
    let moved = led_elsewhere.expect("some slot is led by another node");
    assert!(moved.contains(" 127.0.0.1:"), "{moved}");
    let out = Command::new("redis-cli")
        .args(["-p", &port, "MGET", &keys[0], &keys[1]])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("CROSSSLOT"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

/// Each member's `/metrics` has the cluster families and passes promtool;
/// the journal bytes each node wrote, against the key and value bytes the
/// clients wrote (one SET per slot so far), is the write amplification.
fn metrics_and_write_amplification(cluster: &Cluster, keys: &[String]) {
    let payload: u64 = keys
        .iter()
        .enumerate()
        .map(|(slot, k)| (k.len() + format!("v{slot}").len()) as u64)
        .sum();
    for node in &cluster.nodes {
        // The counters are published every tick (10 ms).
        std::thread::sleep(Duration::from_millis(50));
        let (status, body) = common::http(node.admin, "GET", "/metrics");
        assert_eq!(status, 200, "{body}");
        for needle in [
            "veltrix_cluster_groups_hosted 64",
            "veltrix_cluster_groups_leaderless 0",
            "veltrix_cluster_group_term{group=\"63\"}",
            "veltrix_cluster_group_applied_index{group=\"0\"}",
            "veltrix_cluster_group_leader_changes_total{group=\"0\"}",
            "veltrix_cluster_node_stopped 0",
        ] {
            assert!(body.contains(needle), "no {needle:?} in:\n{body}");
        }
        let journal: u64 = body
            .lines()
            .find_map(|l| l.strip_prefix("veltrix_cluster_journal_written_bytes_total "))
            .and_then(|v| v.parse().ok())
            .unwrap();
        assert!(
            journal > payload,
            "node {} wrote {journal} journal bytes for {payload} payload bytes",
            node.id
        );
        eprintln!(
            "node {}: journal {journal} bytes for {payload} bytes of keys and values: write amplification {:.1}",
            node.id,
            journal as f64 / payload as f64
        );
        common::promtool_check(&node.dir, &body);
    }
}

/// What a key's writer knows: the last value acknowledged, and any value
/// whose write was not answered (it may or may not have taken effect).
#[derive(Default, Clone, Debug)]
struct KeyLog {
    acked: Option<String>,
    maybe: Vec<String>,
}

/// Writers keep writing while one node is killed with SIGKILL and later
/// restarted, then every node is killed at once and restarted: every
/// acknowledged write is read back (or a later one whose answer was lost).
#[test]
fn kill_9_loses_no_acknowledged_write() {
    let mut cluster = Cluster::start();
    let client = cluster.client();
    let stop = Arc::new(AtomicBool::new(false));
    let logs: Arc<Mutex<BTreeMap<String, KeyLog>>> = Arc::default();
    let writers: Vec<_> = (0..6)
        .map(|w| {
            let (client, stop, logs) = (client.clone(), Arc::clone(&stop), Arc::clone(&logs));
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                let mut n = 0u64;
                let mut acked = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let key = format!("w{w}:k{}", n % 40);
                    let value = format!("w{w}:{n}");
                    let result: redis::RedisResult<()> =
                        redis::cmd("SET").arg(&key).arg(&value).query(&mut con);
                    let mut logs = logs.lock().unwrap();
                    let log = logs.entry(key).or_default();
                    match result {
                        Ok(()) => {
                            log.acked = Some(value);
                            log.maybe.clear();
                            acked += 1;
                        }
                        Err(_) => log.maybe.push(value),
                    }
                    n += 1;
                }
                acked
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(2));
    cluster.kill9(1);
    std::thread::sleep(Duration::from_secs(3));
    cluster.launch(1);
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, Ordering::Relaxed);
    let acked: u64 = writers.into_iter().map(|w| w.join().unwrap()).sum();
    assert!(acked > 100, "only {acked} writes were acknowledged");
    // Power cut of the whole cluster: everything acknowledged was durable
    // on a majority.
    for i in 0..3 {
        cluster.kill9(i);
    }
    for i in 0..3 {
        cluster.launch(i);
    }
    cluster.wait_for_leaders();
    let mut con = cluster.client().get_connection().unwrap();
    let logs = logs.lock().unwrap();
    for (key, log) in logs.iter() {
        let value: Option<String> = redis::cmd("GET").arg(key).query(&mut con).unwrap();
        let ok = match &value {
            Some(v) => log.acked.as_ref() == Some(v) || log.maybe.contains(v),
            None => log.acked.is_none(),
        };
        assert!(
            ok,
            "{key}: read {value:?}, last acknowledged {:?}, unanswered {:?}",
            log.acked, log.maybe
        );
    }
    eprintln!(
        "{acked} acknowledged writes over {} keys survived kill -9 of a node and of all three",
        logs.len()
    );
}

/// redis-py's `RedisCluster` (the client most Python applications use)
/// does 10,000 operations across every slot: SET then GET of a key in
/// 5,000 slots spread over the whole range.
#[test]
fn redis_py_cluster_client_across_all_slots() {
    let has_redis_py = Command::new("python3")
        .args(["-c", "import redis.cluster"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_redis_py {
        common::skipped(
            "python3 with redis-py is not installed (.ci/run installs it: pip install redis)",
        );
        return;
    }
    let cluster = Cluster::start();
    let script = r#"
import sys
from redis.cluster import RedisCluster, ClusterNode
nodes = [ClusterNode("127.0.0.1", int(p)) for p in sys.argv[1:]]
rc = RedisCluster(startup_nodes=nodes, decode_responses=True)
slots = set()
for i in range(5000):
    key = f"py:{i}"
    slots.add(rc.keyslot(key))
    assert rc.set(key, f"v{i}") is True, key
    assert rc.get(key) == f"v{i}", key
assert len(slots) > 3000, len(slots)
print(f"ok {len(slots)} slots")
"#;
    let ports: Vec<String> = cluster.nodes.iter().map(|n| n.data.to_string()).collect();
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(&ports)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.starts_with("ok "),
        "redis-py: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!(
        "redis-py RedisCluster: 10,000 operations, {}",
        stdout.trim()
    );
}

/// Read-modify-writes and expiry replicate: concurrent INCRs from many
/// clients lose no increment, and the count survives `kill -9` of a node;
/// SET's options, MSET, APPEND, INCRBYFLOAT, GETDEL, RENAME, EXPIRE,
/// PERSIST and TTL answer as on a single node; an expired key is gone from
/// its deadline on, through every read.
#[test]
fn read_modify_writes_and_expiry_replicate() {
    let mut cluster = Cluster::start();
    let client = cluster.client();
    let (threads, each) = (8, 150);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let client = client.clone();
            std::thread::spawn(move || {
                let mut con = client.get_connection().unwrap();
                for _ in 0..each {
                    let _: i64 = redis::cmd("INCR").arg("counter").query(&mut con).unwrap();
                }
            })
        })
        .collect();
    for w in workers {
        w.join().unwrap();
    }
    let mut con = client.get_connection().unwrap();
    let q = |con: &mut redis::cluster::ClusterConnection, args: &[&str]| -> redis::Value {
        let mut cmd = redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(con).unwrap()
    };
    let int = |v: redis::Value| -> i64 { redis::from_redis_value(v).unwrap() };
    let text = |v: redis::Value| -> Option<String> { redis::from_redis_value(v).unwrap() };
    let total = threads * each;
    assert_eq!(
        text(q(&mut con, &["GET", "counter"])),
        Some(total.to_string())
    );

    // Conditional SET, SET ... GET, INCRBYFLOAT in Redis's long double.
    assert_eq!(
        text(q(&mut con, &["SET", "nx", "1", "NX"])),
        Some("OK".into())
    );
    assert_eq!(text(q(&mut con, &["SET", "nx", "2", "NX"])), None);
    assert_eq!(
        text(q(&mut con, &["SET", "nx", "3", "XX", "GET"])),
        Some("1".into())
    );
    assert_eq!(
        text(q(&mut con, &["INCRBYFLOAT", "f", "0.1"])),
        Some("0.1".into())
    );
    assert_eq!(
        text(q(&mut con, &["INCRBYFLOAT", "f", "0.2"])),
        Some("0.3".into())
    );
    assert_eq!(int(q(&mut con, &["APPEND", "nx", "45"])), 3);
    let refused: redis::RedisResult<i64> = redis::cmd("INCR").arg("f").query(&mut con);
    assert!(
        refused
            .unwrap_err()
            .to_string()
            .contains("value is not an integer or out of range"),
        "INCR of a float"
    );
    // One slot's keys: MSET, MSETNX, RENAME, an exact DEL count.
    assert_eq!(
        text(q(&mut con, &["MSET", "{t}a", "1", "{t}b", "2"])),
        Some("OK".into())
    );
    assert_eq!(int(q(&mut con, &["MSETNX", "{t}a", "9", "{t}z", "9"])), 0);
    assert_eq!(text(q(&mut con, &["GET", "{t}z"])), None);
    assert_eq!(
        text(q(&mut con, &["RENAME", "{t}a", "{t}c"])),
        Some("OK".into())
    );
    assert_eq!(int(q(&mut con, &["DEL", "{t}a", "{t}b", "{t}c"])), 2);
    assert_eq!(text(q(&mut con, &["GETDEL", "nx"])), Some("345".into()));
    assert_eq!(int(q(&mut con, &["EXISTS", "nx"])), 0);

    // Expiry: TTL, PERSIST, and a key gone from its deadline on.
    assert_eq!(
        text(q(&mut con, &["SET", "e", "v", "PX", "800"])),
        Some("OK".into())
    );
    let pttl = int(q(&mut con, &["PTTL", "e"]));
    assert!((1..=800).contains(&pttl), "PTTL {pttl}");
    assert_eq!(int(q(&mut con, &["EXPIRE", "counter", "100"])), 1);
    assert!((99..=100).contains(&int(q(&mut con, &["TTL", "counter"]))));
    assert_eq!(int(q(&mut con, &["PERSIST", "counter"])), 1);
    assert_eq!(int(q(&mut con, &["TTL", "counter"])), -1);
    std::thread::sleep(Duration::from_millis(900));
    assert_eq!(text(q(&mut con, &["GET", "e"])), None);
    assert_eq!(int(q(&mut con, &["EXISTS", "e"])), 0);
    assert_eq!(int(q(&mut con, &["TTL", "e"])), -2);
    assert_eq!(
        int(q(&mut con, &["INCR", "e"])),
        1,
        "an expired key counts from 0"
    );

    // Spanning commands are refused, saying so.
    let dbsize: redis::RedisResult<i64> = redis::cmd("DBSIZE").query(&mut con);
    assert!(dbsize.is_err());

    // The count is durable on a majority: kill -9 of a node loses nothing.
    drop(con);
    cluster.kill9(0);
    let mut con = client.get_connection().unwrap();
    assert_eq!(
        text(q(&mut con, &["GET", "counter"])),
        Some(total.to_string())
    );
    assert_eq!(int(q(&mut con, &["INCR", "counter"])), total as i64 + 1);
}
