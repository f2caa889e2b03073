//! The native protocol on the data port's event loop: the hello, request
//! frames into engine operations, engine replies into response frames.
//! The codec is `veltrix_client::protocol`; the spec is `docs/protocol.md`.

use engine::{EngineError, Modify, Op, Reply};
use veltrix_client::protocol::{
    self, decode_hello, decode_request, encode_hello, encode_response, FrameError, Hello, Limits,
    Request, Status, HELLO_BYTES, VERSION,
};

/// Per-connection state of the native protocol.
#[derive(Debug, Default)]
pub(crate) struct Session {
    /// The client's hello was accepted.
    pub handshaken: bool,
    /// Refuse the hello with this reason (users are configured and the
    /// protocol cannot log in).
    pub refusal: Option<&'static str>,
}

/// What the bytes at the front of a connection's read buffer call for.
pub(crate) enum Step {
    /// A frame (or the hello) is incomplete.
    NeedMore,
    /// Answer right away with these bytes; close afterwards if `close`.
    Reply {
        used: usize,
        bytes: Vec<u8>,
        close: bool,
    },
    /// Run an engine operation; answer its reply as request `id`.
    Engine {
        used: usize,
        id: u64,
        opcode: u8,
        op: Op,
    },
}

/// The reply to request `id` once the engine has answered.
pub(crate) struct Pending {
    pub id: u64,
    pub opcode: u8,
}

/// Decides the next step for a connection whose unparsed input is `buf`.
pub(crate) fn next(buf: &[u8], session: &mut Session, limits: &Limits) -> Step {
    if !session.handshaken {
        return match decode_hello(buf) {
            Ok(None) => Step::NeedMore,
            Err(e) => refuse(&e, HELLO_BYTES.min(buf.len())),
            Ok(Some(hello)) if hello.version == 0 || hello.status != 0 => {
                let mut bytes = Vec::new();
                hello_refusal(
                    &mut bytes,
                    Status::Version,
                    "bad hello: version 0 or nonzero status",
                );
                Step::Reply {
                    used: HELLO_BYTES,
                    bytes,
                    close: true,
                }
            }
            Ok(Some(_)) if session.refusal.is_some() => {
                let mut bytes = Vec::new();
                let reason = session.refusal.unwrap_or_default();
                hello_refusal(&mut bytes, Status::Unsupported, reason);
                Step::Reply {
                    used: HELLO_BYTES,
                    bytes,
                    close: true,
                }
            }
            Ok(Some(_)) => {
                // Speak the newest version both sides know: 1 is the only one.
                session.handshaken = true;
                let mut bytes = Vec::with_capacity(HELLO_BYTES);
                encode_hello(
                    &mut bytes,
                    Hello {
                        version: VERSION,
                        status: 0,
                    },
                );
                Step::Reply {
                    used: HELLO_BYTES,
                    bytes,
                    close: false,
                }
            }
        };
    }
    let (decoded, used) = match decode_request(buf, limits) {
        Ok(None) => return Step::NeedMore,
        Ok(Some(frame)) => frame,
        Err(e) => return refuse(&e, buf.len()),
    };
    let (id, opcode) = (decoded.id, decoded.opcode);
    let request = match decoded.request {
        Ok(r) => r,
        Err(refusal) => {
            let mut bytes = Vec::new();
            encode_response(
                &mut bytes,
                id,
                opcode,
                refusal.status(),
                refusal.to_string().as_bytes(),
            );
            return Step::Reply {
                used,
                bytes,
                close: false,
            };
        }
    };
    let op = match request {
        Request::Ping(payload) => {
            let mut bytes = Vec::new();
            encode_response(&mut bytes, id, opcode, Status::Ok, &payload);
            return Step::Reply {
                used,
                bytes,
                close: false,
            };
        }
        Request::Get(key) => Op::Get(key),
        Request::Put(key, value) => Op::Put(key, value),
        Request::Delete(key) => Op::Delete(key),
        Request::Exists(key) => Op::Exists(key),
        Request::Batch(ops) => Op::Batch(
            ops.into_iter()
                .map(|op| match op {
                    protocol::BatchOp::Put(k, v) => engine::BatchOp::Put(k, v),
                    protocol::BatchOp::Delete(k) => engine::BatchOp::Delete(k),
                })
                .collect(),
        ),
        Request::IncrBy(key, by) => Op::modify(key, Modify::IncrBy(by)),
        Request::Append(key, bytes) => Op::modify(key, Modify::Append(bytes)),
        Request::PutUntil(key, value, deadline) => {
            Op::Batch(vec![engine::BatchOp::PutUntil(key, value, deadline)])
        }
        Request::ExpireAt(key, Some(at)) => {
            let condition = engine::modify::ExpireIf::default();
            Op::modify(key, Modify::Expire { at, condition })
        }
        Request::ExpireAt(key, None) => Op::modify(key, Modify::Persist),
        Request::Deadline(key) => Op::Deadline(key),
    };
    Step::Engine {
        used,
        id,
        opcode,
        op,
    }
}

