//! What each RESP command does: either an immediate reply, or engine
//! operations whose replies are combined into one RESP reply.

use engine::modify::{parse_integer as integer, ExpireIf, Expiry, Extended};
use engine::{BatchOp, Condition, EngineError, Modify, ModifyError, Op, Reply};

use crate::command_table;
use crate::resp::encode;
use crate::resp::Protocol;

/// Most keys one multi-key command may name (MGET, DEL, EXISTS, MSET pairs).
pub const KEYS_PER_COMMAND_MAX: usize = 4096;
/// Shards one SCAN call visits with the default COUNT.
pub const SCAN_SHARDS_PER_CALL: u16 = 16;
/// SCAN's COUNT when not given (Redis's).
const SCAN_COUNT_DEFAULT: u64 = 10;

/// Shards one SCAN call visits for `count`: COUNT is a hint of how much
/// work a call does, as in Redis. The default (10) visits
/// [`SCAN_SHARDS_PER_CALL`] shards, and the number grows with COUNT, so
/// `SCAN 0 COUNT 1000000` returns every key in one call (about 16 shards
/// for every 10 keys asked).
fn scan_shards(count: u64) -> u64 {
    count
        .saturating_mul(u64::from(SCAN_SHARDS_PER_CALL))
        .div_ceil(SCAN_COUNT_DEFAULT)
        .clamp(1, u64::from(engine::shard::SHARD_COUNT))
}
/// Keys one round of FLUSHDB deletes before it scans again.
pub const FLUSH_DELETES_PER_ROUND: usize = 4096;

const _: () = assert!(FLUSH_DELETES_PER_ROUND <= KEYS_PER_COMMAND_MAX);

/// How the replies of a command's engine operations become one RESP reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Combine {
    /// GET: the value or null.
    Value,
    /// SET: +OK, or null when NX/XX did not apply.
    Set,
    /// DEL: how many existed.
    CountDeleted,
    /// EXISTS: how many exist.
    CountExisting,
    /// MGET: an array of values or nulls.
    Values,
    /// MSET: +OK.
    Ok,
    /// STRLEN: the value's length, 0 for a missing key.
    Length,
    /// GETRANGE: the bytes from `start` to `end`, both inclusive, with
    /// Redis's rules for negative and out-of-range offsets.
    Range {
        /// First offset asked for.
        start: i64,
        /// Last offset asked for.
        end: i64,
    },
    /// TYPE: `string` for a key that exists, `none` otherwise.
    Type,
    /// SETNX, MSETNX: 1 when the keys were set, 0 when one existed.
    SetNx,
    /// INCR and the other counters, APPEND, SETRANGE: the number the
    /// read-modify-write answered.
    Integer,
    /// RENAME: +OK once moved. RENAMENX: 1 when moved, 0 when the new
    /// name existed.
    Renamed {
        /// RENAMENX.
        if_absent: bool,
    },
    /// SET ... NX|XX KEEPTTL (a read-modify-write answering the old
    /// value): +OK when the condition held, null otherwise.
    SetIf(Condition),
    /// TTL, PTTL, EXPIRETIME, PEXPIRETIME, from the key's deadline.
    Ttl {
        /// In milliseconds (PTTL, PEXPIRETIME), else seconds, rounded.
        ms: bool,
        /// The deadline itself (EXPIRETIME), else the time left.
        absolute: bool,
    },
    /// DBSIZE: the sum of every shard's count.
    Sum,
    /// GETEX with a bad time: null for a missing key, else this reply
    /// (Redis looks the key up before it checks the time).
    NullOr(Vec<u8>),
    /// FLUSHDB's scan of every shard: +OK when every shard is empty,
    /// else a round of deletes follows ([`next_round`]).
    FlushScan,
    /// FLUSHDB's deletes: +OK, or (`more`: the scan found more keys than
    /// one round deletes) another scan follows.
    FlushDelete {
        /// Whether to scan again once these deletes are durable.
        more: bool,
    },
    /// RANDOMKEY's scan of every shard: the key at `pick` modulo the
    /// number found, or null when there is none.
    RandomKey {
        /// A random number, drawn when the command arrived.
        pick: u64,
    },
    /// SCAN: the next cursor and the matching keys.
    Scan {
        /// Cursor to return.
        next: u64,
        /// MATCH pattern.
        pattern: Option<Vec<u8>>,
    },
}

/// What to do with a command.
#[derive(Debug)]
pub enum Action {
    /// Reply now with these bytes.
    Reply(Vec<u8>),
    /// Reply now, then close the connection (QUIT).
    ReplyAndClose(Vec<u8>),
    /// Run these operations, then combine their replies.
    Engine(Vec<Op>, Combine),
    /// Switch the connection's protocol, then reply (HELLO).
    Hello(Protocol, Option<Vec<u8>>),
    /// CLIENT SETNAME.
    SetName(Vec<u8>),
    /// CLIENT GETNAME.
    GetName,
    /// INFO needs the engine's counters.
    Info,
    /// CONFIG GET: the settings whose names match any of these patterns
    /// (the connection's server knows the values).
    ConfigGet(Vec<Vec<u8>>),
}

fn error(message: &str) -> Action {
    let mut out = Vec::new();
    encode::error(&mut out, message);
    Action::Reply(out)
}

fn simple(text: &str) -> Action {
    let mut out = Vec::new();
    encode::simple(&mut out, text);
    Action::Reply(out)
}

