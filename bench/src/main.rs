//! `bench`: VeltrixDB against its peers.
//!
//! ```sh
//! scripts/bench-all.sh                       # the whole table and its plots
//! cargo run --release -p bench --features rocksdb -- all --runs 3
//! cargo run -p bench -- all --quick          # seconds, tiny data
//! ```
//!
//! `all` runs every (run, dataset, value size, system) as its own child
//! process (`cell`), so each system's resident memory, CPU time and I/O
//! counters are its own; then it writes `results.json`, `table.md` and the
//! SVG plots to `--out`.
#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use bench::driver::System;
use bench::report;
use bench::run::{self, PhaseResult, Plan};
use bench::workload::{Distribution, Mix, KEY_BYTES};
use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(about = "VeltrixDB against RocksDB, fjall, Redis and fio")]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand, Debug)]
enum Commands {
    /// Every system, dataset and value size; the table and the plots.
    All(AllArgs),
    /// One system on one dataset and value size (what `all` runs per child).
    Cell(CellArgs),
    /// The table and plots again, from a results.json.
    Report {
        #[arg(long, default_value = "target/bench-results")]
        out: PathBuf,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Dataset {
    /// Half the cache budget: every read can be served from cache.
    Cached,
    /// Four times the cache budget in values: most reads go to the device.
    Device,
}

impl Dataset {
    fn name(self) -> &'static str {
        match self {
            Dataset::Cached => "cached",
            Dataset::Device => "device",
        }
    }

    fn records(self, cache_bytes: u64, value_bytes: usize) -> u64 {
        match self {
            Dataset::Cached => cache_bytes / 2 / (KEY_BYTES + value_bytes) as u64,
            Dataset::Device => (cache_bytes * 4).div_ceil(value_bytes as u64),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum MixArg {
    A,
    B,
    C,
    F,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DistributionArg {
    Zipf,
    Uniform,
}

#[derive(Args, Debug, Clone)]
struct Common {
    /// The read cache budget of every system, MiB.
    #[arg(long, default_value_t = 64)]
    cache_mib: u64,
    /// Measured seconds per phase.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Writers of the fill phases.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 16, 64])]
    fill_writers: Vec<usize>,
    /// Client threads of the YCSB phases (and fio's queue depth).
    #[arg(long, default_value_t = 16)]
    ycsb_threads: usize,
    #[arg(long, value_delimiter = ',', default_values = ["a", "b", "c", "f"])]
    mixes: Vec<MixArg>,
    #[arg(long, value_delimiter = ',', default_values = ["zipf", "uniform"])]
    distributions: Vec<DistributionArg>,
    /// Engine (and veltrixd) workers.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Size of the engine's namespace file, GiB.
    #[arg(long, default_value_t = 8)]
    namespace_gib: u64,
    /// Where the systems keep their files (must allow O_DIRECT: not tmpfs).
    #[arg(long, default_value = "/var/tmp/veltrix-bench-all")]
    dir: PathBuf,
    /// The veltrixd binary (default: beside this one).
    #[arg(long)]
    veltrixd: Option<PathBuf>,
}

#[derive(Args, Debug)]
struct AllArgs {
    #[command(flatten)]
    common: Common,
    /// Systems to run (default: every one this build has).
    #[arg(long, value_delimiter = ',')]
    systems: Vec<System>,
    #[arg(long, value_delimiter = ',', default_values_t = [100usize, 1024, 4096])]
    value_bytes: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_values = ["cached", "device"])]
    datasets: Vec<Dataset>,
    /// Runs of everything; the table has medians, and ratios within runs.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Tiny data and short phases, one run: a smoke test in seconds.
    #[arg(long)]
    quick: bool,
    /// Where results.json, table.md and the plots go.
    #[arg(long, default_value = "target/bench-results")]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct CellArgs {
    #[command(flatten)]
    common: Common,
    #[arg(long)]
    system: System,
    #[arg(long)]
    value_bytes: usize,
    #[arg(long)]
    dataset: Dataset,
    /// Also run fio on the engine's file.
    #[arg(long)]
    fio: bool,
}

fn plan(common: &Common, dataset: Dataset, value_bytes: usize) -> Plan {
    Plan {
        dataset: dataset.name().to_string(),
        records: dataset.records(common.cache_mib << 20, value_bytes).max(64),
        value_bytes,
        fill_writers: common.fill_writers.clone(),
        ycsb_threads: common.ycsb_threads,
        mixes: common
            .mixes
            .iter()
            .map(|m| match m {
                MixArg::A => Mix::A,
                MixArg::B => Mix::B,
                MixArg::C => Mix::C,
                MixArg::F => Mix::F,
            })
            .collect(),
        distributions: common
            .distributions
            .iter()
            .map(|d| match d {
                DistributionArg::Zipf => Distribution::Zipf99,
                DistributionArg::Uniform => Distribution::Uniform,
            })
            .collect(),
        seconds: common.seconds,
        load_threads: 16,
    }
}

fn cell(args: &CellArgs) -> Result<()> {
    // The pid keeps two harnesses on one machine out of each other's files.
    let dir = args.common.dir.join(format!(
        "{:?}-{}-{}-{}",
        args.system,
        args.dataset.name(),
        args.value_bytes,
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    let mut options = run::store_options(
        &dir,
        args.common.cache_mib << 20,
        args.common.workers,
        args.common.namespace_gib << 30,
    );
    if let Some(path) = &args.common.veltrixd {
        options.veltrixd = path.clone();
    }
    let plan = plan(&args.common, args.dataset, args.value_bytes);
    let rows = run::run_system(args.system, &options, &plan, args.fio);
    let _ = std::fs::remove_dir_all(&dir);
    println!("ROWS {}", serde_json::to_string(&rows?)?);
    Ok(())
}

/// Why `system` cannot run here, if it cannot.
fn unavailable(system: System, veltrixd: &Path) -> Option<String> {
    if !system.available() {
        return Some("this build lacks the `rocksdb` feature (scripts/bench-all.sh has it)".into());
    }
    let probe = |program: &Path| {
        Command::new(program)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    match system {
        System::RedisAlways | System::RedisEverysec if !probe(Path::new("redis-server")) => {
            Some("redis-server is not installed (apt-get install redis-server)".into())
        }
        System::VeltrixdResp if !probe(veltrixd) => Some(format!(
            "no veltrixd at {} (cargo build --release -p appliance --bin veltrixd)",
            veltrixd.display()
        )),
        _ => None,
    }
}

fn all(mut args: AllArgs) -> Result<()> {
    if args.quick {
        args.common.cache_mib = 1;
        args.common.seconds = 0.3;
        args.common.fill_writers = vec![1, 4];
        args.common.ycsb_threads = 4;
        args.common.mixes = vec![MixArg::A, MixArg::C];
        args.common.distributions = vec![DistributionArg::Zipf, DistributionArg::Uniform];
        args.common.namespace_gib = 1;
        args.value_bytes = vec![1024];
        args.runs = 1;
    }
    let exe = std::env::current_exe()?;
    let veltrixd = args
        .common
        .veltrixd
        .clone()
        .unwrap_or_else(|| run::store_options(Path::new("."), 0, 1, 0).veltrixd);
    let wanted = if args.systems.is_empty() {
        System::ALL.to_vec()
    } else {
        args.systems.clone()
    };
    let systems: Vec<System> = wanted
        .into_iter()
        .filter(|s| match unavailable(*s, &veltrixd) {
            Some(why) => {
                bench::skipped(s.label(), &why);
                false
            }
            None => true,
        })
        .collect();
    if systems.is_empty() {
        bail!("no system can run");
    }
    std::fs::create_dir_all(&args.out)?;
    let mut runs: Vec<Vec<PhaseResult>> = Vec::new();
    for run in 0..args.runs {
        let mut rows = Vec::new();
        for &dataset in &args.datasets {
            for &value_bytes in &args.value_bytes {
                // Rotate the order each run, so drift does not favour one.
                let mut order = systems.clone();
                let turn = run % order.len();
                order.rotate_left(turn);
                for system in order {
                    eprintln!(
                        "bench: run {}/{} {} dataset, {value_bytes} B values: {}",
                        run + 1,
                        args.runs,
                        dataset.name(),
                        system.label()
                    );
                    let mut command = Command::new(&exe);
                    command
                        .arg("cell")
                        .args(common_args(&args.common, &veltrixd))
                        .args(["--system", &enum_name(system)?])
                        .args(["--value-bytes", &value_bytes.to_string()])
                        .args(["--dataset", dataset.name()]);
                    // fio bounds device reads: the cached dataset never
                    // reaches the device on reads.
                    if system == System::Veltrix && dataset == Dataset::Device {
                        command.arg("--fio");
                    }
                    let output = command.output().context("run a cell")?;
                    let stdout = String::from_utf8_lossy(&output.stdout);
                    let line = stdout.lines().find_map(|l| l.strip_prefix("ROWS "));
                    match (output.status.success(), line) {
                        (true, Some(json)) => {
                            rows.extend(serde_json::from_str::<Vec<PhaseResult>>(json)?)
                        }
                        _ => bail!(
                            "{} failed: {}",
                            system.label(),
                            String::from_utf8_lossy(&output.stderr).trim()
                        ),
                    }
                }
            }
        }
        runs.push(rows);
        std::fs::write(args.out.join("results.json"), serde_json::to_string(&runs)?)?;
    }
    write_report(&args.out, &runs)
}

fn enum_name(system: System) -> Result<String> {
    Ok(system
        .to_possible_value()
        .context("every system has a name")?
        .get_name()
        .to_string())
}

fn common_args(common: &Common, veltrixd: &Path) -> Vec<String> {
    let list = |items: Vec<String>| items.join(",");
    let names = |values: Vec<Option<clap::builder::PossibleValue>>| {
        list(
            values
                .into_iter()
                .flatten()
                .map(|v| v.get_name().to_string())
                .collect(),
        )
    };
    vec![
        format!("--cache-mib={}", common.cache_mib),
        format!("--seconds={}", common.seconds),
        format!(
            "--fill-writers={}",
            list(common.fill_writers.iter().map(|w| w.to_string()).collect())
        ),
        format!("--ycsb-threads={}", common.ycsb_threads),
        format!(
            "--mixes={}",
            names(common.mixes.iter().map(|m| m.to_possible_value()).collect())
        ),
        format!(
            "--distributions={}",
            names(
                common
                    .distributions
                    .iter()
                    .map(|d| d.to_possible_value())
                    .collect()
            )
        ),
        format!("--workers={}", common.workers),
        format!("--namespace-gib={}", common.namespace_gib),
        format!("--dir={}", common.dir.display()),
        format!("--veltrixd={}", veltrixd.display()),
    ]
}

fn write_report(out: &Path, runs: &[Vec<PhaseResult>]) -> Result<()> {
    let rows = report::aggregate(runs);
    let goals = report::goals(&rows);
    let text = format!("{}\n{}", report::table(&rows), report::goals_table(&goals));
    std::fs::write(out.join("table.md"), &text)?;
    println!("{text}");
    let mut plots = Vec::new();
    let mut combos: Vec<(String, usize)> = rows
        .iter()
        .map(|r| (r.median.dataset.clone(), r.median.value_bytes))
        .collect();
    combos.dedup();
    combos.sort();
    combos.dedup();
    for (dataset, value_bytes) in combos {
        let path = out.join(format!("throughput-fill-{dataset}-{value_bytes}.svg"));
        if bench::plot::throughput(&rows, &dataset, value_bytes, &path)? {
            plots.push(path);
        }
        let fill_max = rows
            .iter()
            .filter(|r| r.median.mix == "fill")
            .map(|r| r.median.concurrency)
            .max()
            .unwrap_or(1);
        for (mix, distribution, concurrency) in [
            ("fill", "sequential", fill_max),
            ("YCSB-C", "zipf 0.99", 0),
            ("YCSB-C", "uniform", 0),
            ("YCSB-A", "zipf 0.99", 0),
        ] {
            let path = out.join(format!(
                "cdf-{}-{}-{dataset}-{value_bytes}.svg",
                mix.to_lowercase(),
                distribution.replace([' ', '.'], "")
            ));
            let title = format!(
                "Latency CDF: {mix} {distribution}, {value_bytes}-byte values, {dataset} dataset"
            );
            let pick = |r: &report::Row| {
                let m = &r.median;
                m.mix == mix
                    && m.distribution == distribution
                    && m.dataset == dataset
                    && m.value_bytes == value_bytes
                    && (concurrency == 0 || m.concurrency == concurrency)
            };
            if bench::plot::latency_cdf(&rows, &title, pick, &path)? {
                plots.push(path);
            }
        }
    }
    for path in plots {
        eprintln!("bench: wrote {}", path.display());
    }
    Ok(())
}

fn main() -> Result<()> {
    match Cli::parse().command {
        Commands::All(args) => all(args),
        Commands::Cell(args) => cell(&args),
        Commands::Report { out } => {
            let text = std::fs::read_to_string(out.join("results.json"))?;
            let runs: Vec<Vec<PhaseResult>> = serde_json::from_str(&text)?;
            write_report(&out, &runs)
        }
    }
}
