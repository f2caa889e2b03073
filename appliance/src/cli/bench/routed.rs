//! A Redis Cluster client for the load generator: routes each key by its
//! slot (`engine::shard::slot`, Redis Cluster's rule) to the node the map
//! names, keeps one connection per node it has used, and on `-MOVED`
//! corrects the slot and re-reads the whole map from the node that
//! redirected it (a redirect usually means more than one slot moved).

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::net::SocketAddr;

use anyhow::bail;

use super::resp_conn::{encode_op, judge, OpResult, RespConn};
use super::slots::{parse_moved, SlotMap};
use crate::resp::Reply;

/// Redirects one op may follow before it counts as an error (a map that
/// keeps changing under it).
const REDIRECTS_MAX: u32 = 5;

/// One load client's view of the cluster.
pub struct Router {
    map: SlotMap,
    conns: HashMap<SocketAddr, RespConn>,
    wait: Option<u32>,
}

/// Reads the slot map from the first seed that answers `CLUSTER SLOTS`.
/// Refuses a map that leaves a slot without a node: every key must route.
pub fn fetch_map(seeds: &[SocketAddr]) -> anyhow::Result<SlotMap> {
    let mut last = None;
    for &seed in seeds {
        match RespConn::open(seed).and_then(|mut conn| read_map(&mut conn)) {
            Ok(map) if map.covered() == usize::from(engine::shard::SLOT_COUNT) => return Ok(map),
            Ok(map) => {
                last = Some(anyhow::anyhow!(
                    "{seed}'s CLUSTER SLOTS covers {} of 16384 slots",
                    map.covered()
                ))
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| anyhow::anyhow!("no seed address given")))
}

fn read_map(conn: &mut RespConn) -> anyhow::Result<SlotMap> {
    let reply = conn.call(&[b"CLUSTER", b"SLOTS"])?;
    SlotMap::from_cluster_slots(&reply, conn.addr())
}

impl Router {
    /// A router over `map`; `wait` adds `WAIT wait 0` after each SET.
    pub fn new(map: SlotMap, wait: Option<u32>) -> Router {
        Router {
            map,
            conns: HashMap::new(),
            wait,
        }
    }

    /// Opens a connection to every node the map names now, so the clock
    /// does not start with connects.
    pub fn connect_all(&mut self) -> anyhow::Result<()> {
        let nodes: Vec<SocketAddr> = (0..engine::shard::SLOT_COUNT)
            .filter_map(|slot| self.map.node_for(slot))
            .collect();
        for addr in nodes {
            self.conn(addr)?;
        }
        Ok(())
    }

    fn conn(&mut self, addr: SocketAddr) -> anyhow::Result<&mut RespConn> {
        Ok(match self.conns.entry(addr) {
            Entry::Occupied(conn) => conn.into_mut(),
            Entry::Vacant(slot) => slot.insert(RespConn::open(addr)?),
        })
    }

    /// Runs one GET or SET where its slot is served, following `-MOVED`.
    /// Returns what it came to and how many redirects it took.
    pub fn op(&mut self, get: bool, key: &[u8], value: &[u8]) -> anyhow::Result<(OpResult, u32)> {
        let slot = engine::shard::slot(key);
        let mut redirects = 0;
        loop {
            let Some(addr) = self.map.node_for(slot) else {
                bail!("no node serves slot {slot}");
            };
            let wait = self.wait;
            let conn = self.conn(addr)?;
            let mut out = Vec::new();
            let replies = encode_op(&mut out, get, key, value, wait);
            conn.send(&out)?;
            let first = conn.read_reply()?;
            let second = if replies == 2 {
                Some(conn.read_reply()?)
            } else {
                None
            };
            let moved = match &first {
                Reply::Error(text) => parse_moved(text, addr),
                _ => None,
            };
            let Some((moved_slot, to)) = moved else {
                return Ok((judge(&first, second.as_ref(), wait), redirects));
            };
            redirects += 1;
            if redirects > REDIRECTS_MAX {
                return Ok((OpResult::Error, redirects));
            }
            self.map = read_map(self.conn(to)?)?;
            // The redirect is newer than any map: it wins for its slot.
            self.map.assign(moved_slot, to);
        }
    }
}