/// A framing error: answer with an error frame (after a refusing hello if
/// the hello itself was bad), then close.
fn refuse(error: &FrameError, used: usize) -> Step {
    let mut bytes = Vec::new();
    if matches!(error, FrameError::BadMagic { .. }) {
        hello_refusal(&mut bytes, error.status(), &error.to_string());
    } else {
        encode_response(
            &mut bytes,
            error.request_id(),
            0,
            error.status(),
            error.to_string().as_bytes(),
        );
    }
    Step::Reply {
        used,
        bytes,
        close: true,
    }
}

/// A hello that refuses the connection, and the error frame with the reason.
pub(crate) fn hello_refusal(out: &mut Vec<u8>, status: Status, message: &str) {
    encode_hello(
        out,
        Hello {
            version: VERSION,
            status: u16::from(status as u8),
        },
    );
    encode_response(out, 0, 0, status, message.as_bytes());
}

/// Encodes the engine's reply to a request.
pub(crate) fn encode_reply(out: &mut Vec<u8>, pending: &Pending, reply: Option<Reply>) {
    let (id, opcode) = (pending.id, pending.opcode);
    match reply {
        Some(Reply::Value(Some(value))) => encode_response(out, id, opcode, Status::Ok, &value),
        Some(Reply::Integer(n)) => encode_response(out, id, opcode, Status::Ok, &n.to_le_bytes()),
        Some(Reply::Done | Reply::Deleted(true) | Reply::Exists(true)) => {
            encode_response(out, id, opcode, Status::Ok, &[])
        }
        Some(Reply::Value(None) | Reply::Deleted(false) | Reply::Exists(false)) => {
            encode_response(out, id, opcode, Status::NotFound, &[])
        }
        Some(Reply::Failed(error)) => encode_response(
            out,
            id,
            opcode,
            status_of(&error),
            error.to_string().as_bytes(),
        ),
        Some(other) => encode_response(
            out,
            id,
            opcode,
            Status::Internal,
            format!("unexpected engine reply {other:?}").as_bytes(),
        ),
        None => encode_response(out, id, opcode, Status::Internal, b"no engine reply"),
    }
}

/// The status for an engine error.
pub(crate) fn status_of(error: &EngineError) -> Status {
    match error {
        EngineError::KeyLength { len: 0, .. } | EngineError::Modify(_) => Status::Invalid,
        EngineError::KeyLength { .. }
        | EngineError::ValueLength { .. }
        | EngineError::BatchTooLarge { .. } => Status::TooLarge,
        EngineError::Corruption { .. } => Status::Corrupt,
        EngineError::OutOfSpace => Status::Full,
        EngineError::Busy => Status::Busy,
        EngineError::ShuttingDown => Status::ShuttingDown,
        EngineError::Io(_)
        | EngineError::Fenced(_)
        | EngineError::NotOwner { .. }
        | EngineError::CheckpointFailed => Status::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use veltrix_client::protocol::{decode_response, encode_request};

    #[test]
    fn the_hello_is_answered_then_frames_become_operations() {
        let mut session = Session::default();
        let mut hello = Vec::new();
        encode_hello(
            &mut hello,
            Hello {
                version: VERSION,
                status: 0,
            },
        );
        assert!(matches!(
            next(&hello[..5], &mut session, &Limits::default()),
            Step::NeedMore
        ));
        let Step::Reply { used, bytes, close } = next(&hello, &mut session, &Limits::default())
        else {
            panic!("the hello is answered")
        };
        assert_eq!((used, close), (HELLO_BYTES, false));
        assert_eq!(
            decode_hello(&bytes),
            Ok(Some(Hello {
                version: 1,
                status: 0
            }))
        );
        let mut frame = Vec::new();
        encode_request(&mut frame, 42, &Request::Put(b"k".to_vec(), b"v".to_vec())).unwrap();
        let Step::Engine { used, id, op, .. } = next(&frame, &mut session, &Limits::default())
        else {
            panic!("a put becomes an engine operation")
        };
        assert_eq!((used, id), (frame.len(), 42));
        assert!(matches!(op, Op::Put(k, v) if k == b"k" && v == b"v"));
    }

    #[test]
    fn garbage_gets_a_refusing_hello_and_an_error_frame() {
        let Step::Reply { bytes, close, .. } = next(
            b"GET / HTTP/1.1\r\n",
            &mut Session::default(),
            &Limits::default(),
        ) else {
            panic!()
        };
        assert!(close);
        let hello = decode_hello(&bytes).unwrap().unwrap();
        assert_eq!(hello.status, Status::Protocol as u16);
        let (frame, _) = decode_response(&bytes[HELLO_BYTES..], &Limits::default())
            .unwrap()
            .unwrap();
        assert_eq!(frame.status, Status::Protocol);
    }

    #[test]
    fn engine_errors_map_to_statuses() {
        let mut out = Vec::new();
        let pending = Pending { id: 7, opcode: 3 };
        encode_reply(
            &mut out,
            &pending,
            Some(Reply::Failed(EngineError::ValueLength { len: 9, max: 1 })),
        );
        let (r, _) = decode_response(&out, &Limits::default()).unwrap().unwrap();
        assert_eq!((r.id, r.opcode, r.status), (7, 3, Status::TooLarge));
        assert!(r.message().contains("value length 9"));
        assert_eq!(
            status_of(&EngineError::KeyLength { len: 0, max: 1 }),
            Status::Invalid
        );
    }
}
