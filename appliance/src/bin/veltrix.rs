//! veltrix: the VeltrixDB operator CLI. See `docs/cli.md`.

use std::io::Write;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use appliance::cli::tls::TlsClient;
use appliance::cli::{bench, http, nvme, offline, parse_size};
use clap::{Parser, Subcommand, ValueEnum};
use veltrix_client::Client;

/// The VeltrixDB operator CLI: inspect and drive a veltrixd, format and
/// verify namespaces offline, and generate load.
#[derive(Parser, Debug)]
#[command(
    version,
    about,
    after_help = "Examples:\n  veltrix status\n  veltrix put greeting hello && veltrix get greeting\n  veltrix --admin 10.0.0.5:9379 shards\n  veltrix inspect /dev/nvme0n1\n  veltrix bench --protocol native --clients 16 --seconds 10\n\nEach command has its own examples: veltrix help COMMAND"
)]
struct Args {
    /// The daemon's admin HTTP port (status, shards, gc).
    #[arg(long, global = true, default_value = "127.0.0.1:9379")]
    admin: String,
    /// The daemon's native protocol port (get, put, del, bench).
    #[arg(long, global = true, default_value = "127.0.0.1:7379")]
    native: String,
    /// The daemon's RESP port (bench --protocol resp).
    #[arg(long, global = true, default_value = "127.0.0.1:6379")]
    resp: String,
    /// Speak TLS to the admin and native ports, trusting this PEM CA bundle
    /// for the daemon's certificate (docs/security.md).
    #[arg(long, global = true)]
    cacert: Option<PathBuf>,
    /// With --cacert: present this PEM certificate (ports in mode "mtls").
    #[arg(long, global = true, requires = "tls_key")]
    cert: Option<PathBuf>,
    /// With --cert: its PEM private key. (Its id is not `key`, which the
    /// get, put and del commands' argument already is.)
    #[arg(long = "key", id = "tls_key", global = true, requires = "cert")]
    tls_key: Option<PathBuf>,
    /// With --cacert: the name the daemon's certificate must carry (default:
    /// the IP address connected to).
    #[arg(long, global = true)]
    tls_name: Option<String>,
    /// A file whose first line is the admin token (`[auth]
    /// admin_token_file`), sent with every admin request.
    #[arg(long, global = true)]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Show the daemon's status (GET /api/status on the admin port).
    #[command(after_help = "Example:\n  veltrix status\n  veltrix --admin 10.0.0.5:9379 status")]
    Status,
    /// Show which worker owns each shard (GET /api/shards).
    #[command(
        after_help = "Examples:\n  veltrix shards            # a summary per worker\n  veltrix shards --json     # the admin API's JSON, every shard"
    )]
    Shards {
        /// Print the admin API's JSON as is.
        #[arg(long)]
        json: bool,
    },
    /// Read a key over the native protocol; the value goes to stdout as is.
    /// Exits 1 when the key does not exist.
    #[command(
        after_help = "Example:\n  veltrix get greeting\n  veltrix --native 10.0.0.5:7379 get user:42 > value.bin"
    )]
    Get {
        /// The key.
        key: String,
    },
    /// Set a key over the native protocol; durable when it returns.
    #[command(
        after_help = "Examples:\n  veltrix put greeting hello\n  veltrix put avatar:42 --file avatar.png"
    )]
    Put {
        /// The key.
        key: String,
        /// The value (or use --file).
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        value: Option<String>,
        /// Read the value from a file.
        #[arg(long)]
        file: Option<PathBuf>,
    },
    /// Delete a key over the native protocol.
    #[command(after_help = "Example:\n  veltrix del greeting")]
    Del {
        /// The key.
        key: String,
    },
    /// A replicated cluster: a local one for development, a member's status.
    #[command(subcommand)]
    Cluster(ClusterCommand),
    /// Update the appliance in place: status, install a signed bundle into
    /// the inactive slot, roll back (docs/upgrades.md).
    #[command(
        after_help = "Examples:\n  veltrix update status\n  veltrix update install veltrix-update-0.2.0.vxb   # then reboot: it boots on trial\n  veltrix update rollback"
    )]
    Update {
        #[command(subcommand)]
        action: UpdateCommand,
    },
    /// The audit log (who did what, hash-chained and signed), read from
    /// its directory: `verify` checks every entry, `tail` shows the last.
    #[command(
        after_help = "Examples:\n  veltrix audit verify --dir ./veltrix-data/audit --public-key 3b6a...\n  veltrix audit tail --dir ./veltrix-data/audit -n 20"
    )]
    Audit {
        #[command(subcommand)]
        action: AuditCommand,
    },
    /// Ask the daemon to run a GC pass (POST /api/gc) and print its answer.
    #[command(after_help = "Example:\n  veltrix gc")]
    Gc,
    /// Ask the daemon to take an index checkpoint (POST /api/checkpoint) and
    /// wait until it is durable, so the next start replays only what follows.
    #[command(after_help = "Example:\n  veltrix checkpoint")]
    Checkpoint,
    /// Read a password from the first line of stdin and print its Argon2id
    /// hash with a fresh salt, for a line of the users file
    /// (`[auth] users_file`, docs/security.md). Works offline.
    #[command(
        after_help = "Example:\n  echo \"$PASSWORD\" | veltrix hash-password   # then: alice write <hash>"
    )]
    HashPassword,
    /// Format a namespace (file or block device) offline. Refuses an existing
    /// VeltrixDB store unless --force.
    #[command(
        after_help = "Examples:\n  veltrix format ./ns.veltrix --size 4GiB     # create and format a file\n  veltrix format /dev/nvme0n1 --force         # erase an existing store"
    )]
    Format {
        /// The namespace: a block device or a file.
        path: PathBuf,
        /// Create the file at this size if it does not exist (KiB, MiB, GiB, TiB).
        #[arg(long, value_parser = parse_size)]
        size: Option<u64>,
        /// Segment size.
        #[arg(long, value_parser = parse_size, default_value = "8MiB")]
        segment_size: u64,
        /// Erase an existing VeltrixDB store.
        #[arg(long)]
        force: bool,
    },
    /// Verify a namespace offline: every superblock, segment header, frame
    /// and record checksum. Exits 2 when it finds corruption.
    #[command(
        after_help = "Example:\n  veltrix inspect ./veltrix-data/namespace-0.veltrix\n\nExit status: 0 clean (a torn tail is a warning), 1 cannot inspect, 2 corruption found."
    )]
    Inspect {
        /// The namespace: a block device or a file (veltrixd must not be running on it).
        path: PathBuf,
    },
    /// List NVMe controllers, or hand one to vfio-pci (veltrixd's userspace
    /// driver, --backend vfio) or back to the kernel's nvme driver. Binding
    /// needs root.
    #[command(
        subcommand,
        after_help = "Examples:\n  veltrix nvme list\n  veltrix nvme bind 0000:00:03.0 --driver vfio-pci\n  veltrix nvme bind 0000:00:03.0 --driver nvme"
    )]
    Nvme(NvmeCommand),
    /// Generate load over the native protocol, RESP (one server or a Redis
    /// Cluster) or etcd's HTTP/JSON gateway and report throughput and a
    /// latency histogram.
    #[command(
        after_help = "Examples:\n  veltrix bench                                            # native, 8 clients, 100k requests, 1:1\n  veltrix bench --protocol resp --clients 50 --pipeline 16 --seconds 10\n  veltrix bench --ratio 9:1 --value-bytes 1024 --keys 1000000\n  veltrix --resp 127.0.0.1:7001 bench --protocol resp-cluster --ratio 0:1 --clients 64 --seconds 10\n  veltrix --resp 127.0.0.1:30001 bench --protocol resp-cluster --wait 1 --ratio 0:1 --seconds 10\n  veltrix bench --protocol etcd --etcd 127.0.0.1:2379,127.0.0.1:22379 --ratio 0:1 --seconds 10\n\nscripts/bench-cluster.sh runs the replicated comparison."
    )]
    Bench {
        /// Which data port to load.
        #[arg(long, value_enum, default_value = "native")]
        protocol: BenchProtocol,
        /// Concurrent connections.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Total requests.
        #[arg(long, default_value_t = 100_000, conflicts_with = "seconds")]
        requests: u64,
        /// Run for this many seconds instead of a request count.
        #[arg(long)]
        seconds: Option<u64>,
        /// Bytes per value written.
        #[arg(long, default_value_t = 100)]
        value_bytes: usize,
        /// Distinct keys (drawn uniformly).
        #[arg(long, default_value_t = 10_000)]
        keys: u64,
        /// gets:sets.
        #[arg(long, default_value = "1:1", value_parser = bench::parse_ratio)]
        ratio: (u32, u32),
        /// Requests per connection in flight.
        #[arg(long, default_value_t = 1)]
        pipeline: usize,
        /// After each SET send `WAIT N 0` on the same connection; the SET
        /// counts as done when N replicas have it (resp, resp-cluster).
        #[arg(long)]
        wait: Option<u32>,
        /// etcd client URLs' HOST:PORT, comma-separated; clients are spread
        /// over them in turn, as etcd's own client balances (etcd only).
        #[arg(long, value_delimiter = ',', default_value = "127.0.0.1:2379")]
        etcd: Vec<String>,
    },
}

