//! Six veltrixd in three zones, each in its own network namespace (veth
//! pairs on a bridge), under a load from the `redis` crate's cluster
//! client: a node killed with SIGKILL and restarted, a whole zone cut off
//! by nftables rules and healed, a node frozen with SIGSTOP and thawed.
//! Every per-key history (writes of unique values, reads, the final read
//! of every key) must be linearizable: no acknowledged write lost, no
//! stale or invented read.
//!
//! Needs root, `ip` (iproute2) and `nft` (nftables): `.ci/run` runs as
//! root and installs them. Elsewhere the test says loudly that it skipped.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cluster::history::{self, History, Op, Operation, Outcome};
use redis::cluster::ClusterClientBuilder;

const NODES: usize = 6;
const DATA_PORT: u16 = 6379;
const PEER_PORT: u16 = 7000;
const ADMIN_PORT: u16 = 9379;

/// Runs a command; panics with its output when it fails.
fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_with_input(args: &[&str], input: &str) {
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether this machine can run the test; says why not, loudly, and
/// fails under CI=true (where .ci/run provides all of it).
fn available() -> bool {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let tool = |name: &str| {
        Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    let missing: Vec<&str> = [("root", root), ("ip", tool("ip")), ("nft", tool("nft"))]
        .into_iter()
        .filter(|(_, ok)| !ok)
        .map(|(name, _)| name)
        .collect();
    if missing.is_empty() {
        return true;
    }
    common::skipped(&format!(
        "the network-namespace cluster test needs {missing:?} (.ci/run runs as root and installs iproute2 and nftables)"
    ));
    false
}

/// The bridge, the namespaces and the veth pairs; removed on drop.
struct Net {
    tag: String,
    subnet: u8,
}

impl Net {
    fn new() -> Net {
        let pid = std::process::id();
        let tag = format!("vx{}", pid % 100_000);
        let subnet = 20 + (pid % 200) as u8;
        let net = Net { tag, subnet };
        net.teardown();
        let bridge = net.bridge();
        run(&["ip", "link", "add", &bridge, "type", "bridge"]);
        run(&[
            "ip",
            "addr",
            "add",
            &format!("10.{subnet}.0.254/24"),
            "dev",
            &bridge,
        ]);
        run(&["ip", "link", "set", &bridge, "up"]);
        for i in 1..=NODES {
            let (ns, host, inner) = (
                net.ns(i),
                format!("{}h{i}", net.tag),
                format!("{}n{i}", net.tag),
            );
            run(&["ip", "netns", "add", &ns]);
            run(&[
                "ip", "link", "add", &host, "type", "veth", "peer", "name", &inner,
            ]);
            run(&["ip", "link", "set", &inner, "netns", &ns]);
            run(&["ip", "link", "set", &host, "master", &bridge, "up"]);
            let ip = format!("{}/24", net.ip(i));
            run(&["ip", "-n", &ns, "addr", "add", &ip, "dev", &inner]);
            run(&["ip", "-n", &ns, "link", "set", &inner, "up"]);
            run(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        }
        net
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    fn ns(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    fn ip(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, self.subnet, 0, i as u8)
    }

    /// Drops every packet in and out of node `i` but its loopback's.
    fn cut(&self, i: usize) {
        let rules = "table inet vxcut {\n\
             chain in { type filter hook input priority 0; policy drop; iif \"lo\" accept; }\n\
             chain out { type filter hook output priority 0; policy drop; oif \"lo\" accept; }\n\
             }\n";
        run_with_input(
            &["ip", "netns", "exec", &self.ns(i), "nft", "-f", "-"],
            rules,
        );
    }

    fn heal(&self, i: usize) {
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns(i),
            "nft",
            "delete",
            "table",
            "inet",
            "vxcut",
        ]);
    }

    fn teardown(&self) {
        let quiet = |args: &[&str]| {
            let _ = Command::new(args[0])
                .args(&args[1..])
                .stderr(Stdio::null())
                .status();
        };
        for i in 1..=NODES {
            quiet(&["ip", "netns", "del", &self.ns(i)]);
            quiet(&["ip", "link", "del", &format!("{}h{i}", self.tag)]);
        }
        quiet(&["ip", "link", "del", &self.bridge()]);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.teardown();
    }
}

struct Members {
    net: Net,
    dirs: Vec<PathBuf>,
    children: Vec<Option<Child>>,
    _root: tempfile::TempDir,
}

impl Members {
    /// Six members, zones a, b, c, a, b, c.
    fn start(net: Net) -> Members {
        let root = tempfile::tempdir().unwrap();
        let id: u128 = rand::random();
        let mut members = String::new();
        for i in 1..=NODES {
            let ip = net.ip(i);
            let zone = ["a", "b", "c"][(i - 1) % 3];
            members.push_str(&format!(
                "\n[[member]]\nnode = {i}\nzone = \"{zone}\"\npeer = \"{ip}:{PEER_PORT}\"\ndata = \"{ip}:{DATA_PORT}\"\n"
            ));
        }
        let dirs: Vec<PathBuf> = (1..=NODES)
            .map(|i| {
                let dir = root.path().join(format!("node-{i}"));
                std::fs::create_dir_all(&dir).unwrap();
                let ip = net.ip(i);
                let config = format!(
                    "[server]\ndata_dir = \"{}\"\nlisten = \"{ip}:{DATA_PORT}\"\nadmin_listen = \"{ip}:{ADMIN_PORT}\"\nnative_listen = \"{ip}:7379\"\nlog_level = \"warn\"\n\n[cluster]\nid = \"{id:032x}\"\nnode = {i}\n{members}",
                    dir.join("data").display()
                );
                std::fs::write(dir.join("veltrix.toml"), config).unwrap();
                dir
            })
            .collect();
        let mut m = Members {
            net,
            dirs,
            children: (0..NODES).map(|_| None).collect(),
            _root: root,
        };
        for i in 1..=NODES {
            m.launch(i);
        }
        m
    }

    fn launch(&mut self, i: usize) {
        // `ip netns exec` execs veltrixd: the child's pid is veltrixd's.
        let child = Command::new("ip")
            .args(["netns", "exec", &self.net.ns(i)])
            .arg(env!("CARGO_BIN_EXE_veltrixd"))
            .arg("--config")
            .arg(self.dirs[i - 1].join("veltrix.toml"))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        self.children[i - 1] = Some(child);
    }

    fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i - 1].take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    fn signal(&self, i: usize, signal: &str) {
        let pid = self.children[i - 1].as_ref().unwrap().id().to_string();
        run(&["kill", signal, &pid]);
    }

    /// Until every member's groups all know a leader.
    fn wait_for_leaders(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let ready = (1..=NODES).all(|i| {
                admin_get(
                    SocketAddr::new(self.net.ip(i).into(), ADMIN_PORT),
                    "/api/cluster",
                )
                .is_some_and(|body| {
                    body.contains("\"hosted\"") && !body.contains("\"leader\":null")
                })
            });
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "groups without a leader after {within:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn urls(&self) -> Vec<String> {
        (1..=NODES)
            .map(|i| format!("redis://{}:{DATA_PORT}/", self.net.ip(i)))
            .collect()
    }
}

impl Drop for Members {
    fn drop(&mut self) {
        for i in 1..=NODES {
            if self.children[i - 1].is_some() {
                let _ = Command::new("kill")
                    .args([
                        "-CONT",
                        &self.children[i - 1].as_ref().unwrap().id().to_string(),
                    ])
                    .status();
            }
            self.kill9(i);
        }
    }
}

fn admin_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(500)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: x\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?;
    (status == "200")
        .then(|| response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()))
        .flatten()
}