fn arity(name: &str) -> Action {
    error(&format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// The answer to MULTI, EXEC, DISCARD, WATCH and UNWATCH.
pub const TRANSACTIONS_REFUSED: &str = "ERR transactions (MULTI/EXEC/WATCH) are not supported \
     yet: send the commands on their own (redis-py: pipeline(transaction=False)), or use MSET, \
     MSETNX, SET ... NX|XX GET, INCR and the other atomic commands (docs/commands.md)";

/// A read-modify-write of `key`, answered as `combine`.
fn modify(key: &[u8], modify: Modify, combine: Combine) -> Action {
    Action::Engine(vec![Op::modify(key.to_vec(), modify)], combine)
}

/// GETRANGE's slice of `value`, as Redis 7 computes it.
fn range(value: &[u8], start: i64, end: i64) -> &[u8] {
    let len = value.len() as i64;
    if start < 0 && end < 0 && start > end {
        return &[];
    }
    let start = if start < 0 { len + start } else { start }.max(0);
    let end = if end < 0 { len + end } else { end }.max(0).min(len - 1);
    if len == 0 || start > end {
        return &[];
    }
    &value[start as usize..=end as usize]
}

fn printable(arg: &[u8]) -> String {
    String::from_utf8_lossy(&arg[..arg.len().min(128)]).into_owned()
}

/// Decides what `args` (the command and its arguments) does.
pub fn dispatch(args: &[&[u8]], protocol: Protocol) -> Action {
    let Some(first) = args.first() else {
        return error("ERR empty command");
    };
    let name = String::from_utf8_lossy(first).to_ascii_lowercase();
    let rest = &args[1..];
    match name.as_str() {
        "ping" => match rest {
            [] => simple("PONG"),
            [message] => {
                let mut out = Vec::new();
                encode::bulk(&mut out, message);
                Action::Reply(out)
            }
            _ => arity("ping"),
        },
        "echo" => match rest {
            [message] => {
                let mut out = Vec::new();
                encode::bulk(&mut out, message);
                Action::Reply(out)
            }
            _ => arity("echo"),
        },
        "quit" => {
            let mut out = Vec::new();
            encode::simple(&mut out, "OK");
            Action::ReplyAndClose(out)
        }
        "select" => match rest {
            [db] if *db == b"0" => simple("OK"),
            [_] => error("ERR DB index is out of range"),
            _ => arity("select"),
        },
        "hello" => hello(rest, protocol),
        "client" => client(rest),
        "command" => command(rest, protocol),
        "config" => config(rest),
        "info" => Action::Info,
        // Counted per shard by the workers, so that keys expired but not
        // yet reclaimed are left out.
        "dbsize" => match rest {
            [] => {
                let ops = (0..engine::shard::SHARD_COUNT).map(Op::Count).collect();
                Action::Engine(ops, Combine::Sum)
            }
            _ => arity("dbsize"),
        },
        "get" => match rest {
            [key] => Action::Engine(vec![Op::Get(key.to_vec())], Combine::Value),
            _ => arity("get"),
        },
        "set" => set(rest),
        "setex" | "psetex" => set_ex(&name, rest),
        "getex" => get_ex(rest),
        "expire" | "pexpire" | "expireat" | "pexpireat" => expire(&name, rest),
        "ttl" | "pttl" | "expiretime" | "pexpiretime" => match rest {
            [key] => {
                let ms = name.starts_with('p');
                let absolute = name.ends_with("time");
                let ops = vec![Op::Deadline(key.to_vec())];
                Action::Engine(ops, Combine::Ttl { ms, absolute })
            }
            _ => arity(&name),
        },
        "persist" => match rest {
            [key] => modify(key, Modify::Persist, Combine::Integer),
            _ => arity("persist"),
        },
        "strlen" => match rest {
            [key] => Action::Engine(vec![Op::Get(key.to_vec())], Combine::Length),
            _ => arity("strlen"),
        },
        "getrange" => match rest {
            [key, start, end] => match (integer(start), integer(end)) {
                (Some(start), Some(end)) => {
                    Action::Engine(vec![Op::Get(key.to_vec())], Combine::Range { start, end })
                }
                _ => error(NOT_AN_INTEGER),
            },
            _ => arity("getrange"),
        },
        "incr" | "decr" | "incrby" | "decrby" | "incrbyfloat" => counter(&name, rest),
        "append" => match rest {
            [key, bytes] => modify(key, Modify::Append(bytes.to_vec()), Combine::Integer),
            _ => arity("append"),
        },
        "setrange" => set_range(rest),
        "rename" | "renamenx" => rename(&name, rest),
        "getdel" => match rest {
            [key] => modify(key, Modify::GetDel, Combine::Value),
            _ => arity("getdel"),
        },
        "type" => match rest {
            [key] => Action::Engine(vec![Op::Exists(key.to_vec())], Combine::Type),
            _ => arity("type"),
        },
        "setnx" => match rest {
            [key, value] => Action::Engine(
                vec![Op::PutIf(key.to_vec(), value.to_vec(), Condition::Absent)],
                Combine::SetNx,
            ),
            _ => arity("setnx"),
        },
        // SET key value GET: an atomic exchange.
        "getset" => match rest {
            [key, value] => Action::Engine(
                vec![Op::PutGet(key.to_vec(), value.to_vec())],
                Combine::Value,
            ),
            _ => arity("getset"),
        },
        "del" | "unlink" => {
            if rest.is_empty() {
                return arity(&name);
            }
            if rest.len() > KEYS_PER_COMMAND_MAX {
                return error("ERR too many keys in one command");
            }
            let ops = rest.iter().map(|k| Op::Delete(k.to_vec())).collect();
            Action::Engine(ops, Combine::CountDeleted)
        }
        "exists" | "touch" => {
            if rest.is_empty() {
                return arity(&name);
            }
            if rest.len() > KEYS_PER_COMMAND_MAX {
                return error("ERR too many keys in one command");
            }
            let ops = rest.iter().map(|k| Op::Exists(k.to_vec())).collect();
            Action::Engine(ops, Combine::CountExisting)
        }
        "mget" => {
            if rest.is_empty() {
                return arity("mget");
            }
            if rest.len() > KEYS_PER_COMMAND_MAX {
                return error("ERR too many keys in one command");
            }
            let ops = rest.iter().map(|k| Op::Get(k.to_vec())).collect();
            Action::Engine(ops, Combine::Values)
        }
        "mset" | "msetnx" => mset(&name, rest),
        "scan" => scan(rest),
        "flushdb" | "flushall" => match rest {
            [] => Action::Engine(scan_every_shard(), Combine::FlushScan),
            [mode] if mode.eq_ignore_ascii_case(b"ASYNC") || mode.eq_ignore_ascii_case(b"SYNC") => {
                Action::Engine(scan_every_shard(), Combine::FlushScan)
            }
            _ => error("ERR syntax error"),
        },
        "randomkey" => match rest {
            [] => Action::Engine(scan_every_shard(), Combine::RandomKey { pick: random() }),
            _ => arity("randomkey"),
        },
        // Transactions are refused, clearly, rather than run without their
        // isolation (docs/commands.md, "Transactions").
        "multi" | "exec" | "discard" | "watch" | "unwatch" => error(TRANSACTIONS_REFUSED),
        _ => {
            let mut message = format!(
                "ERR unknown command '{}', with args beginning with: ",
                printable(first)
            );
            for arg in rest.iter().take(8) {
                message.push_str(&format!("'{}' ", printable(arg)));
            }
            error(&message)
        }
    }
}

/// MSET, and MSETNX: the same atomic batch, only if every key is absent.
/// Keys on different workers are gathered on one first, for both.
fn mset(name: &str, rest: &[&[u8]]) -> Action {
    if rest.is_empty() || !rest.len().is_multiple_of(2) {
        return arity(name);
    }
    if rest.len() / 2 > KEYS_PER_COMMAND_MAX {
        return error("ERR too many keys in one command");
    }
    let ops = rest
        .chunks(2)
        .map(|pair| BatchOp::Put(pair[0].to_vec(), pair[1].to_vec()))
        .collect();
    match name {
        "msetnx" => Action::Engine(vec![Op::BatchIf(ops, Condition::Absent)], Combine::SetNx),
        _ => Action::Engine(vec![Op::Batch(ops)], Combine::Ok),
    }
}

/// INCR, DECR, INCRBY, DECRBY and INCRBYFLOAT. The argument is checked
/// here, with Redis's errors, before the key is read.
fn counter(name: &str, rest: &[&[u8]]) -> Action {
    let (key, by) = match (name, rest) {
        ("incr" | "decr", [key]) => (key, None),
        ("incrby" | "decrby" | "incrbyfloat", [key, by]) => (key, Some(*by)),
        _ => return arity(name),
    };
    let change = match (name, by) {
        ("incrbyfloat", Some(by)) => match Extended::parse(by) {
            Some(by) => return modify(key, Modify::IncrByFloat(by), Combine::Value),
            None => return error("ERR value is not a valid float"),
        },
        (_, None) => 1,
        (_, Some(by)) => match integer(by) {
            Some(by) => by,
            None => return error(NOT_AN_INTEGER),
        },
    };
    let change = match name {
        // Redis refuses to negate the least i64 with its own message.
        "decr" | "decrby" => match change.checked_neg() {
            Some(negated) => negated,
            None => return error("ERR decrement would overflow"),
        },
        _ => change,
    };
    modify(key, Modify::IncrBy(change), Combine::Integer)
}

/// RENAME and RENAMENX, within one slot only: the keys' values move in
/// one atomic write of the worker that owns the slot. Across slots the
/// answer is Redis Cluster's.
fn rename(name: &str, rest: &[&[u8]]) -> Action {
    let [key, to] = rest else {
        return arity(name);
    };
    if engine::shard::slot(key) != engine::shard::slot(to) {
        return error("CROSSSLOT Keys in request don't hash to the same slot");
    }
    let if_absent = name == "renamenx";
    let rename = Modify::Rename {
        to: to.to_vec(),
        if_absent,
    };
    modify(key, rename, Combine::Renamed { if_absent })
}

/// SETRANGE key offset value. The new length's limit is the engine's
/// `value_bytes_max`, not Redis's 512 MB.
fn set_range(rest: &[&[u8]]) -> Action {
    let [key, offset, bytes] = rest else {
        return arity("setrange");
    };
    let Some(offset) = integer(offset) else {
        return error(NOT_AN_INTEGER);
    };
    let Ok(offset) = u64::try_from(offset) else {
        return error("ERR offset is out of range");
    };
    let bytes = bytes.to_vec();
    modify(key, Modify::SetRange { offset, bytes }, Combine::Integer)
}

/// SET's and GETEX's options as Redis 7's `parseExtendedStringArgumentsOrReply`
/// reads them: repeats allowed, conflicts a syntax error.
#[derive(Default)]
struct SetOptions<'a> {
    condition: Option<Condition>,
    get: bool,
    keep_ttl: bool,
    persist: bool,
    /// EX, PX, EXAT or PXAT, and its argument.
    expire: Option<(Unit, &'a [u8])>,
}

/// How an expiry argument counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unit {
    /// EX: seconds from now.
    Seconds,
    /// PX: milliseconds from now.
    Millis,
    /// EXAT: a Unix time in seconds.
    SecondsAt,
    /// PXAT: a Unix time in milliseconds.
    MillisAt,
}

/// Parses SET's options (`set`) or GETEX's; `None` is a syntax error.
fn set_options<'a>(options: &[&'a [u8]], set: bool) -> Option<SetOptions<'a>> {
    let mut o = SetOptions::default();
    let mut at = 0;
    while at < options.len() {
        let option = options[at].to_ascii_uppercase();
        let next = options.get(at + 1).copied();
        let unit = match option.as_slice() {
            b"EX" => Some(Unit::Seconds),
            b"PX" => Some(Unit::Millis),
            b"EXAT" => Some(Unit::SecondsAt),
            b"PXAT" => Some(Unit::MillisAt),
            _ => None,
        };
        let other_expire = |o: &SetOptions| o.expire.is_some_and(|(u, _)| Some(u) != unit);
        match option.as_slice() {
            b"NX" if set && o.condition != Some(Condition::Present) => {
                o.condition = Some(Condition::Absent)
            }
            b"XX" if set && o.condition != Some(Condition::Absent) => {
                o.condition = Some(Condition::Present)
            }
            b"GET" if set => o.get = true,
            b"KEEPTTL" if set && !o.persist && o.expire.is_none() => o.keep_ttl = true,
            b"PERSIST" if !set && o.expire.is_none() && !o.keep_ttl => o.persist = true,
            _ if unit.is_some() && !o.keep_ttl && !o.persist && !other_expire(&o) => {
                let (Some(unit), Some(next)) = (unit, next) else {
                    return None;
                };
                o.expire = Some((unit, next));
                at += 1;
            }
            _ => return None,
        }
        at += 1;
    }
    Some(o)
}

