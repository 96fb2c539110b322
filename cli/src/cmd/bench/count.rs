//! Counting server frames in a read buffer from their headers alone.
//!
//! This is the load generator's whole per-message cost on the receive path: a frame header
//! parsed, one byte of the payload looked at to tell a chat message from a refusal, one more
//! to see whether it carries a send time. No JSON is decoded and nothing is allocated per
//! message. A frame cut by the end of a read stays unconsumed; the caller keeps those bytes and
//! puts them in front of the next read.

use std::io;

use roomcast_protocol::raw::{MAX_FRAME_BYTES, opcode};

use super::sample;

/// What the frames of one or more reads held.
#[derive(Debug, Default)]
pub struct Tally {
    /// Chat messages (text frames whose JSON starts with `{"room"`).
    pub messages: u64,
    /// Other text frames: refusals (`{"error": ...}`), which a bench should never get.
    pub refused: u64,
    /// Latencies (µs) of the messages that carried a send time of this run.
    pub latencies: Vec<u64>,
    /// Payloads of pings to answer (rare: one per ping interval).
    pub pings: Vec<Vec<u8>>,
    /// The close code, when the server closed the session.
    pub close: Option<u16>,
}

impl Tally {
    /// Forgets what was counted, keeping the allocations.
    pub fn clear(&mut self) {
        self.messages = 0;
        self.refused = 0;
        self.latencies.clear();
        self.pings.clear();
        self.close = None;
    }
}

/// Counts the complete frames at the front of `bytes` into `tally`; returns how many bytes they
/// took (the rest is an incomplete frame). `now` is this read's time in `now_micros` units;
/// send times are trusted only from stamps of `run`. Stops after a close frame.
pub fn count_frames(bytes: &[u8], run: &[u8], now: u64, tally: &mut Tally) -> io::Result<usize> {
    let mut at = 0;
    while let Some((code, header, len)) = header(&bytes[at..])? {
        let Some(payload) = bytes.get(at + header..at + header + len) else {
            break;
        };
        at += header + len;
        match code {
            opcode::TEXT if payload.get(2) == Some(&b'r') => {
                tally.messages += 1;
                if let Some(sent) = sample::sent_micros(payload, run) {
                    tally.latencies.push(now.saturating_sub(sent).max(1));
                }
            }
            opcode::TEXT => tally.refused += 1,
            opcode::PING => tally.pings.push(payload.to_vec()),
            opcode::CLOSE => {
                tally.close = Some(match payload {
                    [high, low, ..] => u16::from_be_bytes([*high, *low]),
                    _ => 1005,
                });
                break;
            }
            _ => {}
        }
    }
    Ok(at)
}

/// Opcode, header length and payload length of the frame at the front of `bytes`; `None` while
/// the header is incomplete.
fn header(bytes: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    if second & 0x80 != 0 {
        return Err(invalid("the server sent a masked frame"));
    }
    let (len, extended) = match second & 0x7f {
        126 => match rest {
            [a, b, ..] => (u64::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => match rest.first_chunk::<8>() {
            Some(eight) => (u64::from_be_bytes(*eight), 8),
            None => return Ok(None),
        },
        short => (u64::from(short), 0),
    };
    let len = usize::try_from(len)
        .ok()
        .filter(|len| *len <= MAX_FRAME_BYTES)
        .ok_or_else(|| invalid("server frame larger than the bench accepts"))?;
    Ok(Some((first & 0x0f, 2 + extended, len)))
}

fn invalid(why: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An unmasked server frame, as roomcast and the reference send them.
    pub fn server_frame(code: u8, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![0x80 | code];
        match payload.len() {
            len if len < 126 => frame.push(len as u8),
            len if len <= 0xffff => {
                frame.push(126);
                frame.extend_from_slice(&(len as u16).to_be_bytes());
            }
            len => {
                frame.push(127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(payload);
        frame
    }

    fn message(text: &str) -> Vec<u8> {
        let json = format!(r#"{{"room":"r","user":"u","seq":1,"ts":2,"message":"{text}"}}"#);
        server_frame(opcode::TEXT, json.as_bytes())
    }

    #[test]
    fn messages_refusals_pings_and_stamps_are_told_apart() {
        let mut bytes = message(&sample::text("abc123", 64, false));
        bytes.extend(message(&sample::text("abc123", 200, true)));
        bytes.extend(server_frame(opcode::PING, b"p1"));
        bytes.extend(server_frame(opcode::TEXT, br#"{"error":{"code":"x"}}"#));
        bytes.extend(message(&"y".repeat(70_000)));
        let mut tally = Tally::default();
        let now = crate::load::stamp::now_micros() + 1_000;
        let used = count_frames(&bytes, b"abc123", now, &mut tally).expect("valid frames");
        assert_eq!(used, bytes.len());
        assert_eq!((tally.messages, tally.refused), (3, 1));
        assert_eq!(tally.latencies.len(), 1);
        assert!(tally.latencies[0] >= 1_000, "{:?}", tally.latencies);
        assert_eq!(tally.pings, vec![b"p1".to_vec()]);
    }

    #[test]
    fn a_frame_cut_by_the_read_is_left_for_the_next_one() {
        let mut bytes = message("one");
        let first = bytes.len();
        bytes.extend(message("two"));
        let mut tally = Tally::default();
        for cut in [first + 1, first + 3, bytes.len() - 1] {
            tally.clear();
            let used = count_frames(&bytes[..cut], b"abc123", 0, &mut tally).expect("valid");
            assert_eq!((used, tally.messages), (first, 1), "cut at {cut}");
        }
        tally.clear();
        let used = count_frames(&bytes[first..], b"abc123", 0, &mut tally).expect("valid");
        assert_eq!((used, tally.messages), (bytes.len() - first, 1));
    }

    #[test]
    fn counting_stops_at_a_close_frame_with_its_code() {
        let mut bytes = message("last");
        bytes.extend(server_frame(opcode::CLOSE, &[0x0f, 0xa0, b'x']));
        bytes.extend(message("after the close"));
        let mut tally = Tally::default();
        count_frames(&bytes, b"abc123", 0, &mut tally).expect("valid");
        assert_eq!((tally.messages, tally.close), (1, Some(4000)));
    }

    #[test]
    fn masked_and_oversized_frames_are_errors() {
        let mut tally = Tally::default();
        assert!(count_frames(&[0x81, 0x85, 0, 0, 0, 0], b"", 0, &mut tally).is_err());
        let mut huge = vec![0x82, 127];
        huge.extend_from_slice(&u64::MAX.to_be_bytes());
        assert!(count_frames(&huge, b"", 0, &mut tally).is_err());
    }
}
