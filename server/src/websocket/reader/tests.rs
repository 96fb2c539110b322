use proptest::prelude::*;

use super::*;

const LIMIT: usize = 1024;

/// A masked client frame, fragmented or not.
fn frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut bytes = vec![u8::from(fin) << 7 | opcode];
    match payload.len() {
        len if len < 126 => bytes.push(0x80 | len as u8),
        len if len <= usize::from(u16::MAX) => {
            bytes.push(0x80 | 126);
            bytes.extend_from_slice(&(len as u16).to_be_bytes());
        }
        len => {
            bytes.push(0x80 | 127);
            bytes.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    bytes.extend_from_slice(&mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    bytes
}

fn text(payload: &str) -> Vec<u8> {
    frame(true, 0x1, payload.as_bytes(), [1, 2, 3, 4])
}

/// What a reader makes of `bytes` delivered in reads of at most `chunk` bytes.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Text(String),
    Binary,
    Ping(Vec<u8>),
    Pong,
    Close(Option<u16>),
    Error(ReadError),
}

/// What a reader makes of `bytes` arriving in reads of at most `chunk` bytes, and the most it
/// held allocated at any point.
fn read_all(bytes: &[u8], chunk: usize) -> (Vec<Seen>, usize) {
    let mut reader = FrameReader::new(LIMIT);
    let mut seen = Vec::new();
    let mut most_allocated = 0;
    let mut unread = bytes;
    while !unread.is_empty() {
        let buffer = reader.read_buffer();
        // A real read takes at most what the buffer has room for.
        let room = buffer.capacity() - buffer.len();
        let (read, rest) = unread.split_at(unread.len().min(room).min(chunk.max(1)));
        buffer.extend_from_slice(read);
        unread = rest;
        most_allocated = most_allocated.max(reader.allocated());
        loop {
            match reader.next() {
                Ok(Some(inbound)) => seen.push(match inbound {
                    Inbound::Text(t) => Seen::Text(t.to_owned()),
                    Inbound::Binary => Seen::Binary,
                    Inbound::Ping(p) => Seen::Ping(p.to_vec()),
                    Inbound::Pong => Seen::Pong,
                    Inbound::Close(code) => Seen::Close(code),
                }),
                Ok(None) => break,
                Err(e) => {
                    seen.push(Seen::Error(e));
                    return (seen, most_allocated);
                }
            }
            most_allocated = most_allocated.max(reader.allocated());
        }
        reader.end_batch();
    }
    (seen, most_allocated)
}

#[test]
fn a_masked_text_frame_reads_as_its_text() {
    let (seen, _) = read_all(&text("héllo"), 4096);
    assert_eq!(seen, [Seen::Text("héllo".into())]);
}

#[test]
fn fragments_join_and_control_frames_may_come_between_them() {
    let mut bytes = frame(false, 0x1, b"hel", [9, 8, 7, 6]);
    bytes.extend(frame(true, 0x9, b"are you there", [1, 1, 1, 1]));
    bytes.extend(frame(false, 0x0, b"lo ", [5, 5, 5, 5]));
    bytes.extend(frame(true, 0xA, b"", [0, 0, 0, 0]));
    bytes.extend(frame(true, 0x0, "wörld".as_bytes(), [3, 1, 4, 1]));
    bytes.extend(text("next"));
    for chunk in [1, 3, 7, 4096] {
        let (seen, _) = read_all(&bytes, chunk);
        assert_eq!(
            seen,
            [
                Seen::Ping(b"are you there".to_vec()),
                Seen::Pong,
                Seen::Text("hello wörld".into()),
                Seen::Text("next".into()),
            ],
            "in reads of {chunk} bytes"
        );
    }
}

#[test]
fn a_message_over_the_limit_is_refused_from_its_header() {
    let mut header = frame(true, 0x1, &[], [0; 4]);
    header[1] = 0x80 | 127;
    header.splice(2..2, (LIMIT as u64 + 1).to_be_bytes());
    let (seen, allocated) = read_all(&header, 4096);
    assert_eq!(seen, [Seen::Error(ReadError::TooBig)]);
    assert!(allocated <= READ_CHUNK_BYTES, "nothing reserved for it");

    // Fragments count together.
    let mut bytes = frame(false, 0x1, &[b'a'; LIMIT / 2], [1; 4]);
    bytes.extend(frame(true, 0x0, &[b'b'; LIMIT / 2 + 1], [1; 4]));
    assert_eq!(
        read_all(&bytes, 4096).0.last(),
        Some(&Seen::Error(ReadError::TooBig))
    );
    // Exactly the limit is fine.
    let exact = "c".repeat(LIMIT);
    assert_eq!(read_all(&text(&exact), 100).0, [Seen::Text(exact)]);
}

#[test]
fn rfc_6455_violations_are_protocol_errors() {
    let protocol = |bytes: Vec<u8>| {
        let (seen, _) = read_all(&bytes, 4096);
        assert!(
            matches!(seen.last(), Some(Seen::Error(ReadError::Protocol(_)))),
            "{seen:?}"
        );
    };
    // Unmasked.
    protocol(vec![0x81, 0x02, b'h', b'i']);
    // Reserved bit.
    let mut rsv = text("x");
    rsv[0] |= 0x40;
    protocol(rsv);
    // Reserved opcode.
    protocol(frame(true, 0x3, b"", [0; 4]));
    // Fragmented or long control frames.
    protocol(frame(false, 0x9, b"", [0; 4]));
    protocol(frame(true, 0x9, &[0; 126], [0; 4]));
    // Continuation without a start, and a new message inside a fragmented one.
    protocol(frame(true, 0x0, b"x", [0; 4]));
    let mut nested = frame(false, 0x1, b"a", [0; 4]);
    nested.extend(text("b"));
    protocol(nested);
    // Bad close payloads.
    protocol(frame(true, 0x8, &[0x03], [0; 4]));
    protocol(frame(true, 0x8, &1005u16.to_be_bytes(), [0; 4]));
}

#[test]
fn text_and_close_reasons_that_are_not_utf8_are_invalid_payloads() {
    let not_utf8 = |bytes: Vec<u8>| {
        let (seen, _) = read_all(&bytes, 4096);
        assert_eq!(
            seen.last(),
            Some(&Seen::Error(ReadError::NotUtf8)),
            "{seen:?}"
        );
    };
    not_utf8(frame(true, 0x1, &[0xff, 0xfe], [7; 4]));
    // Split across fragments, each fragment's bytes alone not UTF-8 either.
    let mut split = frame(false, 0x1, &[b'a', 0xe2], [3; 4]);
    split.extend(frame(true, 0x0, &[0x28, 0xa1], [3; 4]));
    not_utf8(split);
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.push(0xff);
    not_utf8(frame(true, 0x8, &bad_reason, [0; 4]));
}

#[test]
fn close_frames_carry_their_code_and_binary_is_recognised() {
    let mut payload = 4000u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"bye");
    let mut bytes = frame(true, 0x2, &[0, 159, 146, 150], [2; 4]);
    bytes.extend(frame(true, 0x8, &payload, [4; 4]));
    bytes.extend(frame(true, 0x8, &[], [4; 4]));
    let (seen, _) = read_all(&bytes, 5);
    assert_eq!(
        seen,
        [Seen::Binary, Seen::Close(Some(4000)), Seen::Close(None)]
    );
}

