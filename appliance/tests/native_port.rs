//! The real daemon driven over the native protocol with the client crate:
//! operations, pipelining, limits, hostile input, and agreement with RESP.

#![allow(
    clippy::unwrap_used,
    reason = "test code: a panic is the failure report"
)]

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use appliance::resp::Reply;
use common::{bulk, Daemon};
use veltrix_client::protocol::{
    decode_hello, decode_response, encode_hello, encode_request, Hello, Limits, Opcode,
    BATCH_OPS_MAX, HELLO_BYTES, VERSION,
};
use veltrix_client::{BatchOp, Client, ClientError, Request, Status};

fn native(daemon: &Daemon) -> Client {
    Client::connect(("127.0.0.1", daemon.native)).unwrap()
}

/// A raw connection that has done the hello, for sending hand-made bytes.
fn raw(daemon: &Daemon, hello: bool) -> TcpStream {
    let mut s = TcpStream::connect(("127.0.0.1", daemon.native)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    if hello {
        let mut out = Vec::new();
        encode_hello(
            &mut out,
            Hello {
                version: VERSION,
                status: 0,
            },
        );
        s.write_all(&out).unwrap();
        let mut back = [0u8; HELLO_BYTES];
        s.read_exact(&mut back).unwrap();
        assert_eq!(
            decode_hello(&back),
            Ok(Some(Hello {
                version: VERSION,
                status: 0
            }))
        );
    }
    s
}

/// Everything the server sends until it closes the connection.
fn read_to_close(s: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    s.read_to_end(&mut all).unwrap();
    all
}

fn header(body_bytes: u32, id: u64, opcode: u8, flags: u8) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend_from_slice(&body_bytes.to_le_bytes());
    h.extend_from_slice(&id.to_le_bytes());
    h.extend_from_slice(&[opcode, flags, 0, 0]);
    h
}

#[test]
fn operations_behave_as_documented() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut c = native(&daemon);
    c.ping().unwrap();
    assert_eq!(c.get(b"k").unwrap(), None);
    c.put(b"k", b"v").unwrap();
    assert_eq!(c.get(b"k").unwrap(), Some(b"v".to_vec()));
    assert!(c.exists(b"k").unwrap());
    assert!(!c.exists(b"nope").unwrap());
    c.put(b"k", b"").unwrap();
    assert_eq!(c.get(b"k").unwrap(), Some(Vec::new()), "empty values exist");
    assert!(c.delete(b"k").unwrap());
    assert!(!c.delete(b"k").unwrap());
    assert_eq!(c.get(b"k").unwrap(), None);
    // A batch spanning shards (and workers) applies as a whole.
    c.put(b"gone", b"x").unwrap();
    c.batch(vec![
        BatchOp::Put(b"a".to_vec(), b"1".to_vec()),
        BatchOp::Put(b"b".to_vec(), b"2".to_vec()),
        BatchOp::Put(b"{t}c".to_vec(), b"3".to_vec()),
        BatchOp::Delete(b"gone".to_vec()),
    ])
    .unwrap();
    assert_eq!(c.get(b"a").unwrap(), Some(b"1".to_vec()));
    assert_eq!(c.get(b"b").unwrap(), Some(b"2".to_vec()));
    assert_eq!(c.get(b"{t}c").unwrap(), Some(b"3".to_vec()));
    assert_eq!(c.get(b"gone").unwrap(), None);
    c.batch(Vec::new()).unwrap();
    // A batch with one bad operation changes nothing.
    let err = c
        .batch(vec![
            BatchOp::Put(b"a".to_vec(), b"changed".to_vec()),
            BatchOp::Put(Vec::new(), b"empty key".to_vec()),
        ])
        .unwrap_err();
    assert_eq!(err.status(), Some(Status::Invalid), "{err}");
    assert_eq!(c.get(b"a").unwrap(), Some(b"1".to_vec()));
    // An empty key is invalid; the connection stays usable.
    assert_eq!(c.get(b"").unwrap_err().status(), Some(Status::Invalid));
    // Values up to the engine's limit, and one byte over.
    let largest = vec![0xA5u8; 4 << 20];
    c.put(b"large", &largest).unwrap();
    assert_eq!(c.get(b"large").unwrap(), Some(largest));
    let over = vec![0u8; (4 << 20) + 1];
    let err = c.put(b"over", &over).unwrap_err();
    assert_eq!(err.status(), Some(Status::TooLarge), "{err}");
    assert_eq!(c.get(b"over").unwrap(), None);
    c.ping().unwrap();
}

