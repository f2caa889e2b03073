//! The differential tester: seeded random sequences of the commands
//! VeltrixDB supports, sent to veltrixd and to a real `redis-server` side by
//! side, every reply compared. A difference fails with the seed, the command
//! and both replies; `VELTRIX_DIFF_SEED=<n>` replays one seed,
//! `VELTRIX_DIFF_SEEDS=<n>` runs more.
//!
//! What it covers is what `docs/commands.md` lists as behaving as in Redis.
//! Documented differences are left out of the generator, each with its
//! reason next to it.
//!
//! Expiry is tested without sleeping: deadlines are absolute times long
//! past or far in the future (`EXAT`, `PXAT`, `EXPIREAT`, `PEXPIREAT`),
//! whose `EXPIRETIME`/`PEXPIRETIME` and TTLs are exact, or relative times
//! that are refused, zero, negative (an `EXPIRE` that deletes) or hours
//! away. A relative deadline is computed by each server from its own
//! clock, so in the seeds that use positive relative times (one in four)
//! `EXPIRETIME`'s and `PEXPIRETIME`'s non-negative answers may differ by
//! `TTL_TOLERANCE_MS` (the time between the two servers' replies), and
//! `TTL`'s and `PTTL`'s always may (the time left is measured a moment
//! apart); everything else is compared byte for byte. Before `DBSIZE`, both are
//! sent an `EXISTS` of the whole keyspace: Redis counts a key expired but
//! not yet evicted until something looks it up, veltrixd never counts it.
#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use appliance::resp::Reply;
use common::{Client, Daemon, RedisServer};

/// Commands per seed.
const COMMANDS: usize = 600;

/// How far the TTL commands' answers may differ in seeds that set
/// deadlines relative to each server's own clock.
const TTL_TOLERANCE_MS: i64 = 2_000;

/// Seconds since the Unix epoch of 2100-01-01: "far in the future".
const FAR_FUTURE_S: u64 = 4_102_444_800;

/// A small, fast, seeded generator (xorshift64*): no dependency, the same
/// sequence everywhere.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// A key from a small keyspace, so commands meet each other's keys: plain
/// keys, keys sharing a hash tag, and one long key.
fn key(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0..=5 => format!("k{}", rng.below(8)).into_bytes(),
        6..=8 => format!("{{user{}}}.f{}", rng.below(2), rng.below(4)).into_bytes(),
        _ => vec![b'L'; 1000],
    }
}

fn value(rng: &mut Rng) -> Vec<u8> {
    match rng.below(9) {
        // Empty values are valid in both.
        0 => Vec::new(),
        1 => (0..rng.below(3000)).map(|i| (i % 251) as u8).collect(),
        // Numbers, so that the counters meet values they read.
        2 | 3 => integer(rng),
        4 => float(rng),
        _ => format!("v{}", rng.next() % 1000).into_bytes(),
    }
}

/// An integer argument or value: small ones, the edges of i64, and some
/// that Redis does not read as integers.
fn integer(rng: &mut Rng) -> Vec<u8> {
    const EDGES: [&str; 12] = [
        "9223372036854775807",
        "-9223372036854775808",
        "9223372036854775806",
        "-9223372036854775807",
        "9223372036854775808",
        "0",
        "-0",
        "007",
        "1.5",
        " 1",
        "+1",
        "12abc",
    ];
    match rng.below(3) {
        0 => EDGES[rng.below(EDGES.len())].as_bytes().to_vec(),
        1 if rng.below(2) == 0 => (rng.next() as i64).to_string().into_bytes(),
        _ => (rng.below(2001) as i64 - 1000).to_string().into_bytes(),
    }
}

/// A float argument or value as INCRBYFLOAT reads them: decimal, with
/// exponents, hexadecimal, the format's edges, and refused ones.
fn float(rng: &mut Rng) -> Vec<u8> {
    const EDGES: [&str; 24] = [
        "0.1",
        "-0.2",
        "1e20",
        "3.0e-5",
        "1.7976931348623157e308",
        "1e4000",
        "-1e4000",
        "1e-4940",
        "1e5000",
        "1e-5000",
        "inf",
        "-Infinity",
        "nan",
        "0x1p-3",
        "0x10",
        ".5",
        "5.",
        "+7",
        "-0.0",
        "1e",
        " 1",
        "abc",
        "",
        "123456789.123456789",
    ];
    match rng.below(3) {
        0 => EDGES[rng.below(EDGES.len())].as_bytes().to_vec(),
        1 => {
            let mantissa = rng.below(2_000_001) as f64 / 1000.0 - 1000.0;
            let exponent = rng.below(61) as i64 - 30;
            format!("{mantissa}e{exponent}").into_bytes()
        }
        _ => format!("{}.{}", rng.below(20001) as i64 - 10000, rng.below(1000)).into_bytes(),
    }
}

