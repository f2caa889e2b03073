//! The harness's quick mode: every system this machine can run, on tiny
//! data for a fraction of a second per phase, through the same code as the
//! full benchmark; then the table, the goals and the plots. It checks what
//! could break: every read of a loaded key finds it (run_system fails
//! otherwise), every phase did work, write amplification is counted, the
//! engine's index is measured, fio produced its rows, the plots are SVG.
//! Systems whose tools are missing are skipped out loud.

use std::path::{Path, PathBuf};
use std::process::Command;

use bench::driver::System;
use bench::report;
use bench::run::{self, Plan};
use bench::workload::{Distribution, Mix};

fn probe(program: &Path) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// veltrixd as `cargo test --workspace` builds it: beside this test's
/// `deps` folder.
fn veltrixd() -> Option<PathBuf> {
    let exe = std::env::current_exe().ok()?;
    let path = exe.parent()?.parent()?.join("veltrixd");
    probe(&path).then_some(path)
}

#[test]
fn quick_mode_runs_every_available_system_and_reports() {
    let dir = tempfile::Builder::new()
        .prefix("veltrix-bench-quick")
        .tempdir_in("/var/tmp")
        .expect("a scratch directory on a file system with O_DIRECT");
    let plan = Plan {
        dataset: "cached".into(),
        records: 2_000,
        value_bytes: 1024,
        fill_writers: vec![1, 8],
        ycsb_threads: 4,
        mixes: vec![Mix::A, Mix::C, Mix::F],
        distributions: vec![Distribution::Zipf99, Distribution::Uniform],
        seconds: 0.2,
        load_threads: 4,
    };
    let veltrixd = veltrixd();
    let mut systems = Vec::new();
    for system in System::ALL {
        let why = if !system.available() {
            Some("built without the `rocksdb` feature".to_string())
        } else if matches!(system, System::RedisAlways | System::RedisEverysec)
            && !probe(Path::new("redis-server"))
        {
            Some("redis-server is not installed".to_string())
        } else if system == System::VeltrixdResp && veltrixd.is_none() {
            Some("no veltrixd beside the test binary (cargo build -p appliance)".to_string())
        } else {
            None
        };
        match why {
            Some(why) => bench::skipped(&format!("quick mode: {}", system.label()), &why),
            None => systems.push(system),
        }
    }
    let fio = bench::fio::available();
    if !fio {
        bench::skipped("quick mode: fio rows", "fio is not installed");
    }

    let mut rows = Vec::new();
    for system in &systems {
        let mut options = run::store_options(
            &dir.path().join(format!("{system:?}")),
            1 << 20,
            2,
            256 << 20,
        );
        if let Some(path) = &veltrixd {
            options.veltrixd = path.clone();
        }
        let started = std::time::Instant::now();
        let result = run::run_system(*system, &options, &plan, true)
            .unwrap_or_else(|e| panic!("{}: {e:#}", system.label()));
        eprintln!(
            "{}: {:.1} s",
            system.label(),
            started.elapsed().as_secs_f64()
        );
        let phases = plan.fill_writers.len() + plan.mixes.len() * plan.distributions.len();
        let own: Vec<_> = result
            .iter()
            .filter(|r| r.system == system.label())
            .collect();
        assert_eq!(own.len(), phases, "{}: one row per phase", system.label());
        for row in &own {
            assert!(row.ops > 0, "{}: {} did nothing", row.system, row.mix);
            assert!(row.p50_us <= row.p99_us && row.p99_us <= row.p999_us);
            if row.mix == "fill" || row.mix == "YCSB-A" {
                let wa = row.write_amp.expect("puts have a write amplification");
                // Group commit pads frames to 4 KiB and LSMs write a WAL,
                // but nothing writes less than the user's bytes, nor 100×.
                assert!(
                    wa > 0.5 && wa < 100.0,
                    "{}: {} WA {wa}",
                    row.system,
                    row.mix
                );
            }
        }
        if *system == System::Veltrix {
            let index = own[0].index_bytes_per_key.expect("engine index measured");
            // 2,000 keys over 1,024 shards: each shard's tree has its fixed
            // overhead, so this is far above the ~38 B/key of big datasets.
            assert!(
                index > 8.0 && index < 2_000.0,
                "index bytes per key {index}"
            );
            if fio {
                assert_eq!(result.iter().filter(|r| r.system == "fio").count(), 2);
            }
        }
        rows.push(result);
    }
    assert!(systems.contains(&System::Veltrix) && systems.contains(&System::Fjall));

    let aggregated = report::aggregate(&[rows.concat()]);
    let table = report::table(&aggregated);
    for system in &systems {
        assert!(
            table.contains(system.label()),
            "{} in the table",
            system.label()
        );
    }
    let fjall_c = aggregated
        .iter()
        .find(|r| r.median.system == System::Fjall.label() && r.median.mix == "YCSB-C")
        .expect("fjall's YCSB-C row");
    assert!(
        fjall_c.ours_over_this.is_some(),
        "a peer's row has its ratio"
    );
    let goals = report::goals_table(&report::goals(&aggregated));
    assert!(goals.contains("fjall"));
    println!("{table}\n{goals}");

    let svg = dir.path().join("fill.svg");
    assert!(bench::plot::throughput(&aggregated, "cached", 1024, &svg).expect("plot"));
    let text = std::fs::read_to_string(&svg).expect("the plot");
    assert!(text.starts_with("<svg") && text.contains("polyline"));
    let cdf = dir.path().join("cdf.svg");
    assert!(
        bench::plot::latency_cdf(&aggregated, "YCSB-C", |r| r.median.mix == "YCSB-C", &cdf)
            .expect("plot")
    );
}
