//! Writes a [`Config`] back out as configuration text that [`parse`](crate::parse)
//! reads back to an equal `Config`.

use core::fmt::{self, Write};

use crate::schema::{Config, NamespaceTarget};

impl Config {
    /// Writes this configuration in the file format, every key included
    /// (defaults too), sizes with the largest binary unit that divides them.
    /// At most [`RENDERED_BYTES_MAX`](crate::RENDERED_BYTES_MAX) bytes.
    ///
    /// For every `Config` that [`parse`](crate::parse) returns,
    /// `parse(rendered) == Ok(config)`. A `Config` built in code round-trips
    /// too as long as it is valid; strings containing control characters
    /// (other than tab) cannot be written in the format at all.
    pub fn render<W: Write>(&self, out: &mut W) -> fmt::Result {
        let server = &self.server;
        out.write_str("[server]\n")?;
        string(out, "data_dir", &server.data_dir)?;
        writeln!(out, "workers = {}", server.workers)?;
        writeln!(out, "listen = \"{}\"", server.listen)?;
        writeln!(out, "native_listen = \"{}\"", server.native_listen)?;
        writeln!(out, "admin_listen = \"{}\"", server.admin_listen)?;
        writeln!(out, "connections_max = {}", server.connections_max)?;
        writeln!(out, "log_level = \"{}\"", server.log_level.as_str())?;

        let tls = &self.tls;
        out.write_str("\n[tls]\n")?;
        writeln!(out, "enabled = {}", tls.enabled)?;
        string(out, "cert_file", &tls.cert_file)?;
        string(out, "key_file", &tls.key_file)?;
        string(out, "client_ca_file", &tls.client_ca_file)?;
        string(out, "client_crl_file", &tls.client_crl_file)?;
        writeln!(out, "resp = \"{}\"", tls.resp.as_str())?;
        writeln!(out, "native = \"{}\"", tls.native.as_str())?;
        writeln!(out, "admin = \"{}\"", tls.admin.as_str())?;

        out.write_str("\n[auth]\n")?;
        string(out, "users_file", &self.auth.users_file)?;
        string(out, "admin_token_file", &self.auth.admin_token_file)?;

        let engine = &self.engine;
        out.write_str("\n[engine]\n")?;
        writeln!(out, "commit_interval_us = {}", engine.commit_interval_us)?;
        size(out, "batch_bytes_max", engine.batch_bytes_max)?;
        size(out, "cache_bytes", engine.cache_bytes)?;
        writeln!(out, "gc_io_share = {}", engine.gc_io_share)?;
        writeln!(out, "key_bytes_max = {}", engine.key_bytes_max)?;
        size(out, "value_bytes_max", engine.value_bytes_max)?;
        size(out, "segment_bytes", engine.segment_bytes)?;
        writeln!(
            out,
            "checkpoint_interval_s = {}",
            engine.checkpoint_interval_s
        )?;

        for namespace in &self.namespaces {
            out.write_str("\n[[namespace]]\n")?;
            match &namespace.target {
                NamespaceTarget::Path(path) => string(out, "path", path)?,
                NamespaceTarget::Serial { serial, nsid } => {
                    string(out, "serial", serial)?;
                    writeln!(out, "nsid = {nsid}")?;
                }
            }
            writeln!(out, "backend = \"{}\"", namespace.backend.as_str())?;
            if let Some(bytes) = namespace.size_bytes {
                size(out, "size", bytes)?;
            }
            writeln!(out, "sqpoll = {}", namespace.sqpoll)?;
        }

        if let Some(cluster) = &self.cluster {
            out.write_str("\n[cluster]\n")?;
            writeln!(out, "id = \"{:032x}\"", cluster.id)?;
            writeln!(out, "node = {}", cluster.node)?;
            writeln!(out, "groups = {}", cluster.groups)?;
            writeln!(out, "tick_ms = {}", cluster.tick_ms)?;
            writeln!(out, "election_ticks = {}", cluster.election_ticks)?;
            for member in &cluster.members {
                out.write_str("\n[[member]]\n")?;
                writeln!(out, "node = {}", member.node)?;
                string(out, "zone", &member.zone)?;
                writeln!(out, "peer = \"{}\"", member.peer)?;
                writeln!(out, "data = \"{}\"", member.data)?;
            }
        }
        Ok(())
    }
}