#[test]
fn pipelined_requests_are_answered_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut c = native(&daemon);
    // 2,000 requests in flight before the first reply is read.
    let mut ids = Vec::new();
    for i in 0..1000u32 {
        let key = format!("p{i}").into_bytes();
        ids.push(
            c.send(&Request::Put(key.clone(), i.to_le_bytes().to_vec()))
                .unwrap(),
        );
        ids.push(c.send(&Request::Get(key)).unwrap());
    }
    assert_eq!(c.in_flight(), 2000);
    c.flush().unwrap();
    // Read them in reverse order of sending: matching is by id.
    for (n, id) in ids.iter().enumerate().rev() {
        let r = c.recv_for(*id).unwrap();
        assert_eq!(r.id, *id);
        assert_eq!(r.status, Status::Ok);
        if n % 2 == 1 {
            assert_eq!(r.opcode, Opcode::Get as u8);
            assert_eq!(r.body, ((n / 2) as u32).to_le_bytes());
        }
    }
    assert_eq!(c.in_flight(), 0);
    // The windowed helper.
    let requests: Vec<Request> = (0..3000u32)
        .map(|i| Request::Get(format!("p{}", i % 1000).into_bytes()))
        .collect();
    let replies = c.pipeline(&requests).unwrap();
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r.body, ((i % 1000) as u32).to_le_bytes());
    }
}