/// The load: writers each own their keys (so a client's own retry of a
/// write can never reorder it against another's); readers read any key.
struct Load {
    stop: Arc<AtomicBool>,
    clock: Arc<AtomicU64>,
    history: Arc<Mutex<History>>,
    /// Longest time a writer went without an acknowledged write, in ms.
    longest_gap_ms: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

const WRITERS: u64 = 6;
const KEYS_PER_WRITER: u64 = 8;

fn key(writer: u64, k: u64) -> String {
    format!("w{writer}:k{k}")
}

impl Load {
    fn start(urls: Vec<String>) -> Load {
        let client = ClusterClientBuilder::new(urls)
            .retries(20)
            .min_retry_wait(50)
            .max_retry_wait(400)
            .connection_timeout(Duration::from_millis(500))
            .response_timeout(Duration::from_secs(7))
            .build()
            .unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let clock = Arc::new(AtomicU64::new(0));
        let history = Arc::new(Mutex::new(History::new()));
        let longest_gap_ms = Arc::new(AtomicU64::new(0));
        let mut threads = Vec::new();
        for client_id in 0..WRITERS + 2 {
            let (client, stop, clock, history, gap) = (
                client.clone(),
                Arc::clone(&stop),
                Arc::clone(&clock),
                Arc::clone(&history),
                Arc::clone(&longest_gap_ms),
            );
            threads.push(std::thread::spawn(move || {
                let writer = client_id < WRITERS;
                let mut con = None;
                let mut n = 0u64;
                let mut acked = 0u64;
                let mut last_ack = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let (key, op) = if writer {
                        (
                            key(client_id, n % KEYS_PER_WRITER),
                            Op::Put(format!("c{client_id}:{n}").into_bytes()),
                        )
                    } else {
                        (key(n % WRITERS, (n / WRITERS) % KEYS_PER_WRITER), Op::Get)
                    };
                    let connection = match &mut con {
                        Some(c) => c,
                        None => match client.get_connection() {
                            Ok(c) => con.insert(c),
                            Err(_) => {
                                std::thread::sleep(Duration::from_millis(100));
                                continue;
                            }
                        },
                    };
                    let invoked = clock.fetch_add(1, Ordering::SeqCst);
                    let outcome = match &op {
                        Op::Put(v) => redis::cmd("SET")
                            .arg(&key)
                            .arg(v.as_slice())
                            .query::<()>(connection)
                            .map(|()| Outcome::Written),
                        _ => redis::cmd("GET")
                            .arg(&key)
                            .query::<Option<Vec<u8>>>(connection)
                            .map(Outcome::Read),
                    };
                    let completed = clock.fetch_add(1, Ordering::SeqCst);
                    let outcome = outcome.unwrap_or_else(|_| {
                        con = None;
                        Outcome::Indeterminate
                    });
                    if writer && outcome == Outcome::Written {
                        let since = last_ack.elapsed().as_millis() as u64;
                        gap.fetch_max(since, Ordering::Relaxed);
                        last_ack = Instant::now();
                        acked += 1;
                    }
                    history.lock().unwrap().record(Operation {
                        client: client_id,
                        key: key.into_bytes(),
                        op,
                        invoked,
                        completed,
                        outcome,
                    });
                }
                acked
            }));
        }
        Load {
            stop,
            clock,
            history,
            longest_gap_ms,
            threads,
        }
    }

