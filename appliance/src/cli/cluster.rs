//! `veltrix cluster ...`: a local development cluster on loopback (as
//! `ccm` does for Cassandra) and a member's status.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// Where one local node listens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalPorts {
    pub data: u16,
    pub peer: u16,
    pub admin: u16,
}

/// Ports of local node `i` (0-based) from `base`: RESP `base + i`, peers
/// `base + 100 + i`, admin `base + 200 + i`.
pub fn local_ports(base: u16, i: u16) -> LocalPorts {
    LocalPorts {
        data: base + i,
        peer: base + 100 + i,
        admin: base + 200 + i,
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port)
}

/// The configuration file of local node `i` of `nodes`, each in its own
/// zone (`zone-1`, ...).
pub fn local_config(id: u128, nodes: u16, base: u16, i: u16, data_dir: &Path) -> String {
    let me = local_ports(base, i);
    let mut text = format!(
        "[server]\ndata_dir = \"{}\"\nlisten = \"{}\"\nadmin_listen = \"{}\"\nnative_listen = \"{}\"\n\n\
         [cluster]\nid = \"{id:032x}\"\nnode = {}\n",
        data_dir.display().to_string().replace('\\', "\\\\").replace('"', "\\\""),
        loopback(me.data),
        loopback(me.admin),
        // Not served by a cluster member yet; a port of its own all the same.
        loopback(base + 300 + i),
        i + 1
    );
    for j in 0..nodes {
        let p = local_ports(base, j);
        text.push_str(&format!(
            "\n[[member]]\nnode = {}\nzone = \"zone-{}\"\npeer = \"{}\"\ndata = \"{}\"\n",
            j + 1,
            j + 1,
            loopback(p.peer),
            loopback(p.data)
        ));
    }
    text
}

