//! The appliance's configuration: where it comes from, and the copy the
//! init hands to veltrixd with the namespace resolved to a device path.

use std::path::Path;

use anyhow::Context;
use firmware_config::{NamespaceTarget, PathString};

use crate::cmdline::Cmdline;

/// Largest config file (the parser's own limit).
const CONFIG_BYTES_MAX: usize = 64 << 10;

/// The config veltrixd gets.
pub struct Resolved {
    /// Where the rendered config was written.
    pub config_path: String,
}

/// Reads the config text: from the GPT partition named on the command line
/// (the disk image), else from the initramfs.
pub fn read_text(cmdline: &Cmdline) -> anyhow::Result<String> {
    if let Some(label) = &cmdline.config_partition {
        let device = crate::devices::find_partition(Path::new("/sys/block"), label)?;
        let bytes =
            std::fs::read(&device).with_context(|| format!("cannot read {}", device.display()))?;
        crate::log!("config from partition {label:?} ({})", device.display());
        return text_from_partition(&bytes);
    }
    crate::log!("config from {}", crate::CONFIG_FILE);
    std::fs::read_to_string(crate::CONFIG_FILE)
        .with_context(|| format!("cannot read {}", crate::CONFIG_FILE))
}

/// A config partition holds the file's text followed by zero bytes.
fn text_from_partition(bytes: &[u8]) -> anyhow::Result<String> {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    anyhow::ensure!(
        end <= CONFIG_BYTES_MAX,
        "the config partition holds more than {CONFIG_BYTES_MAX} bytes of text"
    );
    String::from_utf8(bytes[..end].to_vec()).context("the config partition is not UTF-8 text")
}

/// Parses the config, picks the namespace to serve (`veltrix.nsid`, else
/// the first table), finds its device, and writes a copy whose only
/// namespace is that device's path.
pub fn resolve(text: &str, cmdline: &Cmdline) -> anyhow::Result<Resolved> {
    let mut config = firmware_config::parse(text).map_err(|e| anyhow::anyhow!("config: {e}"))?;
    let index = pick(&config.namespaces, cmdline.nsid)?;
    let mut chosen = config.namespaces[index].clone();
    if let Some(backend) = cmdline.backend {
        crate::log!("backend {} from the kernel command line", backend.as_str());
        chosen.backend = backend;
    }
    if chosen.backend != firmware_config::Backend::Uring {
        chosen.sqpoll = false;
    }
    if let NamespaceTarget::Serial { serial, nsid } = &chosen.target {
        let sys_block = Path::new("/sys/block");
        let device = crate::devices::find_namespace(sys_block, serial, *nsid)?;
        let target = if chosen.backend == firmware_config::Backend::Vfio {
            // veltrixd binds the controller to vfio-pci, after which its
            // /dev/nvme* nodes are gone: the address resolved here, in the
            // rendered config, is what every restart uses.
            let name = device
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let bdf = crate::devices::controller_pci_address(sys_block, &name)?;
            let address = crate::devices::vfio_address(&bdf, *nsid);
            crate::log!(
                "vfio backend: {} is on the controller at PCI {bdf}: serving {address}",
                device.display()
            );
            address
        } else {
            device.to_string_lossy().into_owned()
        };
        let mut path = PathString::new();
        path.push_str(&target)
            .map_err(|_| anyhow::anyhow!("namespace path {target} is too long"))?;
        chosen.target = NamespaceTarget::Path(path);
    }
    config.namespaces.clear();
    config
        .namespaces
        .push(chosen)
        .map_err(|_| anyhow::anyhow!("no room for the namespace"))?;
    let rendered = config.to_string();
    let config_path = format!("{}/veltrix.toml", crate::RUN_DIR);
    std::fs::write(&config_path, &rendered)
        .with_context(|| format!("cannot write {config_path}"))?;
    crate::log!(
        "namespace table {}: config for veltrixd in {config_path}",
        index + 1
    );
    Ok(Resolved { config_path })
}

fn pick(
    namespaces: &[firmware_config::NamespaceConfig],
    nsid: Option<u32>,
) -> anyhow::Result<usize> {
    anyhow::ensure!(
        !namespaces.is_empty(),
        "the config has no [[namespace]] table: an appliance must name its namespace"
    );
    let Some(wanted) = nsid else {
        return Ok(0);
    };
    namespaces
        .iter()
        .position(|ns| matches!(ns.target, NamespaceTarget::Serial { nsid, .. } if nsid == wanted))
        .with_context(|| format!("veltrix.nsid={wanted}: no [[namespace]] table has that nsid"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "[[namespace]]\nserial = \"vx\"\nnsid = 1\n\n[[namespace]]\nserial = \"vx\"\nnsid = 2\nbackend = \"sync\"\n";

    #[test]
    fn picks_by_nsid_or_first() {
        let config = firmware_config::parse(TEXT).expect("parses");
        assert_eq!(pick(&config.namespaces, None).expect("first"), 0);
        assert_eq!(pick(&config.namespaces, Some(2)).expect("second"), 1);
        assert!(pick(&config.namespaces, Some(3)).is_err());
        assert!(pick(&[], None).is_err());
    }

    #[test]
    fn partition_text_ends_at_the_first_zero() {
        let mut bytes = b"[server]\nworkers = 1\n".to_vec();
        bytes.resize(4096, 0);
        assert_eq!(
            text_from_partition(&bytes).expect("text"),
            "[server]\nworkers = 1\n"
        );
        assert!(text_from_partition(&[0xff, 0xfe, 0]).is_err());
    }
}