    fn stop(self) -> (u64, Arc<Mutex<History>>, Arc<AtomicU64>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let acked = self.threads.into_iter().map(|t| t.join().unwrap()).sum();
        (
            acked,
            self.history,
            self.clock,
            self.longest_gap_ms.load(Ordering::Relaxed),
        )
    }
}

#[test]
fn six_nodes_in_namespaces_survive_kill_zone_cut_and_stall() {
    if !available() {
        return;
    }
    let mut members = Members::start(Net::new());
    members.wait_for_leaders(Duration::from_secs(60));
    let load = Load::start(members.urls());
    std::thread::sleep(Duration::from_secs(2));

    // kill -9 of node 2, restarted 3 s later.
    members.kill9(2);
    std::thread::sleep(Duration::from_secs(3));
    members.launch(2);
    std::thread::sleep(Duration::from_secs(3));

    // Zone a (nodes 1 and 4) cut off for 5 s.
    members.net.cut(1);
    members.net.cut(4);
    std::thread::sleep(Duration::from_secs(5));
    members.net.heal(1);
    members.net.heal(4);
    std::thread::sleep(Duration::from_secs(3));

    // Node 3 frozen for 4 s.
    members.signal(3, "-STOP");
    std::thread::sleep(Duration::from_secs(4));
    members.signal(3, "-CONT");
    std::thread::sleep(Duration::from_secs(3));

    let (acked, history, clock, gap_ms) = load.stop();
    members.wait_for_leaders(Duration::from_secs(30));
    // The final read of every key, recorded in the history.
    let client = ClusterClientBuilder::new(members.urls())
        .retries(20)
        .build()
        .unwrap();
    let mut con = client.get_connection().unwrap();
    let mut history = history.lock().unwrap();
    for w in 0..WRITERS {
        for k in 0..KEYS_PER_WRITER {
            let key = key(w, k);
            let invoked = clock.fetch_add(1, Ordering::SeqCst);
            let value: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query(&mut con).unwrap();
            let completed = clock.fetch_add(1, Ordering::SeqCst);
            history.record(Operation {
                client: 1000,
                key: key.into_bytes(),
                op: Op::Get,
                invoked,
                completed,
                outcome: Outcome::Read(value),
            });
        }
    }
    let summary = history::check(&history)
        .unwrap_or_else(|violation| panic!("not linearizable: {violation:?}"));
    eprintln!(
        "6 nodes in namespaces: {acked} acknowledged writes, {} operations linearizable ({summary:?}); \
         longest time a writer went without an acknowledged write: {gap_ms} ms \
         (kill -9, a 5 s zone cut and a 4 s SIGSTOP included)",
        history.len()
    );
    assert!(acked > 200, "only {acked} writes acknowledged");
}
