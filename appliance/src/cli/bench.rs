//! `veltrix bench`: a closed-loop load generator over RESP or the native
//! protocol. Each client is a thread with one connection that sends
//! `pipeline` requests, then reads their replies; a request's latency runs
//! from the write of its batch to the arrival of its reply.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::Rng;
use veltrix_client::{Client, Request, Status};

use crate::resp::{encode, parse_reply, Reply};

/// Which port to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The RESP port.
    Resp,
    /// The native port.
    Native,
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which protocol.
    pub protocol: Protocol,
    /// The port's address.
    pub addr: SocketAddr,
    /// Concurrent connections.
    pub clients: usize,
    /// Total requests (ignored when `seconds` is set).
    pub requests: u64,
    /// Run for this long instead.
    pub seconds: Option<u64>,
    /// Bytes per value written.
    pub value_bytes: usize,
    /// Keys drawn uniformly from `key:0 .. key:{keys-1}`.
    pub keys: u64,
    /// Gets per `gets + sets`.
    pub gets: u32,
    /// Sets per `gets + sets`.
    pub sets: u32,
    /// Requests per batch written.
    pub pipeline: usize,
}

/// What one run measured.
pub struct Outcome {
    /// Requests answered.
    pub requests: u64,
    /// Of which gets.
    pub gets: u64,
    /// Gets that found no value.
    pub misses: u64,
    /// Requests answered with an error.
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latency in microseconds.
    pub latency_us: Histogram<u64>,
}

/// Parses `GET:SET`, e.g. `1:1`, `9:1`, `0:1`.
pub fn parse_ratio(text: &str) -> Result<(u32, u32), String> {
    let (g, s) = text
        .split_once(':')
        .ok_or_else(|| format!("`{text}` is not a ratio like 1:1 (gets:sets)"))?;
    let g: u32 = g
        .trim()
        .parse()
        .map_err(|_| format!("bad ratio `{text}`"))?;
    let s: u32 = s
        .trim()
        .parse()
        .map_err(|_| format!("bad ratio `{text}`"))?;
    if g == 0 && s == 0 {
        return Err("the ratio needs gets or sets (e.g. 1:1)".into());
    }
    Ok((g, s))
}

/// One connection under load.
enum Connection {
    Native(Client),
    Resp { stream: TcpStream, buf: Vec<u8> },
}

impl Connection {
    fn open(options: &Options) -> anyhow::Result<Connection> {
        Ok(match options.protocol {
            Protocol::Native => Connection::Native(
                Client::connect(options.addr)
                    .with_context(|| format!("native port {}", options.addr))?,
            ),
            Protocol::Resp => {
                let stream = TcpStream::connect_timeout(&options.addr, Duration::from_secs(10))
                    .with_context(|| {
                        format!("cannot connect to the RESP port at {}", options.addr)
                    })?;
                stream.set_nodelay(true)?;
                stream.set_read_timeout(Some(Duration::from_secs(30)))?;
                Connection::Resp {
                    stream,
                    buf: Vec::new(),
                }
            }
        })
    }

    /// Sends a batch and reads every reply; returns (misses, errors) and
    /// calls `done` with each reply's arrival time.
    fn batch(
        &mut self,
        ops: &[(bool, Vec<u8>)],
        value: &[u8],
        done: &mut dyn FnMut(Instant),
    ) -> anyhow::Result<(u64, u64)> {
        let (mut misses, mut errors) = (0, 0);
        match self {
            Connection::Native(client) => {
                let mut ids = Vec::with_capacity(ops.len());
                for (get, key) in ops {
                    let request = if *get {
                        Request::Get(key.clone())
                    } else {
                        Request::Put(key.clone(), value.to_vec())
                    };
                    ids.push(client.send(&request)?);
                }
                client.flush()?;
                for id in ids {
                    let r = client.recv_for(id)?;
                    done(Instant::now());
                    match r.status {
                        Status::Ok => {}
                        Status::NotFound => misses += 1,
                        _ => errors += 1,
                    }
                }
            }
            Connection::Resp { stream, buf } => {
                let mut out = Vec::new();
                for (get, key) in ops {
                    if *get {
                        encode::command(&mut out, &[b"GET".as_slice(), key]);
                    } else {
                        encode::command(&mut out, &[b"SET".as_slice(), key, value]);
                    }
                }
                stream.write_all(&out)?;
                let mut answered = 0;
                while answered < ops.len() {
                    match parse_reply(buf) {
                        Ok(Some((reply, used))) => {
                            buf.drain(..used);
                            answered += 1;
                            done(Instant::now());
                            match reply {
                                Reply::Error(_) => errors += 1,
                                Reply::Bulk(None) | Reply::Null => misses += 1,
                                _ => {}
                            }
                        }
                        Ok(None) => {
                            let mut chunk = [0u8; 64 << 10];
                            let n = stream.read(&mut chunk)?;
                            if n == 0 {
                                bail!("the RESP port closed the connection");
                            }
                            buf.extend_from_slice(&chunk[..n]);
                        }
                        Err(e) => bail!("bad RESP reply: {e}"),
                    }
                }
            }
        }
        Ok((misses, errors))
    }
}

