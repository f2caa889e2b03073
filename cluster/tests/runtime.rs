//! Three nodes on loopback, each on its own thread with real TCP between
//! them: writes and linearizable reads through whichever node leads each
//! group, a node stopped and restarted from its disk (it catches up), and
//! writes that still succeed with loss and delay injected in the transport.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use cluster::entry::Write;
use cluster::group::{Read, Reply, Tuning};
use cluster::layout::GroupLayout;
use cluster::node::{NodeConfig, Request};
use cluster::placement::{place, Member, NodeId};
use cluster::runtime::{Handle, LinkFaults, RuntimeConfig};
use cluster::storage::MemDisk;

struct Cluster {
    handles: BTreeMap<NodeId, Handle<MemDisk>>,
    addrs: BTreeMap<NodeId, SocketAddr>,
    configs: BTreeMap<NodeId, NodeConfig>,
    leaders: BTreeMap<u32, NodeId>,
    layout: GroupLayout,
}

const CLUSTER_ID: u128 = 0x7e57;

fn runtime_config(
    node: NodeConfig,
    listener: TcpListener,
    peers: BTreeMap<NodeId, SocketAddr>,
) -> RuntimeConfig {
    RuntimeConfig {
        node,
        cluster: CLUSTER_ID,
        listener,
        peers,
        tick: Duration::from_millis(10),
        queue_limit: 4 << 20,
        faults: LinkFaults::default(),
    }
}

impl Cluster {
    fn start() -> Cluster {
        Self::start_with(4)
    }

    /// Three nodes in three zones, `groups` groups.
    fn start_with(groups: u32) -> Cluster {
        let members: Vec<Member> = (1..=3)
            .map(|id| Member {
                id,
                zone: format!("zone-{id}"),
            })
            .collect();
        let layout = GroupLayout::new(groups).expect("a group count that divides the shards");
        let placement = place(&members, groups).expect("placement");
        let listeners: BTreeMap<NodeId, TcpListener> = (1..=3)
            .map(|id| (id, TcpListener::bind("127.0.0.1:0").expect("bind")))
            .collect();
        let addrs: BTreeMap<NodeId, SocketAddr> = listeners
            .iter()
            .map(|(&id, l)| (id, l.local_addr().expect("addr")))
            .collect();
        let mut cluster = Cluster {
            handles: BTreeMap::new(),
            addrs,
            configs: BTreeMap::new(),
            leaders: BTreeMap::new(),
            layout,
        };
        for (id, listener) in listeners {
            let config = NodeConfig {
                id,
                layout,
                placement: placement.clone(),
                tuning: Tuning::default(),
                seed: id,
            };
            cluster.configs.insert(id, config.clone());
            let handle = Handle::start(
                runtime_config(config, listener, cluster.addrs.clone()),
                MemDisk::default(),
                true,
            )
            .expect("start a node");
            cluster.handles.insert(id, handle);
        }
        cluster
    }

    fn stop(&mut self, id: NodeId) -> MemDisk {
        self.handles
            .remove(&id)
            .and_then(Handle::stop)
            .expect("the node's disk")
    }

    fn restart(&mut self, id: NodeId, disk: MemDisk) {
        let listener = TcpListener::bind(self.addrs[&id]).expect("rebind the node's port");
        let config = runtime_config(self.configs[&id].clone(), listener, self.addrs.clone());
        self.handles
            .insert(id, Handle::start(config, disk, false).expect("restart"));
    }

    /// Sends `request` to the group's leader (as last learnt), following
    /// redirects, until it is answered or `within` passes.
    fn call(&mut self, request: Request, within: Duration) -> Reply {
        let group = self.layout.group_of_key(request.key());
        let deadline = Instant::now() + within;
        let mut tries = 0u64;
        loop {
            assert!(
                Instant::now() < deadline,
                "no answer to {request:?} within {within:?}"
            );
            tries += 1;
            let ids: Vec<NodeId> = self.handles.keys().copied().collect();
            let target = self
                .leaders
                .get(&group)
                .copied()
                .filter(|id| self.handles.contains_key(id));
            let target = target.unwrap_or(ids[(tries as usize) % ids.len()]);
            match self.handles[&target].call(request.clone(), Duration::from_secs(2)) {
                Some(Reply::NotLeader { leader }) | Some(Reply::WrongNode { leader }) => {
                    match leader {
                        Some(l) => self.leaders.insert(group, l),
                        None => self.leaders.remove(&group),
                    };
                    std::thread::sleep(Duration::from_millis(20));
                }
                Some(Reply::Lost) | Some(Reply::Unknown) | None => {
                    self.leaders.remove(&group);
                }
                Some(reply) => {
                    self.leaders.insert(group, target);
                    return reply;
                }
            }
        }
    }

    fn put(&mut self, key: &str, value: &str) {
        let request = Request::Write(Write::Put {
            key: key.into(),
            value: value.into(),
        });
        assert_eq!(
            self.call(request, Duration::from_secs(20)),
            Reply::Written,
            "put {key}"
        );
    }

