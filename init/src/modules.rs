//! Loading the kernel modules the image builder listed, with busybox
//! `modprobe` (the builder ran `depmod`, so dependencies load too).

use anyhow::Context;

/// Loads every module named in `list_path` (one per line, in order; `#`
/// starts a comment). A module that fails is an error: the image was built
/// for this kernel, so a failure means a broken image.
pub fn load_all(list_path: &str) -> anyhow::Result<()> {
    let list = std::fs::read_to_string(list_path)
        .with_context(|| format!("cannot read the module list {list_path}"))?;
    let names = parse_list(&list);
    let started = std::time::Instant::now();
    for name in &names {
        let status = std::process::Command::new(crate::BUSYBOX)
            .args(["modprobe", name])
            .status()
            .with_context(|| format!("cannot run modprobe {name}"))?;
        anyhow::ensure!(status.success(), "modprobe {name} failed: {status}");
    }
    crate::log!(
        "loaded {} modules in {} ms: {}",
        names.len(),
        started.elapsed().as_millis(),
        names.join(" ")
    );
    Ok(())
}

fn parse_list(list: &str) -> Vec<String> {
    list.lines()
        .map(|line| line.split('#').next().unwrap_or("").trim())
        .filter(|line| !line.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn list_skips_comments_and_blank_lines() {
        assert_eq!(
            super::parse_list("# crc first\ncrct10dif_generic\n\n nvme  # the driver\n"),
            vec!["crct10dif_generic".to_string(), "nvme".to_string()]
        );
    }
}
