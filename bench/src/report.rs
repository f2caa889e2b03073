//! The Markdown table: medians over runs, the ratio of ours to each peer
//! (the median of the ratios measured within each run), and the goals.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use crate::driver::System;
use crate::run::PhaseResult;

/// One row after aggregation over runs.
#[derive(Clone, Debug)]
pub struct Row {
    /// The median run's row (its CDF is the one plotted), with every
    /// figure replaced by its median over runs.
    pub median: PhaseResult,
    /// Runs that produced this row.
    pub runs: usize,
    /// Ours ÷ this system, ops/s, median of the per-run ratios. Ours is the
    /// in-process engine for in-process peers and fio, veltrixd for servers.
    pub ours_over_this: Option<f64>,
    /// The per-run ratios, for the noise.
    pub ratios: Vec<f64>,
}

type RowKey = (String, usize, String, String, usize);

fn median(mut values: Vec<f64>) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

fn median_opt(values: Vec<Option<f64>>) -> Option<f64> {
    let present: Vec<f64> = values.into_iter().flatten().collect();
    (!present.is_empty()).then(|| median(present))
}

/// Which system a peer's row is compared with.
fn ours_for(system: &str) -> &'static str {
    let networked = [
        System::RedisAlways,
        System::RedisEverysec,
        System::VeltrixdResp,
    ]
    .iter()
    .any(|s| s.label() == system);
    if networked {
        System::VeltrixdResp.label()
    } else {
        System::Veltrix.label()
    }
}

/// Medians over `runs` (each run: every row of every system) in the order
/// the rows first appeared.
pub fn aggregate(runs: &[Vec<PhaseResult>]) -> Vec<Row> {
    let mut order: Vec<(RowKey, String)> = Vec::new();
    let mut groups: BTreeMap<(RowKey, String), Vec<(usize, &PhaseResult)>> = BTreeMap::new();
    for (run, rows) in runs.iter().enumerate() {
        for row in rows {
            let id = (row.row_key(), row.system.clone());
            if !groups.contains_key(&id) {
                order.push(id.clone());
            }
            groups.entry(id).or_default().push((run, row));
        }
    }
    order
        .into_iter()
        .map(|id| {
            let group = &groups[&id];
            let mut sorted: Vec<&PhaseResult> = group.iter().map(|(_, r)| *r).collect();
            sorted.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
            let mut m = sorted[sorted.len() / 2].clone();
            let all =
                |f: fn(&PhaseResult) -> f64| median(group.iter().map(|(_, r)| f(r)).collect());
            m.ops_per_s = all(|r| r.ops_per_s);
            m.p50_us = all(|r| r.p50_us);
            m.p99_us = all(|r| r.p99_us);
            m.p999_us = all(|r| r.p999_us);
            m.cpu_s_per_mop = all(|r| r.cpu_s_per_mop);
            m.rss_mib = all(|r| r.rss_mib);
            m.write_amp = median_opt(group.iter().map(|(_, r)| r.write_amp).collect());
            m.index_bytes_per_key =
                median_opt(group.iter().map(|(_, r)| r.index_bytes_per_key).collect());
            let ours = ours_for(&id.1);
            let ratios: Vec<f64> = if id.1 == ours {
                Vec::new()
            } else {
                group
                    .iter()
                    .filter_map(|(run, peer)| {
                        runs[*run]
                            .iter()
                            .find(|r| r.system == ours && r.row_key() == id.0)
                            .filter(|_| peer.ops_per_s > 0.0)
                            .map(|o| o.ops_per_s / peer.ops_per_s)
                    })
                    .collect()
            };
            Row {
                median: m,
                runs: group.len(),
                ours_over_this: (!ratios.is_empty()).then(|| median(ratios.clone())),
                ratios,
            }
        })
        .collect()
}

fn thousands(x: f64) -> String {
    let n = x.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn size(bytes: usize) -> String {
    if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{} KiB", bytes / 1024)
    } else {
        format!("{bytes} B")
    }
}