#[derive(Subcommand, Debug)]
enum ClusterCommand {
    /// Start a local development cluster on loopback: one veltrixd per
    /// node, each in its own zone, RESP on --base-port and up. Runs until
    /// Ctrl-C; the data stays in DIR, and running it again restarts the
    /// same cluster.
    #[command(
        after_help = "Example:\n  veltrix cluster local                 # 3 nodes, RESP on 127.0.0.1:7001-7003\n  redis-cli -c -p 7001 set greeting hello"
    )]
    Local {
        /// Where the nodes' configurations, data and logs go.
        #[arg(long, default_value = "./veltrix-local-cluster")]
        dir: PathBuf,
        /// Nodes (each in its own zone); at least 3.
        #[arg(long, default_value_t = 3)]
        nodes: u16,
        /// Node i's RESP port is BASE+i-1; its peer port BASE+100+i-1 and
        /// admin port BASE+200+i-1.
        #[arg(long, default_value_t = 7001)]
        base_port: u16,
    },
    /// One member's view: the groups it hosts, their leaders and terms
    /// (GET /api/cluster on its admin port).
    #[command(after_help = "Example:\n  veltrix --admin 127.0.0.1:7201 cluster status")]
    Status {
        /// Print the admin API's JSON as is.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
enum AuditCommand {
    /// Check every entry's hash chain and signature and the sequence; exit
    /// non-zero naming the first entry that fails.
    Verify {
        /// The audit directory (`<data_dir>/audit`).
        #[arg(long, default_value = "veltrix-data/audit")]
        dir: PathBuf,
        /// The log's public key (64 hex digits), recorded apart from the
        /// machine; default: `signing.pub` beside the log.
        #[arg(long)]
        public_key: Option<String>,
    },
    /// Verify, then print the last entries.
    Tail {
        #[arg(long, default_value = "veltrix-data/audit")]
        dir: PathBuf,
        /// How many.
        #[arg(short, default_value_t = 20)]
        n: usize,
    },
}

#[derive(Subcommand, Debug)]
enum UpdateCommand {
    /// The running slot and release, the boot state and each slot's release.
    Status,
    /// Send a bundle: verified by the appliance, written into the slot that
    /// is not the last good one, booted on trial at the next reboot.
    Install {
        /// The bundle (`veltrix-update-VERSION.vxb` from `image build`).
        bundle: PathBuf,
    },
    /// Give up the slot on trial; with none, go back to the other slot's
    /// release (on trial) at the next reboot.
    Rollback,
}

#[derive(Subcommand, Debug)]
enum NvmeCommand {
    /// One line per NVMe controller: PCI address, driver, IOMMU group and
    /// the kernel's block devices.
    List,
    /// Bind a controller to a driver and wait until it has it. Refuses to
    /// take a controller from the kernel while one of its namespaces is
    /// mounted or used as swap.
    Bind {
        /// The controller's PCI address (DDDD:BB:DD.F).
        #[arg(value_parser = nvme::parse_pci_address)]
        address: String,
        /// Where it goes.
        #[arg(long, value_enum)]
        driver: NvmeDriver,
    },
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum NvmeDriver {
    /// The userspace driver's side: vfio-pci.
    VfioPci,
    /// The kernel's nvme driver.
    Nvme,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum BenchProtocol {
    /// One server's RESP port (--resp).
    Resp,
    /// veltrixd's native port (--native).
    Native,
    /// A Redis Cluster: slot map from --resp, keys routed by slot.
    RespCluster,
    /// etcd v3's HTTP/JSON gateway (--etcd), puts only.
    Etcd,
}

fn resolve(text: &str, what: &str) -> anyhow::Result<SocketAddr> {
    text.to_socket_addrs()
        .with_context(|| format!("bad {what} address `{text}` (want HOST:PORT)"))?
        .next()
        .with_context(|| format!("{what} address `{text}` resolves to nothing"))
}

/// The TLS the flags ask for, if any.
fn tls(args: &Args) -> anyhow::Result<Option<TlsClient>> {
    let Some(ca) = &args.cacert else {
        anyhow::ensure!(
            args.cert.is_none() && args.tls_name.is_none(),
            "--cert and --tls-name need --cacert (TLS)"
        );
        return Ok(None);
    };
    let identity = args.cert.as_deref().zip(args.tls_key.as_deref());
    Ok(Some(TlsClient::new(ca, identity, args.tls_name.clone())?))
}

fn native(args: &Args) -> anyhow::Result<Client> {
    let addr = resolve(&args.native, "native")?;
    let context =
        || format!("cannot use the native port at {addr} (is veltrixd running? --native ADDR)");
    match tls(args)? {
        None => Client::connect(addr).with_context(context),
        Some(tls) => {
            let stream = tls.connect(addr, std::time::Duration::from_secs(10))?;
            Client::over(stream, addr.to_string()).with_context(context)
        }
    }
}

fn admin_get(args: &Args, path: &str) -> anyhow::Result<String> {
    let scheme = http::scheme();
    let addr = resolve(&args.admin, "admin")?;
    let answer = http::request(addr, "GET", path)?;
    if answer.status != 200 {
        bail!(
            "{scheme}://{addr}{path} answered {}: {}",
            answer.status,
            answer.body.trim()
        );
    }
    Ok(answer.body)
}

fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if let Some(tls) = tls(args)? {
        http::use_tls(tls);
    }
    if let Some(path) = &args.token_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--token-file {}: cannot read", path.display()))?;
        http::use_token(text.lines().next().unwrap_or("").trim().to_string());
    }
    let scheme = http::scheme();
    let mut stdout = std::io::stdout().lock();
    match &args.command {
        Command::Status => {
            write!(stdout, "{}", admin_get(args, "/api/status")?)?;
        }
        Command::Cluster(ClusterCommand::Local {
            dir,
            nodes,
            base_port,
        }) => appliance::cli::cluster::local(dir, *nodes, *base_port, &mut stdout)?,
        Command::Cluster(ClusterCommand::Status { json }) => {
            let addr = resolve(&args.admin, "admin")?;
            appliance::cli::cluster::status(addr, *json, &mut stdout)?;
        }
        Command::Shards { json } => {
            let body = admin_get(args, "/api/shards")?;
            if *json {
                write!(stdout, "{body}")?;
            } else {
                shards_summary(&body, &mut stdout)?;
            }
        }
        Command::Get { key } => match native(args)?.get(key.as_bytes())? {
            Some(value) => {
                stdout.write_all(&value)?;
                if std::io::IsTerminal::is_terminal(&stdout) {
                    writeln!(stdout)?;
                }
            }
            None => {
                eprintln!("(not found) {key}");
                return Ok(ExitCode::from(1));
            }
        },
        Command::Put { key, value, file } => {
            let value = match (value, file) {
                (Some(v), _) => v.clone().into_bytes(),
                (None, Some(path)) => std::fs::read(path)
                    .with_context(|| format!("cannot read {}", path.display()))?,
                (None, None) => bail!("give a value or --file"),
            };
            native(args)?.put(key.as_bytes(), &value)?;
            writeln!(stdout, "OK")?;
        }
        Command::Del { key } => {
            let existed = native(args)?.delete(key.as_bytes())?;
            writeln!(stdout, "{}", if existed { "deleted" } else { "not found" })?;
        }
        Command::Audit { action } => match action {
            AuditCommand::Verify { dir, public_key } => {
                appliance::cli::audit::verify(dir, public_key.as_deref(), &mut stdout)?
            }
            AuditCommand::Tail { dir, n } => appliance::cli::audit::tail(dir, *n, &mut stdout)?,
        },
        Command::Update { action } => {
            let addr = resolve(&args.admin, "admin")?;
            let action = match action {
                UpdateCommand::Status => appliance::cli::update::Action::Status,
                UpdateCommand::Install { bundle } => {
                    appliance::cli::update::Action::Install(bundle)
                }
                UpdateCommand::Rollback => appliance::cli::update::Action::Rollback,
            };
            appliance::cli::update::run(addr, &action, &mut stdout)?;
        }
        Command::Gc => {
            let addr = resolve(&args.admin, "admin")?;
            let answer = http::request(addr, "POST", "/api/gc")?;
            match answer.status {
                200..=299 => write!(stdout, "{}", answer.body)?,
                404 | 405 => bail!(
                    "this daemon has no GC endpoint ({scheme}://{addr}/api/gc answered {}): it predates VLog GC",
                    answer.status
                ),
                status => bail!("GC failed: {scheme}://{addr}/api/gc answered {status}: {}", answer.body.trim()),
            }
        }
        Command::Checkpoint => {
            let addr = resolve(&args.admin, "admin")?;
            checkpoint(addr, &mut stdout)?;
        }
        Command::HashPassword => {
            let mut line = String::new();
            std::io::stdin().read_line(&mut line)?;
            let password = line.strip_suffix('\n').unwrap_or(&line);
            let password = password.strip_suffix('\r').unwrap_or(password);
            anyhow::ensure!(!password.is_empty(), "no password on stdin");
            writeln!(
                stdout,
                "{}",
                appliance::auth::hash_password(password.as_bytes())?
            )?;
        }
        Command::Format {
            path,
            size,
            segment_size,
            force,
        } => offline::format(path, *size, *segment_size, *force, &mut stdout)?,
        Command::Inspect { path } => {
            let report = offline::inspect(path, &mut stdout)?;
            if report.corrupt() {
                return Ok(ExitCode::from(2));
            }
        }
        Command::Nvme(NvmeCommand::List) => nvme::list(&mut stdout)?,
        Command::Nvme(NvmeCommand::Bind { address, driver }) => {
            let driver = match driver {
                NvmeDriver::VfioPci => nvme::Driver::VfioPci,
                NvmeDriver::Nvme => nvme::Driver::Nvme,
            };
            nvme::bind(address, driver, &mut stdout)?;
        }
        Command::Bench {
            protocol,
            clients,
            requests,
            seconds,
            value_bytes,
            keys,
            ratio,
            pipeline,
            wait,
            etcd,
        } => {
            let (protocol, addrs) = match protocol {
                BenchProtocol::Native => (
                    bench::Protocol::Native,
                    vec![resolve(&args.native, "native")?],
                ),
                BenchProtocol::Resp => (bench::Protocol::Resp, vec![resolve(&args.resp, "RESP")?]),
                BenchProtocol::RespCluster => (
                    bench::Protocol::RespCluster,
                    vec![resolve(&args.resp, "RESP")?],
                ),
                BenchProtocol::Etcd => (
                    bench::Protocol::Etcd,
                    etcd.iter()
                        .map(|text| resolve(text, "etcd"))
                        .collect::<anyhow::Result<_>>()?,
                ),
            };
            let options = bench::Options {
                protocol,
                addrs,
                clients: *clients,
                requests: *requests,
                seconds: *seconds,
                value_bytes: *value_bytes,
                keys: *keys,
                gets: ratio.0,
                sets: ratio.1,
                pipeline: *pipeline,
                wait: *wait,
            };
            let bar = match seconds {
                Some(s) => indicatif::ProgressBar::new(*s),
                None => indicatif::ProgressBar::new(*requests),
            };
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} {msg} [{bar:40}] {pos}/{len} {elapsed}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            let started = std::time::Instant::now();
            let outcome = bench::run(&options, &|answered| {
                bar.set_message(format!("{answered} requests"));
                match seconds {
                    Some(_) => bar.set_position(started.elapsed().as_secs()),
                    None => bar.set_position(answered),
                }
            })?;
            bar.finish_and_clear();
            bench::print(&options, &outcome, &mut stdout)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A number field of one of our admin port's JSON answers (their shape is
/// ours, so plain string scanning does).
fn json_u64(body: &str, name: &str) -> Option<u64> {
    let at = body.find(&format!("\"{name}\":"))? + name.len() + 3;
    let rest = &body[at..];
    let end = rest.find([',', '}'])?;
    rest[..end].trim().parse().ok()
}

/// Starts a checkpoint and waits for its outcome.
fn checkpoint(addr: SocketAddr, out: &mut dyn Write) -> anyhow::Result<()> {
    let scheme = http::scheme();
    let count = |body: &str| {
        (
            json_u64(body, "checkpoints").unwrap_or(0),
            json_u64(body, "failures").unwrap_or(0),
        )
    };
    let answer = http::request(addr, "POST", "/api/checkpoint")?;
    match answer.status {
        200..=299 => {}
        404 | 405 => bail!(
            "this daemon has no checkpoint endpoint ({scheme}://{addr}/api/checkpoint answered {}): it predates index checkpoints",
            answer.status
        ),
        status => bail!(
            "checkpoint failed: {scheme}://{addr}/api/checkpoint answered {status}: {}",
            answer.body.trim()
        ),
    }
    let before = count(&answer.body);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(600);
    while std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let now = http::request(addr, "GET", "/api/checkpoint")?;
        let (done, failed) = count(&now.body);
        if failed > before.1 {
            bail!(
                "the checkpoint failed (see the daemon's log): {}",
                now.body.trim()
            );
        }
        if done > before.0 {
            writeln!(
                out,
                "checkpoint durable ({done} this run, {} bytes written in all; {} segments hold checkpoints)",
                json_u64(&now.body, "bytes").unwrap_or(0),
                json_u64(&now.body, "segments").unwrap_or(0)
            )?;
            return Ok(());
        }
    }
    bail!("no checkpoint became durable within 10 minutes")
}

/// A per-worker summary of `/api/shards`, read with plain string scanning
/// (the JSON's shape is ours).
fn shards_summary(body: &str, out: &mut dyn Write) -> anyhow::Result<()> {
    let field = |name: &str| -> Option<String> {
        let at = body.find(&format!("\"{name}\":"))? + name.len() + 3;
        let rest = &body[at..];
        let end = rest.find([',', '}'])?;
        Some(rest[..end].to_string())
    };
    let per_worker = body
        .split("\"shards_per_worker\":[")
        .nth(1)
        .and_then(|r| r.split(']').next())
        .context("the admin port's /api/shards answer lacks shards_per_worker")?;
    writeln!(
        out,
        "{} shards over {} workers, {} keys",
        field("shard_count").unwrap_or_default(),
        field("workers").unwrap_or_default(),
        field("keys").unwrap_or_default()
    )?;
    for (worker, n) in per_worker.split(',').enumerate() {
        writeln!(out, "  worker {worker}: {n} shards")?;
    }
    writeln!(out, "(veltrix shards --json lists every shard's owner)")?;
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("veltrix: {e:#}");
            ExitCode::from(1)
        }
    }
}
