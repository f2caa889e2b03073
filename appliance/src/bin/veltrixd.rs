//! veltrixd: the VeltrixDB daemon.
//!
//! With no arguments it runs on its embedded default: a sparse 4 GiB file
//! namespace in `./veltrix-data`, RESP on 127.0.0.1:6379, the native
//! protocol on 127.0.0.1:7379, admin HTTP on 127.0.0.1:9379.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use appliance::cli::parse_size;
use appliance::daemon::{Daemon, Settings, DEFAULT_NAMESPACE_BYTES};
use clap::Parser;
use engine::EngineConfig;
use firmware_config::TlsMode;

/// The VeltrixDB key-value appliance daemon.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Example:\n  veltrixd                          # embedded default: ./veltrix-data, RESP on 127.0.0.1:6379\n  veltrixd --namespace /dev/nvme0n1 --listen 0.0.0.0:6379 --workers 4\n  veltrixd --backend vfio --namespace vfio:0000:00:04.0/ns1   # userspace NVMe driver (root, IOMMU)"
)]
struct Args {
    /// Configuration file (see docs/config.md); flags override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Data directory for the embedded default namespace.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// A namespace: a block device, a file (created at --namespace-size if
    /// missing), or a vfio address `vfio:DDDD:BB:DD.F/nsN` (the userspace
    /// NVMe driver; implies --backend vfio).
    #[arg(long)]
    namespace: Vec<PathBuf>,
    /// Size of a namespace file created on first start, in bytes (suffixes KiB, MiB, GiB).
    #[arg(long, value_parser = parse_size)]
    namespace_size: Option<u64>,
    /// RESP listen address.
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Native binary protocol listen address (docs/protocol.md).
    #[arg(long)]
    native_listen: Option<SocketAddr>,
    /// Admin HTTP listen address.
    #[arg(long)]
    admin_listen: Option<SocketAddr>,
    /// Worker threads (0: one per core).
    #[arg(long)]
    workers: Option<usize>,
    /// I/O backend: uring, sync, or vfio (the userspace NVMe driver; the
    /// namespace must then be a vfio address).
    #[arg(long, value_parser = ["uring", "sync", "vfio"])]
    backend: Option<String>,
    /// Log level: error, warn, info, debug, trace.
    #[arg(long)]
    log_level: Option<String>,
}

fn settings(args: &Args) -> anyhow::Result<(Settings, String)> {
    let config = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read config file {}", path.display()))?;
            firmware_config::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?
        }
        None => firmware_config::Config::default(),
    };
    let e = &config.engine;
    let mut namespaces: Vec<PathBuf> = Vec::new();
    let mut backend_uring = true;
    let mut backend_vfio = false;
    let mut sqpoll = false;
    let mut namespace_bytes = DEFAULT_NAMESPACE_BYTES;
    for ns in &config.namespaces {
        match &ns.target {
            firmware_config::NamespaceTarget::Path(p) => namespaces.push(PathBuf::from(p.as_str())),
            firmware_config::NamespaceTarget::Serial { .. } => {
                anyhow::bail!("namespaces by NVMe serial need the appliance image (not supported by a plain veltrixd)")
            }
        }
        backend_uring = matches!(ns.backend, firmware_config::Backend::Uring);
        backend_vfio = matches!(ns.backend, firmware_config::Backend::Vfio);
        if matches!(ns.backend, firmware_config::Backend::Sim) {
            anyhow::bail!(
                "backend `{}` is not available in this build",
                ns.backend.as_str()
            );
        }
        sqpoll = ns.sqpoll;
        if let Some(size) = ns.size_bytes {
            namespace_bytes = size;
        }
    }
    if !args.namespace.is_empty() {
        namespaces = args.namespace.clone();
    }
    if let Some(b) = &args.backend {
        backend_uring = b == "uring";
        backend_vfio = b == "vfio";
    }
    if backend_vfio {
        sqpoll = false;
        for ns in &namespaces {
            anyhow::ensure!(
                appliance::daemon::is_vfio_address(ns),
                "backend vfio needs a vfio namespace address (vfio:DDDD:BB:DD.F/nsN, e.g. vfio:0000:00:04.0/ns1), not {}",
                ns.display()
            );
        }
    }
    let engine = EngineConfig {
        workers: args.workers.unwrap_or(config.server.workers as usize),
        commit_interval_us: u64::from(e.commit_interval_us),
        batch_bytes_max: e.batch_bytes_max as usize,
        key_bytes_max: (e.key_bytes_max as usize).min(1024), // the index holds keys up to 1 KiB,
        value_bytes_max: e.value_bytes_max as usize,
        gc_io_share: e.gc_io_share,
        cache_bytes: usize::try_from(e.cache_bytes).unwrap_or(usize::MAX),
        checkpoint_interval_s: u64::from(e.checkpoint_interval_s),
        ..EngineConfig::default()
    };
    let settings = Settings {
        data_dir: args
            .data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(config.server.data_dir.as_str())),
        namespaces,
        namespace_bytes: args.namespace_size.unwrap_or(namespace_bytes),
        uring: backend_uring,
        vfio: backend_vfio,
        sqpoll,
        listen: args.listen.unwrap_or(config.server.listen),
        native_listen: args.native_listen.unwrap_or(config.server.native_listen),
        admin_listen: args.admin_listen.unwrap_or(config.server.admin_listen),
        engine,
        segment_bytes: e.segment_bytes,
        connections_max: config.server.connections_max as usize,
        config_text: config.to_string(),
        cluster: config
            .cluster
            .as_ref()
            .map(appliance::cluster_mode::ClusterSettings::from),
        tls: config.tls.clone(),
        auth: config.auth.clone(),
    };
    let level = args
        .log_level
        .clone()
        .unwrap_or_else(|| config.server.log_level.as_str().to_string());
    Ok((settings, level))
}

/// How the ready line marks a data port's TLS mode.
fn tls_note(mode: TlsMode) -> &'static str {
    match mode {
        TlsMode::Off => "",
        TlsMode::Tls => " (TLS)",
        TlsMode::Mutual => " (mutual TLS)",
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (settings, level) = settings(&args)?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&level)
                .with_context(|| format!("bad log level `{level}`"))?,
        )
        .with_writer(std::io::stderr)
        // Colour codes only on a terminal: logs piped to a file or journald
        // stay plain, one line per event.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let stop = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGTERM, Arc::clone(&stop))?;
    signal_hook::flag::register(signal_hook::consts::SIGINT, Arc::clone(&stop))?;
    let reload = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, Arc::clone(&reload))?;
    let daemon = Daemon::start(&settings)?;
    println!(
        "veltrixd {} ready: RESP on {}{}, native on {}{}, admin on {}://{}",
        env!("CARGO_PKG_VERSION"),
        daemon.listen,
        tls_note(settings.tls.resp),
        daemon.native_listen,
        tls_note(settings.tls.native),
        if settings.tls.admin == TlsMode::Off {
            "http"
        } else {
            "https"
        },
        daemon.admin_listen
    );
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(std::time::Duration::from_millis(50));
        if reload.swap(false, Ordering::Relaxed) {
            match daemon.reload_tls() {
                Ok(true) => tracing::info!("SIGHUP: TLS certificates and CRLs reloaded"),
                Ok(false) => tracing::info!("SIGHUP: no port serves TLS; nothing to reload"),
                Err(e) => tracing::error!(
                    "SIGHUP: TLS reload failed, the previous certificates stay in service: {e}"
                ),
            }
        }
    }
    tracing::info!("signal received: draining and shutting down");
    daemon.shutdown();
    tracing::info!("shut down cleanly");
    Ok(())
}