/// Two keys of one slot: a key and itself, or two sharing a hash tag.
fn same_slot_keys(rng: &mut Rng) -> (Vec<u8>, Vec<u8>) {
    if rng.below(5) == 0 {
        let key = key(rng);
        return (key.clone(), key);
    }
    let user = rng.below(2);
    let field = |rng: &mut Rng| format!("{{user{user}}}.f{}", rng.below(4)).into_bytes();
    (field(rng), field(rng))
}

/// A SETRANGE offset: mostly within a few KB, sometimes refused (negative,
/// not an integer). Offsets past `value_bytes_max` are left out: Redis's
/// limit is 512 MB, ours `value_bytes_max` (documented).
fn set_range_offset(rng: &mut Rng) -> Vec<u8> {
    match rng.below(10) {
        0 => b"-1".to_vec(),
        1 => b"x".to_vec(),
        2..=4 => rng.below(3100).to_string().into_bytes(),
        _ => rng.below(40).to_string().into_bytes(),
    }
}

fn keys(rng: &mut Rng, min: usize) -> Vec<Vec<u8>> {
    (0..min + rng.below(4)).map(|_| key(rng)).collect()
}

/// How an expiry argument counts.
#[derive(Clone, Copy, PartialEq)]
enum Unit {
    Seconds,
    Millis,
}

/// A deadline argument: absolute (`at`) times long past or far away, or
/// relative ones that are zero, negative, or (when `relative_ok`) hours
/// away; and ones Redis refuses.
fn expire_time(rng: &mut Rng, unit: Unit, at: bool, relative_ok: bool) -> Vec<u8> {
    let scale = if unit == Unit::Seconds { 1 } else { 1000 };
    let text = match (rng.below(10), at) {
        (0, _) => ["0", "-1", "abc", "1.5", " 7"][rng.below(5)].to_string(),
        // The last edge is a valid deadline, relative to the clock
        // unless `at`: only in seeds with relative deadlines.
        (1, _) => [
            "9223372036854775807",
            "-9223372036854775808",
            "9223372036854775",
        ][rng.below(if at || relative_ok { 3 } else { 2 })]
        .to_string(),
        (2..=4, true) => (1 + rng.below(1_600_000_000) as u64 * scale).to_string(),
        (_, true) => ((FAR_FUTURE_S + rng.below(1_000_000) as u64) * scale
            + rng.below(scale as usize) as u64)
            .to_string(),
        (2..=5, false) => (-(rng.below(100_000) as i64)).to_string(),
        (_, false) if relative_ok => ((3_600 + rng.below(10_000_000) as u64) * scale).to_string(),
        (_, false) => "0".to_string(),
    };
    text.into_bytes()
}

/// `SET key value` with expiry options (and sometimes NX|XX|GET or a
/// conflict Redis refuses).
fn set_with_expiry(rng: &mut Rng, relative_ok: bool) -> Vec<Vec<u8>> {
    let word = |w: &str| w.as_bytes().to_vec();
    let mut args = vec![word("SET"), key(rng), value(rng)];
    let (name, unit, at) = [
        ("EXAT", Unit::Seconds, true),
        ("PXAT", Unit::Millis, true),
        ("EX", Unit::Seconds, false),
        ("PX", Unit::Millis, false),
    ][rng.below(4)];
    match rng.below(8) {
        0 => args.push(word("KEEPTTL")),
        1 => args.extend([
            word("KEEPTTL"),
            word(name),
            expire_time(rng, unit, at, relative_ok),
        ]),
        _ => args.extend([word(name), expire_time(rng, unit, at, relative_ok)]),
    }
    let extra = [
        &[][..],
        &["NX"],
        &["XX"],
        &["GET"],
        &["NX", "GET"],
        &["KEEPTTL"],
    ];
    args.extend(extra[rng.below(extra.len())].iter().map(|f| word(f)));
    args
}