    fn get(&mut self, key: &str) -> Option<Vec<u8>> {
        match self.call(
            Request::Get {
                read: Read::value(key.into(), 0),
                stale: false,
            },
            Duration::from_secs(20),
        ) {
            Reply::Value(v) => v,
            other => panic!("get {key}: {other:?}"),
        }
    }
}

#[test]
fn three_nodes_over_tcp_replicate_survive_a_restart_and_loss() {
    let mut cluster = Cluster::start();
    for i in 0..100 {
        cluster.put(&format!("key-{i}"), &format!("v{i}"));
    }
    for i in 0..100 {
        assert_eq!(
            cluster.get(&format!("key-{i}")),
            Some(format!("v{i}").into_bytes())
        );
    }

    // One node down: the other two are a quorum of every group.
    let disk = cluster.stop(3);
    for i in 0..100 {
        cluster.put(&format!("key-{i}"), &format!("w{i}"));
    }
    cluster.restart(3, disk);
    // The restarted node catches up: its own (stale) reads converge.
    let deadline = Instant::now() + Duration::from_secs(20);
    for i in 0..100 {
        let key = format!("key-{i}");
        loop {
            let reply = cluster.handles[&3].call(
                Request::Get {
                    read: Read::value(key.clone().into(), 0),
                    stale: true,
                },
                Duration::from_secs(2),
            );
            if reply == Some(Reply::Value(Some(format!("w{i}").into_bytes()))) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node 3 did not catch up on {key}: {reply:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    // 20% loss and 5 ms delay on every link: slower, still correct.
    for handle in cluster.handles.values() {
        handle.set_faults(LinkFaults {
            drop_ppm: 200_000,
            delay: Duration::from_millis(5),
        });
    }
    for i in 0..30 {
        cluster.put(&format!("key-{i}"), &format!("x{i}"));
        assert_eq!(
            cluster.get(&format!("key-{i}")),
            Some(format!("x{i}").into_bytes())
        );
    }
    let dropped: u64 = cluster
        .handles
        .values()
        .map(|h| {
            h.stats
                .envelopes_dropped
                .load(std::sync::atomic::Ordering::Relaxed)
        })
        .sum();
    assert!(dropped > 0, "the injected loss dropped nothing");
}

/// What idle groups cost on real threads and sockets: 64 groups on three
/// nodes in this process, no clients, CPU time over 10 s after the leaders
/// settle (from /proc/self/stat). Run by hand (it takes 13 s):
/// `cargo test -p cluster --test runtime idle -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement, run by hand"]
fn idle_cpu_of_64_groups_on_3_nodes() {
    let cluster = Cluster::start_with(64);
    let handles: Vec<&Handle<MemDisk>> = cluster.handles.values().collect();
    std::thread::sleep(Duration::from_secs(3));
    let sent = |hs: &[&Handle<MemDisk>]| -> u64 {
        hs.iter()
            .map(|h| {
                h.stats
                    .envelopes_sent
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum()
    };
    let (cpu0, env0, t0) = (cpu_seconds(), sent(&handles), Instant::now());
    std::thread::sleep(Duration::from_secs(10));
    let (cpu1, env1, secs) = (cpu_seconds(), sent(&handles), t0.elapsed().as_secs_f64());
    println!(
        "idle, 64 groups on 3 nodes (one process): {:.1}% of one core in all, {:.0} envelopes/s",
        100.0 * (cpu1 - cpu0) / secs,
        (env1 - env0) as f64 / secs
    );
}

/// This process's user + system CPU time, in seconds.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<&str> = after.split(' ').collect();
    let ticks: f64 =
        fields[11].parse::<f64>().expect("utime") + fields[12].parse::<f64>().expect("stime");
    ticks / 100.0
}

/// Hostile or foreign peers: a connection from another cluster, one that
/// sends garbage, and one that announces a four-billion-message frame are
/// each dropped, and the cluster keeps serving.
#[test]
fn foreign_and_hostile_peers_are_dropped_and_nothing_is_lost() {
    use std::io::{Read, Write};
    let mut cluster = Cluster::start();
    cluster.put("before", "1");
    let target = cluster.addrs[&2];
    let mut other_cluster = cluster::runtime::hello_bytes(CLUSTER_ID + 1, 1);
    let mut garbage = cluster::runtime::hello_bytes(CLUSTER_ID, 1);
    garbage.extend_from_slice(&[0xff; 64]);
    let mut huge = cluster::runtime::hello_bytes(CLUSTER_ID, 1);
    huge.extend_from_slice(&u32::MAX.to_le_bytes());
    other_cluster.extend_from_slice(&[0; 16]);
    for bytes in [other_cluster, garbage, huge] {
        let mut stream = std::net::TcpStream::connect(target).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        stream.write_all(&bytes).expect("send");
        // The node closes the connection: reads end (after its own hello).
        let mut sink = Vec::new();
        let closed = stream.read_to_end(&mut sink);
        assert!(
            closed.is_ok(),
            "the node did not close a bad peer's connection: {closed:?}"
        );
    }
    cluster.put("after", "2");
    assert_eq!(cluster.get("before"), Some(b"1".to_vec()));
    assert_eq!(cluster.get("after"), Some(b"2".to_vec()));
}