/// The system's clock, in milliseconds since the Unix epoch, as Redis's
/// `commandTimeSnapshot` gives it to the relative expiries.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_millis() as i64)
}

/// An expiry argument as Redis 7's `getExpireMillisecondsOrReply` reads
/// it: a positive integer, in range once converted, as an absolute
/// deadline; otherwise Redis's error for `command`.
fn deadline(command: &str, unit: Unit, argument: &[u8]) -> Result<u64, Action> {
    let invalid = || error(&format!("ERR invalid expire time in '{command}' command"));
    let n = integer(argument).ok_or_else(|| error(NOT_AN_INTEGER))?;
    let seconds = matches!(unit, Unit::Seconds | Unit::SecondsAt);
    if n <= 0 || (seconds && n > i64::MAX / 1000) {
        return Err(invalid());
    }
    let ms = if seconds { n * 1000 } else { n };
    // Redis adds the time with C's wrapping arithmetic, then refuses a
    // result that is not positive.
    let at = match unit {
        Unit::Seconds | Unit::Millis => ms.wrapping_add(now_ms()),
        Unit::SecondsAt | Unit::MillisAt => ms,
    };
    u64::try_from(at)
        .ok()
        .filter(|&at| at > 0)
        .ok_or_else(invalid)
}

fn set(rest: &[&[u8]]) -> Action {
    let [key, value, options @ ..] = rest else {
        return arity("set");
    };
    let Some(options) = set_options(options, true) else {
        return error("ERR syntax error");
    };
    let expiry = match options.expire {
        Some((unit, argument)) => match deadline("set", unit, argument) {
            Ok(at) => Expiry::At(at),
            Err(refused) => return refused,
        },
        None if options.keep_ttl => Expiry::Keep,
        None => Expiry::Clear,
    };
    let (key, value) = (key.to_vec(), value.to_vec());
    let condition = options.condition;
    if options.get || expiry == Expiry::Keep {
        // The old value (GET) or deadline (KEEPTTL) is read where the key
        // lives: a read-modify-write.
        let exchange = Modify::Exchange {
            value,
            condition,
            expiry,
        };
        let combine = match (options.get, condition) {
            (false, Some(c)) => Combine::SetIf(c),
            (false, None) => Combine::Ok,
            (true, _) => Combine::Value,
        };
        return Action::Engine(vec![Op::modify(key, exchange)], combine);
    }
    let op = match (expiry, condition) {
        (Expiry::At(at), None) => Op::Batch(vec![BatchOp::PutUntil(key, value, at)]),
        (Expiry::At(at), Some(c)) => Op::BatchIf(vec![BatchOp::PutUntil(key, value, at)], c),
        (_, None) => Op::Put(key, value),
        (_, Some(c)) => Op::PutIf(key, value, c),
    };
    Action::Engine(vec![op], Combine::Set)
}