/// The same text as [`Config::render`].
impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.render(f)
    }
}

/// `key = "value"`, escaping `"` and `\`.
fn string<W: Write>(out: &mut W, key: &str, value: &str) -> fmt::Result {
    write!(out, "{key} = \"")?;
    for c in value.chars() {
        if matches!(c, '"' | '\\') {
            out.write_char('\\')?;
        }
        out.write_char(c)?;
    }
    out.write_str("\"\n")
}

/// `key = "4GiB"`.
fn size<W: Write>(out: &mut W, key: &str, bytes: u64) -> fmt::Result {
    write!(out, "{key} = \"")?;
    write_size(out, bytes)?;
    out.write_str("\"\n")
}

/// Writes `bytes` with the largest binary unit that divides it: `4GiB`,
/// `1536KiB`, `4095`.
pub(crate) fn write_size<W: Write>(out: &mut W, bytes: u64) -> fmt::Result {
    const UNITS: [(u32, &str); 4] = [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")];
    if bytes != 0 {
        for (shift, unit) in UNITS {
            if bytes.trailing_zeros() >= shift {
                return write!(out, "{}{unit}", bytes >> shift);
            }
        }
    }
    write!(out, "{bytes}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size_text(bytes: u64) -> heapless::String<32> {
        let mut out = heapless::String::new();
        write_size(&mut out, bytes).unwrap();
        out
    }

    #[test]
    fn sizes_use_the_largest_unit_that_divides() {
        assert_eq!(size_text(0), "0");
        assert_eq!(size_text(1), "1");
        assert_eq!(size_text(4095), "4095");
        assert_eq!(size_text(4096), "4KiB");
        assert_eq!(size_text(1536 << 10), "1536KiB");
        assert_eq!(size_text(1 << 20), "1MiB");
        assert_eq!(size_text(3 << 30), "3GiB");
        assert_eq!(size_text(1024 << 40), "1024TiB");
        assert_eq!(size_text(u64::MAX), "18446744073709551615");
        assert_eq!(size_text(1 << 63), "8388608TiB");
    }

    #[test]
    fn strings_escape_quotes_and_backslashes() {
        let mut out = heapless::String::<64>::new();
        string(&mut out, "k", r#"a"b\c"#).unwrap();
        assert_eq!(out, "k = \"a\\\"b\\\\c\"\n");
    }

    #[test]
    fn default_config_renders_the_documented_defaults() {
        let mut out = heapless::String::<1024>::new();
        Config::default().render(&mut out).unwrap();
        assert_eq!(
            out,
            "[server]\n\
             data_dir = \"./veltrix-data\"\n\
             workers = 0\n\
             listen = \"127.0.0.1:6379\"\n\
             native_listen = \"127.0.0.1:7379\"\n\
             admin_listen = \"127.0.0.1:9379\"\n\
             connections_max = 10000\n\
             log_level = \"info\"\n\
             \n\
             [tls]\n\
             enabled = false\n\
             cert_file = \"\"\n\
             key_file = \"\"\n\
             client_ca_file = \"\"\n\
             client_crl_file = \"\"\n\
             resp = \"off\"\n\
             native = \"off\"\n\
             admin = \"off\"\n\
             \n\
             [auth]\n\
             users_file = \"\"\n\
             admin_token_file = \"\"\n\
             \n\
             [engine]\n\
             commit_interval_us = 50\n\
             batch_bytes_max = \"1MiB\"\n\
             cache_bytes = \"256MiB\"\n\
             gc_io_share = 10\n\
             key_bytes_max = 1024\n\
             value_bytes_max = \"4MiB\"\n\
             segment_bytes = \"8MiB\"\n\
             checkpoint_interval_s = 300\n"
        );
    }
}
