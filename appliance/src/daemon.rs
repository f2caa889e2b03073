//! Starting and stopping veltrixd: configuration, namespaces, the engine,
//! the data port and the admin port.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use engine::{Engine, EngineConfig, FormatOptions, OpenError};
use nvme::uring::UringOptions;
use nvme::{Backend, Namespace, OpenOptions};

use crate::admin::{AdminState, EngineView};
use crate::server::{bind_reuseport, RespFrontend, ServerLimits, ServerStats};
use crate::tls::PortsTls;

/// The file name of the embedded default namespace in the data directory.
pub const DEFAULT_NAMESPACE_FILE: &str = "namespace-0.veltrix";
/// Size of the embedded default namespace (sparse).
pub const DEFAULT_NAMESPACE_BYTES: u64 = 4 << 30;

/// Everything veltrixd needs to start, after config file and flags merge.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Directory for the embedded default namespace.
    pub data_dir: PathBuf,
    /// Namespace paths; empty means the embedded default.
    pub namespaces: Vec<PathBuf>,
    /// Size for namespaces created as files.
    pub namespace_bytes: u64,
    /// io_uring (true) or pread/pwrite.
    pub uring: bool,
    /// The userspace NVMe driver (`nvme::vfio`): the namespace is a vfio
    /// address, `vfio:DDDD:BB:DD.F[/nsN]`. A namespace given as such an
    /// address uses it whatever this says.
    pub vfio: bool,
    /// SQPOLL for io_uring.
    pub sqpoll: bool,
    /// RESP port.
    pub listen: SocketAddr,
    /// Native protocol port.
    pub native_listen: SocketAddr,
    /// Admin port.
    pub admin_listen: SocketAddr,
    /// Engine tunables.
    pub engine: EngineConfig,
    /// Segment size when formatting.
    pub segment_bytes: u64,
    /// Connections across all workers.
    pub connections_max: usize,
    /// The configuration as text, for the admin API.
    pub config_text: String,
    /// `[cluster]`: run as a member of a replicated cluster.
    pub cluster: Option<crate::cluster_mode::ClusterSettings>,
    /// `[tls]`: each port's mode and the files that serve it. Its files are
    /// read before any port opens, and a start that cannot honour them
    /// fails.
    pub tls: firmware_config::Tls,
    /// `[auth]`: the users file and the admin token file, read before any
    /// port opens.
    pub auth: firmware_config::Auth,
}

/// A running daemon.
pub struct Daemon {
    engine: Option<Engine>,
    /// A cluster member's data port (the engine is not opened then).
    cluster_port: Option<crate::cluster_mode::DataPort>,
    admin_stop: Arc<AtomicBool>,
    admin_thread: Option<std::thread::JoinHandle<()>>,
    /// With TLS on the admin port: the thread that accepts TLS and relays
    /// to the HTTP server, and the private directory of that server's
    /// socket (removed at stop).
    admin_relay_thread: Option<std::thread::JoinHandle<()>>,
    admin_socket_dir: Option<PathBuf>,
    /// Reads `[tls]`'s files again; `None` when no port serves TLS.
    tls_reloader: Option<Arc<crate::tls::Reloader>>,
    /// The RESP address actually bound.
    pub listen: SocketAddr,
    /// The native protocol address actually bound.
    pub native_listen: SocketAddr,
    /// The admin address actually bound.
    pub admin_listen: SocketAddr,
    /// Who did what (`data_dir/audit`).
    audit: Arc<crate::audit::AuditLog>,
}

