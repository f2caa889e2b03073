//! Property tests of the whole codec: requests in chunks, replies round trip.

use std::ops::Range;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use super::encode::{self, write_double};
use super::*;

/// One parse result with its arguments copied out: the arguments and the
/// bytes consumed.
type Command = (Vec<Vec<u8>>, usize);

/// Everything a connection would see from `wire`: each command (empty
/// argument lists included, for skipped frames) and the error that ended
/// the stream, if one did.
#[derive(Debug, PartialEq)]
struct Outcome {
    commands: Vec<Command>,
    error: Option<ParseError>,
    /// Bytes left over: an incomplete command at the end.
    leftover: usize,
}

fn copy_args(buf: &[u8], args: &[Range<usize>], consumed: usize) -> Vec<Vec<u8>> {
    for range in args {
        assert!(
            range.start <= range.end && range.end <= consumed,
            "{range:?} beyond {consumed}"
        );
    }
    arg_bytes(buf, args).map(<[u8]>::to_vec).collect()
}

/// Parses all of `wire` at once, command after command, with no state
/// between calls.
fn parse_all_at_once(wire: &[u8], limits: &Limits) -> Outcome {
    let mut buf = wire.to_vec();
    let mut start = 0;
    let mut commands = Vec::new();
    let mut args = Vec::new();
    loop {
        let rest = &mut buf[start..];
        match parse_command(rest, limits, &mut args) {
            Ok(Some(consumed)) => {
                assert!(consumed > 0 && consumed <= rest.len());
                commands.push((copy_args(rest, &args, consumed), consumed));
                start += consumed;
            }
            Ok(None) => {
                assert!(args.is_empty());
                let leftover = wire.len() - start;
                return Outcome {
                    commands,
                    error: None,
                    leftover,
                };
            }
            Err(error) => {
                let leftover = wire.len() - start;
                return Outcome {
                    commands,
                    error: Some(error),
                    leftover,
                };
            }
        }
    }
}

/// Feeds `wire` to one [`Parser`] as a connection would: appends each chunk
/// (cut at `cuts`) to a read buffer, parses every complete command, and
/// drops the consumed bytes from the front of the buffer.
fn feed_in_chunks(wire: &[u8], cuts: &[usize], limits: &Limits) -> Outcome {
    let mut ends: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&cut| cut < wire.len())
        .collect();
    ends.push(wire.len());
    ends.sort_unstable();
    ends.dedup();
    let mut parser = Parser::new(*limits);
    let mut read_buf = Vec::new();
    let mut commands = Vec::new();
    let mut args = Vec::new();
    let mut from = 0;
    for end in ends {
        read_buf.extend_from_slice(&wire[from..end]);
        from = end;
        loop {
            match parser.parse(&mut read_buf, &mut args) {
                Ok(Some(consumed)) => {
                    assert!(consumed > 0 && consumed <= read_buf.len());
                    commands.push((copy_args(&read_buf, &args, consumed), consumed));
                    read_buf.drain(..consumed);
                }
                Ok(None) => {
                    assert!(args.is_empty());
                    break;
                }
                Err(error) => {
                    let leftover = read_buf.len() + (wire.len() - from);
                    return Outcome {
                        commands,
                        error: Some(error),
                        leftover,
                    };
                }
            }
        }
    }
    Outcome {
        commands,
        error: None,
        leftover: read_buf.len(),
    }
}

fn cut_points() -> impl Strategy<Value = Vec<Index>> {
    vec(any::<Index>(), 0..24)
}

fn resolve(cuts: &[Index], len: usize) -> Vec<usize> {
    cuts.iter().map(|cut| cut.index(len + 1)).collect()
}

/// Small limits, so that every bound is hit, or Redis's defaults.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        Just(Limits::DEFAULT),
        (0usize..48, 0usize..8, 0usize..48, 0usize..160).prop_map(
            |(bulk_bytes_max, array_len_max, inline_bytes_max, request_bytes_max)| Limits {
                bulk_bytes_max,
                array_len_max,
                inline_bytes_max,
                request_bytes_max,
            }
        ),
    ]
}

