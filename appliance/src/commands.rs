//! What each RESP command does: either an immediate reply, or engine
//! operations whose replies are combined into one RESP reply.

use engine::modify::{parse_integer as integer, Extended};
use engine::{BatchOp, Condition, EngineError, Modify, ModifyError, Op, Reply};

use crate::resp::encode;
use crate::resp::Protocol;

/// Most keys one multi-key command may name (MGET, DEL, EXISTS, MSET pairs).
pub const KEYS_PER_COMMAND_MAX: usize = 4096;
/// Shards one SCAN call visits.
pub const SCAN_SHARDS_PER_CALL: u16 = 16;

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
    /// INFO and DBSIZE need the engine's counters.
    Info,
    /// DBSIZE.
    DbSize,
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
        "command" => command(rest),
        "config" => config(rest),
        "info" => Action::Info,
        "dbsize" => match rest {
            [] => Action::DbSize,
            _ => arity("dbsize"),
        },
        "get" => match rest {
            [key] => Action::Engine(vec![Op::Get(key.to_vec())], Combine::Value),
            _ => arity("get"),
        },
        "set" => set(rest),
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

fn set(rest: &[&[u8]]) -> Action {
    let [key, value, options @ ..] = rest else {
        return arity("set");
    };
    let mut condition = None;
    let mut get = false;
    for option in options {
        match option.to_ascii_uppercase().as_slice() {
            b"NX" if condition.is_none() => condition = Some(Condition::Absent),
            b"XX" if condition.is_none() => condition = Some(Condition::Present),
            b"GET" if !get => get = true,
            b"EX" | b"PX" | b"EXAT" | b"PXAT" | b"KEEPTTL" => {
                return error("ERR key expiry is not supported by VeltrixDB")
            }
            _ => return error("ERR syntax error"),
        }
    }
    let op = match (condition, get) {
        (None, false) => Op::Put(key.to_vec(), value.to_vec()),
        (Some(c), false) => Op::PutIf(key.to_vec(), value.to_vec(), c),
        // An atomic exchange: the reply is the value replaced, or null.
        (None, true) => {
            return Action::Engine(
                vec![Op::PutGet(key.to_vec(), value.to_vec())],
                Combine::Value,
            )
        }
        // Redis 7: the old value either way; the put only if it applies.
        (Some(c), true) => {
            let exchange = Modify::Exchange {
                value: value.to_vec(),
                condition: Some(c),
            };
            return modify(key, exchange, Combine::Value);
        }
    };
    Action::Engine(vec![op], Combine::Set)
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

fn command(rest: &[&[u8]]) -> Action {
    let mut out = Vec::new();
    match rest.first().map(|s| s.to_ascii_uppercase()) {
        Some(sub) if sub == b"COUNT" => encode::integer(&mut out, 0),
        // redis-cli asks for COMMAND DOCS on start; an empty answer is valid.
        _ => encode::array_header(&mut out, 0),
    }
    Action::Reply(out)
}

fn config(rest: &[&[u8]]) -> Action {
    match rest.first().map(|s| s.to_ascii_uppercase()) {
        // redis-benchmark reads `save` and `appendonly`; VeltrixDB has no such
        // settings, so the answer is an empty list.
        Some(sub) if sub == b"GET" => {
            let mut out = Vec::new();
            encode::array_header(&mut out, 0);
            Action::Reply(out)
        }
        _ => error("ERR CONFIG is read-only here; use the admin API"),
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
    let mut i = 1;
    while i < rest.len() {
        match rest[i].to_ascii_uppercase().as_slice() {
            b"MATCH" if i + 1 < rest.len() => {
                pattern = Some(rest[i + 1].to_vec());
                i += 2;
            }
            b"COUNT" if i + 1 < rest.len() => i += 2,
            b"TYPE" if i + 1 < rest.len() => i += 2,
            _ => return error("ERR syntax error"),
        }
    }
    let shards = u64::from(engine::shard::SHARD_COUNT);
    if cursor >= shards {
        let mut out = Vec::new();
        encode::array_header(&mut out, 2);
        encode::bulk(&mut out, b"0");
        encode::array_header(&mut out, 0);
        return Action::Reply(out);
    }
    let end = (cursor + u64::from(SCAN_SHARDS_PER_CALL)).min(shards);
    let ops = (cursor..end).map(|s| Op::Scan(s as u16)).collect();
    let next = if end >= shards { 0 } else { end };
    Action::Engine(ops, Combine::Scan { next, pattern })
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