/// SETEX key seconds value, PSETEX key milliseconds value.
fn set_ex(name: &str, rest: &[&[u8]]) -> Action {
    let [key, time, value] = rest else {
        return arity(name);
    };
    let unit = if name == "setex" {
        Unit::Seconds
    } else {
        Unit::Millis
    };
    match deadline(name, unit, time) {
        Ok(at) => {
            let put = BatchOp::PutUntil(key.to_vec(), value.to_vec(), at);
            Action::Engine(vec![Op::Batch(vec![put])], Combine::Set)
        }
        Err(refused) => refused,
    }
}

/// GETEX key [EX|PX|EXAT|PXAT time|PERSIST].
fn get_ex(rest: &[&[u8]]) -> Action {
    let [key, options @ ..] = rest else {
        return arity("getex");
    };
    let Some(options) = set_options(options, false) else {
        return error("ERR syntax error");
    };
    let expiry = match options.expire {
        // Redis checks the time only once it found the key: a missing key
        // answers null even with a bad time. Checked here, the error would
        // come first; so a bad time looks the key up first.
        Some((unit, argument)) => match deadline("getex", unit, argument) {
            Ok(at) => Expiry::At(at),
            Err(Action::Reply(refused)) => {
                let ops = vec![Op::Exists(key.to_vec())];
                return Action::Engine(ops, Combine::NullOr(refused));
            }
            Err(refused) => return refused,
        },
        None if options.persist => Expiry::Clear,
        None => Expiry::Keep,
    };
    modify(key, Modify::GetEx(expiry), Combine::Value)
}

