//! What each scenario reports: pass, fail or skip, a reason, and timings.

use std::path::PathBuf;
use std::time::Duration;

/// A scenario's verdict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    Skip,
}

/// One scenario's result.
pub struct Outcome {
    pub name: &'static str,
    pub status: Status,
    /// Why it failed or skipped, or what it checked.
    pub reason: String,
    /// Named steps and how long each took.
    pub timings: Vec<(String, Duration)>,
    pub total: Duration,
    /// Console logs kept for a failure.
    pub logs: Vec<PathBuf>,
}

impl Outcome {
    /// Prints the result and its timings.
    pub fn print(&self) {
        let word = match self.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIPPED",
        };
        println!(
            "{word} {} in {:.1} s: {}",
            self.name,
            self.total.as_secs_f64(),
            self.reason
        );
        for (step, took) in &self.timings {
            println!("    {:>7.1} s  {step}", took.as_secs_f64());
        }
        for log in &self.logs {
            println!("    console log kept: {}", log.display());
        }
    }
}

/// Prints the table; true when nothing failed.
pub fn summary(outcomes: &[Outcome], build: Duration, total: Duration) -> bool {
    println!("\n=== hwtests summary ===");
    println!("{:>7.1} s  image build", build.as_secs_f64());
    for o in outcomes {
        let word = match o.status {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::Skip => "SKIPPED",
        };
        println!("{:>7.1} s  {word:<7} {}", o.total.as_secs_f64(), o.name);
    }
    let failed = outcomes.iter().filter(|o| o.status == Status::Fail).count();
    let skipped = outcomes.iter().filter(|o| o.status == Status::Skip).count();
    println!(
        "{:>7.1} s  total: {} passed, {failed} failed, {skipped} skipped",
        total.as_secs_f64(),
        outcomes.len() - failed - skipped
    );
    failed == 0
}
