//! The load generator's Redis Cluster slot map: which node serves each of
//! the 16384 slots, read from `CLUSTER SLOTS` and corrected by `-MOVED`.

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};

use anyhow::{bail, Context};
use engine::shard::SLOT_COUNT;

use crate::resp::Reply;

/// No node known for a slot.
const UNKNOWN: u8 = u8::MAX;

/// Slot to node, as one byte per slot into a small node table (16 KiB per
/// client, however many nodes).
#[derive(Clone, Debug)]
pub struct SlotMap {
    owner: Vec<u8>,
    nodes: Vec<SocketAddr>,
}

impl SlotMap {
    /// A map that knows no slot.
    pub fn empty() -> SlotMap {
        SlotMap {
            owner: vec![UNKNOWN; usize::from(SLOT_COUNT)],
            nodes: Vec::new(),
        }
    }

    /// Reads a `CLUSTER SLOTS` reply: per range `[start, end, primary,
    /// replicas...]`, each node `[ip, port, id, ...]`. An empty or `?` ip
    /// means the node that answered (`queried`), as Redis says.
    pub fn from_cluster_slots(reply: &Reply, queried: SocketAddr) -> anyhow::Result<SlotMap> {
        let Reply::Array(Some(ranges)) = reply else {
            bail!("CLUSTER SLOTS from {queried} is not an array: {reply:?}");
        };
        let mut map = SlotMap::empty();
        for range in ranges {
            let Reply::Array(Some(fields)) = range else {
                bail!("a CLUSTER SLOTS range is not an array: {range:?}");
            };
            let (Some(Reply::Integer(start)), Some(Reply::Integer(end)), Some(primary)) =
                (fields.first(), fields.get(1), fields.get(2))
            else {
                bail!("a CLUSTER SLOTS range lacks start, end or primary: {range:?}");
            };
            if !(0..i64::from(SLOT_COUNT)).contains(start)
                || !(*start..i64::from(SLOT_COUNT)).contains(end)
            {
                bail!("CLUSTER SLOTS range {start}-{end} is outside 0-16383");
            }
            let addr = node_addr(primary, queried)?;
            for slot in *start..=*end {
                map.assign(slot as u16, addr);
            }
        }
        Ok(map)
    }

    /// The node serving `slot`, if known.
    pub fn node_for(&self, slot: u16) -> Option<SocketAddr> {
        let index = *self.owner.get(usize::from(slot))?;
        self.nodes.get(usize::from(index)).copied()
    }

    /// Records that `addr` serves `slot` (what a `-MOVED` says).
    pub fn assign(&mut self, slot: u16, addr: SocketAddr) {
        let index = match self.nodes.iter().position(|n| *n == addr) {
            Some(i) => i,
            None => {
                // 255 nodes is far beyond any cluster this drives.
                if self.nodes.len() >= usize::from(UNKNOWN) {
                    return;
                }
                self.nodes.push(addr);
                self.nodes.len() - 1
            }
        };
        if let Some(owner) = self.owner.get_mut(usize::from(slot)) {
            *owner = index as u8;
        }
    }

    /// How many slots have a node.
    pub fn covered(&self) -> usize {
        self.owner.iter().filter(|&&o| o != UNKNOWN).count()
    }
}

fn node_addr(node: &Reply, queried: SocketAddr) -> anyhow::Result<SocketAddr> {
    let Reply::Array(Some(fields)) = node else {
        bail!("a CLUSTER SLOTS node is not an array: {node:?}");
    };
    let host = match fields.first() {
        Some(Reply::Bulk(Some(bytes))) => String::from_utf8_lossy(bytes).into_owned(),
        Some(Reply::Simple(text)) => text.clone(),
        other => bail!("a CLUSTER SLOTS node has no host: {other:?}"),
    };
    let Some(Reply::Integer(port)) = fields.get(1) else {
        bail!("a CLUSTER SLOTS node has no port: {node:?}");
    };
    let port = u16::try_from(*port).context("a CLUSTER SLOTS port is out of range")?;
    resolve(&host, port, queried)
}

/// `host:port` as a socket address; an empty or `?` host is `queried`'s.
fn resolve(host: &str, port: u16, queried: SocketAddr) -> anyhow::Result<SocketAddr> {
    if host.is_empty() || host == "?" {
        return Ok(SocketAddr::new(queried.ip(), port));
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, port));
    }
    (host, port)
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to nothing"))
}

