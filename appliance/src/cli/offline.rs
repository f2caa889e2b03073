//! Offline commands: they open a namespace (file or block device) directly,
//! so veltrixd must not be running on it (the namespace lock refuses).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context};
use engine::inspect::InspectReport;
use engine::{FormatOptions, OpenError};
use nvme::{Backend, Namespace, OpenOptions};

fn open(path: &Path, create_bytes: Option<u64>) -> anyhow::Result<Arc<dyn Namespace>> {
    if create_bytes.is_none() && !path.exists() {
        bail!(
            "{} does not exist (give --size to create a file namespace)",
            path.display()
        );
    }
    let options = OpenOptions {
        backend: Backend::Sync,
        create_bytes,
        ..OpenOptions::default()
    };
    nvme::open(path, &options).map_err(|e| match e {
        nvme::OpenError::InUse { .. } => anyhow::anyhow!(
            "{} is in use (is veltrixd running on it? stop it first): {e}",
            path.display()
        ),
        other => anyhow::Error::new(other).context(format!("cannot open {}", path.display())),
    })
}

/// `veltrix format`: writes a new, empty store. Refuses a namespace that
/// already holds a VeltrixDB store unless `force`.
pub fn format(
    path: &Path,
    size: Option<u64>,
    segment_bytes: u64,
    force: bool,
    out: &mut dyn Write,
) -> anyhow::Result<()> {
    let namespace = open(path, size)?;
    let uuid: [u8; 16] = rand::random();
    let mut options = FormatOptions::new(uuid);
    options.segment_bytes = segment_bytes;
    options.force = force;
    let layout = match engine::format(namespace.as_ref(), &options) {
        Ok(layout) => layout,
        Err(OpenError::AlreadyFormatted { uuid }) => bail!(
            "{} already holds a VeltrixDB store (uuid {uuid}); refusing to erase it. Use --force to format it anyway (every key in it is lost)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot format {}", path.display())),
    };
    writeln!(
        out,
        "formatted {}: {} segments of {} bytes ({}-byte blocks), uuid {}",
        path.display(),
        layout.segment_count,
        layout.segment_bytes,
        layout.lba_bytes,
        hex(&uuid)
    )?;
    Ok(())
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// `veltrix inspect`: verifies every checksum and prints a summary and
/// every problem's location. Returns the report; the caller turns
/// corruption into the exit code.
pub fn inspect(path: &Path, out: &mut dyn Write) -> anyhow::Result<InspectReport> {
    let namespace = open(path, None)?;
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} inspecting segments {pos}/{len} [{bar:40}] {elapsed}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let report = engine::inspect::inspect(namespace.as_ref(), &mut |done, total| {
        bar.set_length(u64::from(total));
        bar.set_position(u64::from(done));
    });
    bar.finish_and_clear();
    let report = match report {
        Ok(r) => r,
        Err(OpenError::NotFormatted) => bail!(
            "{} holds no VeltrixDB store (no valid superblock)",
            path.display()
        ),
        Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
    };
    let l = &report.layout;
    writeln!(out, "namespace:    {}", namespace.describe())?;
    writeln!(
        out,
        "store:        uuid {}, {} segments of {} bytes, {}-byte blocks",
        hex(&report.uuid),
        l.segment_count,
        l.segment_bytes,
        l.lba_bytes
    )?;
    writeln!(out, "superblocks:  {} of 2 valid", report.superblocks_valid)?;
    writeln!(
        out,
        "segments:     {} used, {} free, {} checkpoint, {} reserved (superblocks)",
        report.segments_used, report.segments_free, report.segments_checkpoint, 1
    )?;
    match report.checkpoint {
        Some(generation) => writeln!(out, "checkpoint:   {generation} (an open starts from it)")?,
        None => writeln!(out, "checkpoint:   none (an open replays the whole log)")?,
    }
    writeln!(out, "log streams:  {}", report.streams)?;
    writeln!(
        out,
        "frames:       {} ({} bytes)",
        report.frames, report.log_bytes
    )?;
    writeln!(
        out,
        "records:      {} ({} puts, {} deletes)",
        report.records, report.puts, report.deletes
    )?;
    writeln!(
        out,
        "live keys:    {} ({} bytes of keys and values)",
        report.live_keys, report.live_bytes
    )?;
    if report.problems.is_empty() {
        writeln!(out, "problems:     none")?;
    } else {
        writeln!(out, "problems:     {}", report.problems.len())?;
        for p in &report.problems {
            let severity = if !p.kind.is_corruption() {
                "WARN   "
            } else {
                "CORRUPT"
            };
            let stream = p
                .stream
                .map_or_else(String::new, |s| format!(", stream {s}"));
            writeln!(
                out,
                "  {severity} {} at segment {} offset {} (LBA {}{stream}): {}",
                p.kind.name(),
                p.location.segment,
                p.location.offset,
                p.lba,
                p.detail
            )?;
        }
    }
    writeln!(
        out,
        "result:       {}",
        if report.corrupt() {
            "CORRUPT"
        } else {
            "OK: every checksum verifies"
        }
    )?;
    Ok(report)
}