fn opt(x: Option<f64>, digits: usize) -> String {
    x.map_or_else(|| "–".to_string(), |x| format!("{x:.digits$}"))
}

/// The table of every row.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str("| dataset | value | workload | keys | conc. | system | ops/s | P50 / P99 / P999 µs | CPU s per M ops | device B per user B | RSS MiB | index B per key | ours ÷ this (runs) |\n");
    out.push_str("|---|---:|---|---|---:|---|---:|---:|---:|---:|---:|---:|---:|\n");
    for row in rows {
        let r = &row.median;
        let ratio = match row.ours_over_this {
            Some(x) => {
                let each: Vec<String> = row.ratios.iter().map(|x| format!("{x:.2}")).collect();
                format!("**{x:.2}** ({})", each.join(", "))
            }
            None => "–".to_string(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {:.0} / {:.0} / {:.0} | {:.1} | {} | {:.0} | {} | {} |",
            r.dataset,
            size(r.value_bytes),
            r.mix,
            r.distribution,
            r.concurrency,
            r.system,
            thousands(r.ops_per_s),
            r.p50_us,
            r.p99_us,
            r.p999_us,
            r.cpu_s_per_mop,
            opt(r.write_amp, 2),
            r.rss_mib,
            opt(r.index_bytes_per_key, 1),
            ratio
        );
    }
    out
}

/// A goal's verdict.
#[derive(Clone, Debug)]
pub struct Goal {
    pub name: String,
    pub target: f64,
    /// The measured figure per value size, with where it came from.
    pub measured: Vec<(usize, f64)>,
}

impl Goal {
    pub fn met(&self) -> bool {
        !self.measured.is_empty() && self.measured.iter().all(|(_, x)| *x >= self.target)
    }
}

fn find<'a>(
    rows: &'a [Row],
    system: &str,
    dataset: &str,
    mix: &str,
    distribution: &str,
) -> Vec<&'a Row> {
    rows.iter()
        .filter(|r| {
            r.median.system == system
                && r.median.dataset == dataset
                && r.median.mix == mix
                && r.median.distribution == distribution
        })
        .collect()
}

fn ratio_goal(name: &str, target: f64, peers: Vec<&Row>, concurrency: Option<usize>) -> Goal {
    Goal {
        name: name.to_string(),
        target,
        measured: peers
            .into_iter()
            .filter(|r| concurrency.is_none_or(|c| r.median.concurrency == c))
            .filter_map(|r| r.ours_over_this.map(|x| (r.median.value_bytes, x)))
            .collect(),
    }
}

/// The goals, measured from `rows`.
pub fn goals(rows: &[Row]) -> Vec<Goal> {
    let fill_max = rows
        .iter()
        .filter(|r| r.median.mix == "fill" && r.median.system != "fio")
        .map(|r| r.median.concurrency)
        .max();
    let rocks = System::Rocksdb.label();
    let fjall = System::Fjall.label();
    let mut goals = vec![
        Goal {
            name: "GET from the device ≥ 0.90 × fio at the same QD (YCSB-C uniform, device dataset)"
                .into(),
            target: 0.9,
            measured: find(rows, "fio", "device", "YCSB-C", "uniform")
                .into_iter()
                .filter_map(|r| r.ours_over_this.map(|x| (r.median.value_bytes, x)))
                .collect(),
        },
        ratio_goal(
            "GET, cached data ≥ 3 × RocksDB (YCSB-C zipf 0.99, cached dataset)",
            3.0,
            find(rows, rocks, "cached", "YCSB-C", "zipf 0.99"),
            None,
        ),
        ratio_goal(
            "GET, cached data ≥ 2 × fjall (YCSB-C zipf 0.99, cached dataset)",
            2.0,
            find(rows, fjall, "cached", "YCSB-C", "zipf 0.99"),
            None,
        ),
        ratio_goal(
            "durable PUT, most writers ≥ 3 × RocksDB sync=true (fill, cached dataset)",
            3.0,
            find(rows, rocks, "cached", "fill", "sequential"),
            fill_max,
        ),
        ratio_goal(
            "durable PUT, most writers ≥ 1 × Redis appendfsync always, same client (veltrixd vs Redis)",
            1.0,
            find(rows, System::RedisAlways.label(), "cached", "fill", "sequential"),
            fill_max,
        ),
    ];
    // Write amplification is a ceiling: store its inverse against 1/1.1 so
    // that `met` reads alike for every goal.
    let wa: Vec<(usize, f64)> = find(
        rows,
        System::Veltrix.label(),
        "cached",
        "fill",
        "sequential",
    )
    .into_iter()
    .filter(|r| Some(r.median.concurrency) == fill_max)
    .filter_map(|r| r.median.write_amp.map(|x| (r.median.value_bytes, x)))
    .collect();
    goals.push(Goal {
        name: "write amplification on load ≤ 1.1 (fill, most writers; shown as 1 / WA ≥ 0.91)"
            .into(),
        target: 1.0 / 1.1,
        measured: wa.into_iter().map(|(v, x)| (v, 1.0 / x)).collect(),
    });
    goals
}

