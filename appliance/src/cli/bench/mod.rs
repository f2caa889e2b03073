//! `veltrix bench`: a closed-loop load generator over the native protocol,
//! RESP (one server, or a Redis Cluster routed by slot, optionally with
//! `WAIT` after each SET) or etcd's HTTP/JSON gateway. Each client is a
//! thread with one connection (one per node it uses, in a cluster) that
//! sends `pipeline` requests, then reads their replies; a request's
//! latency runs from the write of its batch to the arrival of its reply
//! (for a routed op, to its last reply, redirects and WAIT included).

mod etcd;
mod resp_conn;
mod routed;
mod slots;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use rand::Rng;
use veltrix_client::{Client, Request, Status};

use etcd::EtcdConn;
use resp_conn::{encode_op, judge, OpResult, RespConn};
use routed::Router;
use slots::SlotMap;

/// Which port to load.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// The RESP port of one server.
    Resp,
    /// The native port.
    Native,
    /// A Redis Cluster (a veltrix cluster or Redis's): `CLUSTER SLOTS`
    /// from the first seed, each key sent to its slot's node.
    RespCluster,
    /// etcd's HTTP/JSON gateway (puts only).
    Etcd,
}

impl Protocol {
    /// The name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Resp => "resp",
            Protocol::Native => "native",
            Protocol::RespCluster => "resp-cluster",
            Protocol::Etcd => "etcd",
        }
    }
}

/// What to run.
#[derive(Clone, Debug)]
pub struct Options {
    /// Which protocol.
    pub protocol: Protocol,
    /// Where: client `i` connects to `addrs[i % len]` (native, RESP,
    /// etcd); for a cluster, the seeds asked for the slot map.
    pub addrs: Vec<SocketAddr>,
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
    /// RESP only: send `WAIT n 0` after each SET on the same connection
    /// and count the SET done when n replicas have it.
    pub wait: Option<u32>,
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
    /// `-MOVED` redirects followed (cluster only).
    pub redirects: u64,
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

/// Misses, errors and redirects of one batch.
#[derive(Default)]
struct Tally {
    misses: u64,
    errors: u64,
    redirects: u64,
}

impl Tally {
    fn count(&mut self, result: OpResult) {
        match result {
            OpResult::Ok => {}
            OpResult::Miss => self.misses += 1,
            OpResult::Error => self.errors += 1,
        }
    }
}

/// One client's connection(s) under load.
enum Connection {
    Native(Client),
    Resp(RespConn),
    Cluster(Router),
    Etcd(EtcdConn),
}

impl Connection {
    /// Client `index`'s connection; `map` is the cluster's slot map, read
    /// once for all clients.
    fn open(options: &Options, index: usize, map: Option<&SlotMap>) -> anyhow::Result<Connection> {
        let addr = options.addrs[index % options.addrs.len()];
        Ok(match options.protocol {
            Protocol::Native => Connection::Native(
                Client::connect(addr).with_context(|| format!("native port {addr}"))?,
            ),
            Protocol::Resp => Connection::Resp(RespConn::open(addr)?),
            Protocol::RespCluster => {
                let map = map.context("no slot map for a cluster client")?;
                let mut router = Router::new(map.clone(), options.wait);
                router.connect_all()?;
                Connection::Cluster(router)
            }
            Protocol::Etcd => Connection::Etcd(EtcdConn::open(addr)?),
        })
    }

    /// Sends a batch and reads every reply; calls `done` with each op's
    /// completion time.
    fn batch(
        &mut self,
        ops: &[(bool, Vec<u8>)],
        value: &[u8],
        wait: Option<u32>,
        done: &mut dyn FnMut(Instant),
    ) -> anyhow::Result<Tally> {
        let mut tally = Tally::default();
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
                        Status::NotFound => tally.misses += 1,
                        _ => tally.errors += 1,
                    }
                }
            }
            Connection::Resp(conn) => {
                let mut out = Vec::new();
                let replies: Vec<usize> = ops
                    .iter()
                    .map(|(get, key)| encode_op(&mut out, *get, key, value, wait))
                    .collect();
                conn.send(&out)?;
                for n in replies {
                    let first = conn.read_reply()?;
                    let second = if n == 2 {
                        Some(conn.read_reply()?)
                    } else {
                        None
                    };
                    done(Instant::now());
                    tally.count(judge(&first, second.as_ref(), wait));
                }
            }
            Connection::Cluster(router) => {
                for (get, key) in ops {
                    let (result, redirects) = router.op(*get, key, value)?;
                    done(Instant::now());
                    tally.count(result);
                    tally.redirects += u64::from(redirects);
                }
            }
            Connection::Etcd(conn) => {
                for (_, key) in ops {
                    let ok = conn.put(key, value)?;
                    done(Instant::now());
                    if !ok {
                        tally.errors += 1;
                    }
                }
            }
        }
        Ok(tally)
    }
}