/// One of the expiry commands.
fn expiry_command(rng: &mut Rng, relative_ok: bool) -> Vec<Vec<u8>> {
    let word = |w: &str| w.as_bytes().to_vec();
    match rng.below(9) {
        0 | 1 => set_with_expiry(rng, relative_ok),
        2 => {
            let (name, unit) = [("SETEX", Unit::Seconds), ("PSETEX", Unit::Millis)][rng.below(2)];
            let time = expire_time(rng, unit, false, relative_ok);
            vec![word(name), key(rng), time, value(rng)]
        }
        3 => {
            let mut args = vec![word("GETEX"), key(rng)];
            let (name, unit, at) = [
                ("EXAT", Unit::Seconds, true),
                ("PXAT", Unit::Millis, true),
                ("EX", Unit::Seconds, false),
                ("PX", Unit::Millis, false),
            ][rng.below(4)];
            match rng.below(6) {
                0 => {}
                1 => args.push(word("PERSIST")),
                2 => args.push(word(["KEEPTTL", "NX", "GET"][rng.below(3)])),
                _ => args.extend([word(name), expire_time(rng, unit, at, relative_ok)]),
            }
            args
        }
        4 | 5 => {
            let (name, unit, at) = [
                ("EXPIRE", Unit::Seconds, false),
                ("PEXPIRE", Unit::Millis, false),
                ("EXPIREAT", Unit::Seconds, true),
                ("PEXPIREAT", Unit::Millis, true),
            ][rng.below(4)];
            let mut args = vec![
                word(name),
                key(rng),
                expire_time(rng, unit, at, relative_ok),
            ];
            for _ in 0..rng.below(3) {
                args.push(word(["NX", "XX", "GT", "LT", "nx", "BAD"][rng.below(6)]));
            }
            args
        }
        6 => vec![word("PERSIST"), key(rng)],
        _ => {
            let names = ["TTL", "PTTL", "EXPIRETIME", "PEXPIRETIME"];
            vec![word(names[rng.below(names.len())]), key(rng)]
        }
    }
}

/// Whether a seed sets deadlines relative to each server's clock.
fn relative_seed(seed: u64) -> bool {
    seed.is_multiple_of(4)
}