/// The goals as a Markdown table.
pub fn goals_table(goals: &[Goal]) -> String {
    let mut out =
        String::from("| goal | target | measured, by value size | verdict |\n|---|---:|---|---|\n");
    for goal in goals {
        let measured: Vec<String> = goal
            .measured
            .iter()
            .map(|(v, x)| format!("{}: {x:.2}", size(*v)))
            .collect();
        let verdict = if goal.measured.is_empty() {
            "not measured"
        } else if goal.met() {
            "met"
        } else {
            "**missed**"
        };
        let _ = writeln!(
            out,
            "| {} | {:.2} | {} | {} |",
            goal.name,
            goal.target,
            if measured.is_empty() {
                "–".to_string()
            } else {
                measured.join("; ")
            },
            verdict
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::measure::Cdf;

    fn row(system: &str, mix: &str, ops: f64) -> PhaseResult {
        PhaseResult {
            system: system.into(),
            dataset: "cached".into(),
            value_bytes: 100,
            mix: mix.into(),
            distribution: "zipf 0.99".into(),
            concurrency: 4,
            ops: 1,
            seconds: 1.0,
            ops_per_s: ops,
            p50_us: 1.0,
            p99_us: 2.0,
            p999_us: 3.0,
            cpu_s_per_mop: 1.0,
            write_amp: None,
            rss_mib: 1.0,
            index_bytes_per_key: None,
            cdf: Cdf::default(),
        }
    }

    #[test]
    fn ratios_are_per_run_then_median() {
        let ours = System::Veltrix.label();
        let fjall = System::Fjall.label();
        let runs = vec![
            vec![row(ours, "YCSB-C", 300.0), row(fjall, "YCSB-C", 100.0)],
            vec![row(ours, "YCSB-C", 100.0), row(fjall, "YCSB-C", 100.0)],
            vec![row(ours, "YCSB-C", 400.0), row(fjall, "YCSB-C", 200.0)],
        ];
        let rows = aggregate(&runs);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].median.ops_per_s, 300.0);
        let peer = &rows[1];
        assert_eq!(peer.ratios, vec![3.0, 1.0, 2.0]);
        assert_eq!(peer.ours_over_this, Some(2.0));
        let goals = goals(&rows);
        let fjall_goal = goals
            .iter()
            .find(|g| g.name.contains("2 × fjall"))
            .expect("goal");
        assert!(fjall_goal.met());
        let rocks_goal = goals
            .iter()
            .find(|g| g.name.contains("3 × RocksDB (YCSB"))
            .expect("goal");
        assert!(!rocks_goal.met(), "an unmeasured goal is not met");
        assert!(table(&rows).contains("**2.00** (3.00, 1.00, 2.00)"));
    }
}
