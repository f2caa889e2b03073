//! The configuration's schema: its types, their defaults and the keys'
//! ranges. `docs/config.md` describes the same schema for operators.

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use crate::limits::{
    MEMBERS_MAX, NAMESPACES_MAX, PATH_BYTES_MAX, SERIAL_BYTES_MAX, ZONE_BYTES_MAX,
};

/// A path of at most [`PATH_BYTES_MAX`] bytes. (Its length is a `u8`: the
/// capacity fits in one.)
pub type PathString = heapless::String<PATH_BYTES_MAX, u8>;

/// An NVMe serial number of at most [`SERIAL_BYTES_MAX`] bytes.
pub type SerialString = heapless::String<SERIAL_BYTES_MAX, u8>;

/// A zone's name: at most [`ZONE_BYTES_MAX`] bytes.
pub type ZoneString = heapless::String<ZONE_BYTES_MAX, u8>;

/// The whole appliance configuration. [`Default`] gives every key its
/// documented default and no namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Config {
    /// `[server]`: the daemon's ports, workers and logging.
    pub server: Server,
    /// `[tls]`: TLS on the data and admin ports.
    pub tls: Tls,
    /// `[auth]`: users and passwords on the data ports.
    pub auth: Auth,
    /// `[engine]`: the storage engine's tuning.
    pub engine: Engine,
    /// `[[namespace]]` tables, in file order. Empty means "use the embedded
    /// default: a file namespace under `data_dir`".
    pub namespaces: heapless::Vec<NamespaceConfig, NAMESPACES_MAX>,
    /// `[cluster]` with its `[[member]]` tables: this node is a member of
    /// a replicated cluster. `None` (the default) runs a single node.
    pub cluster: Option<Cluster>,
}

/// `[cluster]` and the `[[member]]` tables: every member, the same list on
/// every node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cluster {
    /// `id`: the cluster's id, 32 hexadecimal digits; a peer of another
    /// cluster is refused.
    pub id: u128,
    /// `node`: this node's id, one of the members'.
    pub node: u64,
    /// `groups`: replication groups, a power of two from 1 to 1024, fixed
    /// when the cluster is created.
    pub groups: u32,
    /// `tick_ms`: the Raft clock's tick, in milliseconds.
    pub tick_ms: u32,
    /// `election_ticks`: ticks without a word from the leader before a
    /// follower campaigns (each group waits a draw in `[election_ticks,
    /// 2 × election_ticks)`); leaders heartbeat every fifth of it.
    pub election_ticks: u32,
    /// The `[[member]]` tables, in file order: at least three, in at least
    /// three zones.
    pub members: heapless::Vec<Member, MEMBERS_MAX>,
}

/// One `[[member]]` table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// `node`: the member's id, 1 to 2^48 - 1, unique.
    pub node: u64,
    /// `zone`: the failure domain; no two replicas of a group share one.
    pub zone: ZoneString,
    /// `peer`: the node-to-node (Raft) address.
    pub peer: SocketAddr,
    /// `data`: the RESP address clients are redirected to.
    pub data: SocketAddr,
}

/// `[server]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    /// `data_dir`: where the daemon keeps its own files; non-empty.
    pub data_dir: PathString,
    /// `workers`: worker cores; 0 means one per core. At most [`WORKERS_MAX`].
    pub workers: u32,
    /// `listen`: the RESP data port.
    pub listen: SocketAddr,
    /// `native_listen`: the native binary protocol's data port.
    pub native_listen: SocketAddr,
    /// `admin_listen`: the HTTP admin port.
    pub admin_listen: SocketAddr,
    /// `connections_max`: open client connections, over all data ports.
    pub connections_max: u32,
    /// `log_level`: the most verbose level logged.
    pub log_level: LogLevel,
}

