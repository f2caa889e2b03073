//! veltrixd as a member of a replicated cluster (`[cluster]` in the
//! configuration): the node's Raft groups on a journal in the data
//! directory, its peer port, and a RESP data port that routes every key to
//! its group's leader.
//!
//! What this step is, and is not (`docs/cluster.md`): the groups' data
//! lives in the cluster crate's journal ([`cluster::journal`]) and in
//! memory, not yet in the engine; the member list is static (the
//! `[[member]]` tables); multi-key commands run one key at a time.

mod dispatch;
mod metrics;
mod server;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cluster::group::{Reply, Tuning};
use cluster::journal::JournalDisk;
use cluster::layout::GroupLayout;
use cluster::node::{NodeConfig, Request};
use cluster::placement::{self, NodeId, Replicas};
use cluster::runtime::{Handle, LinkFaults, NodeStatus, RuntimeConfig};
use cluster::view::{node_name, ClusterView, NodeView};

pub use server::DataPort;

/// A member as the configuration names it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberSettings {
    pub node: NodeId,
    pub zone: String,
    /// Node-to-node address.
    pub peer: SocketAddr,
    /// RESP address clients are sent to.
    pub data: SocketAddr,
}

/// The cluster part of the daemon's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterSettings {
    pub id: u128,
    pub node: NodeId,
    pub groups: u32,
    /// The Raft clock's tick, and the ticks of an election timeout.
    pub tick: Duration,
    pub election_ticks: usize,
    pub members: Vec<MemberSettings>,
}

impl From<&firmware_config::Cluster> for ClusterSettings {
    fn from(c: &firmware_config::Cluster) -> Self {
        Self {
            id: c.id,
            node: c.node,
            groups: c.groups,
            tick: Duration::from_millis(c.tick_ms.into()),
            election_ticks: c.election_ticks as usize,
            members: c
                .members
                .iter()
                .map(|m| MemberSettings {
                    node: m.node,
                    zone: m.zone.to_string(),
                    peer: m.peer,
                    data: m.data,
                })
                .collect(),
        }
    }
}

/// The directory under the data directory that holds the journal.
pub const JOURNAL_DIR: &str = "cluster";

/// How long a request waits for its group before the client is told to
/// try again.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// A running member: its node and what the data port needs to route.
pub struct Member {
    handle: Handle<JournalDisk>,
    settings: ClusterSettings,
    layout: GroupLayout,
    placement: Vec<Replicas>,
    /// The peer port actually bound.
    pub peer_listen: SocketAddr,
    started: std::time::Instant,
}

impl Member {
    /// Opens the journal in `data_dir`, binds the peer port and starts the
    /// node. A new journal is a new member: its groups start from the
    /// placement of the configured members.
    pub fn start(settings: &ClusterSettings, data_dir: &Path) -> anyhow::Result<Arc<Member>> {
        let me = settings
            .members
            .iter()
            .find(|m| m.node == settings.node)
            .context("the node is not one of the members")?;
        let layout = GroupLayout::new(settings.groups)?;
        let members: Vec<placement::Member> = settings
            .members
            .iter()
            .map(|m| placement::Member {
                id: m.node,
                zone: m.zone.clone(),
            })
            .collect();
        let placement = placement::place(&members, layout.groups())
            .context("cannot place the groups on the members")?;
        let dir = data_dir.join(JOURNAL_DIR);
        let (disk, report) =
            JournalDisk::open(&dir).with_context(|| format!("cannot open {}", dir.display()))?;
        if report.cut_damaged_last_frame {
            tracing::warn!(
                "cluster journal in {}: its last frame did not verify and was cut ({} bytes): \
                 the write in flight at a crash, or, if it was acknowledged, damaged since",
                dir.display(),
                report.cut_bytes
            );
        } else if report.cut_bytes > 0 {
            tracing::info!(
                "cluster journal in {}: cut {} bytes a crash left unfinished",
                dir.display(),
                report.cut_bytes
            );
        }
        let fresh = disk.is_empty();
        let listener = std::net::TcpListener::bind(me.peer)
            .with_context(|| format!("cannot listen for peers on {}", me.peer))?;
        let peer_listen = listener.local_addr()?;
        let peers: BTreeMap<NodeId, SocketAddr> = settings
            .members
            .iter()
            .filter(|m| m.node != settings.node)
            .map(|m| (m.node, m.peer))
            .collect();
        let config = RuntimeConfig {
            node: NodeConfig {
                id: settings.node,
                layout,
                placement: placement.clone(),
                tuning: Tuning::default().with_election_ticks(settings.election_ticks),
                seed: settings.node ^ (settings.id as u64),
            },
            cluster: settings.id,
            listener,
            peers,
            tick: settings.tick,
            queue_limit: 64 << 20,
            faults: LinkFaults::default(),
        };
        let handle = Handle::start(config, disk, fresh).context("cannot start the cluster node")?;
        tracing::info!(
            "cluster member {} (zone {}): {} groups, {} members, peers on {peer_listen}{}",
            settings.node,
            me.zone,
            layout.groups(),
            settings.members.len(),
            if fresh { ", a new member" } else { "" }
        );
        Ok(Arc::new(Member {
            handle,
            settings: settings.clone(),
            layout,
            placement,
            peer_listen,
            started: std::time::Instant::now(),
        }))
    }