/// Reads `MOVED <slot> <host>:<port>` (an error reply's text); `None` for
/// any other error. An empty host is the node that answered (`from`).
pub fn parse_moved(error: &str, from: SocketAddr) -> Option<(u16, SocketAddr)> {
    let mut words = error.split_whitespace();
    if words.next()? != "MOVED" {
        return None;
    }
    let slot: u16 = words.next()?.parse().ok()?;
    if slot >= SLOT_COUNT {
        return None;
    }
    let (host, port) = words.next()?.rsplit_once(':')?;
    let addr = resolve(host.trim_matches(['[', ']']), port.parse().ok()?, from).ok()?;
    Some((slot, addr))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bulk(text: &str) -> Reply {
        Reply::Bulk(Some(text.as_bytes().to_vec()))
    }

    fn node(host: &str, port: i64) -> Reply {
        Reply::Array(Some(vec![bulk(host), Reply::Integer(port), bulk("id")]))
    }

    fn range(start: i64, end: i64, nodes: Vec<Reply>) -> Reply {
        let mut fields = vec![Reply::Integer(start), Reply::Integer(end)];
        fields.extend(nodes);
        Reply::Array(Some(fields))
    }

    #[test]
    fn cluster_slots_route_each_slot_to_its_primary() {
        let queried: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let reply = Reply::Array(Some(vec![
            range(
                0,
                8191,
                vec![node("127.0.0.1", 7002), node("127.0.0.1", 7003)],
            ),
            // An empty host is the node that answered.
            range(8192, 16383, vec![node("", 7001)]),
        ]));
        let map = SlotMap::from_cluster_slots(&reply, queried).unwrap();
        assert_eq!(map.covered(), 16384);
        assert_eq!(map.node_for(0), Some("127.0.0.1:7002".parse().unwrap()));
        assert_eq!(map.node_for(8191), Some("127.0.0.1:7002".parse().unwrap()));
        assert_eq!(map.node_for(8192), Some(queried));
        assert_eq!(map.node_for(16383), Some(queried));
        // The key the engine's slot function sends to a slot is routed there.
        let slot = engine::shard::slot(b"key:42");
        assert!(map.node_for(slot).is_some());
    }

    #[test]
    fn a_partial_or_malformed_map_is_seen_as_such() {
        let queried: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let partial = Reply::Array(Some(vec![range(0, 99, vec![node("127.0.0.1", 7002)])]));
        let map = SlotMap::from_cluster_slots(&partial, queried).unwrap();
        assert_eq!(map.covered(), 100);
        assert_eq!(map.node_for(100), None);
        let past_end = Reply::Array(Some(vec![range(0, 16384, vec![node("a", 1)])]));
        assert!(SlotMap::from_cluster_slots(&past_end, queried).is_err());
        let no_primary = Reply::Array(Some(vec![range(0, 5, vec![])]));
        assert!(SlotMap::from_cluster_slots(&no_primary, queried).is_err());
        assert!(SlotMap::from_cluster_slots(&Reply::Error("ERR".into()), queried).is_err());
    }

    #[test]
    fn moved_names_the_slot_and_the_new_node() {
        let from: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        assert_eq!(
            parse_moved("MOVED 3999 127.0.0.1:7003", from),
            Some((3999, "127.0.0.1:7003".parse().unwrap()))
        );
        assert_eq!(
            parse_moved("MOVED 12 :7002", from),
            Some((12, "127.0.0.1:7002".parse().unwrap()))
        );
        assert_eq!(parse_moved("ASK 12 127.0.0.1:7002", from), None);
        assert_eq!(parse_moved("MOVED 16384 127.0.0.1:7002", from), None);
        assert_eq!(parse_moved("CLUSTERDOWN The cluster is down", from), None);
    }

    #[test]
    fn a_moved_slot_is_reassigned_alone() {
        let a: SocketAddr = "127.0.0.1:1".parse().unwrap();
        let b: SocketAddr = "127.0.0.1:2".parse().unwrap();
        let mut map = SlotMap::empty();
        for slot in 0..SLOT_COUNT {
            map.assign(slot, a);
        }
        map.assign(77, b);
        assert_eq!(map.node_for(77), Some(b));
        assert_eq!(map.node_for(76), Some(a));
        assert_eq!(map.node_for(78), Some(a));
    }
}