/// `[tls]`. An empty path means "not given".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Tls {
    /// `enabled`: serve TLS on the data and admin ports. Requires
    /// `cert_file` and `key_file`. It sets the mode of every port whose own
    /// key (`resp`, `native`, `admin`) is not given.
    pub enabled: bool,
    /// `cert_file`: PEM certificate chain.
    pub cert_file: PathString,
    /// `key_file`: PEM private key.
    pub key_file: PathString,
    /// `client_ca_file`: PEM CA bundle; when given, clients must present a
    /// certificate it signed.
    pub client_ca_file: PathString,
    /// `client_crl_file`: PEM certificate revocation lists checked against
    /// client certificates. Requires `client_ca_file`.
    pub client_crl_file: PathString,
    /// `resp`: the RESP port's mode. When not given: `mtls` if `enabled`
    /// and `client_ca_file` is given, `tls` if `enabled`, else `off`.
    pub resp: TlsMode,
    /// `native`: the native protocol port's mode; its default as `resp`'s.
    pub native: TlsMode,
    /// `admin`: the admin port's mode; its default as `resp`'s.
    pub admin: TlsMode,
}

/// `[auth]`. An empty path means "not given".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    /// `users_file`: the users, their roles and password hashes. When
    /// given, every data-port client must authenticate; when empty, none
    /// does.
    pub users_file: PathString,
    /// `admin_token_file`: the token the admin port requires (as
    /// `Authorization: Bearer TOKEN`) for every request that changes state.
    /// When empty, none is required.
    pub admin_token_file: PathString,
}

/// A port's TLS mode: `resp`, `native` and `admin` in `[tls]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TlsMode {
    /// `"off"`: plain text (the default).
    #[default]
    Off,
    /// `"tls"`: TLS 1.3; clients are not asked for a certificate.
    Tls,
    /// `"mtls"`: TLS 1.3, and every client presents a certificate signed by
    /// `client_ca_file` (and not revoked by `client_crl_file`).
    Mutual,
}

impl TlsMode {
    /// Every mode.
    pub const ALL: [Self; 3] = [Self::Off, Self::Tls, Self::Mutual];

    /// The mode's name in the configuration file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Off => "off",
            Self::Tls => "tls",
            Self::Mutual => "mtls",
        }
    }
}

/// `[engine]`. Sizes are in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Engine {
    /// `commit_interval_us`: longest a write waits for its group commit.
    pub commit_interval_us: u32,
    /// `batch_bytes_max`: a group commit starts early once this many bytes
    /// are pending.
    pub batch_bytes_max: u64,
    /// `cache_bytes`: the read cache's budget; 0 disables the cache.
    pub cache_bytes: u64,
    /// `gc_io_share`: percent of I/O that GC may use while foreground
    /// requests are waiting.
    pub gc_io_share: u8,
    /// `key_bytes_max`: the longest key accepted.
    pub key_bytes_max: u32,
    /// `value_bytes_max`: the largest value accepted.
    pub value_bytes_max: u64,
    /// `segment_bytes`: VLog and WAL segment size; a power of two.
    pub segment_bytes: u64,
    /// `checkpoint_interval_s`: time between index checkpoints.
    pub checkpoint_interval_s: u32,
}

/// One `[[namespace]]` table: a block device, file or simulated namespace the
/// engine owns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamespaceConfig {
    /// `path`, or `serial` and `nsid`: which namespace.
    pub target: NamespaceTarget,
    /// `backend`: the I/O path used for it.
    pub backend: Backend,
    /// `size`: for a file namespace, the size to create the file at; a
    /// multiple of 4 KiB. `None` means "use the existing size".
    pub size_bytes: Option<u64>,
    /// `sqpoll`: use a kernel submission-polling thread (`uring` only).
    pub sqpoll: bool,
}

/// How a namespace is found: exactly one of the two forms.
#[expect(
    clippy::large_enum_variant,
    reason = "no allocator to box the path into; a config holds at most eight"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamespaceTarget {
    /// `path = "..."`: a block device, a file, or (for `vfio`) a device
    /// address. Non-empty.
    Path(PathString),
    /// `serial = "..."` and `nsid = N`: the controller's serial number and
    /// the namespace id on it.
    Serial {
        /// The controller's serial number; non-empty.
        serial: SerialString,
        /// The namespace id: 1..=0xFFFF_FFFE.
        nsid: u32,
    },
}

/// `log_level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogLevel {
    /// `"error"`.
    Error,
    /// `"warn"`.
    Warn,
    /// `"info"` (the default).
    #[default]
    Info,
    /// `"debug"`.
    Debug,
    /// `"trace"`.
    Trace,
}

