//! Envelopes on the wire between nodes.
//!
//! One frame per envelope (little-endian): frame length (u32, the bytes
//! after it), sender node id (u64), receiver node id (u64), message count
//! (u32), then per message its group (u32), its length (u32) and the
//! raft-rs message in protobuf (prost); then the count of hibernation
//! notices (u32) and per notice its group (u32) and term (u64). Every length is checked against
//! [`MAX_FRAME`] (and the bytes actually present) before anything is
//! allocated for it, so a hostile or damaged peer costs one closed
//! connection, never memory or a panic.

use prost::Message as _;
use raft::prelude::Message;

use crate::bytes::Reader;
use crate::node::Envelope;

/// The largest frame accepted: raft-rs bounds an append at
/// `max_message_bytes` (1 MiB by default); a step's envelope to one peer
/// may hold one per group.
pub const MAX_FRAME: usize = 64 << 20;

/// Why bytes are not an envelope.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WireError {
    #[error("frame of {0} bytes is over the {MAX_FRAME}-byte limit")]
    TooLarge(usize),
    #[error("frame ends inside its {0}")]
    Truncated(&'static str),
    #[error("message {index} of group {group} does not decode: {reason}")]
    Message {
        index: usize,
        group: u32,
        reason: String,
    },
    #[error("{0} bytes after the last message")]
    Trailing(usize),
}

/// The frame for `envelope`.
pub fn encode(envelope: &Envelope) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&envelope.from.to_le_bytes());
    body.extend_from_slice(&envelope.to.to_le_bytes());
    body.extend_from_slice(&(envelope.messages.len() as u32).to_le_bytes());
    for (group, message) in &envelope.messages {
        body.extend_from_slice(&group.to_le_bytes());
        body.extend_from_slice(&(message.encoded_len() as u32).to_le_bytes());
        // Encoding into a Vec cannot fail: it grows as needed.
        let _ = message.encode(&mut body);
    }
    body.extend_from_slice(&(envelope.hibernate.len() as u32).to_le_bytes());
    for (group, term) in &envelope.hibernate {
        body.extend_from_slice(&group.to_le_bytes());
        body.extend_from_slice(&term.to_le_bytes());
    }
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// How many bytes the frame at the start of `buf` takes, once its length
/// is there: `Ok(None)` while fewer than 4 bytes have arrived.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, WireError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_FRAME {
        return Err(WireError::TooLarge(len));
    }
    Ok(Some(4 + len))
}

/// Decodes one whole frame (as [`frame_len`] measured it).
pub fn decode(frame: &[u8]) -> Result<Envelope, WireError> {
    let len = frame_len(frame)?.ok_or(WireError::Truncated("length"))?;
    let body = frame.get(4..len).ok_or(WireError::Truncated("body"))?;
    if frame.len() > len {
        return Err(WireError::Trailing(frame.len() - len));
    }
    let mut r = Reader::new(body);
    let t = WireError::Truncated;
    let from = r.u64().ok_or(t("sender"))?;
    let to = r.u64().ok_or(t("receiver"))?;
    let count = r.u32().ok_or(t("message count"))? as usize;
    // Each message takes at least its 8 header bytes: a count beyond that
    // is a lie, refused before allocating for it.
    if count > body.len() / 8 {
        return Err(WireError::Truncated("messages"));
    }
    let mut messages = Vec::with_capacity(count);
    for index in 0..count {
        let group = r.u32().ok_or(t("message group"))?;
        let size = r.u32().ok_or(t("message length"))? as usize;
        let bytes = r.take(size).ok_or(t("message"))?;
        let message = Message::decode(bytes).map_err(|e| WireError::Message {
            index,
            group,
            reason: e.to_string(),
        })?;
        messages.push((group, message));
    }
    let notices = r.u32().ok_or(t("notice count"))? as usize;
    if notices > r.rest().len() / 12 {
        return Err(WireError::Truncated("notices"));
    }
    let mut hibernate = Vec::with_capacity(notices);
    for _ in 0..notices {
        hibernate.push((
            r.u32().ok_or(t("notice group"))?,
            r.u64().ok_or(t("notice term"))?,
        ));
    }
    if !r.rest().is_empty() {
        return Err(WireError::Trailing(r.rest().len()));
    }
    Ok(Envelope {
        from,
        to,
        messages,
        hibernate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use raft::prelude::{Entry, MessageType};

    fn message(to: u64, term: u64, entries: Vec<Vec<u8>>) -> Message {
        let mut m = Message::default();
        m.set_msg_type(MessageType::MsgAppend);
        m.to = to;
        m.term = term;
        m.entries = entries
            .into_iter()
            .enumerate()
            .map(|(i, data)| Entry {
                index: i as u64 + 1,
                term,
                data,
                ..Entry::default()
            })
            .collect();
        m
    }

    proptest! {
        #[test]
        fn envelopes_round_trip(
            from: u64,
            to: u64,
            msgs in prop::collection::vec((any::<u32>(), any::<u64>(), prop::collection::vec(prop::collection::vec(any::<u8>(), 0..40), 0..4)), 0..6),
            notices in prop::collection::vec((any::<u32>(), any::<u64>()), 0..4),
        ) {
            let envelope = Envelope {
                from,
                to,
                messages: msgs.into_iter().map(|(g, term, entries)| (g, message(to, term, entries))).collect(),
                hibernate: notices,
            };
            let frame = encode(&envelope);
            prop_assert_eq!(frame_len(&frame), Ok(Some(frame.len())));
            let back = decode(&frame).expect("decodes");
            prop_assert_eq!(back.from, envelope.from);
            prop_assert_eq!(back.to, envelope.to);
            prop_assert_eq!(back.messages, envelope.messages);
            prop_assert_eq!(back.hibernate, envelope.hibernate);
        }

        #[test]
        fn any_bytes_decode_or_fail_cleanly(bytes: Vec<u8>) {
            let _ = decode(&bytes);
        }

        #[test]
        fn every_truncation_is_refused(cut in 0usize..200) {
            let envelope = Envelope { from: 1, to: 2, messages: vec![(3, message(2, 4, vec![b"value".to_vec()]))], hibernate: vec![(3, 4)] };
            let frame = encode(&envelope);
            let cut = cut % frame.len();
            prop_assert!(decode(&frame[..cut]).is_err());
        }
    }

    #[test]
    fn lengths_are_checked_before_allocating() {
        let mut frame = (MAX_FRAME as u32 + 1).to_le_bytes().to_vec();
        assert_eq!(frame_len(&frame), Err(WireError::TooLarge(MAX_FRAME + 1)));
        // A count of four billion messages in a 20-byte body.
        frame = 20u32.to_le_bytes().to_vec();
        frame.extend_from_slice(&[0; 16]);
        frame.extend_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&frame).err(), Some(WireError::Truncated("messages")));
    }
}