/// Bytes that look like RESP often enough to reach deep into the parser:
/// framing pieces, numbers, quotes, whole commands, and noise.
fn resp_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        Just(b"*".to_vec()),
        Just(b"$".to_vec()),
        Just(b"\r\n".to_vec()),
        Just(b"\r".to_vec()),
        Just(b"\n".to_vec()),
        Just(b"-".to_vec()),
        Just(b"-1".to_vec()),
        Just(b"0".to_vec()),
        (0u32..24).prop_map(|n| n.to_string().into_bytes()),
        Just(b"\"".to_vec()),
        Just(b"'".to_vec()),
        Just(b"\\".to_vec()),
        Just(b"\\x4".to_vec()),
        Just(b" ".to_vec()),
        Just(b"\0".to_vec()),
        "[a-zA-Z]{1,6}".prop_map(String::into_bytes),
        vec(any::<u8>(), 1..4),
        vec(vec(any::<u8>(), 0..8), 0..4).prop_map(|args| {
            let mut out = Vec::new();
            encode::command(&mut out, &args);
            out
        }),
    ];
    vec(piece, 0..32).prop_map(|pieces| pieces.concat())
}

/// Pipelined multibulk commands with a few bytes replaced, inserted or
/// removed: mostly valid framing with a fault somewhere, which reaches
/// every multibulk error.
fn damaged_commands() -> impl Strategy<Value = Vec<u8>> {
    let commands = vec(vec(vec(any::<u8>(), 0..12), 0..4), 1..4);
    let byte = prop_oneof![
        Just(b'*'),
        Just(b'$'),
        Just(b'\r'),
        Just(b'\n'),
        Just(b'-'),
        Just(b'0'),
        Just(b'9'),
        any::<u8>(),
    ];
    let damage = vec((any::<Index>(), 0u8..3, byte), 0..3);
    (commands, damage).prop_map(|(commands, damage)| {
        let mut wire = Vec::new();
        for args in &commands {
            encode::command(&mut wire, args);
        }
        for (at, kind, byte) in damage {
            let at = at.index(wire.len() + 1);
            match kind {
                0 if at < wire.len() => wire[at] = byte,
                1 if at < wire.len() => {
                    wire.remove(at);
                }
                _ => wire.insert(at, byte),
            }
        }
        wire
    })
}