/// One random command of the supported set. `side` draws only which of
/// DBSIZE, RANDOMKEY and FLUSHDB to send, so that adding those two left
/// the sequences `rng` draws (and what each seed covers) as they were.
fn command(rng: &mut Rng, side: &mut Rng, relative_ok: bool) -> Vec<Vec<u8>> {
    let word = |w: &str| w.as_bytes().to_vec();
    let offset = |rng: &mut Rng| (rng.below(6200) as i64 - 3100).to_string().into_bytes();
    match rng.below(40) {
        30..=38 => expiry_command(rng, relative_ok),
        0 | 1 => vec![word("GET"), key(rng)],
        2 | 3 => vec![word("SET"), key(rng), value(rng)],
        // `SET ... NX|XX`, `SET ... GET`, and Redis 7's `NX|XX` with `GET`.
        4 => {
            let flags = [
                &["NX"][..],
                &["XX"],
                &["GET"],
                &["NX", "GET"],
                &["GET", "XX"],
            ];
            let mut args = vec![word("SET"), key(rng), value(rng)];
            args.extend(flags[rng.below(flags.len())].iter().map(|f| word(f)));
            args
        }
        5 => [vec![word("DEL")], keys(rng, 1)].concat(),
        6 => [vec![word("UNLINK")], keys(rng, 1)].concat(),
        7 => [vec![word("EXISTS")], keys(rng, 1)].concat(),
        8 => [vec![word("MGET")], keys(rng, 1)].concat(),
        9 => {
            let mut args = vec![word("MSET")];
            for _ in 0..1 + rng.below(4) {
                args.push(key(rng));
                args.push(value(rng));
            }
            args
        }
        10 => match side.below(32) {
            // Rare (about once in 1,300 commands): it empties the keyspace
            // the rest of the seed works on.
            0 => {
                let mode = ["", "ASYNC", "SYNC", "async"][side.below(4)];
                let name = word(["FLUSHDB", "FLUSHALL"][side.below(2)]);
                [
                    vec![name],
                    (!mode.is_empty()).then(|| word(mode)).into_iter().collect(),
                ]
                .concat()
            }
            1..=8 => vec![word("RANDOMKEY")],
            _ => vec![word("DBSIZE")],
        },
        11 => vec![word("PING")],
        12 => vec![word("ECHO"), value(rng)],
        13 => vec![word("STRLEN"), key(rng)],
        14 => vec![word("GETRANGE"), key(rng), offset(rng), offset(rng)],
        15 => vec![word("TYPE"), key(rng)],
        16 => vec![word("SETNX"), key(rng), value(rng)],
        17 => [vec![word("TOUCH")], keys(rng, 1)].concat(),
        18 => vec![word("GETSET"), key(rng), value(rng)],
        19 | 20 => vec![word(["INCR", "DECR"][rng.below(2)]), key(rng)],
        21 | 22 => {
            let name = ["INCRBY", "DECRBY"][rng.below(2)];
            vec![word(name), key(rng), integer(rng)]
        }
        23 | 24 => vec![word("INCRBYFLOAT"), key(rng), float(rng)],
        25 => vec![word("APPEND"), key(rng), value(rng)],
        26 => vec![word("GETDEL"), key(rng)],
        27 => {
            let bytes = if rng.below(5) == 0 {
                Vec::new()
            } else {
                value(rng)
            };
            vec![word("SETRANGE"), key(rng), set_range_offset(rng), bytes]
        }
        28 => {
            let mut args = vec![word("MSETNX")];
            for _ in 0..1 + rng.below(3) {
                args.push(key(rng));
                args.push(value(rng));
            }
            args
        }
        29 => {
            // Within one slot only: across slots veltrixd answers as Redis
            // Cluster does (CROSSSLOT), which a standalone redis-server
            // does not (documented).
            let name = word(["RENAME", "RENAMENX"][rng.below(2)]);
            let (from, to) = same_slot_keys(rng);
            vec![name, from, to]
        }
        _ => {
            // Wrong argument counts get Redis's arity error.
            let names = [
                "INCR",
                "INCRBY",
                "APPEND",
                "GETDEL",
                "SETRANGE",
                "MSETNX",
                "EXPIRE",
                "TTL",
                "PERSIST",
                "SETEX",
                "GETEX",
                "PEXPIRETIME",
            ];
            let mut args = vec![word(names[rng.below(names.len())])];
            args.extend((0..rng.below(5)).map(|_| key(rng)));
            args
        }
    }
}