/// EXPIRE, PEXPIRE, EXPIREAT and PEXPIREAT with NX, XX, GT, LT, in
/// Redis 7's order of checks: the options, the integer, its range, then
/// the key (in the engine).
fn expire(name: &str, rest: &[&[u8]]) -> Action {
    let [key, time, options @ ..] = rest else {
        return arity(name);
    };
    let mut when = ExpireIf::default();
    for option in options {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" => when.nx = true,
            b"XX" => when.xx = true,
            b"GT" => when.gt = true,
            b"LT" => when.lt = true,
            _ => {
                return error(&format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(option)
                ))
            }
        }
    }
    if when.nx && (when.xx || when.gt || when.lt) {
        return error("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if when.gt && when.lt {
        return error("ERR GT and LT options at the same time are not compatible");
    }
    let Some(n) = integer(time) else {
        return error(NOT_AN_INTEGER);
    };
    let invalid = || error(&format!("ERR invalid expire time in '{name}' command"));
    let seconds = matches!(name, "expire" | "expireat");
    if seconds && !(i64::MIN / 1000..=i64::MAX / 1000).contains(&n) {
        return invalid();
    }
    let ms = if seconds { n * 1000 } else { n };
    let base = if name.ends_with("at") { 0 } else { now_ms() };
    let Some(at) = ms.checked_add(base).filter(|_| ms <= i64::MAX - base) else {
        return invalid();
    };
    // A relative time of zero or less is past on every clock, and Redis
    // deletes the key at once. `base + ms` is not: the worker's clock may
    // lag the one read here, see the deadline still ahead, and keep the key
    // readable for that millisecond or two. Compared against a live key's
    // deadline (GT, LT), `ms` gives the answers `base + ms` does.
    let at = if base != 0 && ms <= 0 { ms } else { at };
    modify(
        key,
        Modify::Expire {
            at,
            condition: when,
        },
        Combine::Integer,
    )
}

fn hello(rest: &[&[u8]], protocol: Protocol) -> Action {
    let mut chosen = protocol;
    let mut name = None;
    let mut i = 0;
    if let Some(version) = rest.first() {
        chosen = match *version {
            b"2" => Protocol::Resp2,
            b"3" => Protocol::Resp3,
            _ => return error("NOPROTO unsupported protocol version"),
        };
        i = 1;
    }
    while i < rest.len() {
        match rest[i].to_ascii_uppercase().as_slice() {
            b"SETNAME" if i + 1 < rest.len() => {
                name = Some(rest[i + 1].to_vec());
                i += 2;
            }
            b"AUTH" if i + 2 < rest.len() => i += 3,
            _ => return error("ERR syntax error in HELLO option"),
        }
    }
    Action::Hello(chosen, name)
}

fn client(rest: &[&[u8]]) -> Action {
    let Some(sub) = rest.first() else {
        return arity("client");
    };
    match (sub.to_ascii_uppercase().as_slice(), &rest[1..]) {
        (b"SETNAME", [name]) => {
            if name.iter().any(|b| b.is_ascii_whitespace()) {
                return error(
                    "ERR Client names cannot contain spaces, newlines or special characters.",
                );
            }
            Action::SetName(name.to_vec())
        }
        (b"GETNAME", []) => Action::GetName,
        (b"SETINFO", [_, _]) => simple("OK"),
        _ => error(&format!(
            "ERR unknown subcommand '{}'. Try CLIENT HELP.",
            printable(sub)
        )),
    }
}

/// COMMAND, COMMAND COUNT, COMMAND INFO, COMMAND LIST and COMMAND DOCS,
/// from the table of implemented commands ([`command_table`]).
fn command(rest: &[&[u8]], protocol: Protocol) -> Action {
    let mut out = Vec::new();
    let Some(sub) = rest.first() else {
        encode::array_header(&mut out, command_table::COMMANDS.len());
        for spec in command_table::COMMANDS {
            command_table::info(&mut out, spec, protocol);
        }
        return Action::Reply(out);
    };
    let names = &rest[1..];
    match sub.to_ascii_uppercase().as_slice() {
        b"COUNT" if names.is_empty() => {
            encode::integer(&mut out, command_table::COMMANDS.len() as i64)
        }
        b"COUNT" => return arity("command|count"),
        b"LIST" if names.is_empty() => {
            encode::array_header(&mut out, command_table::COMMANDS.len());
            for spec in command_table::COMMANDS {
                encode::bulk(&mut out, spec.name.as_bytes());
            }
        }
        b"LIST" => return error("ERR COMMAND LIST FILTERBY is not supported here"),
        // No names: every command; an unknown name: null, in its place.
        b"INFO" if names.is_empty() => return command(&[], protocol),
        b"INFO" => {
            encode::array_header(&mut out, names.len());
            for name in names {
                match command_table::find(name) {
                    Some(spec) => command_table::info(&mut out, spec, protocol),
                    None => encode::null(&mut out, protocol),
                }
            }
        }
        // A map of name to docs; unknown names are left out, as Redis does.
        b"DOCS" => {
            let specs: Vec<_> = if names.is_empty() {
                command_table::COMMANDS.iter().collect()
            } else {
                names
                    .iter()
                    .filter_map(|n| command_table::find(n))
                    .collect()
            };
            encode::map_header(&mut out, specs.len(), protocol);
            for spec in specs {
                encode::bulk(&mut out, spec.name.as_bytes());
                command_table::docs(&mut out, spec, protocol);
            }
        }
        _ => {
            return error(&format!(
                "ERR unknown subcommand '{}'. Try COMMAND HELP.",
                printable(sub)
            ))
        }
    }
    Action::Reply(out)
}

/// CONFIG GET answers the settings that exist ([`config_settings`]);
/// nothing can be changed at run time: settings come from the
/// configuration file.
fn config(rest: &[&[u8]]) -> Action {
    let Some(sub) = rest.first() else {
        return arity("config");
    };
    match sub.to_ascii_uppercase().as_slice() {
        b"GET" if rest.len() >= 2 => Action::ConfigGet(rest[1..].iter().map(|p| p.to_vec()).collect()),
        b"GET" => arity("config|get"),
        b"SET" | b"RESETSTAT" | b"REWRITE" => error(
            "ERR settings cannot be changed at run time: they come from the configuration file (docs/config.md)",
        ),
        _ => error(&format!(
            "ERR unknown subcommand '{}'. Try CONFIG HELP.",
            printable(sub)
        )),
    }
}