#[test]
fn an_idle_reader_holds_no_buffer() {
    let mut reader = FrameReader::new(LIMIT);
    assert_eq!(reader.allocated(), 0);
    reader.read_buffer().extend_from_slice(&text("hi"));
    assert!(matches!(reader.next(), Ok(Some(Inbound::Text("hi")))));
    assert!(matches!(reader.next(), Ok(None)));
    reader.end_batch();
    assert_eq!(reader.allocated(), 0);
}

/// The most a reader may hold: one frame at the limit plus a read chunk, and the fragments of
/// one message.
const BOUND: usize = MAX_HEADER_BYTES + LIMIT + READ_CHUNK_BYTES + LIMIT;

proptest! {
    #[test]
    fn random_bytes_never_panic_and_never_allocate_past_the_bound(
        bytes in proptest::collection::vec(any::<u8>(), 0..8192),
        chunk in 1usize..5000,
    ) {
        let (_, allocated) = read_all(&bytes, chunk);
        prop_assert!(allocated <= BOUND, "allocated {allocated}");
    }

    #[test]
    fn any_declared_length_is_checked_before_anything_is_reserved_for_it(
        declared in any::<u64>(),
        first in any::<u8>(),
        body in proptest::collection::vec(any::<u8>(), 0..2000),
        chunk in 1usize..3000,
    ) {
        let mut bytes = vec![first, 0x80 | 127];
        bytes.extend_from_slice(&declared.to_be_bytes());
        bytes.extend_from_slice(&[1, 2, 3, 4]);
        bytes.extend(body);
        let (_, allocated) = read_all(&bytes, chunk);
        prop_assert!(allocated <= BOUND, "allocated {allocated}");
    }

    #[test]
    fn random_frames_with_a_mask_bit_never_panic(
        frames in proptest::collection::vec(
            (any::<bool>(), 0u8..16, proptest::collection::vec(any::<u8>(), 0..300), any::<[u8; 4]>()),
            0..20,
        ),
        chunk in 1usize..600,
    ) {
        let bytes: Vec<u8> = frames
            .iter()
            .flat_map(|(fin, opcode, payload, mask)| frame(*fin, *opcode, payload, *mask))
            .collect();
        let (_, allocated) = read_all(&bytes, chunk);
        prop_assert!(allocated <= BOUND, "allocated {allocated}");
    }

    #[test]
    fn any_fragmentation_of_text_messages_reads_back_the_same_messages(
        messages in proptest::collection::vec(("\\PC{0,60}", 1usize..5), 1..10),
        chunk in 1usize..200,
    ) {
        let mut bytes = Vec::new();
        for (message, pieces) in &messages {
            let raw = message.as_bytes();
            let step = raw.len().div_ceil(*pieces).max(1);
            let parts: Vec<&[u8]> = if raw.is_empty() { vec![raw] } else { raw.chunks(step).collect() };
            for (i, part) in parts.iter().enumerate() {
                let opcode = if i == 0 { 0x1 } else { 0x0 };
                bytes.extend(frame(i + 1 == parts.len(), opcode, part, [i as u8, 7, 1, 3]));
                // A ping between fragments changes nothing.
                bytes.extend(frame(true, 0x9, b"p", [0; 4]));
            }
        }
        let (seen, _) = read_all(&bytes, chunk);
        let texts: Vec<String> = seen
            .into_iter()
            .filter_map(|s| match s { Seen::Text(t) => Some(t), _ => None })
            .collect();
        let expected: Vec<String> = messages.iter().map(|(m, _)| m.clone()).collect();
        prop_assert_eq!(texts, expected);
    }
}