fn show(args: &[Vec<u8>]) -> String {
    args.iter()
        .map(|a| {
            let text = String::from_utf8_lossy(&a[..a.len().min(24)]).into_owned();
            if a.len() > 24 {
                format!("{text}..({} bytes)", a.len())
            } else {
                text
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn seeds() -> Vec<u64> {
    if let Ok(seed) = std::env::var("VELTRIX_DIFF_SEED") {
        return vec![seed.parse().expect("VELTRIX_DIFF_SEED is a u64")];
    }
    let n: u64 = std::env::var("VELTRIX_DIFF_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(8);
    (0..n).map(|i| 0xD1FF_0000 + i).collect()
}

/// `command` with every key of the generator's keyspace.
fn over_keyspace(client: &mut Client, command: &[u8]) -> Reply {
    let mut args: Vec<Vec<u8>> = vec![command.to_vec()];
    args.extend((0..8).map(|i| format!("k{i}").into_bytes()));
    args.extend((0..2).flat_map(|u| (0..4).map(move |f| format!("{{user{u}}}.f{f}").into_bytes())));
    args.push(vec![b'L'; 1000]);
    let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
    client.call(&refs)
}

/// Deletes every key of the generator's keyspace on a server.
fn clear(client: &mut Client) {
    over_keyspace(client, b"DEL");
}

/// Whether two replies agree: byte for byte, or within the tolerance for
/// TTL and PTTL (the time left is measured on each server's clock, a
/// moment apart) and, in a seed with relative deadlines, for EXPIRETIME
/// and PEXPIRETIME.
fn agree(args: &[Vec<u8>], relative: bool, a: &Reply, b: &Reply) -> bool {
    if a == b {
        return true;
    }
    let name = args[0].to_ascii_uppercase();
    let (scale, tolerated) = match name.as_slice() {
        b"TTL" => (1000, true),
        b"PTTL" => (1, true),
        b"EXPIRETIME" => (1000, relative),
        b"PEXPIRETIME" => (1, relative),
        _ => return false,
    };
    match (a, b) {
        (Reply::Integer(x), Reply::Integer(y)) if tolerated && *x >= 0 && *y >= 0 => {
            (x - y).abs() * scale <= TTL_TOLERANCE_MS
        }
        _ => false,
    }
}

/// Sends one seed's commands to both servers; the first difference.
fn compare(seed: u64, ours: &mut Client, theirs: &mut Client) -> Option<String> {
    compare_counting(seed, ours, theirs, &mut 0)
}

/// As `compare`, counting in `deadlines` the TTL commands that found a
/// key with a deadline (so a generator that never sets one fails).
fn compare_counting(
    seed: u64,
    ours: &mut Client,
    theirs: &mut Client,
    deadlines: &mut usize,
) -> Option<String> {
    let mut rng = Rng::new(seed);
    let mut side = Rng::new(!seed);
    let relative = relative_seed(seed);
    for i in 0..COMMANDS {
        let args = command(&mut rng, &mut side, relative);
        if args[0] == b"DBSIZE" {
            // Redis evicts an expired key when something looks it up.
            over_keyspace(ours, b"EXISTS");
            over_keyspace(theirs, b"EXISTS");
        }
        if args[0] == b"RANDOMKEY" {
            over_keyspace(ours, b"EXISTS");
            over_keyspace(theirs, b"EXISTS");
        }
        let refs: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
        let (a, b) = (ours.call(&refs), theirs.call(&refs));
        // With two keys or more, each server picks its own: veltrixd's
        // must be one Redis holds too.
        if args[0] == b"RANDOMKEY" && a != b {
            if let (Reply::Bulk(Some(k)), Reply::Bulk(Some(_))) = (&a, &b) {
                if theirs.call(&[b"EXISTS", k]) == Reply::Integer(1)
                    && theirs.call(&[b"DBSIZE"]) != Reply::Integer(1)
                {
                    continue;
                }
            }
        }
        let ttl = args[0].ends_with(b"TTL") || args[0].ends_with(b"TIME");
        if ttl && matches!(b, Reply::Integer(n) if n >= 0) {
            *deadlines += 1;
        }
        if !agree(&args, relative, &a, &b) {
            return Some(format!(
                "seed {seed} (VELTRIX_DIFF_SEED={seed}), command {i}: {}\n  veltrixd: {a:?}\n  redis:    {b:?}",
                show(&args)
            ));
        }
    }
    None
}

/// Both servers started from the same empty keyspace.
fn start() -> Option<(tempfile::TempDir, Daemon, RedisServer)> {
    if !common::tool("redis-server") {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "redis-server is missing under CI=true: .ci/run installs it"
        );
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let redis = RedisServer::start(&[]);
    Some((dir, daemon, redis))
}

#[test]
fn replies_match_redis_for_the_supported_commands() {
    let Some((_dir, daemon, redis)) = start() else {
        return;
    };
    let mut ours = daemon.client();
    let mut theirs = Client::connect(redis.port);
    let seeds = seeds();
    let mut failures = Vec::new();
    let mut deadlines = 0;
    for &seed in &seeds {
        clear(&mut ours);
        clear(&mut theirs);
        if let Some(difference) = compare_counting(seed, &mut ours, &mut theirs, &mut deadlines) {
            failures.push(difference);
        }
    }
    eprintln!(
        "differential test: {} seeds × {COMMANDS} commands against redis-server; {deadlines} TTL commands found a deadline",
        seeds.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        seeds.len() < 4 || deadlines > 10,
        "the generator set too few deadlines: {deadlines}"
    );
}

/// The tester itself can fail: with one key more on veltrixd (outside the
/// generator's keyspace, so no command overwrites it), the first `DBSIZE`
/// differs, and the report names the seed.
#[test]
fn a_planted_difference_is_caught_with_its_seed() {
    let Some((_dir, daemon, redis)) = start() else {
        return;
    };
    let mut ours = daemon.client();
    let mut theirs = Client::connect(redis.port);
    clear(&mut ours);
    clear(&mut theirs);
    ours.call(&[b"SET", b"planted", b"only here"]);
    let seed = 0xD1FF_0000;
    let difference = compare(seed, &mut ours, &mut theirs).expect("the planted key must show");
    assert!(
        difference.contains(&format!("VELTRIX_DIFF_SEED={seed}")),
        "{difference}"
    );
    assert!(difference.contains("DBSIZE"), "{difference}");
}

/// COMMAND INFO answers byte for byte as Redis 7.0 does, in RESP2 and
/// RESP3, for every command veltrixd lists except the three with
/// subcommands (CLIENT, COMMAND, CONFIG: veltrixd lists none), with null
/// for an unknown name; COMMAND DOCS gives Redis's summary, since, group
/// and complexity; COMMAND COUNT is the table's length.
#[test]
fn command_info_matches_redis() {
    let Some((_dir, daemon, redis)) = start() else {
        return;
    };
    let names: Vec<&str> = appliance::command_table::COMMANDS
        .iter()
        .map(|c| c.name)
        .filter(|n| !["client", "command", "config"].contains(n))
        .collect();
    for hello in [None, Some(&b"3"[..])] {
        let mut ours = daemon.client();
        let mut theirs = Client::connect(redis.port);
        if let Some(version) = hello {
            ours.call(&[b"HELLO", version]);
            theirs.call(&[b"HELLO", version]);
        }
        // The brief's handful first, so a difference there reads plainly.
        for name in ["get", "set", "mget", "incr", "del", "expire"]
            .into_iter()
            .chain(names.iter().copied())
        {
            let args: [&[u8]; 3] = [b"COMMAND", b"INFO", name.as_bytes()];
            let (a, b) = (ours.raw(&args), theirs.raw(&args));
            assert_eq!(
                String::from_utf8_lossy(&a),
                String::from_utf8_lossy(&b),
                "COMMAND INFO {name}, HELLO {hello:?}"
            );
        }
        let several: [&[u8]; 6] = [b"COMMAND", b"INFO", b"GET", b"nosuch", b"Incr", b"x"];
        let (a, b) = (ours.raw(&several), theirs.raw(&several));
        assert_eq!(String::from_utf8_lossy(&a), String::from_utf8_lossy(&b));
        let mut lpush = ours.call(&[b"COMMAND", b"INFO", b"lpush"]);
        let expected = if hello.is_some() {
            Reply::Null
        } else {
            Reply::Bulk(None)
        };
        assert_eq!(lpush, Reply::Array(Some(vec![expected])), "not implemented");
        lpush = ours.call(&[b"COMMAND", b"DOCS", b"lpush"]);
        assert!(
            matches!(&lpush, Reply::Array(Some(v)) if v.is_empty())
                || matches!(&lpush, Reply::Map(v) if v.is_empty()),
            "{lpush:?}"
        );
    }
    let mut ours = daemon.client();
    let mut theirs = Client::connect(redis.port);
    assert_eq!(
        ours.call(&[b"COMMAND", b"COUNT"]),
        Reply::Integer(appliance::command_table::COMMANDS.len() as i64)
    );
    // Redis's docs carry more fields (arguments, history); the four
    // veltrixd sends must equal Redis's.
    for name in &names {
        let fields = |reply: Reply| -> Vec<(Reply, Reply)> {
            let Reply::Array(Some(top)) = reply else {
                panic!("COMMAND DOCS {name}: {reply:?}")
            };
            let Reply::Array(Some(doc)) = top[1].clone() else {
                panic!("COMMAND DOCS {name}: {top:?}")
            };
            doc.chunks(2)
                .map(|p| (p[0].clone(), p[1].clone()))
                .filter(|(k, _)| {
                    ["summary", "since", "group", "complexity"]
                        .iter()
                        .any(|f| *k == common::bulk(f.as_bytes()))
                })
                .collect()
        };
        let args: [&[u8]; 3] = [b"COMMAND", b"DOCS", name.as_bytes()];
        let (a, b) = (fields(ours.call(&args)), fields(theirs.call(&args)));
        assert_eq!(a.len(), 4, "{name}");
        assert_eq!(a, b, "COMMAND DOCS {name}");
    }
}