/// Opens the audit log in `data_dir/audit` and records the start, with the
/// configuration's SHA-256. A log that cannot be opened stops the start.
fn open_audit(settings: &Settings) -> anyhow::Result<Arc<crate::audit::AuditLog>> {
    use sha2::Digest as _;
    let dir = settings.data_dir.join("audit");
    let audit = crate::audit::AuditLog::open(&dir)
        .with_context(|| format!("cannot open the audit log in {}", dir.display()))?;
    let config_sha = sha2::Sha256::digest(settings.config_text.as_bytes());
    audit.append(crate::audit::Event {
        actor: "veltrixd".into(),
        action: "start".into(),
        detail: format!(
            "version {}, configuration sha256 {}",
            env!("CARGO_PKG_VERSION"),
            crate::audit::format::hex(&config_sha)
        ),
    })?;
    Ok(Arc::new(audit))
}

/// Opens a namespace, waiting a little while it is in use: after a process
/// is killed, the kernel releases its io_uring (and with it the file lock)
/// asynchronously, so an immediate restart can briefly find it held.
fn open_namespace(path: &Path, settings: &Settings) -> anyhow::Result<Arc<dyn Namespace>> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        match open_namespace_once(path, settings) {
            Err(e)
                if std::time::Instant::now() < deadline
                    && matches!(
                        e.downcast_ref::<nvme::OpenError>(),
                        Some(nvme::OpenError::InUse { .. })
                    ) =>
            {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            other => return other,
        }
    }
}

/// Whether a namespace is named by a vfio address (`vfio:...`).
pub fn is_vfio_address(path: &Path) -> bool {
    path.to_str().is_some_and(|p| p.starts_with("vfio:"))
}

#[cfg(target_os = "linux")]
fn open_vfio(path: &Path) -> anyhow::Result<Arc<dyn Namespace>> {
    let address = path
        .to_str()
        .with_context(|| format!("{}: not a vfio address", path.display()))?;
    if nvme::vfio::parse_address(address).is_none() {
        bail!(
            "`{address}` is not a vfio namespace address: expected vfio:DDDD:BB:DD.F[/nsN], e.g. vfio:0000:00:04.0/ns1"
        );
    }
    nvme::vfio::open(address, &nvme::vfio::VfioOptions::default()).map_err(|e| match e {
        nvme::OpenError::BackendUnavailable { source, .. } => anyhow::anyhow!(
            "the vfio backend cannot use {address}: {source} (the controller must exist, \
             the machine needs an IOMMU, the vfio-pci and vfio_iommu_type1 modules loaded, and root)"
        ),
        other => anyhow::Error::from(other),
    })
}

#[cfg(not(target_os = "linux"))]
fn open_vfio(path: &Path) -> anyhow::Result<Arc<dyn Namespace>> {
    bail!("{}: the vfio backend needs Linux", path.display())
}