/// `veltrix cluster local`: writes (or reuses) the nodes' configurations
/// under `dir`, starts one veltrixd per node, waits until every group has
/// a leader, prints how to connect, and runs until interrupted (then stops
/// the nodes; their data stays in `dir`).
pub fn local(dir: &Path, nodes: u16, base: u16, out: &mut dyn Write) -> anyhow::Result<()> {
    if nodes < 3 {
        bail!("a cluster needs at least 3 nodes (one per zone)");
    }
    if u32::from(base) + 300 + u32::from(nodes) > 65535 {
        bail!("--base-port {base} leaves no room for {nodes} nodes' ports");
    }
    let veltrixd = veltrixd_binary()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir
        .canonicalize()
        .with_context(|| format!("cannot resolve {}", dir.display()))?;
    let id_file = dir.join("cluster-id");
    let id = match std::fs::read_to_string(&id_file) {
        Ok(text) => u128::from_str_radix(text.trim(), 16)
            .with_context(|| format!("{} does not hold a cluster id", id_file.display()))?,
        Err(_) => {
            let id: u128 = rand::random();
            std::fs::write(&id_file, format!("{id:032x}\n"))?;
            id
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))?;
    }
    let mut children = Vec::new();
    for i in 0..nodes {
        let node_dir = dir.join(format!("node-{}", i + 1));
        std::fs::create_dir_all(&node_dir)?;
        let config = node_dir.join("veltrix.toml");
        std::fs::write(
            &config,
            local_config(id, nodes, base, i, &node_dir.join("data")),
        )?;
        let log = std::fs::File::create(node_dir.join("veltrixd.log"))?;
        let child = Command::new(&veltrixd)
            .arg("--config")
            .arg(&config)
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("cannot start {}", veltrixd.display()))?;
        children.push(Node { child, i });
    }
    let result = wait_for_leaders(&mut children, base, nodes, &stop, out);
    if result.is_ok() {
        let first = local_ports(base, 0);
        writeln!(
            out,
            "{nodes} nodes in {nodes} zones, every group has a leader. Data in {}.\n\
             Connect:   redis-cli -c -p {}\n\
             Status:    veltrix --admin 127.0.0.1:{} cluster status\n\
             Logs:      {}/node-N/veltrixd.log\n\
             Ctrl-C stops the nodes (their data stays).",
            dir.display(),
            first.data,
            first.admin,
            dir.display()
        )?;
        while !stop.load(Ordering::Relaxed) {
            if let Some(dead) = children.iter_mut().find_map(|n| n.exited()) {
                writeln!(out, "{dead}; stopping the others")?;
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    for node in &mut children {
        node.stop();
    }
    result
}

struct Node {
    child: Child,
    i: u16,
}

impl Node {
    fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("node {} exited ({status})", self.i + 1)),
            _ => None,
        }
    }

    fn stop(&mut self) {
        let pid = self.child.id() as i32;
        // SIGTERM: veltrixd stops cleanly.
        let _ = Command::new("kill").arg(pid.to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_leaders(
    children: &mut [Node],
    base: u16,
    nodes: u16,
    stop: &AtomicBool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    writeln!(out, "starting {nodes} nodes...")?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(dead) = children.iter_mut().find_map(Node::exited) {
            bail!("{dead} during start: see its veltrixd.log");
        }
        if stop.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let ready = (0..nodes).all(|i| {
            let admin = loopback(local_ports(base, i).admin);
            super::http::request(admin, "GET", "/api/cluster")
                .is_ok_and(|a| a.status == 200 && !a.body.contains("\"leader\":null"))
        });
        if ready {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the groups did not all elect leaders within 60 s: see the nodes' veltrixd.log");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// veltrixd next to this executable (as cargo builds them), else on PATH.
fn veltrixd_binary() -> anyhow::Result<PathBuf> {
    let beside = std::env::current_exe()?.with_file_name("veltrixd");
    if beside.exists() {
        return Ok(beside);
    }
    Ok(PathBuf::from("veltrixd"))
}

/// `veltrix cluster status`: one line per group this member hosts.
pub fn status(admin: SocketAddr, json: bool, out: &mut dyn Write) -> anyhow::Result<()> {
    let answer = super::http::request(admin, "GET", "/api/cluster")?;
    if answer.status != 200 {
        bail!(
            "http://{admin}/api/cluster: {} {}",
            answer.status,
            answer.body.trim()
        );
    }
    if json {
        out.write_all(answer.body.as_bytes())?;
        return Ok(());
    }
    let field = |text: &str, name: &str| -> Option<String> {
        let at = text.find(&format!("\"{name}\":"))? + name.len() + 3;
        let rest = &text[at..];
        let end = rest.find([',', '}']).unwrap_or(rest.len());
        Some(rest[..end].trim_matches('"').to_string())
    };
    let body = &answer.body;
    let hosted = body.split("\"hosted\":[").nth(1).unwrap_or("");
    let groups: Vec<&str> = hosted
        .split("},{")
        .filter(|g| g.contains("\"group\""))
        .collect();
    let leaderless = groups
        .iter()
        .filter(|g| g.contains("\"leader\":null"))
        .count();
    let led = groups
        .iter()
        .filter(|g| g.contains("\"is_leader\":true"))
        .count();
    writeln!(
        out,
        "node {} of cluster {}: hosts {} groups, leads {led}, {leaderless} without a leader{}",
        field(body, "node").unwrap_or_default(),
        field(body, "cluster").unwrap_or_default(),
        groups.len(),
        if field(body, "stopped").as_deref() == Some("true") {
            "; ITS NODE LOOP STOPPED (see the log)"
        } else {
            ""
        }
    )?;
    writeln!(out, "group  leader  term  applied  state")?;
    for g in groups {
        writeln!(
            out,
            "{:>5}  {:>6}  {:>4}  {:>7}  {}",
            field(g, "group").unwrap_or_default(),
            field(g, "leader").unwrap_or_default(),
            field(g, "term").unwrap_or_default(),
            field(g, "applied").unwrap_or_default(),
            if field(g, "hibernating").as_deref() == Some("true") {
                "asleep"
            } else {
                "awake"
            }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_configs_parse_and_name_every_member() {
        for i in 0..3 {
            let text = local_config(0xabc, 3, 7001, i, Path::new("/tmp/x \"y\""));
            let config = firmware_config::parse(&text).expect("a valid config");
            let cluster = config.cluster.expect("a cluster");
            assert_eq!(cluster.node, u64::from(i) + 1);
            assert_eq!(cluster.members.len(), 3);
            assert_eq!(config.server.listen.port(), 7001 + i);
            assert_eq!(config.server.data_dir, "/tmp/x \"y\"");
        }
    }
}