/// A namespace's `backend`: which of the nvme crate's backends drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Backend {
    /// `"uring"`: io_uring with O_DIRECT (the default).
    #[default]
    Uring,
    /// `"sync"`: pread/pwrite.
    Sync,
    /// `"vfio"`: the userspace NVMe driver.
    Vfio,
    /// `"sim"`: the deterministic simulator.
    Sim,
}

impl LogLevel {
    /// Every level, from least to most verbose.
    pub const ALL: [Self; 5] = [
        Self::Error,
        Self::Warn,
        Self::Info,
        Self::Debug,
        Self::Trace,
    ];

    /// The level's name in the configuration file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Error => "error",
            Self::Warn => "warn",
            Self::Info => "info",
            Self::Debug => "debug",
            Self::Trace => "trace",
        }
    }
}

impl Backend {
    /// Every backend.
    pub const ALL: [Self; 4] = [Self::Uring, Self::Sync, Self::Vfio, Self::Sim];

    /// The backend's name in the configuration file.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Uring => "uring",
            Self::Sync => "sync",
            Self::Vfio => "vfio",
            Self::Sim => "sim",
        }
    }
}

/// Most worker cores (`workers`).
pub const WORKERS_MAX: u32 = 64;

const KIB: u64 = 1 << 10;
const MIB: u64 = 1 << 20;
const GIB: u64 = 1 << 30;
const TIB: u64 = 1 << 40;

// Each key's accepted range, inclusive. `docs/config.md` lists the same.
pub(crate) const CONNECTIONS: (u64, u64) = (1, 1_000_000);
pub(crate) const COMMIT_INTERVAL_US: (u64, u64) = (1, 1_000_000);
pub(crate) const BATCH_BYTES: (u64, u64) = (4 * KIB, 64 * MIB);
pub(crate) const CACHE_BYTES: (u64, u64) = (0, 16 * TIB);
pub(crate) const GC_IO_SHARE: (u64, u64) = (1, 90);
pub(crate) const KEY_BYTES: (u64, u64) = (1, 65_535);
pub(crate) const VALUE_BYTES: (u64, u64) = (1, 64 * MIB);
pub(crate) const SEGMENT_BYTES: (u64, u64) = (MIB, GIB);
pub(crate) const CHECKPOINT_INTERVAL_S: (u64, u64) = (1, 86_400);
pub(crate) const NSID: (u64, u64) = (1, 0xFFFF_FFFE);
pub(crate) const NAMESPACE_BYTES: (u64, u64) = (MIB, 1024 * TIB);
/// A namespace's `size` is a multiple of this.
pub(crate) const NAMESPACE_BYTES_ALIGN: u64 = 4 * KIB;
/// A member's `node` (a replica id keeps 16 bits for its incarnation).
pub(crate) const NODE_ID: (u64, u64) = (1, (1 << 48) - 1);
pub(crate) const GROUPS: (u64, u64) = (1, 1024);
/// `groups` when not given.
pub(crate) const GROUPS_DEFAULT: u32 = 64;
pub(crate) const TICK_MS: (u64, u64) = (1, 1_000);
pub(crate) const ELECTION_TICKS: (u64, u64) = (2, 1_000);
/// The longest election timeout `tick_ms` × `election_ticks` may make.
pub(crate) const ELECTION_TIMEOUT_MS_MAX: u64 = 60_000;
/// `tick_ms` and `election_ticks` when not given: a 1 s election timeout
/// (etcd's default; TiKV's is 10 s), heartbeats every 200 ms. 100 ms (the
/// cluster's first setting) is shorter than a busy shared machine's
/// scheduling gaps: followers of a live leader campaigned.
pub(crate) const TICK_MS_DEFAULT: u32 = 100;
pub(crate) const ELECTION_TICKS_DEFAULT: u32 = 10;

const fn localhost(port: u16) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port)
}

const DATA_DIR_DEFAULT: &str = "./veltrix-data";
const _: () = assert!(DATA_DIR_DEFAULT.len() <= PATH_BYTES_MAX);