proptest! {
    /// (1) Whatever the bytes and the limits: no panic, nothing consumed
    /// beyond the input, every argument inside its command; and feeding the
    /// bytes in chunks to a resumable parser gives exactly what parsing them
    /// all at once gives.
    #[test]
    fn any_bytes_parse_the_same_whole_or_in_chunks(
        wire in prop_oneof![resp_like_bytes(), damaged_commands(), vec(any::<u8>(), 0..256)],
        limits in limits(),
        cuts in cut_points(),
    ) {
        let at_once = parse_all_at_once(&wire, &limits);
        let in_chunks = feed_in_chunks(&wire, &resolve(&cuts, wire.len()), &limits);
        prop_assert_eq!(&in_chunks, &at_once);
        let consumed: usize = at_once.commands.iter().map(|(_, consumed)| consumed).sum();
        prop_assert_eq!(consumed + at_once.leftover, wire.len());
    }

    /// (1) A prefix of the input either is incomplete or gives the same
    /// result as the whole input: the parser never decides anything before
    /// the bytes that decide it have arrived.
    #[test]
    fn a_prefix_is_incomplete_or_decided_alike(
        wire in prop_oneof![resp_like_bytes(), damaged_commands()],
        limits in limits(),
    ) {
        let parse = |input: &[u8]| {
            let mut buf = input.to_vec();
            let mut args = Vec::new();
            parse_command(&mut buf, &limits, &mut args)
                .map(|parsed| parsed.map(|consumed| (copy_args(&buf, &args, consumed), consumed)))
        };
        let whole = parse(&wire);
        for end in 0..wire.len() {
            let prefix = parse(&wire[..end]);
            prop_assert!(prefix == Ok(None) || prefix == whole, "prefix {} of {}: {:?} vs {:?}", end, wire.len(), prefix, whole);
        }
    }

    /// (2) Commands encoded as multibulk, pipelined with skipped frames,
    /// and split anywhere into reads, parse back to the same arguments.
    #[test]
    fn multibulk_commands_survive_any_split(
        commands in vec(
            (vec(vec(any::<u8>(), 0..48), 1..8), 0usize..6),
            1..12,
        ),
        big in proptest::option::of(vec(any::<u8>(), 0..20_000)),
        cuts in cut_points(),
    ) {
        let skips: [&[u8]; 6] = [b"", b"", b"\r\n", b"*0\r\n", b"*-1\r\n", b"\n"];
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (args, skip) in &commands {
            wire.extend_from_slice(skips[*skip]);
            encode::command(&mut wire, args);
            expected.push(args.clone());
        }
        if let Some(big) = big {
            let args = vec![b"SET".to_vec(), b"big".to_vec(), big];
            encode::command(&mut wire, &args);
            expected.push(args);
        }
        let outcome = feed_in_chunks(&wire, &resolve(&cuts, wire.len()), &Limits::DEFAULT);
        prop_assert_eq!(outcome.error, None);
        prop_assert_eq!(outcome.leftover, 0);
        let parsed: Vec<Vec<Vec<u8>>> = outcome
            .commands
            .into_iter()
            .map(|(args, _)| args)
            .filter(|args| !args.is_empty())
            .collect();
        prop_assert_eq!(parsed, expected);
    }

    /// (3) Any reply, encoded in either protocol, parses back to what that
    /// protocol can express; several in a row parse one after another; and
    /// every strict prefix is incomplete.
    #[test]
    fn replies_round_trip(replies in vec(reply(), 1..4), resp3 in any::<bool>()) {
        let protocol = if resp3 { Protocol::Resp3 } else { Protocol::Resp2 };
        let mut wire = Vec::new();
        for reply in &replies {
            encode_reply(&mut wire, reply, protocol);
        }
        let mut pos = 0;
        for reply in &replies {
            let (parsed, consumed) = parse_reply(&wire[pos..]).unwrap().unwrap();
            prop_assert_eq!(parsed, as_sent(reply, protocol));
            for end in pos..pos + consumed {
                prop_assert_eq!(parse_reply(&wire[pos..end]), Ok(None));
            }
            pos += consumed;
        }
        prop_assert_eq!(pos, wire.len());
    }

    /// (3) The reply parser never panics on any bytes, and never claims
    /// more than it was given.
    #[test]
    fn any_bytes_as_a_reply_never_panic(
        wire in prop_oneof![vec(any::<u8>(), 0..256), resp_like_bytes(), reply_like_bytes()],
    ) {
        if let Ok(Some((_, consumed))) = parse_reply(&wire) {
            prop_assert!(consumed > 0 && consumed <= wire.len());
        }
    }

    /// (4) Inline commands, each argument bare, "double-quoted" with escapes
    /// or 'single-quoted', pipelined and split anywhere, parse back to the
    /// same arguments.
    #[test]
    fn inline_commands_round_trip(
        lines in vec((vec((vec(any::<u8>(), 0..24), any::<u8>(), 1usize..4, any::<bool>()), 0..6), any::<bool>(), any::<bool>()), 1..8),
        cuts in cut_points(),
    ) {
        let mut wire = Vec::new();
        let mut expected = Vec::new();
        for (args, leading_blank, crlf) in &lines {
            if *leading_blank {
                wire.extend_from_slice(b" \t");
            }
            for (arg, style, blanks, tab) in args {
                write_inline_arg(&mut wire, arg, *style);
                for _ in 0..*blanks {
                    wire.push(if *tab { b'\t' } else { b' ' });
                }
            }
            wire.extend_from_slice(if *crlf { b"\r\n" } else { b"\n" });
            let args: Vec<Vec<u8>> = args.iter().map(|(arg, ..)| arg.clone()).collect();
            // A line without arguments is skipped, but still consumed.
            expected.push(args);
        }
        let outcome = feed_in_chunks(&wire, &resolve(&cuts, wire.len()), &Limits::DEFAULT);
        prop_assert_eq!(outcome.error, None);
        prop_assert_eq!(outcome.leftover, 0);
        let parsed: Vec<Vec<Vec<u8>>> = outcome.commands.into_iter().map(|(args, _)| args).collect();
        prop_assert_eq!(parsed, expected);
    }
}