/// The settings CONFIG GET knows, as (name, value): Redis's name where
/// Redis has the same setting, else `veltrix-` and the configuration
/// file's key. Settings Redis has and VeltrixDB does not (`save`,
/// `appendonly`, `maxmemory`, ...) are not invented.
pub fn config_settings(
    listen: std::net::SocketAddr,
    connections_max: usize,
    bulk_bytes_max: usize,
    engine: &engine::EngineConfig,
) -> Vec<(String, String)> {
    vec![
        ("bind".into(), listen.ip().to_string()),
        ("port".into(), listen.port().to_string()),
        ("databases".into(), "1".into()),
        ("maxclients".into(), connections_max.to_string()),
        ("proto-max-bulk-len".into(), bulk_bytes_max.to_string()),
        ("veltrix-workers".into(), engine.workers.to_string()),
        (
            "veltrix-commit-interval-us".into(),
            engine.commit_interval_us.to_string(),
        ),
        (
            "veltrix-batch-bytes-max".into(),
            engine.batch_bytes_max.to_string(),
        ),
        ("veltrix-cache-bytes".into(), engine.cache_bytes.to_string()),
        (
            "veltrix-key-bytes-max".into(),
            engine.key_bytes_max.to_string(),
        ),
        (
            "veltrix-value-bytes-max".into(),
            engine.value_bytes_max.to_string(),
        ),
        ("veltrix-gc-io-share".into(), engine.gc_io_share.to_string()),
        (
            "veltrix-checkpoint-interval-s".into(),
            engine.checkpoint_interval_s.to_string(),
        ),
    ]
}

/// CONFIG GET's reply: each setting that matches one of `patterns`
/// (case-insensitive globs), once, as a map.
pub fn config_get(
    out: &mut Vec<u8>,
    settings: &[(String, String)],
    patterns: &[Vec<u8>],
    protocol: Protocol,
) {
    let matched: Vec<&(String, String)> = settings
        .iter()
        .filter(|(name, _)| {
            patterns
                .iter()
                .any(|p| glob_match(&p.to_ascii_lowercase(), name.as_bytes()))
        })
        .collect();
    encode::map_header(out, matched.len(), protocol);
    for (name, value) in matched {
        encode::bulk(out, name.as_bytes());
        encode::bulk(out, value.as_bytes());
    }
}

fn scan(rest: &[&[u8]]) -> Action {
    let Some(cursor) = rest.first() else {
        return arity("scan");
    };
    let Some(cursor) = std::str::from_utf8(cursor)
        .ok()
        .and_then(|c| c.parse::<u64>().ok())
    else {
        return error("ERR invalid cursor");
    };
    let mut pattern = None;
    let mut type_filter: Option<Vec<u8>> = None;
    let mut count = SCAN_COUNT_DEFAULT;
    let mut i = 1;
    while i < rest.len() {
        match rest[i].to_ascii_uppercase().as_slice() {
            b"MATCH" if i + 1 < rest.len() => {
                pattern = Some(rest[i + 1].to_vec());
                i += 2;
            }
            b"COUNT" if i + 1 < rest.len() => {
                count = match integer(rest[i + 1]) {
                    Some(n) if n >= 1 => n as u64,
                    Some(_) => return error("ERR syntax error"),
                    None => return error(NOT_AN_INTEGER),
                };
                i += 2;
            }
            b"TYPE" if i + 1 < rest.len() => {
                type_filter = Some(rest[i + 1].to_ascii_lowercase());
                i += 2;
            }
            _ => return error("ERR syntax error"),
        }
    }
    let shards = u64::from(engine::shard::SHARD_COUNT);
    // Every key is a string: a scan for another type finds none, at once.
    if cursor >= shards || type_filter.is_some_and(|t| t != b"string") {
        let mut out = Vec::new();
        encode::array_header(&mut out, 2);
        encode::bulk(&mut out, b"0");
        encode::array_header(&mut out, 0);
        return Action::Reply(out);
    }
    let end = (cursor + scan_shards(count)).min(shards);
    let ops = (cursor..end).map(|s| Op::Scan(s as u16)).collect();
    let next = if end >= shards { 0 } else { end };
    Action::Engine(ops, Combine::Scan { next, pattern })
}

/// A scan of each of the engine's shards (FLUSHDB, RANDOMKEY).
fn scan_every_shard() -> Vec<Op> {
    (0..engine::shard::SHARD_COUNT).map(Op::Scan).collect()
}

/// A number for RANDOMKEY to pick with: the clock's nanoseconds, mixed
/// (splitmix64). Any key is a valid answer, so no stronger source is needed.
fn random() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut z = nanos.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// For a command that runs in rounds (FLUSHDB: scan, delete, scan again
/// while keys remain), the next round's operations once `replies` (this
/// round's, all arrived) are in; `None` when the command is done and
/// [`combine`] answers it. A failed operation ends the command with its
/// error.
pub fn next_round(combine: &Combine, replies: &mut [Option<Reply>]) -> Option<(Vec<Op>, Combine)> {
    if replies.iter().any(|r| matches!(r, Some(Reply::Failed(_)))) {
        return None;
    }
    match combine {
        Combine::FlushScan => {
            let mut keys = Vec::new();
            let mut more = false;
            for reply in replies.iter_mut() {
                if let Some(Reply::Keys(found)) = reply.take() {
                    let room = FLUSH_DELETES_PER_ROUND - keys.len();
                    more |= found.len() > room;
                    keys.extend(found.into_iter().take(room));
                }
            }
            if keys.is_empty() {
                return None;
            }
            let ops = keys.into_iter().map(Op::Delete).collect();
            Some((ops, Combine::FlushDelete { more }))
        }
        Combine::FlushDelete { more: true } => Some((scan_every_shard(), Combine::FlushScan)),
        _ => None,
    }
}

/// The RESP error line for an engine error.
pub fn engine_error(out: &mut Vec<u8>, error: &EngineError) {
    let message = match error {
        EngineError::KeyLength { .. }
        | EngineError::ValueLength { .. }
        | EngineError::BatchTooLarge { .. } => {
            format!("ERR {error}")
        }
        EngineError::Corruption { .. } => format!("IOERR {error}"),
        EngineError::Modify(ModifyError::CrossShard) => error.to_string(),
        // Redis's own texts (not an integer, overflow, not a float ...).
        EngineError::Modify(e) => format!("ERR {e}"),
        EngineError::OutOfSpace => "OOM namespace is full".to_string(),
        EngineError::Busy => "BUSY request queue full, try again".to_string(),
        other => format!("IOERR {other}"),
    };
    encode::error(out, &message);
}

