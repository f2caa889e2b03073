//! The bounds a request must stay within.

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// Bounds on one client request. A request that breaks one is a protocol
/// error: the connection replies with the error and closes.
///
/// Each bound is checked as soon as the bytes that break it arrive, and a
/// declared length is checked against its bound before any of the bytes it
/// announces: `$999999999999` is refused at its digits, never buffered.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Longest bulk string argument (`$len`), in bytes. Redis calls this
    /// `proto-max-bulk-len`. Longer: `Protocol error: invalid bulk length`.
    pub bulk_bytes_max: usize,
    /// Most arguments in one multibulk command (`*N`). More:
    /// `Protocol error: invalid multibulk length`.
    pub array_len_max: usize,
    /// Longest inline command line, in bytes, not counting its `\r\n` or
    /// `\n`. Longer: `Protocol error: too big inline request`.
    pub inline_bytes_max: usize,
    /// Most bytes one command may span on the wire, framing included. This
    /// bounds the read buffer a connection needs. More:
    /// `Protocol error: too big request` (an inline line also stops at
    /// this bound, with the inline error).
    pub request_bytes_max: usize,
}

impl Limits {
    /// Redis's defaults: 512 MiB bulk strings (`proto-max-bulk-len`),
    /// 1024 × 1024 arguments, 64 KiB inline lines, and 1 GiB per request
    /// (`client-query-buffer-limit`).
    pub const DEFAULT: Limits = Limits {
        bulk_bytes_max: 512 * MIB,
        array_len_max: 1024 * 1024,
        inline_bytes_max: 64 * KIB,
        request_bytes_max: 1024 * MIB,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// The framing around one bulk argument: `*1\r\n` (with up to 20 digits),
/// `$` with up to 20 digits, and two `\r\n`.
const FRAMING_BYTES_MAX: usize = 1 + 20 + 2 + 1 + 20 + 2 + 2;

// A command holding one argument of the largest size must fit in a request,
// or `bulk_bytes_max` would be unreachable.
const _: () = assert!(
    Limits::DEFAULT.bulk_bytes_max + FRAMING_BYTES_MAX <= Limits::DEFAULT.request_bytes_max
);
const _: () = assert!(Limits::DEFAULT.inline_bytes_max + 2 <= Limits::DEFAULT.request_bytes_max);
// Every argument takes at least 6 bytes (`$0\r\n\r\n`).
const _: () = assert!(Limits::DEFAULT.array_len_max * 6 <= Limits::DEFAULT.request_bytes_max);
