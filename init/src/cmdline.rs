//! The `veltrix.*` parameters of the kernel command line.

use anyhow::Context;

/// The parameters the init understands, each optional.
pub struct Cmdline {
    /// The whole command line, for the log.
    pub raw: String,
    /// `veltrix.nsid=N`: serve the `[[namespace]]` table with this NSID
    /// (default: the first table).
    pub nsid: Option<u32>,
    /// `veltrix.backend=uring|sync|vfio`: serve the chosen namespace with
    /// this backend instead of the config's (`vfio`: the userspace NVMe
    /// driver, on the controller's PCI address).
    pub backend: Option<firmware_config::Backend>,
    /// `veltrix.config=LABEL`: read the config from the GPT partition with
    /// this name instead of the copy inside the initramfs.
    pub config_partition: Option<String>,
    /// `veltrix.ip=ADDR/PREFIX` (default `10.0.2.15/24`, QEMU user networking).
    pub ip: String,
    /// `veltrix.gateway=ADDR` (default `10.0.2.2`); `none` for no route.
    pub gateway: Option<String>,
    /// `veltrix.stage=select`: this boot starts with the A/B slot selector
    /// (the disk image's entry; `docs/upgrades.md`).
    pub select_slot: bool,
    /// `veltrix.trial_s=N`: seconds a slot on trial has to pass its health
    /// check before the init reboots (default 300).
    pub trial_s: u64,
}

impl Cmdline {
    /// Reads `/proc/cmdline`.
    pub fn read() -> anyhow::Result<Cmdline> {
        let raw = std::fs::read_to_string("/proc/cmdline").context("cannot read /proc/cmdline")?;
        Cmdline::parse(raw.trim())
    }

    /// Parses a command line; unknown `veltrix.*` keys are errors, so a typo
    /// does not silently boot the wrong namespace.
    pub fn parse(raw: &str) -> anyhow::Result<Cmdline> {
        let mut cmdline = Cmdline {
            raw: raw.to_string(),
            nsid: None,
            backend: None,
            config_partition: None,
            ip: "10.0.2.15/24".into(),
            gateway: Some("10.0.2.2".into()),
            select_slot: false,
            trial_s: crate::health::TRIAL_DEADLINE_DEFAULT_S,
        };
        for word in raw.split_ascii_whitespace() {
            let Some(rest) = word.strip_prefix("veltrix.") else {
                continue;
            };
            let (key, value) = rest.split_once('=').unwrap_or((rest, ""));
            match key {
                "nsid" => {
                    cmdline.nsid = Some(
                        value
                            .parse()
                            .with_context(|| format!("veltrix.nsid={value}: not a number"))?,
                    );
                }
                "backend" => {
                    cmdline.backend = Some(
                        [
                            firmware_config::Backend::Uring,
                            firmware_config::Backend::Sync,
                            firmware_config::Backend::Vfio,
                        ]
                        .into_iter()
                        .find(|b| b.as_str() == value)
                        .with_context(|| {
                            format!("veltrix.backend={value}: expected uring, sync or vfio")
                        })?,
                    );
                }
                "config" => cmdline.config_partition = Some(value.to_string()),
                "ip" => cmdline.ip = value.to_string(),
                "gateway" if value == "none" => cmdline.gateway = None,
                "gateway" => cmdline.gateway = Some(value.to_string()),
                "stage" if value == "select" => cmdline.select_slot = true,
                "trial_s" => {
                    cmdline.trial_s = value.parse().ok().filter(|&s| s > 0).with_context(|| {
                        format!("veltrix.trial_s={value}: not a positive number")
                    })?;
                }
                _ => anyhow::bail!("unknown kernel parameter `{word}`"),
            }
        }
        Ok(cmdline)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_selection_and_trial_deadline() {
        let c = Cmdline::parse("veltrix.stage=select veltrix.trial_s=60").expect("parses");
        assert!(c.select_slot);
        assert_eq!(c.trial_s, 60);
        let c = Cmdline::parse("console=ttyS0").expect("parses");
        assert!(!c.select_slot);
        assert_eq!(c.trial_s, crate::health::TRIAL_DEADLINE_DEFAULT_S);
        for bad in [
            "veltrix.stage=other",
            "veltrix.trial_s=0",
            "veltrix.trial_s=x",
        ] {
            assert!(Cmdline::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_known_keys_and_defaults() {
        let c = Cmdline::parse("console=ttyS0 veltrix.nsid=3 veltrix.config=veltrix-config")
            .expect("parses");
        assert_eq!(c.nsid, Some(3));
        assert_eq!(c.backend, None);
        assert_eq!(c.config_partition.as_deref(), Some("veltrix-config"));
        assert_eq!(c.ip, "10.0.2.15/24");
        assert_eq!(c.gateway.as_deref(), Some("10.0.2.2"));
        let c = Cmdline::parse("veltrix.gateway=none veltrix.ip=192.168.1.5/16").expect("parses");
        assert_eq!(c.gateway, None);
        assert_eq!(c.ip, "192.168.1.5/16");
        let c =
            Cmdline::parse("intel_iommu=on veltrix.backend=vfio veltrix.nsid=2").expect("parses");
        assert_eq!(c.backend, Some(firmware_config::Backend::Vfio));
        assert_eq!(c.nsid, Some(2));
        let c = Cmdline::parse("veltrix.backend=sync").expect("parses");
        assert_eq!(c.backend, Some(firmware_config::Backend::Sync));
    }

    #[test]
    fn refuses_unknown_keys_and_bad_numbers() {
        assert!(Cmdline::parse("veltrix.nsdi=1").is_err());
        assert!(Cmdline::parse("veltrix.nsid=one").is_err());
        assert!(Cmdline::parse("veltrix.backend=sim").is_err());
        assert!(Cmdline::parse("veltrix.backend=").is_err());
        assert!(Cmdline::parse("veltrix.backend=VFIO").is_err());
    }
}
