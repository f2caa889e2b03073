//! What the scenarios write: deterministic values, so that a reader can
//! check any key without keeping the values, and a record of what was
//! acknowledged.

use std::net::SocketAddr;
use std::time::Duration;

/// A value of `len` bytes derived from the key; any bit flip changes it.
pub fn value_for(key: &str, len: usize) -> Vec<u8> {
    let mut state: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key.bytes() {
        state = (state ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        let word = state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
    }
    out
}

/// Value sizes up to 64 KiB: one in 16 is 64 KiB, three in 16 a few KiB to
/// 32 KiB, the rest 16 B to 1 KiB.
pub fn len_for(i: usize) -> usize {
    match i % 16 {
        0 => 64 << 10,
        1..=3 => 4096 + (i * 7919) % (28 << 10),
        _ => 16 + (i * 131) % 1000,
    }
}

/// A RESP connection with timeouts, so a dead guest fails a step instead of
/// hanging it.
pub fn connect(addr: SocketAddr, timeout: Duration) -> anyhow::Result<redis::Connection> {
    let client = redis::Client::open(format!("redis://{addr}/"))?;
    let con = client.get_connection_with_timeout(timeout)?;
    con.set_read_timeout(Some(timeout))?;
    con.set_write_timeout(Some(timeout))?;
    Ok(con)
}

/// Writes `keys` (name, length) with pipelines of `batch` SETs.
pub fn put_all(
    con: &mut redis::Connection,
    keys: &[(String, usize)],
    batch: usize,
) -> anyhow::Result<()> {
    for chunk in keys.chunks(batch.max(1)) {
        let mut pipe = redis::pipe();
        for (key, len) in chunk {
            pipe.cmd("SET").arg(key).arg(value_for(key, *len)).ignore();
        }
        pipe.query::<()>(con)?;
    }
    Ok(())
}

/// Reads `keys` back with pipelined GETs; returns the keys that were
/// missing or wrong, with what was wrong.
pub fn check_all(
    con: &mut redis::Connection,
    keys: &[(String, usize)],
    batch: usize,
) -> anyhow::Result<Vec<String>> {
    let mut bad = Vec::new();
    for chunk in keys.chunks(batch.max(1)) {
        let mut pipe = redis::pipe();
        for (key, _) in chunk {
            pipe.cmd("GET").arg(key);
        }
        let values: Vec<Option<Vec<u8>>> = pipe.query(con)?;
        for ((key, len), got) in chunk.iter().zip(values) {
            match got {
                None => bad.push(format!("{key}: missing")),
                Some(v) if v != value_for(key, *len) => {
                    bad.push(format!(
                        "{key}: wrong value ({} bytes, expected {len})",
                        v.len()
                    ));
                }
                Some(_) => {}
            }
        }
    }
    Ok(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_deterministic_distinct_and_sized() {
        assert_eq!(value_for("a", 100), value_for("a", 100));
        assert_ne!(value_for("a", 100), value_for("b", 100));
        assert_eq!(value_for("a", 65536).len(), 65536);
        assert!((0..10_000).map(len_for).all(|l| (16..=65536).contains(&l)));
        assert_eq!((0..10_000).map(len_for).max(), Some(65536));
    }
}
