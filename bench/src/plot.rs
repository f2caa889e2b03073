//! SVG plots: throughput against concurrency, and latency CDFs.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::prelude::*;

use crate::report::Row;

const SIZE: (u32, u32) = (900, 560);

fn color(i: usize) -> RGBColor {
    const PALETTE: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(127, 127, 127),
    ];
    PALETTE[i % PALETTE.len()]
}

fn plot_error<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}

/// Fill throughput against writers, one line per system, for `dataset`
/// and `value_bytes`. Returns false (and writes nothing) without data.
pub fn throughput(rows: &[Row], dataset: &str, value_bytes: usize, path: &Path) -> Result<bool> {
    let mut lines: BTreeMap<&str, Vec<(f64, f64)>> = BTreeMap::new();
    for row in rows {
        let r = &row.median;
        if r.mix == "fill"
            && r.system != "fio"
            && r.dataset == dataset
            && r.value_bytes == value_bytes
        {
            lines
                .entry(r.system.as_str())
                .or_default()
                .push((r.concurrency as f64, r.ops_per_s));
        }
    }
    if lines.is_empty() {
        return Ok(false);
    }
    let x_max = lines.values().flatten().map(|p| p.0).fold(1.0, f64::max) * 1.5;
    let y_max = lines.values().flatten().map(|p| p.1).fold(1.0, f64::max) * 2.0;
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("Durable puts, {value_bytes}-byte values ({dataset} dataset)"),
            ("sans-serif", 22),
        )
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(70)
        .build_cartesian_2d((0.8f64..x_max).log_scale(), (10f64..y_max).log_scale())
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("concurrent writers")
        .y_desc("ops/s")
        .draw()
        .map_err(plot_error)?;
    for (i, (system, mut points)) in lines.into_iter().enumerate() {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        let style = color(i).stroke_width(2);
        chart
            .draw_series(LineSeries::new(points.clone(), style))
            .map_err(plot_error)?
            .label(system)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color(i)));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 3, color(i).filled())),
            )
            .map_err(plot_error)?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(true)
}

/// Latency CDFs of the rows that `pick` selects, one line per system.
pub fn latency_cdf(
    rows: &[Row],
    title: &str,
    pick: impl Fn(&Row) -> bool,
    path: &Path,
) -> Result<bool> {
    let chosen: Vec<&Row> = rows
        .iter()
        .filter(|r| pick(r) && !r.median.cdf.0.is_empty())
        .collect();
    if chosen.is_empty() {
        return Ok(false);
    }
    let x_min = chosen
        .iter()
        .flat_map(|r| r.median.cdf.0.iter().map(|p| p.0))
        .fold(f64::MAX, f64::min)
        .max(0.5);
    let x_max = chosen
        .iter()
        .flat_map(|r| r.median.cdf.0.iter().map(|p| p.0))
        .fold(1.0, f64::max);
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE).map_err(plot_error)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 22))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(60)
        .build_cartesian_2d((x_min * 0.8..x_max * 1.25).log_scale(), 0f64..1.0)
        .map_err(plot_error)?;
    chart
        .configure_mesh()
        .x_desc("latency, µs")
        .y_desc("fraction of requests at or below")
        .draw()
        .map_err(plot_error)?;
    for (i, row) in chosen.iter().enumerate() {
        chart
            .draw_series(LineSeries::new(
                row.median.cdf.0.clone(),
                color(i).stroke_width(2),
            ))
            .map_err(plot_error)?
            .label(row.median.system.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], color(i)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .draw()
        .map_err(plot_error)?;
    root.present().map_err(plot_error)?;
    Ok(true)
}