/// Runs the load and returns what it measured. `progress` sees the number
/// of requests answered so far, about ten times a second.
pub fn run(options: &Options, progress: &dyn Fn(u64)) -> anyhow::Result<Outcome> {
    if options.clients == 0 || options.pipeline == 0 || options.keys == 0 {
        bail!("--clients, --pipeline and --keys must be at least 1");
    }
    let tickets = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // Connect everyone first, so a bad address fails before the clock starts.
    let mut connections = Vec::with_capacity(options.clients);
    for _ in 0..options.clients {
        connections.push(Connection::open(options)?);
    }
    let started = Instant::now();
    let deadline = options.seconds.map(|s| started + Duration::from_secs(s));
    let threads: Vec<_> = connections
        .into_iter()
        .map(|mut conn| {
            let (options, tickets, answered, stop) = (
                options.clone(),
                Arc::clone(&tickets),
                Arc::clone(&answered),
                Arc::clone(&stop),
            );
            std::thread::spawn(
                move || -> anyhow::Result<(Histogram<u64>, [u64; 3], Instant)> {
                    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    let mut rng = rand::rng();
                    let value = vec![b'v'; options.value_bytes];
                    let mut counts = [0u64; 3]; // gets, misses, errors
                    let total = options.gets + options.sets;
                    loop {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let n = if deadline.is_some() {
                            options.pipeline as u64
                        } else {
                            let first =
                                tickets.fetch_add(options.pipeline as u64, Ordering::Relaxed);
                            if first >= options.requests {
                                break;
                            }
                            (options.requests - first).min(options.pipeline as u64)
                        };
                        let ops: Vec<(bool, Vec<u8>)> = (0..n)
                            .map(|_| {
                                let get = rng.random_range(0..total) < options.gets;
                                let key = format!("key:{}", rng.random_range(0..options.keys));
                                (get, key.into_bytes())
                            })
                            .collect();
                        counts[0] += ops.iter().filter(|(g, _)| *g).count() as u64;
                        let sent = Instant::now();
                        let (misses, errors) = conn.batch(&ops, &value, &mut |at| {
                            let us = at.duration_since(sent).as_micros().max(1) as u64;
                            let _ = histogram.record(us.min(60_000_000));
                        })?;
                        counts[1] += misses;
                        counts[2] += errors;
                        answered.fetch_add(n, Ordering::Relaxed);
                        if deadline.is_some_and(|d| Instant::now() >= d) {
                            break;
                        }
                    }
                    Ok((histogram, counts, Instant::now()))
                },
            )
        })
        .collect();
    while !threads.iter().all(|t| t.is_finished()) {
        progress(answered.load(Ordering::Relaxed));
        std::thread::sleep(Duration::from_millis(100));
    }
    progress(answered.load(Ordering::Relaxed));
    // The wall time runs to the last client's last reply (not to this
    // loop's next wake-up).
    let mut finished = started;
    let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
    let mut counts = [0u64; 3];
    let mut failure = None;
    for t in threads {
        match t.join() {
            Ok(Ok((h, c, at))) => {
                finished = finished.max(at);
                latency_us.add(&h)?;
                for (total, part) in counts.iter_mut().zip(c) {
                    *total += part;
                }
            }
            Ok(Err(e)) => failure = Some(e),
            Err(_) => failure = Some(anyhow::anyhow!("a bench client panicked")),
        }
    }
    stop.store(true, Ordering::Relaxed);
    if let Some(e) = failure {
        return Err(e.context("a bench client failed"));
    }
    let elapsed = finished.duration_since(started);
    Ok(Outcome {
        requests: latency_us.len(),
        gets: counts[0],
        misses: counts[1],
        errors: counts[2],
        elapsed,
        latency_us,
    })
}

/// Prints throughput, percentiles and a log-scale latency histogram.
pub fn print(options: &Options, outcome: &Outcome, out: &mut dyn Write) -> std::io::Result<()> {
    let h = &outcome.latency_us;
    let seconds = outcome.elapsed.as_secs_f64().max(1e-9);
    writeln!(
        out,
        "{} requests in {:.2} s: {:.0} ops/s ({} gets, {} sets; {} get misses, {} errors)",
        outcome.requests,
        seconds,
        outcome.requests as f64 / seconds,
        outcome.gets,
        outcome.requests.saturating_sub(outcome.gets),
        outcome.misses,
        outcome.errors
    )?;
    writeln!(
        out,
        "latency (us): p50 {}  p90 {}  p99 {}  p999 {}  max {}",
        h.value_at_quantile(0.50),
        h.value_at_quantile(0.90),
        h.value_at_quantile(0.99),
        h.value_at_quantile(0.999),
        h.max()
    )?;
    writeln!(
        out,
        "latency histogram ({}, {} clients, pipeline {}):",
        match options.protocol {
            Protocol::Native => "native",
            Protocol::Resp => "resp",
        },
        options.clients,
        options.pipeline
    )?;
    let total = h.len().max(1);
    for step in h.iter_log(16, 2.0) {
        let count = step.count_since_last_iteration();
        if count == 0 {
            continue;
        }
        let share = count as f64 / total as f64;
        writeln!(
            out,
            "  <= {:>8} us {:>10} {:>6.2}% {}",
            step.value_iterated_to(),
            count,
            share * 100.0,
            "#".repeat((share * 50.0).round() as usize)
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::parse_ratio;

    #[test]
    fn ratios_parse() {
        assert_eq!(parse_ratio("1:1"), Ok((1, 1)));
        assert_eq!(parse_ratio("9:1"), Ok((9, 1)));
        assert_eq!(parse_ratio("0:1"), Ok((0, 1)));
        assert!(parse_ratio("0:0").is_err());
        assert!(parse_ratio("3").is_err());
    }
}
