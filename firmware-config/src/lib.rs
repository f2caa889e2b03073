//! The VeltrixDB appliance's configuration: its schema, a parser for the
//! TOML subset it is written in, and validation.
//!
//! ```
//! let config = firmware_config::parse(
//!     "[engine]\n\
//!      commit_interval_us = 100\n\
//!      \n\
//!      [[namespace]]\n\
//!      path = \"/dev/nvme0n1\"\n",
//! )?;
//! assert_eq!(config.engine.commit_interval_us, 100);
//! assert_eq!(config.namespaces.len(), 1);
//!
//! let error = firmware_config::parse("[engine]\ncomit_interval_us = 100\n").unwrap_err();
//! assert_eq!(
//!     error.to_string(),
//!     "line 2, column 1: key `comit_interval_us` in [engine]: unknown key; \
//!      did you mean `commit_interval_us`?"
//! );
//! # Ok::<(), firmware_config::ConfigError>(())
//! ```
//!
//! `docs/config.md` at the workspace root describes the format and every key
//! for operators.
//!
//! The crate is `no_std` and does not allocate: strings and lists live in
//! `heapless` containers whose capacities are the limits in this crate's
//! root ([`PATH_BYTES_MAX`], [`NAMESPACES_MAX`], ...). Input beyond a limit is
//! a [`ConfigError`], never a panic.
//!
//! The `std` feature adds nothing today: [`ConfigError`] implements
//! `core::error::Error`, which is `std::error::Error`, in every build.

#![no_std]
#![forbid(unsafe_code)]

#[cfg(test)]
extern crate std;

mod error;
mod lexer;
mod limits;
mod parser;
mod render;
mod schema;
mod suggest;
mod validate;
mod value;

pub use error::{ConfigError, ErrorKind, Unit};
pub use limits::{
    ERROR_NAME_BYTES_MAX, INPUT_BYTES_MAX, LINE_BYTES_MAX, MEMBERS_MAX, NAMESPACES_MAX,
    PATH_BYTES_MAX, RECORD_OVERHEAD_BYTES_MAX, RENDERED_BYTES_MAX, SERIAL_BYTES_MAX,
    ZONE_BYTES_MAX,
};
pub use schema::{
    Auth, Backend, Cluster, Config, Engine, LogLevel, Member, NamespaceConfig, NamespaceTarget,
    PathString, SerialString, Server, Tls, TlsMode, ZoneString, WORKERS_MAX,
};

/// Parses and validates configuration text.
///
/// Keys that are absent take their defaults ([`Config::default`]). Returns
/// the first error found, in file order for errors on one line or key, then
/// relations between keys (`[tls]`, then `[engine]`, then each
/// `[[namespace]]`).
pub fn parse(text: &str) -> Result<Config, ConfigError> {
    parser::parse(text)
}

/// [`parse`].
impl core::str::FromStr for Config {
    type Err = ConfigError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse(text)
    }
}

#[cfg(test)]
mod tests {
    use crate::schema::Section;

    /// Every key and section is documented for operators.
    #[test]
    fn docs_cover_every_key() {
        let docs = include_str!("../../docs/config.md");
        for section in Section::ALL {
            assert!(docs.contains(section.header()), "{}", section.header());
            for key in section.keys() {
                let row = std::format!("| `{key}` |");
                assert!(docs.contains(&row), "docs/config.md has no row for `{key}`");
            }
        }
    }
}