/// Glob matching as Redis does it for SCAN MATCH: `*`, `?`, `[...]` and `\`.
pub fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let (mut star_p, mut star_t) = (usize::MAX, 0usize);
    while t < text.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    star_p = p;
                    star_t = t;
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    t += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(&pattern[p..], text[t]) {
                        if matched {
                            p += next;
                            t += 1;
                            continue;
                        }
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == text[t] {
                        p += 2;
                        t += 1;
                        continue;
                    }
                }
                c => {
                    if c == text[t] {
                        p += 1;
                        t += 1;
                        continue;
                    }
                }
            }
        }
        if star_p == usize::MAX {
            return false;
        }
        p = star_p + 1;
        star_t += 1;
        t = star_t;
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches `[...]` at the start of `class` against `c`; returns whether it
/// matched and the class's length.
fn class_match(class: &[u8], c: u8) -> Option<(bool, usize)> {
    let mut i = 1;
    let negate = class.get(1) == Some(&b'^');
    if negate {
        i += 1;
    }
    let mut matched = false;
    while i < class.len() && class[i] != b']' {
        if class[i] == b'\\' && i + 1 < class.len() {
            matched |= class[i + 1] == c;
            i += 2;
        } else if i + 2 < class.len() && class[i + 1] == b'-' && class[i + 2] != b']' {
            let (lo, hi) = (class[i].min(class[i + 2]), class[i].max(class[i + 2]));
            matched |= (lo..=hi).contains(&c);
            i += 3;
        } else {
            matched |= class[i] == c;
            i += 1;
        }
    }
    if i >= class.len() {
        return None;
    }
    Some((matched != negate, i + 1))
}

