//! Limits on the input and on every value the schema holds.
//!
//! Capacities of the `heapless` containers in [`Config`](crate::Config) and
//! [`ConfigError`](crate::ConfigError) come from here, so that overflow is
//! an error the parser reports, never a panic.

/// Most bytes [`parse`](crate::parse) accepts.
pub const INPUT_BYTES_MAX: usize = 64 * 1024;

/// Most bytes on one line, not counting its line ending.
pub const LINE_BYTES_MAX: usize = 1024;

/// Most `[[namespace]]` tables in one configuration.
pub const NAMESPACES_MAX: usize = 8;

/// Most bytes in a path: `data_dir`, the TLS files, a namespace's `path`.
pub const PATH_BYTES_MAX: usize = 255;

/// Most bytes in an NVMe serial number: the width of the Identify Controller
/// data structure's SN field.
pub const SERIAL_BYTES_MAX: usize = 20;

/// Most bytes of a key or section name kept in a
/// [`ConfigError`](crate::ConfigError); longer names are cut short.
pub const ERROR_NAME_BYTES_MAX: usize = 48;

/// Most `[[member]]` tables.
pub const MEMBERS_MAX: usize = 64;

/// Longest zone name.
pub const ZONE_BYTES_MAX: usize = 32;

/// Bytes of a VLog segment that `segment_bytes` keeps free for one record's
/// header and checksum beyond its key and value: validation requires
/// `key_bytes_max + value_bytes_max + RECORD_OVERHEAD_BYTES_MAX <= segment_bytes`,
/// so that the largest record fits in one segment. The engine's record
/// header must not be larger than this.
pub const RECORD_OVERHEAD_BYTES_MAX: u64 = 4096;

/// An upper bound on the bytes [`Config::render`](crate::Config::render)
/// writes: every string escaped at two bytes per byte, every number at its
/// widest, every namespace present.
pub const RENDERED_BYTES_MAX: usize = {
    // `key = "` plus `"\n`, with the longest key name.
    const LINE_OVERHEAD: usize = 32;
    const STRING: usize = 2 * PATH_BYTES_MAX + LINE_OVERHEAD;
    // A bracketed IPv6 address with an IPv4 tail, a scope id and a port.
    const ADDRESS: usize = 64 + LINE_OVERHEAD;
    const NUMBER: usize = 24 + LINE_OVERHEAD;
    const HEADER: usize = 16;
    const SERVER: usize = HEADER + STRING + 3 * ADDRESS + 3 * NUMBER;
    // `enabled`, four paths and three port modes (each at most a number).
    const TLS: usize = HEADER + NUMBER + 4 * STRING + 3 * NUMBER;
    const AUTH: usize = HEADER + 2 * STRING;
    const ENGINE: usize = HEADER + 8 * NUMBER;
    const NAMESPACE: usize = HEADER + STRING + 2 * STRING + 3 * NUMBER;
    const CLUSTER: usize = HEADER + 3 * NUMBER;
    const MEMBER: usize = HEADER + NUMBER + 2 * ZONE_BYTES_MAX + LINE_OVERHEAD + 2 * ADDRESS;
    SERVER + TLS + AUTH + ENGINE + NAMESPACES_MAX * NAMESPACE + CLUSTER + MEMBERS_MAX * MEMBER
};

// Whatever `render` writes, `parse` reads back.
const _: () = assert!(RENDERED_BYTES_MAX <= INPUT_BYTES_MAX);
const _: () = assert!(2 * PATH_BYTES_MAX + 32 <= LINE_BYTES_MAX);
// Line and column numbers fit in `u32` because the input is bounded.
const _: () = assert!(INPUT_BYTES_MAX < u32::MAX as usize);
// A section header with its brackets fits in an error's name.
const _: () = assert!(ERROR_NAME_BYTES_MAX >= "[[namespace]]".len());
// The `heapless` strings above count their length in a `u8`.
const _: () = assert!(PATH_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(SERIAL_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(ZONE_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(ERROR_NAME_BYTES_MAX <= u8::MAX as usize);
