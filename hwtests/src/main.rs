//! hwtests: the hardware-in-the-loop tier (docs/hwtests.md).
//!
//! Builds the appliance image (or uses the one built), then runs each
//! scenario: boot QEMU with an emulated NVMe controller and three namespaces
//! (plain, PI with separate metadata, PI inline), drive the appliance from
//! the host through forwarded ports with a real Redis client, inject a
//! fault from outside, and check what the appliance promises.

#![forbid(unsafe_code)]

mod gpt;
mod http;
mod prereq;
mod qemu;
mod report;
mod scenarios;
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;

use report::{Outcome, Status};

/// Runs the hardware-in-the-loop scenarios against the appliance image.
#[derive(Parser)]
#[command(
    after_help = "Scenarios: smoke, power-loss, bit-flip, io-errors, stall, disk-boot, vfio-smoke, vfio-power-loss, vfio-conformance (or all).\nExample:\n  cargo run -p hwtests -- all\n  cargo run -p hwtests -- --no-build smoke stall"
)]
struct Args {
    /// Scenarios to run, in order (default: all).
    scenarios: Vec<String>,
    /// Use the image already in TARGET_DIR/image instead of building it.
    #[arg(long)]
    no_build: bool,
    /// QEMU acceleration: auto (try KVM, fall back to TCG), tcg or kvm.
    #[arg(long, default_value = "auto", value_parser = ["auto", "tcg", "kvm"])]
    accel: String,
    /// Power-loss rounds (kill -9 of QEMU under load).
    #[arg(long, default_value_t = 5)]
    power_loss_rounds: u32,
    /// Seed for the random moments of the power-loss scenario (default: from the clock).
    #[arg(long)]
    seed: Option<u64>,
    /// Keep every scenario's directory (backing files, console logs), not only failed ones.
    #[arg(long)]
    keep: bool,
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

fn main() {
    let args = Args::parse();
    match run(&args) {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("hwtests: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run(args: &Args) -> anyhow::Result<bool> {
    let started = Instant::now();
    let names = scenarios::select(&args.scenarios)?;
    let root = workspace_root();
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    prereq::ensure()?;
    let image_dir = target.join("image");
    let build_time = if args.no_build {
        Duration::ZERO
    } else {
        let t = Instant::now();
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = std::process::Command::new(cargo)
            .current_dir(&root)
            .args([
                "run", "--quiet", "--locked", "-p", "image", "--", "build", "--out",
            ])
            .arg(&image_dir)
            .status()
            .context("cannot run cargo run -p image")?;
        anyhow::ensure!(status.success(), "the image build failed");
        t.elapsed()
    };
    let ctx = scenarios::Ctx::new(&root, &target, &image_dir, args)?;
    println!(
        "hwtests: image {} (built in {:.1} s), accel {}, work in {}",
        image_dir.display(),
        build_time.as_secs_f64(),
        ctx.accel,
        ctx.work.display()
    );
    let mut outcomes: Vec<Outcome> = Vec::new();
    for name in names {
        println!("\n=== {name} ===");
        let outcome = scenarios::run(&ctx, name);
        outcome.print();
        if outcome.status == Status::Pass && !args.keep {
            let _ = std::fs::remove_dir_all(ctx.work.join(name));
        }
        outcomes.push(outcome);
    }
    Ok(report::summary(&outcomes, build_time, started.elapsed()))
}