/// Writes `arg` as an inline argument, in the quoting `style` asks for if
/// the argument allows it.
fn write_inline_arg(out: &mut Vec<u8>, arg: &[u8], style: u8) {
    let bare_ok = !arg.is_empty()
        && arg[0] != b'*'
        && arg.iter().all(|&byte| {
            !matches!(
                byte,
                0 | b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c | b'"' | b'\''
            )
        });
    let single_ok = arg
        .iter()
        .all(|&byte| !matches!(byte, 0 | b'\\' | b'\n' | b'\r'));
    match style % 3 {
        0 if bare_ok => out.extend_from_slice(arg),
        1 if single_ok => {
            out.push(b'\'');
            for &byte in arg {
                if byte == b'\'' {
                    out.push(b'\\');
                }
                out.push(byte);
            }
            out.push(b'\'');
        }
        _ => {
            out.push(b'"');
            for &byte in arg {
                match byte {
                    b'"' | b'\\' => out.extend_from_slice(&[b'\\', byte]),
                    b' '..=b'~' => out.push(byte),
                    _ => out.extend_from_slice(format!("\\x{byte:02x}").as_bytes()),
                }
            }
            out.push(b'"');
        }
    }
}

/// Replies the encoder can produce.
fn reply() -> impl Strategy<Value = Reply> {
    let leaf = prop_oneof![
        "(?s).{0,12}".prop_map(Reply::Simple),
        "(?s).{0,12}".prop_map(Reply::Error),
        any::<i64>().prop_map(Reply::Integer),
        vec(any::<u8>(), 0..24).prop_map(|bytes| Reply::Bulk(Some(bytes))),
        Just(Reply::Bulk(None)),
        Just(Reply::Array(None)),
        Just(Reply::Null),
        any::<f64>()
            .prop_filter("NaN never equals itself", |value| !value.is_nan())
            .prop_map(Reply::Double),
        any::<bool>().prop_map(Reply::Boolean),
        ("[a-z]{3}", vec(any::<u8>(), 0..24)).prop_map(|(format, text)| Reply::Verbatim {
            format: format.as_bytes().try_into().unwrap(),
            text,
        }),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(|items| Reply::Array(Some(items))),
            vec((inner.clone(), inner.clone()), 0..4).prop_map(Reply::Map),
            vec(inner, 0..6).prop_map(Reply::Set),
        ]
    })
}

/// Encoded replies broken up and shuffled together, for the reply parser.
fn reply_like_bytes() -> impl Strategy<Value = Vec<u8>> {
    (vec(reply(), 1..4), any::<bool>(), vec(any::<Index>(), 0..4)).prop_map(
        |(replies, resp3, cuts)| {
            let protocol = if resp3 {
                Protocol::Resp3
            } else {
                Protocol::Resp2
            };
            let mut wire = Vec::new();
            for reply in &replies {
                encode_reply(&mut wire, reply, protocol);
            }
            // Drop a byte at each cut.
            let mut cuts: Vec<usize> = cuts.iter().map(|cut| cut.index(wire.len())).collect();
            cuts.sort_unstable();
            cuts.dedup();
            for cut in cuts.into_iter().rev() {
                wire.remove(cut);
            }
            wire
        },
    )
}

/// Encodes `reply` with the public encoder, as a server would.
fn encode_reply(out: &mut Vec<u8>, reply: &Reply, protocol: Protocol) {
    match reply {
        Reply::Simple(text) => encode::simple(out, text),
        Reply::Error(text) => encode::error(out, text),
        Reply::Integer(value) => encode::integer(out, *value),
        Reply::Bulk(Some(bytes)) => encode::bulk(out, bytes),
        Reply::Bulk(None) | Reply::Null => encode::null(out, protocol),
        Reply::Array(None) => encode::null_array(out, protocol),
        Reply::Array(Some(items)) => {
            encode::array_header(out, items.len());
            items
                .iter()
                .for_each(|item| encode_reply(out, item, protocol));
        }
        Reply::Double(value) => encode::double(out, *value, protocol),
        Reply::Boolean(value) => encode::boolean(out, *value, protocol),
        Reply::Verbatim { format, text } => encode::verbatim(out, *format, text, protocol),
        Reply::Map(pairs) => {
            encode::map_header(out, pairs.len(), protocol);
            for (key, value) in pairs {
                encode_reply(out, key, protocol);
                encode_reply(out, value, protocol);
            }
        }
        Reply::Set(items) => {
            encode::set_header(out, items.len(), protocol);
            items
                .iter()
                .for_each(|item| encode_reply(out, item, protocol));
        }
        Reply::BigNumber(_) | Reply::Push(_) | Reply::Attribute { .. } => {
            panic!("the server never sends {reply:?}")
        }
    }
}