/// Combines the replies of a command's operations into its RESP reply.
pub fn combine(
    out: &mut Vec<u8>,
    combine: &Combine,
    replies: &mut [Option<Reply>],
    protocol: Protocol,
) {
    // Any failure answers the whole command with the first error.
    for reply in replies.iter() {
        if let Some(Reply::Failed(e)) = reply {
            engine_error(out, e);
            return;
        }
    }
    match combine {
        Combine::Value => match replies.first_mut().and_then(Option::take) {
            Some(Reply::Value(Some(v))) => encode::bulk(out, &v),
            _ => encode::null(out, protocol),
        },
        Combine::Set => match replies.first() {
            Some(Some(Reply::NotApplied)) => encode::null(out, protocol),
            _ => encode::simple(out, "OK"),
        },
        Combine::Ok => encode::simple(out, "OK"),
        Combine::Length => match replies.first() {
            Some(Some(Reply::Value(Some(v)))) => encode::integer(out, v.len() as i64),
            _ => encode::integer(out, 0),
        },
        Combine::Range { start, end } => match replies.first() {
            Some(Some(Reply::Value(Some(v)))) => encode::bulk(out, range(v, *start, *end)),
            _ => encode::bulk(out, b""),
        },
        Combine::Type => match replies.first() {
            Some(Some(Reply::Exists(true))) => encode::simple(out, "string"),
            _ => encode::simple(out, "none"),
        },
        Combine::SetNx => match replies.first() {
            Some(Some(Reply::NotApplied)) => encode::integer(out, 0),
            _ => encode::integer(out, 1),
        },
        Combine::SetIf(condition) => match replies.first() {
            Some(Some(Reply::Value(old)))
                if old.is_some() == (*condition == Condition::Present) =>
            {
                encode::simple(out, "OK")
            }
            _ => encode::null(out, protocol),
        },
        Combine::Ttl { ms, absolute } => match replies.first() {
            Some(Some(Reply::Integer(n))) if *n < 0 => encode::integer(out, *n),
            Some(Some(Reply::Integer(deadline))) => {
                let left = if *absolute {
                    *deadline
                } else {
                    (deadline - now_ms()).max(0)
                };
                // Redis rounds to the nearest second.
                // Redis's `(ttl+500)/1000` near the top of the range, as
                // its build computes it, without the overflow.
                let seconds = ((i128::from(left) + 500) / 1000) as i64;
                let value = if *ms { left } else { seconds };
                encode::integer(out, value)
            }
            other => encode::error(out, &format!("ERR internal: engine answered {other:?}")),
        },
        Combine::NullOr(refused) => match replies.first() {
            Some(Some(Reply::Exists(true))) => out.extend_from_slice(refused),
            _ => encode::null(out, protocol),
        },
        Combine::Sum => {
            let sum = replies
                .iter()
                .map(|r| match r {
                    Some(Reply::Integer(n)) => *n,
                    _ => 0,
                })
                .sum();
            encode::integer(out, sum)
        }
        Combine::Renamed { if_absent } => match replies.first() {
            Some(Some(Reply::Integer(n))) if *if_absent => encode::integer(out, *n),
            _ => encode::simple(out, "OK"),
        },
        Combine::Integer => match replies.first() {
            Some(Some(Reply::Integer(n))) => encode::integer(out, *n),
            other => encode::error(out, &format!("ERR internal: engine answered {other:?}")),
        },
        Combine::CountDeleted => {
            let n = replies
                .iter()
                .filter(|r| matches!(r, Some(Reply::Deleted(true))))
                .count();
            encode::integer(out, n as i64);
        }
        Combine::CountExisting => {
            let n = replies
                .iter()
                .filter(|r| matches!(r, Some(Reply::Exists(true))))
                .count();
            encode::integer(out, n as i64);
        }
        Combine::Values => {
            encode::array_header(out, replies.len());
            for reply in replies.iter_mut() {
                match reply.take() {
                    Some(Reply::Value(Some(v))) => encode::bulk(out, &v),
                    _ => encode::null(out, protocol),
                }
            }
        }
        Combine::FlushScan | Combine::FlushDelete { .. } => encode::simple(out, "OK"),
        Combine::RandomKey { pick } => {
            let found: usize = replies
                .iter()
                .map(|r| match r {
                    Some(Reply::Keys(k)) => k.len(),
                    _ => 0,
                })
                .sum();
            if found == 0 {
                encode::null(out, protocol);
                return;
            }
            let mut at = (*pick % found as u64) as usize;
            for reply in replies.iter() {
                if let Some(Reply::Keys(k)) = reply {
                    if at < k.len() {
                        encode::bulk(out, &k[at]);
                        return;
                    }
                    at -= k.len();
                }
            }
        }
        Combine::Scan { next, pattern } => {
            let mut keys = Vec::new();
            for reply in replies.iter_mut() {
                if let Some(Reply::Keys(k)) = reply.take() {
                    keys.extend(
                        k.into_iter()
                            .filter(|key| pattern.as_deref().is_none_or(|p| glob_match(p, key))),
                    );
                }
            }
            encode::array_header(out, 2);
            encode::bulk(out, next.to_string().as_bytes());
            encode::array_header(out, keys.len());
            for key in keys {
                encode::bulk(out, &key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scan_for_a_type_other_than_string_finds_nothing() {
        let scan = |kind: &[u8]| dispatch(&[b"SCAN", b"0", b"TYPE", kind], Protocol::Resp2);
        match scan(b"hash") {
            Action::Reply(out) => assert_eq!(out, b"*2\r\n$1\r\n0\r\n*0\r\n"),
            _ => panic!("SCAN TYPE hash should answer at once, empty"),
        }
        assert!(
            matches!(scan(b"STRING"), Action::Engine(..)),
            "SCAN TYPE string scans"
        );
    }

    #[test]
    fn globs_match_like_redis() {
        assert!(glob_match(b"*", b"anything"));
        assert!(glob_match(b"user:*", b"user:42"));
        assert!(!glob_match(b"user:*", b"usr:42"));
        assert!(glob_match(b"h?llo", b"hello"));
        assert!(glob_match(b"h[ae]llo", b"hallo"));
        assert!(!glob_match(b"h[^e]llo", b"hello"));
        assert!(glob_match(b"h[a-c]llo", b"hbllo"));
        assert!(glob_match(b"a\\*b", b"a*b"));
        assert!(!glob_match(b"a\\*b", b"axb"));
        assert!(glob_match(b"*a*b*", b"xxaxxbxx"));
    }

    #[test]
    fn integers_are_read_as_redis_reads_them() {
        assert_eq!(integer(b"0"), Some(0));
        assert_eq!(integer(b"-12"), Some(-12));
        assert_eq!(integer(b"9223372036854775807"), Some(i64::MAX));
        for bad in [
            &b""[..],
            b"-",
            b"+1",
            b"01",
            b"-0",
            b" 1",
            b"1x",
            b"9223372036854775808",
        ] {
            assert_eq!(integer(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn getrange_slices_like_redis() {
        let v = b"Hello, world";
        assert_eq!(range(v, 0, 4), b"Hello");
        assert_eq!(range(v, -5, -1), b"world");
        assert_eq!(range(v, -3, -5), b"");
        assert_eq!(range(v, 5, 2), b"");
        assert_eq!(range(v, -100, 2), b"Hel");
        assert_eq!(range(v, 10, 100), b"ld");
        assert_eq!(range(b"", 0, -1), b"");
    }

    #[test]
    fn renames_across_slots_are_refused_as_redis_cluster_does() {
        let Action::Reply(out) = dispatch(&[b"RENAME", b"a", b"b"], Protocol::Resp2) else {
            panic!()
        };
        assert_eq!(
            out,
            b"-CROSSSLOT Keys in request don't hash to the same slot\r\n"
        );
        let same = dispatch(&[b"RENAMENX", b"{x}a", b"{x}b"], Protocol::Resp2);
        assert!(matches!(same, Action::Engine(..)));
    }

    /// `PEXPIRE k 0` found by the differential tester (seed 3523149835
    /// of 40, now and then): the key was still served right after.
    #[test]
    fn relative_expiry_of_zero_or_less_is_past_on_any_clock() {
        for (name, time) in [("pexpire", "0"), ("expire", "0"), ("pexpire", "-5")] {
            let action = dispatch(&[name.as_bytes(), b"k", time.as_bytes()], Protocol::Resp2);
            let Action::Engine(ops, _) = action else {
                panic!("{name} {time}")
            };
            let Op::Modify(_, modify) = &ops[0] else {
                panic!("{ops:?}")
            };
            let Modify::Expire { at, .. } = **modify else {
                panic!("{modify:?}")
            };
            assert!(at <= 0, "{name} {time}: deadline {at}");
        }
        let Action::Engine(ops, _) = dispatch(&[b"pexpire", b"k", b"1"], Protocol::Resp2) else {
            panic!()
        };
        let Op::Modify(_, modify) = &ops[0] else {
            panic!()
        };
        assert!(matches!(**modify, Modify::Expire { at, .. } if at > 1_000_000));
    }

    #[test]
    fn errors_follow_redis_conventions() {
        let Action::Reply(out) = dispatch(&[b"nosuch", b"a"], Protocol::Resp2) else {
            panic!()
        };
        assert_eq!(
            out,
            b"-ERR unknown command 'nosuch', with args beginning with: 'a' \r\n"
        );
        let Action::Reply(out) = dispatch(&[b"GET"], Protocol::Resp2) else {
            panic!()
        };
        assert_eq!(out, b"-ERR wrong number of arguments for 'get' command\r\n");
        let Action::Reply(out) = dispatch(&[b"set", b"k", b"v", b"bogus"], Protocol::Resp2) else {
            panic!()
        };
        assert_eq!(out, b"-ERR syntax error\r\n");
    }
}