#[test]
fn hostile_input_hurts_only_its_own_connection() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut good = native(&daemon);
    good.put(b"safe", b"value").unwrap();

    // Garbage instead of a hello: a refusing hello, an error frame, closed.
    let mut bad = raw(&daemon, false);
    bad.write_all(b"\xff\xfe garbage \"unbalanced\r\n").unwrap();
    let bytes = read_to_close(&mut bad);
    let hello = decode_hello(&bytes).unwrap().unwrap();
    assert_eq!(hello.status, Status::Protocol as u16);
    let (frame, _) = decode_response(&bytes[HELLO_BYTES..], &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!(frame.status, Status::Protocol);
    assert_eq!(good.get(b"safe").unwrap(), Some(b"value".to_vec()));

    // RESP sent to the native port is garbage too.
    let err = {
        let mut s = raw(&daemon, false);
        s.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
        read_to_close(&mut s)
    };
    assert_eq!(
        decode_hello(&err).unwrap().unwrap().status,
        Status::Protocol as u16
    );

    // An oversized length: ERR_TOO_LARGE with the request's id, closed.
    let mut bad = raw(&daemon, true);
    bad.write_all(&header(u32::MAX, 77, Opcode::Put as u8, 0))
        .unwrap();
    let bytes = read_to_close(&mut bad);
    let (frame, used) = decode_response(&bytes, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!((frame.id, frame.status), (77, Status::TooLarge));
    assert_eq!(used, bytes.len(), "nothing after the error frame");

    // Reserved bits set: ERR_PROTOCOL, closed.
    let mut bad = raw(&daemon, true);
    bad.write_all(&header(0, 5, Opcode::Ping as u8, 0x80))
        .unwrap();
    let bytes = read_to_close(&mut bad);
    let (frame, _) = decode_response(&bytes, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!((frame.id, frame.status), (5, Status::Protocol));

    // An unknown opcode and a batch over the limit are refused, but the
    // framing is intact, so the connection carries on.
    let mut ok = raw(&daemon, true);
    let mut out = header(0, 1, 200, 0);
    let mut body = Vec::new();
    body.extend_from_slice(&((BATCH_OPS_MAX + 1) as u32).to_le_bytes());
    out.extend_from_slice(&header(body.len() as u32, 2, Opcode::Batch as u8, 0));
    out.extend_from_slice(&body);
    encode_request(&mut out, 3, &Request::Get(b"safe".to_vec())).unwrap();
    ok.write_all(&out).unwrap();
    let mut bytes = Vec::new();
    let mut replies = Vec::new();
    while replies.len() < 3 {
        let mut chunk = [0u8; 4096];
        let n = ok.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed early");
        bytes.extend_from_slice(&chunk[..n]);
        while let Some((r, used)) = decode_response(&bytes, &Limits::default()).unwrap() {
            bytes.drain(..used);
            replies.push(r);
        }
    }
    assert_eq!((replies[0].id, replies[0].status), (1, Status::Unsupported));
    assert_eq!((replies[1].id, replies[1].status), (2, Status::TooLarge));
    assert_eq!(
        (replies[2].id, replies[2].status, replies[2].body.as_slice()),
        (3, Status::Ok, &b"value"[..])
    );

    // A half-sent frame that stalls holds only its own connection.
    let mut stalled = raw(&daemon, true);
    let mut frame = Vec::new();
    encode_request(
        &mut frame,
        9,
        &Request::Put(b"half".to_vec(), vec![1; 1000]),
    )
    .unwrap();
    stalled.write_all(&frame[..frame.len() / 2]).unwrap();
    let started = Instant::now();
    for i in 0..100u32 {
        good.put(format!("during{i}").as_bytes(), b"x").unwrap();
    }
    assert_eq!(good.get(b"safe").unwrap(), Some(b"value".to_vec()));
    assert!(started.elapsed() < Duration::from_secs(10));
    // The stalled frame completes later and is answered.
    stalled.write_all(&frame[frame.len() / 2..]).unwrap();
    let mut reply = [0u8; 16];
    stalled.read_exact(&mut reply).unwrap();
    let (r, _) = decode_response(&reply, &Limits::default())
        .unwrap()
        .unwrap();
    assert_eq!((r.id, r.status), (9, Status::Ok));
    assert_eq!(good.get(b"half").unwrap(), Some(vec![1; 1000]));
}

#[test]
fn a_connection_flood_is_refused_past_connections_max() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("veltrix.conf");
    std::fs::write(&config, "[server]\nconnections_max = 4\n").unwrap();
    let daemon = Daemon::start_with(dir.path(), &["--config", config.to_str().unwrap()]);
    // The limit is over both data ports: two RESP, two native.
    let mut resp: Vec<common::Client> = (0..2).map(|_| daemon.client()).collect();
    for c in &mut resp {
        assert_eq!(c.call(&[b"PING"]), Reply::Simple("PONG".into()));
    }
    let mut held: Vec<Client> = (0..2).map(|_| native(&daemon)).collect();
    for _ in 0..20 {
        match Client::connect(("127.0.0.1", daemon.native)) {
            Err(ClientError::Refused {
                status, message, ..
            }) => {
                assert_eq!(status, Status::Busy);
                assert!(message.contains("max number of clients"), "{message}");
            }
            Err(other) => panic!("expected ERR_BUSY, got {other}"),
            Ok(_) => panic!("a connection past connections_max was accepted"),
        }
    }
    for c in &mut held {
        c.put(b"k", b"v").unwrap();
    }
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Client::connect(("127.0.0.1", daemon.native)) {
            Ok(mut c) => {
                assert_eq!(c.get(b"k").unwrap(), Some(b"v".to_vec()));
                break;
            }
            Err(_) => assert!(Instant::now() < deadline, "a slot never came free"),
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn native_and_resp_see_the_same_data() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut n = native(&daemon);
    let mut r = daemon.client();
    n.put(b"from-native", b"\x00binary\xff").unwrap();
    assert_eq!(r.call(&[b"GET", b"from-native"]), bulk(b"\x00binary\xff"));
    assert_eq!(
        r.call(&[b"SET", b"from-resp", b"hello"]),
        Reply::Simple("OK".into())
    );
    assert_eq!(n.get(b"from-resp").unwrap(), Some(b"hello".to_vec()));
    assert_eq!(
        r.call(&[b"MSET", b"m1", b"a", b"m2", b"b"]),
        Reply::Simple("OK".into())
    );
    n.batch(vec![
        BatchOp::Delete(b"m1".to_vec()),
        BatchOp::Put(b"m3".to_vec(), b"c".to_vec()),
    ])
    .unwrap();
    assert_eq!(
        r.call(&[b"MGET", b"m1", b"m2", b"m3"]),
        Reply::Array(Some(vec![Reply::Bulk(None), bulk(b"b"), bulk(b"c")]))
    );
    assert_eq!(r.call(&[b"DEL", b"from-native"]), Reply::Integer(1));
    assert_eq!(n.get(b"from-native").unwrap(), None);
    // Data written over native survives a restart, read back over RESP.
    drop((n, r));
    assert!(daemon.sigterm().success());
    let daemon = Daemon::start(dir.path());
    let mut r = daemon.client();
    assert_eq!(r.call(&[b"GET", b"m3"]), bulk(b"c"));
    assert_eq!(
        native(&daemon).get(b"from-resp").unwrap(),
        Some(b"hello".to_vec())
    );
}

/// INCRBY and APPEND over the native protocol: the same atomic
/// read-modify-writes as RESP's, with Redis's refusals as `ERR_INVALID`.
#[test]
fn increments_and_appends_agree_with_resp() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut n = native(&daemon);
    let mut r = daemon.client();
    assert_eq!(n.incr_by(b"count", 5).unwrap(), 5);
    assert_eq!(r.call(&[b"INCRBY", b"count", b"-7"]), Reply::Integer(-2));
    assert_eq!(n.incr_by(b"count", 0).unwrap(), -2);
    assert_eq!(n.append(b"text", b"ab").unwrap(), 2);
    assert_eq!(r.call(&[b"APPEND", b"text", b"c"]), Reply::Integer(3));
    assert_eq!(n.append(b"text", b"").unwrap(), 3);
    assert_eq!(n.get(b"text").unwrap(), Some(b"abc".to_vec()));
    let refused = |e: ClientError| e.status();
    let not_integer = n.incr_by(b"text", 1).err().unwrap();
    assert!(
        not_integer.to_string().contains("not an integer"),
        "{not_integer}"
    );
    assert_eq!(refused(not_integer), Some(Status::Invalid));
    r.call(&[b"SET", b"max", b"9223372036854775807"]);
    let overflow = n.incr_by(b"max", 1).err().unwrap();
    assert!(overflow.to_string().contains("overflow"), "{overflow}");
    assert_eq!(r.call(&[b"GET", b"max"]), bulk(b"9223372036854775807"));
    // Pipelined increments of one key are each applied once, in order.
    let requests: Vec<Request> = (0..50)
        .map(|_| Request::IncrBy(b"piped".to_vec(), 1))
        .collect();
    let replies = n.pipeline(&requests).unwrap();
    let sums: Vec<i64> = replies
        .into_iter()
        .map(|reply| i64::from_le_bytes(reply.body.try_into().unwrap()))
        .collect();
    assert_eq!(sums, (1..=50).collect::<Vec<i64>>());
    assert_eq!(r.call(&[b"GET", b"piped"]), bulk(b"50"));
}

/// Key expiry over both protocols, and across a crash (SIGKILL) and a
/// clean restart of veltrixd: deadlines survive, expired keys stay gone.
#[test]
fn deadlines_agree_with_resp_and_survive_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(dir.path());
    let mut n = native(&daemon);
    let mut r = daemon.client();
    let far: u64 = 4_102_444_800_123; // 2100-01-01, in milliseconds
    n.put_until(b"far", b"v", far).unwrap();
    assert_eq!(
        r.call(&[b"PEXPIRETIME", b"far"]),
        Reply::Integer(far as i64)
    );
    assert_eq!(
        r.call(&[b"EXPIRETIME", b"far"]),
        Reply::Integer(4_102_444_800)
    );
    r.call(&[b"SET", b"gone", b"v", b"PXAT", b"1000"]);
    assert_eq!(n.get(b"gone").unwrap(), None, "expired long ago");
    assert_eq!(n.deadline(b"gone").unwrap(), -2);
    r.call(&[b"SET", b"kept", b"v", b"EX", b"100000"]);
    assert!(n.expire_at(b"kept", Some(far as i64 + 1)).unwrap());
    r.call(&[b"SET", b"plain", b"v", b"PXAT", b"4102444800000"]);
    assert!(n.expire_at(b"plain", None).unwrap(), "PERSIST");
    assert_eq!(r.call(&[b"TTL", b"plain"]), Reply::Integer(-1));
    assert!(!n.expire_at(b"missing", Some(1)).unwrap());
    // A deadline in the past deletes the key.
    r.call(&[b"SET", b"doomed", b"v"]);
    assert!(n.expire_at(b"doomed", Some(5)).unwrap());
    assert_eq!(r.call(&[b"EXISTS", b"doomed"]), Reply::Integer(0));
    drop((n, r));
    daemon.kill9();
    for restart in ["after SIGKILL", "after SIGTERM"] {
        let daemon = Daemon::start(dir.path());
        let mut n = native(&daemon);
        let mut r = daemon.client();
        assert_eq!(n.deadline(b"far").unwrap(), far as i64, "{restart}");
        assert_eq!(n.deadline(b"kept").unwrap(), far as i64 + 1, "{restart}");
        assert_eq!(n.deadline(b"plain").unwrap(), -1, "{restart}");
        assert_eq!(r.call(&[b"GET", b"gone"]), Reply::Bulk(None), "{restart}");
        assert_eq!(r.call(&[b"DBSIZE"]), Reply::Integer(3), "{restart}");
        drop((n, r));
        assert!(daemon.sigterm().success());
    }
}

#[test]
fn an_unreachable_daemon_is_named_in_the_error() {
    let (_reserved, port) = common::refusing_port();
    let err = Client::connect(("127.0.0.1", port)).err().unwrap();
    assert!(
        err.to_string()
            .contains(&format!("cannot connect to 127.0.0.1:{port}")),
        "{err}"
    );
}