/// What a client reads back after `reply` is sent in `protocol`.
fn as_sent(reply: &Reply, protocol: Protocol) -> Reply {
    let resp2 = protocol == Protocol::Resp2;
    let one_line = |text: &str| text.replace(['\r', '\n'], " ");
    let all = |items: &[Reply]| {
        items
            .iter()
            .map(|item| as_sent(item, protocol))
            .collect::<Vec<_>>()
    };
    match reply {
        Reply::Simple(text) => Reply::Simple(one_line(text)),
        Reply::Error(text) => Reply::Error(one_line(text)),
        Reply::Null if resp2 => Reply::Bulk(None),
        Reply::Bulk(None) | Reply::Array(None) if !resp2 => Reply::Null,
        Reply::Array(Some(items)) => Reply::Array(Some(all(items))),
        Reply::Double(value) if resp2 => {
            let mut text = String::new();
            write_double(&mut text, *value).unwrap();
            Reply::Bulk(Some(text.into_bytes()))
        }
        Reply::Boolean(value) if resp2 => Reply::Integer(i64::from(*value)),
        Reply::Verbatim { text, .. } if resp2 => Reply::Bulk(Some(text.clone())),
        Reply::Map(pairs) if resp2 => Reply::Array(Some(
            pairs
                .iter()
                .flat_map(|(key, value)| [as_sent(key, protocol), as_sent(value, protocol)])
                .collect(),
        )),
        Reply::Map(pairs) => Reply::Map(
            pairs
                .iter()
                .map(|(key, value)| (as_sent(key, protocol), as_sent(value, protocol)))
                .collect(),
        ),
        Reply::Set(items) if resp2 => Reply::Array(Some(all(items))),
        Reply::Set(items) => Reply::Set(all(items)),
        other => other.clone(),
    }
}

/// Feeds `wire` to a parser one byte more per call, as the slowest client
/// would send it, and returns how long that took and the command.
fn trickle(wire: &[u8]) -> (Duration, Vec<Vec<u8>>) {
    let mut buf = wire.to_vec();
    let mut parser = Parser::new(Limits::DEFAULT);
    let mut args = Vec::new();
    let started = Instant::now();
    for end in 1..buf.len() {
        assert_eq!(parser.parse(&mut buf[..end], &mut args), Ok(None));
    }
    let consumed = parser.parse(&mut buf, &mut args).unwrap().unwrap();
    let elapsed = started.elapsed();
    assert_eq!(consumed, wire.len());
    (elapsed, copy_args(&buf, &args, consumed))
}

/// (5) A command that arrives a byte at a time is parsed in linear time.
/// Each of these would take minutes if every call re-parsed from the start
/// (the many-arguments case: ~10^11 byte visits), and takes milliseconds.
#[test]
fn trickled_commands_parse_in_linear_time() {
    let budget = Duration::from_secs(1);

    let value = vec![b'v'; 1024 * 1024];
    let mut wire = Vec::new();
    encode::command(&mut wire, &[&b"SET"[..], b"key", &value]);
    let (elapsed, args) = trickle(&wire);
    assert_eq!(args, vec![b"SET".to_vec(), b"key".to_vec(), value]);
    assert!(
        elapsed < budget,
        "1 MiB bulk, a byte at a time: {elapsed:?}"
    );

    let keys: Vec<Vec<u8>> = (0..100_000u32)
        .map(|key| key.to_string().into_bytes())
        .collect();
    let mut wire = Vec::new();
    encode::command(&mut wire, &keys);
    let (elapsed, args) = trickle(&wire);
    assert_eq!(args, keys);
    assert!(
        elapsed < budget,
        "{} bytes of small arguments, a byte at a time: {elapsed:?}",
        wire.len()
    );

    let mut wire = b"SET k ".to_vec();
    wire.resize(64 * 1024, b'x');
    wire.extend_from_slice(b"\r\n");
    let (elapsed, args) = trickle(&wire);
    assert_eq!(args.len(), 3);
    assert!(
        elapsed < budget,
        "64 KiB inline line, a byte at a time: {elapsed:?}"
    );
}
