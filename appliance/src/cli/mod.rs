//! The `veltrix` operator CLI's commands, behind `src/bin/veltrix.rs`
//! (which holds the clap definitions). Online commands talk to a running
//! veltrixd: the admin HTTP port ([`http`]) or the native data port
//! (`veltrix_client`); offline commands ([`offline`]) open a namespace
//! directly; [`nvme`] moves NVMe controllers between the kernel and
//! vfio-pci; [`bench`] is the load generator.

pub mod audit;
pub mod bench;
pub mod cluster;
pub mod http;
pub mod nvme;
pub mod offline;
pub mod tls;
pub mod update;

/// Parses a size like `4GiB`, `512MiB`, `65536` (bytes).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 4GiB"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KiB" => 10,
        "M" | "MiB" => 20,
        "G" | "GiB" => 30,
        "T" | "TiB" => 40,
        other => {
            return Err(format!(
                "unknown size unit `{other}` (use KiB, MiB, GiB, TiB)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_binary_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64MiB"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("1.5GiB").is_err());
        assert!(parse_size("1PiB").is_err());
        assert!(parse_size("99999999999TiB").is_err());
    }
}