/// Refuses what a protocol cannot do, before anything connects.
fn check(options: &Options) -> anyhow::Result<()> {
    if options.clients == 0 || options.pipeline == 0 || options.keys == 0 {
        bail!("--clients, --pipeline and --keys must be at least 1");
    }
    if options.addrs.is_empty() {
        bail!("no address to load");
    }
    let one_at_a_time = matches!(options.protocol, Protocol::RespCluster | Protocol::Etcd);
    if one_at_a_time && options.pipeline != 1 {
        bail!(
            "--protocol {} sends one request at a time: --pipeline 1",
            options.protocol.name()
        );
    }
    if options.protocol == Protocol::Etcd && options.gets > 0 {
        bail!("--protocol etcd only puts: --ratio 0:1");
    }
    if options.wait.is_some() && !matches!(options.protocol, Protocol::Resp | Protocol::RespCluster)
    {
        bail!("--wait is a RESP command: --protocol resp or resp-cluster");
    }
    Ok(())
}

/// Runs the load and returns what it measured. `progress` sees the number
/// of requests answered so far, about ten times a second.
pub fn run(options: &Options, progress: &dyn Fn(u64)) -> anyhow::Result<Outcome> {
    check(options)?;
    let tickets = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    // One slot map for every cluster client: 64 clients asking for it
    // would be 64 CLUSTER SLOTS before the clock starts.
    let map = match options.protocol {
        Protocol::RespCluster => Some(routed::fetch_map(&options.addrs)?),
        _ => None,
    };
    // Connect everyone first, so a bad address fails before the clock starts.
    let mut connections = Vec::with_capacity(options.clients);
    for index in 0..options.clients {
        connections.push(Connection::open(options, index, map.as_ref())?);
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
                move || -> anyhow::Result<(Histogram<u64>, [u64; 4], Instant)> {
                    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?;
                    let mut rng = rand::rng();
                    let value = vec![b'v'; options.value_bytes];
                    let mut counts = [0u64; 4]; // gets, misses, errors, redirects
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
                        let tally = conn.batch(&ops, &value, options.wait, &mut |at| {
                            let us = at.duration_since(sent).as_micros().max(1) as u64;
                            let _ = histogram.record(us.min(60_000_000));
                        })?;
                        counts[1] += tally.misses;
                        counts[2] += tally.errors;
                        counts[3] += tally.redirects;
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
    let mut counts = [0u64; 4];
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
        redirects: counts[3],
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
        "{} requests in {:.2} s: {:.0} ops/s ({} gets, {} sets; {} get misses, {} errors, {} redirects)",
        outcome.requests,
        seconds,
        outcome.requests as f64 / seconds,
        outcome.gets,
        outcome.requests.saturating_sub(outcome.gets),
        outcome.misses,
        outcome.errors,
        outcome.redirects
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
        "latency histogram ({}{}, {} clients, pipeline {}):",
        options.protocol.name(),
        match options.wait {
            Some(n) => format!(" + WAIT {n} 0"),
            None => String::new(),
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
    use super::*;

    #[test]
    fn ratios_parse() {
        assert_eq!(parse_ratio("1:1"), Ok((1, 1)));
        assert_eq!(parse_ratio("9:1"), Ok((9, 1)));
        assert_eq!(parse_ratio("0:1"), Ok((0, 1)));
        assert!(parse_ratio("0:0").is_err());
        assert!(parse_ratio("3").is_err());
    }

    fn options(protocol: Protocol) -> Options {
        Options {
            protocol,
            addrs: vec!["127.0.0.1:1".parse().unwrap()],
            clients: 64,
            requests: 0,
            seconds: Some(1),
            value_bytes: 100,
            keys: 1000,
            gets: 0,
            sets: 1,
            pipeline: 1,
            wait: None,
        }
    }

    #[test]
    fn what_a_protocol_cannot_do_is_refused_before_connecting() {
        assert!(check(&options(Protocol::Etcd)).is_ok());
        assert!(check(&options(Protocol::RespCluster)).is_ok());
        let etcd_gets = Options {
            gets: 1,
            ..options(Protocol::Etcd)
        };
        assert!(check(&etcd_gets).is_err());
        let cluster_pipeline = Options {
            pipeline: 16,
            ..options(Protocol::RespCluster)
        };
        assert!(check(&cluster_pipeline).is_err());
        let etcd_wait = Options {
            wait: Some(1),
            ..options(Protocol::Etcd)
        };
        assert!(check(&etcd_wait).is_err());
        let resp_wait = Options {
            wait: Some(1),
            ..options(Protocol::RespCluster)
        };
        assert!(check(&resp_wait).is_ok());
        let nowhere = Options {
            addrs: vec![],
            ..options(Protocol::Resp)
        };
        assert!(check(&nowhere).is_err());
    }

    /// scripts/bench-cluster.sh reads these two lines with awk.
    #[test]
    fn the_summary_lines_keep_the_shape_the_script_reads() {
        let mut latency_us = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
        for us in 1..=1000 {
            latency_us.record(us).unwrap();
        }
        let outcome = Outcome {
            requests: 1000,
            gets: 0,
            misses: 0,
            errors: 2,
            redirects: 3,
            elapsed: Duration::from_secs(2),
            latency_us,
        };
        let mut out = Vec::new();
        print(&options(Protocol::RespCluster), &outcome, &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("1000 requests in 2.00 s: 500 ops/s (0 gets, 1000 sets; 0 get misses, 2 errors, 3 redirects)")
        );
        assert_eq!(
            lines.next(),
            Some("latency (us): p50 500  p90 900  p99 990  p999 999  max 1000")
        );
    }
}