fn open_namespace_once(path: &Path, settings: &Settings) -> anyhow::Result<Arc<dyn Namespace>> {
    if settings.vfio || is_vfio_address(path) {
        return open_vfio(path);
    }
    let mut options = OpenOptions {
        create_bytes: Some(settings.namespace_bytes),
        ..OpenOptions::default()
    };
    if settings.uring {
        options.backend = Backend::Uring(UringOptions {
            sqpoll: settings.sqpoll,
            sqpoll_idle_ms: if settings.sqpoll { 50 } else { 0 },
            ..UringOptions::default()
        });
        match nvme::open(path, &options) {
            Ok(ns) => return Ok(ns),
            Err(nvme::OpenError::BackendUnavailable { source, .. }) => {
                tracing::warn!(
                    "io_uring unavailable on {} ({source}); falling back to pread/pwrite",
                    path.display()
                );
                options.backend = Backend::Sync;
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(nvme::open(path, &options)?)
}

/// Whether the superblock area of a namespace was never written: the only
/// case in which veltrixd formats on its own. Anything else that is not a
/// VeltrixDB store belongs to someone else and is refused.
fn blank(namespace: &dyn Namespace) -> anyhow::Result<bool> {
    let lba_bytes = namespace.geometry().lba_bytes as usize;
    let mut queue = namespace.queue_pair(2)?;
    let buf = namespace
        .buffers()
        .alloc(lba_bytes * 2)
        .context("no buffer to read the superblock")?;
    queue
        .submit(0, nvme::Command::Read { lba: 0, buf })
        .map_err(|r| anyhow::anyhow!("superblock read refused: {:?}", r.reason))?;
    loop {
        if let Some(done) = queue.wait(None) {
            done.result?;
            let buf = done.buf.context("read returned no buffer")?;
            return Ok(buf.as_slice().iter().all(|&b| b == 0));
        }
    }
}

impl Daemon {
    /// Opens (or, on first start, creates and formats) the namespace, starts
    /// the engine with a RESP frontend per worker, and the admin port.
    pub fn start(settings: &Settings) -> anyhow::Result<Daemon> {
        // First, so that TLS asked for and not servable stops the start
        // before anything listens in plain text.
        let tls = crate::tls::load(&settings.tls)?;
        let users = crate::auth::load(&settings.auth)?.map(Arc::new);
        let admin_token = crate::auth::load_admin_token(&settings.auth)?;
        let audit = open_audit(settings)?;
        if let Some(cluster) = &settings.cluster {
            return Self::start_member(settings, cluster, audit);
        }
        let path = match settings.namespaces.as_slice() {
            [] => {
                std::fs::create_dir_all(&settings.data_dir).with_context(|| {
                    format!(
                        "cannot create data directory {}",
                        settings.data_dir.display()
                    )
                })?;
                settings.data_dir.join(DEFAULT_NAMESPACE_FILE)
            }
            [one] => one.clone(),
            _ => bail!("more than one namespace is not supported yet: give one --namespace"),
        };
        let namespace = open_namespace(&path, settings)
            .with_context(|| format!("cannot open namespace {}", path.display()))?;
        let description = namespace.describe();
        tracing::info!("namespace: {description}");

        let workers = if settings.engine.workers == 0 {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            settings.engine.workers
        };
        let mut engine_config = settings.engine.clone();
        engine_config.workers = workers;
        // Two threads at most: a login costs 19 MiB and tens of
        // milliseconds, and the workers need the cores.
        let verifier = match users {
            Some(users) => Some(Arc::new(crate::auth::Verifier::start(
                users,
                workers.min(2),
                Arc::clone(&audit),
            )?)),
            None => None,
        };

        // Bind before opening the engine, so a port in use fails fast.
        crate::server::ensure_free(settings.listen)
            .with_context(|| format!("cannot listen on {}", settings.listen))?;
        crate::server::ensure_free(settings.native_listen)
            .with_context(|| format!("cannot listen on native port {}", settings.native_listen))?;
        let mut listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            listeners.push(
                bind_reuseport(settings.listen)
                    .with_context(|| format!("cannot listen on {}", settings.listen))?,
            );
        }
        let listen = listeners[0].local_addr()?;
        // With port 0, every worker must listen on the port the first got.
        if settings.listen.port() == 0 {
            listeners.truncate(1);
            for _ in 1..workers {
                listeners.push(bind_reuseport(listen)?);
            }
        }
        let mut native_listeners = Vec::with_capacity(workers);
        for _ in 0..workers {
            native_listeners.push(bind_reuseport(settings.native_listen).with_context(|| {
                format!("cannot listen on native port {}", settings.native_listen)
            })?);
        }
        let native_listen = native_listeners[0].local_addr()?;
        if settings.native_listen.port() == 0 {
            native_listeners.truncate(1);
            for _ in 1..workers {
                native_listeners.push(bind_reuseport(native_listen)?);
            }
        }
        let (admin, admin_listen, relay) = bind_admin(settings.admin_listen, tls.admin.clone())?;

        let server_stats = Arc::new(ServerStats::default());
        let engine_slot: Arc<std::sync::Mutex<Option<Arc<EngineView>>>> = Arc::default();
        let view_slot = Arc::clone(&engine_slot);
        let state = Arc::new(AdminState {
            engine: Arc::new(move || view_slot.lock().ok().and_then(|s| s.clone())),
            started: std::time::Instant::now(),
            server: Arc::clone(&server_stats),
            ready: AtomicBool::new(false),
            config_text: settings.config_text.clone(),
            namespaces: vec![description],
            workers,
            cluster: None,
            token: admin_token,
            audit: Arc::clone(&audit),
        });
        let (admin_stop, admin_thread) = spawn_admin(admin, &state)?;
        let (admin_relay_thread, admin_socket_dir) = match relay {
            None => (None, None),
            Some(relay) => {
                let (stats, stop) = (Arc::clone(&server_stats), Arc::clone(&admin_stop));
                let thread = std::thread::Builder::new()
                    .name("veltrix-admin-tls-accept".into())
                    .spawn(move || {
                        crate::tls::admin::serve(
                            relay.listener,
                            relay.socket,
                            relay.config,
                            stats,
                            stop,
                        )
                    })?;
                (Some(thread), Some(relay.dir))
            }
        };

        if blank(namespace.as_ref())? {
            let uuid: [u8; 16] = rand::random();
            let mut options = FormatOptions::new(uuid);
            options.segment_bytes = settings.segment_bytes;
            tracing::info!("blank namespace: formatting {}", path.display());
            engine::format(namespace.as_ref(), &options)?;
        }
        let limits = ServerLimits {
            connections_max: settings.connections_max,
            bulk_bytes_max: settings.engine.value_bytes_max + 1024,
            request_bytes_max: settings.engine.value_bytes_max
                + settings.engine.key_bytes_max
                + (64 << 10),
        };
        let config = Arc::new(crate::commands::config_settings(
            listen,
            settings.connections_max,
            limits.bulk_bytes_max,
            &engine_config,
        ));
        let mut listeners = listeners.into_iter();
        let mut native_listeners = native_listeners.into_iter();
        let mut failure = None;
        let started = std::time::Instant::now();
        let engine = Engine::open_with_frontends(namespace, &engine_config, |_| {
            let listener = listeners.next()?;
            let native = native_listeners.next();
            let data_tls = PortsTls {
                admin: None,
                ..tls.clone()
            };
            let verifier = verifier.clone();
            let stats = Arc::clone(&server_stats);
            match RespFrontend::new(
                listener,
                native,
                data_tls,
                verifier,
                limits,
                stats,
                Arc::clone(&config),
            ) {
                Ok((frontend, waker)) => {
                    let wake: engine::Wake = Arc::new(move || {
                        let _ = waker.wake();
                    });
                    Some((Box::new(frontend) as Box<dyn engine::Frontend>, wake))
                }
                Err(e) => {
                    failure = Some(e);
                    None
                }
            }
        });
        let engine = match engine {
            Ok(engine) => engine,
            Err(OpenError::NotFormatted) => bail!(
                "{} holds data that is not a VeltrixDB store; refusing to touch it (format it explicitly to erase it)",
                path.display()
            ),
            Err(e) => return Err(e).with_context(|| format!("cannot open the store on {}", path.display())),
        };
        if let Some(e) = failure {
            bail!("cannot start the data port: {e}");
        }
        let report = engine.recovery_report().clone();
        let recovery_seconds = started.elapsed().as_secs_f64();
        tracing::info!(
            "recovered {} keys from {} records in {recovery_seconds:.3} s",
            report.keys,
            report.records,
        );
        for damage in &report.damage {
            tracing::error!(
                "damaged log range in stream {}: {} to {} (reported, not truncated); keys found in it: {}",
                damage.stream,
                damage.start,
                damage.end,
                keys_found(&damage.keys, damage.complete)
            );
        }
        for torn in &report.torn_tails {
            tracing::warn!(
                "log of stream {} cut at {}: {}; the remains of a group commit in flight at the \
                 crash, or, if it was acknowledged, damaged since; keys found in it: {}",
                torn.stream,
                torn.at,
                torn.found,
                keys_found(&torn.keys, torn.complete)
            );
        }
        if let Ok(mut slot) = engine_slot.lock() {
            *slot = Some(Arc::new(EngineView {
                handle: engine.handle(),
                report: report.clone(),
                recovery_seconds,
            }));
        }
        state.ready.store(true, Ordering::Release);
        Ok(Daemon {
            engine: Some(engine),
            cluster_port: None,
            admin_stop,
            admin_thread: Some(admin_thread),
            admin_relay_thread,
            admin_socket_dir,
            tls_reloader: tls.reloader.clone(),
            listen,
            native_listen,
            admin_listen,
            audit,
        })
    }

    /// A cluster member: the node on its journal in the data directory,
    /// its peer port, the routing RESP data port and the admin port. The
    /// engine and the native port are not started in this step.
    fn start_member(
        settings: &Settings,
        cluster: &crate::cluster_mode::ClusterSettings,
        audit: Arc<crate::audit::AuditLog>,
    ) -> anyhow::Result<Daemon> {
        use crate::cluster_mode::{DataPort, Member};
        // Never fail open: a member does not serve TLS or logins yet, so a
        // configuration that asks for them is refused, not ignored.
        let tls = crate::tls::load(&settings.tls)?;
        if tls.resp.is_some() || tls.native.is_some() || tls.admin.is_some() {
            bail!("[tls]: TLS is not supported on a cluster member yet ([cluster] is set); turn it off or run a single node");
        }
        if crate::auth::load(&settings.auth)?.is_some()
            || crate::auth::load_admin_token(&settings.auth)?.is_some()
        {
            bail!("[auth]: users and the admin token are not supported on a cluster member yet ([cluster] is set)");
        }
        std::fs::create_dir_all(&settings.data_dir).with_context(|| {
            format!(
                "cannot create data directory {}",
                settings.data_dir.display()
            )
        })?;
        let admin = tiny_http::Server::http(settings.admin_listen).map_err(|e| {
            anyhow::anyhow!("cannot listen on admin port {}: {e}", settings.admin_listen)
        })?;
        let admin_listen = admin
            .server_addr()
            .to_ip()
            .context("admin port is not an IP socket")?;
        let member = Member::start(cluster, &settings.data_dir)?;
        let limits = crate::resp::Limits {
            bulk_bytes_max: settings.engine.value_bytes_max + 1024,
            request_bytes_max: settings.engine.value_bytes_max
                + settings.engine.key_bytes_max
                + (64 << 10),
            ..crate::resp::Limits::DEFAULT
        };
        let port = DataPort::start(
            Arc::clone(&member),
            settings.listen,
            settings.connections_max,
            limits,
        )?;
        let state = Arc::new(AdminState {
            engine: Arc::new(|| None),
            started: std::time::Instant::now(),
            server: Arc::new(ServerStats::default()),
            ready: AtomicBool::new(true),
            config_text: settings.config_text.clone(),
            namespaces: Vec::new(),
            workers: 0,
            token: None,
            cluster: Some(Arc::clone(&member) as Arc<dyn crate::admin::ClusterAdmin>),
            audit: Arc::clone(&audit),
        });
        let (admin_stop, admin_thread) = spawn_admin(admin, &state)?;
        Ok(Daemon {
            engine: None,
            listen: port.listen,
            native_listen: settings.native_listen,
            cluster_port: Some(port),
            admin_stop,
            admin_thread: Some(admin_thread),
            admin_relay_thread: None,
            admin_socket_dir: None,
            tls_reloader: None,
            admin_listen,
            audit,
        })
    }

    /// Reads the TLS certificate, key, CA bundle and CRLs again, for new
    /// connections (SIGHUP). On an error the previous ones stay in
    /// service. `Ok(false)` when no port serves TLS.
    pub fn reload_tls(&self) -> anyhow::Result<bool> {
        let result = match &self.tls_reloader {
            Some(reloader) => reloader.reload().map(|()| true),
            None => Ok(false),
        };
        self.audit.record(crate::audit::Event {
            actor: "operator".into(),
            action: "reload certificates (SIGHUP)".into(),
            detail: match &result {
                Ok(true) => "reloaded".into(),
                Ok(false) => "no port serves TLS".into(),
                Err(e) => format!("failed, the previous ones stay: {e:#}"),
            },
        });
        result
    }

    /// Stops accepting, drains in-flight requests (every acknowledged write
    /// is already durable), and stops the workers and the admin port.
    pub fn shutdown(mut self) {
        self.stop();
    }

    fn stop(&mut self) {
        let running = self.engine.is_some() || self.cluster_port.is_some();
        if let Some(engine) = self.engine.take() {
            engine.shutdown();
        }
        if running {
            self.audit.record(crate::audit::Event {
                actor: "veltrixd".into(),
                action: "stop".into(),
                detail: "clean shutdown".into(),
            });
        }
        if let Some(mut port) = self.cluster_port.take() {
            port.stop();
        }
        self.admin_stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.admin_thread.take() {
            let _ = t.join();
        }
        if let Some(t) = self.admin_relay_thread.take() {
            let _ = t.join();
        }
        if let Some(dir) = self.admin_socket_dir.take() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The admin port's TLS relay, bound and ready to run.
struct AdminRelay {
    listener: std::net::TcpListener,
    socket: PathBuf,
    dir: PathBuf,
    config: Arc<rustls::ServerConfig>,
}

/// The admin HTTP server and the address clients reach it on. Plain: it
/// listens there itself. With TLS: it listens on a Unix socket in a
/// private directory, and the returned relay owns the TCP address.
fn bind_admin(
    addr: SocketAddr,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> anyhow::Result<(tiny_http::Server, SocketAddr, Option<AdminRelay>)> {
    let cannot_listen =
        |e: &dyn std::fmt::Display| anyhow::anyhow!("cannot listen on admin port {addr}: {e}");
    let Some(config) = tls else {
        let server = tiny_http::Server::http(addr).map_err(|e| cannot_listen(&e))?;
        let bound = server
            .server_addr()
            .to_ip()
            .context("admin port is not an IP socket")?;
        return Ok((server, bound, None));
    };
    let listener = std::net::TcpListener::bind(addr).map_err(|e| cannot_listen(&e))?;
    let bound = listener.local_addr()?;
    let dir = crate::tls::admin::private_dir()
        .context("cannot create a private directory for the admin server's socket")?;
    let socket = dir.join("admin.sock");
    let server = tiny_http::Server::http_unix(&socket).map_err(|e| {
        let _ = std::fs::remove_dir_all(&dir);
        anyhow::anyhow!("cannot listen on {}: {e}", socket.display())
    })?;
    let relay = AdminRelay {
        listener,
        socket,
        dir,
        config,
    };
    Ok((server, bound, Some(relay)))
}

/// Serves the admin port on its own thread; the flag stops it.
fn spawn_admin(
    admin: tiny_http::Server,
    state: &Arc<AdminState>,
) -> std::io::Result<(Arc<AtomicBool>, std::thread::JoinHandle<()>)> {
    let stop = Arc::new(AtomicBool::new(false));
    let (state, flag) = (Arc::clone(state), Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("veltrix-admin".into())
        .spawn(move || crate::admin::serve(admin, state, flag))?;
    Ok((stop, thread))
}

/// The first keys a recovery report names, and whether it names them all,
/// for the log.
fn keys_found(keys: &[Vec<u8>], complete: bool) -> String {
    let shown: Vec<_> = keys
        .iter()
        .take(16)
        .map(|k| String::from_utf8_lossy(k))
        .collect();
    let named = if complete {
        "every record in it named"
    } else {
        "records in it may be unnamed"
    };
    format!("{shown:?} ({named})")
}