    /// What CONFIG GET answers on a member.
    pub fn config_settings(&self) -> Vec<(String, String)> {
        vec![
            ("databases".into(), "1".into()),
            ("cluster-enabled".into(), "yes".into()),
            (
                "veltrix-cluster-node".into(),
                self.settings.node.to_string(),
            ),
            (
                "veltrix-cluster-groups".into(),
                self.layout.groups().to_string(),
            ),
        ]
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.settings.node
    }

    /// Sends a request to the node and waits for its answer (`None`: no
    /// answer in time; a write may still take effect).
    pub fn call(&self, request: Request) -> Option<Reply> {
        self.handle.call(request, CALL_TIMEOUT)
    }

    /// The group of a key.
    pub fn group_of(&self, key: &[u8]) -> u32 {
        self.layout.group_of_key(key)
    }

    /// The node that should lead `group` when all are healthy.
    pub fn preferred_leader(&self, group: u32) -> Option<NodeId> {
        self.placement
            .get(group as usize)
            .and_then(Replicas::preferred_leader)
    }

    /// A member's RESP address.
    pub fn data_address(&self, node: NodeId) -> Option<SocketAddr> {
        self.settings
            .members
            .iter()
            .find(|m| m.node == node)
            .map(|m| m.data)
    }

    /// Every hosted group replica and the journal's counters, as of the
    /// last tick.
    pub fn status(&self) -> NodeStatus {
        self.handle.status()
    }

    /// Whether the node's loop stopped (a failed flush stops it).
    pub fn is_stopped(&self) -> bool {
        self.handle.is_stopped()
    }

    /// Envelopes sent and received between nodes.
    pub fn messages(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.handle.stats.envelopes_sent.load(Relaxed),
            self.handle.stats.envelopes_received.load(Relaxed),
        )
    }

    /// What clients are told: each group's slot range with the leader this
    /// node knows of as its primary (its preferred leader when none is
    /// known), and the other replicas.
    pub fn view(&self) -> ClusterView {
        let leaders: BTreeMap<u32, NodeId> = self
            .status()
            .groups
            .into_iter()
            .filter_map(|s| Some((s.group, s.leader?)))
            .collect();
        let nodes = self
            .settings
            .members
            .iter()
            .map(|m| NodeView {
                id: m.node,
                name: node_name(self.settings.id, m.node),
                ip: m.data.ip().to_string(),
                port: m.data.port(),
                bus_port: m.peer.port(),
                up: true,
            })
            .collect();
        ClusterView::new(
            self.settings.node,
            1,
            nodes,
            self.layout,
            &self.placement,
            |group| leaders.get(&group).copied(),
        )
    }
}

impl crate::admin::ClusterAdmin for Member {
    fn metrics(&self) -> String {
        use std::sync::atomic::Ordering::Relaxed;
        let stats = &self.handle.stats;
        let messages = (
            stats.envelopes_sent.load(Relaxed),
            stats.envelopes_received.load(Relaxed),
            stats.envelopes_dropped.load(Relaxed),
        );
        metrics::render(
            self.settings.node,
            &self.status(),
            messages,
            self.is_stopped(),
            self.started.elapsed().as_secs_f64(),
        )
    }

    /// `GET /api/cluster`: the member list and every hosted group.
    fn status_json(&self) -> String {
        let mut out = format!(
            "{{\"cluster\":\"{:032x}\",\"node\":{},\"groups\":{},\"stopped\":{},\"members\":[",
            self.settings.id,
            self.settings.node,
            self.layout.groups(),
            self.is_stopped()
        );
        for (i, m) in self.settings.members.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"node\":{},\"zone\":\"{}\",\"peer\":\"{}\",\"data\":\"{}\"}}",
                m.node,
                m.zone.escape_default(),
                m.peer,
                m.data
            ));
        }
        out.push_str("],\"hosted\":[");
        for (i, s) in self.status().groups.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&format!(
                "{{\"group\":{},\"replica\":{},\"leader\":{},\"is_leader\":{},\"term\":{},\"applied\":{},\"hibernating\":{},\"voters\":{:?}}}",
                s.group,
                s.replica,
                s.leader.map_or("null".to_string(), |l| l.to_string()),
                s.is_leader,
                s.term,
                s.applied,
                s.hibernating,
                s.configuration
                    .voters
                    .iter()
                    .map(|&r| placement::node_of(r))
                    .collect::<Vec<_>>()
            ));
        }
        out.push_str("]}\n");
        out
    }
}
