//! The text of a bench message, and the send time that some of them carry at their very end.
//!
//! Every bench message is `size` bytes of text. One in `--sample-every` ends with
//! `|t<run>|<16-digit µs>`; the rest are plain `x` padding. The text is the last field of the
//! frame roomcast (and the reference broadcaster) sends, so in the received JSON the stamp sits
//! at a fixed distance from the payload's end, just before `"}`: the receiver finds it by
//! looking at one byte, without scanning or decoding, and parses digits only for stamped ones.

use crate::load::stamp::now_micros;

/// The stamp's length: `|t`, the 6-character run id, `|`, 16 digits of microseconds.
pub const STAMP_BYTES: usize = 2 + RUN_BYTES + 1 + MICROS_DIGITS;

/// Length of a run id (`stamp::new_run_id`).
pub const RUN_BYTES: usize = 6;

/// Digits of the send time: 16 digits of microseconds is 317 years of process uptime.
const MICROS_DIGITS: usize = 16;

/// What follows the message text in a received frame: the closing quote and brace.
const AFTER_TEXT: &[u8] = b"\"}";

/// Smallest message a bench sends: a stamp, and a few bytes of padding.
pub const MIN_SIZE_BYTES: usize = STAMP_BYTES + 4;

/// A message text of `size` bytes (at least [`MIN_SIZE_BYTES`]), stamped with the current time
/// when `stamped`.
pub fn text(run: &str, size: usize, stamped: bool) -> String {
    let size = size.max(MIN_SIZE_BYTES);
    if !stamped {
        return "x".repeat(size);
    }
    let mut text = "x".repeat(size - STAMP_BYTES);
    text.push_str("|t");
    text.push_str(run);
    text.push('|');
    text.push_str(&format!("{:0width$}", now_micros(), width = MICROS_DIGITS));
    text
}

/// The client's JSON for a tutorial message.
pub fn tutorial_send(text: &str) -> Vec<u8> {
    // The text is ASCII letters, digits and `|`: nothing to escape.
    format!(r#"{{"message":"{text}"}}"#).into_bytes()
}

/// The send time stamped at the end of a received message frame's payload, when it carries one
/// of run `run`. Costs one byte comparison for an unstamped message.
#[inline]
pub fn sent_micros(payload: &[u8], run: &[u8]) -> Option<u64> {
    let end = payload.len().checked_sub(AFTER_TEXT.len())?;
    let start = end.checked_sub(STAMP_BYTES)?;
    let stamp = &payload[start..end];
    if stamp[0] != b'|' || stamp[1] != b't' || &stamp[2..2 + RUN_BYTES] != run {
        return None;
    }
    if stamp[2 + RUN_BYTES] != b'|' || &payload[end..] != AFTER_TEXT {
        return None;
    }
    stamp[3 + RUN_BYTES..]
        .iter()
        .try_fold(0u64, |value, digit| {
            digit
                .is_ascii_digit()
                .then(|| value * 10 + u64::from(digit - b'0'))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn received(text: &str) -> Vec<u8> {
        format!(r#"{{"room":"r","user":"u","seq":1,"ts":2,"message":"{text}"}}"#).into_bytes()
    }

    #[test]
    fn stamped_texts_keep_their_size_and_their_send_time_is_read_back() {
        let before = now_micros();
        let stamped = text("abc123", 64, true);
        assert_eq!(stamped.len(), 64);
        assert_eq!(text("abc123", 64, false).len(), 64);
        let sent = sent_micros(&received(&stamped), b"abc123").expect("a stamp");
        assert!(sent >= before && sent <= now_micros(), "{sent}");
    }

    #[test]
    fn plain_texts_other_runs_and_short_frames_carry_no_send_time() {
        assert_eq!(
            sent_micros(&received(&text("abc123", 64, false)), b"abc123"),
            None
        );
        let stamped = received(&text("abc123", 64, true));
        assert_eq!(sent_micros(&stamped, b"zzz999"), None);
        assert_eq!(sent_micros(b"\"}", b"abc123"), None);
        assert_eq!(sent_micros(br#"{"error":{}}"#, b"abc123"), None);
    }

    #[test]
    fn the_client_frame_is_the_tutorial_json() {
        let json = tutorial_send("hi");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(value["message"], "hi");
    }
}