impl Default for Server {
    fn default() -> Self {
        let mut data_dir = PathString::new();
        // Cannot fail: checked by the const assertion above.
        let pushed = data_dir.push_str(DATA_DIR_DEFAULT);
        debug_assert!(pushed.is_ok());
        Self {
            data_dir,
            workers: 0,
            listen: localhost(6379),
            native_listen: localhost(7379),
            admin_listen: localhost(9379),
            connections_max: 10_000,
            log_level: LogLevel::Info,
        }
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self {
            commit_interval_us: 50,
            batch_bytes_max: MIB,
            cache_bytes: 256 * MIB,
            gc_io_share: 10,
            key_bytes_max: 1024,
            value_bytes_max: 4 * MIB,
            segment_bytes: 8 * MIB,
            checkpoint_interval_s: 300,
        }
    }
}

/// A table in the file: the three sections and the `[[namespace]]` array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Section {
    Server,
    Tls,
    Auth,
    Engine,
    Namespace,
    Cluster,
    Member,
}

impl Section {
    pub(crate) const ALL: [Self; 7] = [
        Self::Server,
        Self::Tls,
        Self::Auth,
        Self::Engine,
        Self::Namespace,
        Self::Cluster,
        Self::Member,
    ];

    /// The section's header as written in the file.
    pub(crate) const fn header(self) -> &'static str {
        match self {
            Self::Server => "[server]",
            Self::Tls => "[tls]",
            Self::Auth => "[auth]",
            Self::Engine => "[engine]",
            Self::Namespace => "[[namespace]]",
            Self::Cluster => "[cluster]",
            Self::Member => "[[member]]",
        }
    }

    /// The section's name inside its brackets.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Tls => "tls",
            Self::Auth => "auth",
            Self::Engine => "engine",
            Self::Namespace => "namespace",
            Self::Cluster => "cluster",
            Self::Member => "member",
        }
    }

    /// Whether the section is an array of tables (`[[...]]`).
    pub(crate) const fn is_array(self) -> bool {
        matches!(self, Self::Namespace | Self::Member)
    }

    /// The section's keys, in the order `render` writes them.
    pub(crate) const fn keys(self) -> &'static [&'static str] {
        match self {
            Self::Server => &SERVER_KEYS,
            Self::Tls => &TLS_KEYS,
            Self::Auth => &AUTH_KEYS,
            Self::Engine => &ENGINE_KEYS,
            Self::Namespace => &NAMESPACE_KEYS,
            Self::Cluster => &CLUSTER_KEYS,
            Self::Member => &MEMBER_KEYS,
        }
    }
}

pub(crate) const SERVER_KEYS: [&str; 7] = [
    "data_dir",
    "workers",
    "listen",
    "native_listen",
    "admin_listen",
    "connections_max",
    "log_level",
];
pub(crate) const TLS_KEYS: [&str; 8] = [
    "enabled",
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_crl_file",
    "resp",
    "native",
    "admin",
];
pub(crate) const AUTH_KEYS: [&str; 2] = ["users_file", "admin_token_file"];
/// The `[tls]` keys that set a port's mode.
pub(crate) const TLS_PORT_KEYS: [&str; 3] = ["resp", "native", "admin"];
pub(crate) const ENGINE_KEYS: [&str; 8] = [
    "commit_interval_us",
    "batch_bytes_max",
    "cache_bytes",
    "gc_io_share",
    "key_bytes_max",
    "value_bytes_max",
    "segment_bytes",
    "checkpoint_interval_s",
];
pub(crate) const NAMESPACE_KEYS: [&str; 6] =
    ["path", "serial", "nsid", "backend", "size", "sqpoll"];
pub(crate) const CLUSTER_KEYS: [&str; 5] = ["id", "node", "groups", "tick_ms", "election_ticks"];
pub(crate) const MEMBER_KEYS: [&str; 4] = ["node", "zone", "peer", "data"];

/// The most keys any section has.
pub(crate) const SECTION_KEYS_MAX: usize = 8;
const _: () = assert!(SERVER_KEYS.len() <= SECTION_KEYS_MAX);
const _: () = assert!(TLS_KEYS.len() <= SECTION_KEYS_MAX);
const _: () = assert!(AUTH_KEYS.len() <= SECTION_KEYS_MAX);
const _: () = assert!(ENGINE_KEYS.len() <= SECTION_KEYS_MAX);
const _: () = assert!(NAMESPACE_KEYS.len() <= SECTION_KEYS_MAX);
const _: () = assert!(CLUSTER_KEYS.len() <= SECTION_KEYS_MAX);
const _: () = assert!(MEMBER_KEYS.len() <= SECTION_KEYS_MAX);
