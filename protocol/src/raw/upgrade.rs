//! The client's half of the WebSocket upgrade for raw sockets: the request, and the check of
//! the answer (status 101 and the `Sec-WebSocket-Accept` the key derives), shared by
//! [`RawSocket::upgrade`](super::RawSocket::upgrade) and the bench's connection generator,
//! which builds its request once and writes it for thousands of sessions.

use std::io;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use url::Url;

use super::{FrameReader, RawError, RawSocket};

/// The key every raw session sends: RFC 6455's sample nonce. Servers check its shape, never
/// its freshness, and a fixed key makes the expected answer a constant.
pub const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

/// `base64(sha1(KEY + GUID))`, RFC 6455 §1.3 (checked against tungstenite in the tests).
const ACCEPT: &[u8] = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Longest upgrade response head accepted, in bytes; a server sending more is not a WebSocket
/// server we can talk to.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// Response headers parsed at most; a 101 carries a handful.
const MAX_HEADERS: usize = 32;

/// The upgrade request for `url` (its path and query), asking for `subprotocol` when given.
pub fn request(url: &Url, subprotocol: Option<&str>) -> Vec<u8> {
    let host = url.host_str().unwrap_or("127.0.0.1");
    let port = url.port_or_known_default().unwrap_or(80);
    let path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_owned(),
    };
    let protocol_header = subprotocol
        .map(|p| format!("Sec-WebSocket-Protocol: {p}\r\n"))
        .unwrap_or_default();
    format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\
         {protocol_header}\r\n"
    )
    .into_bytes()
}

/// Writes `request` (from [`request`]) on `stream` and reads the answer into a reader of
/// `buffer_bytes` (it grows for a larger frame later). Anything but a 101 with the right
/// `Sec-WebSocket-Accept` is an error naming what was wrong, never a socket. `url` is the
/// redacted URL, for errors.
pub async fn finish(
    mut stream: TcpStream,
    request: &[u8],
    url: &str,
    buffer_bytes: usize,
) -> Result<RawSocket, RawError> {
    let io_error = |source| RawError::Io {
        url: url.to_owned(),
        source,
    };
    let invalid = |why: String| io_error(io::Error::new(io::ErrorKind::InvalidData, why));
    stream.write_all(request).await.map_err(io_error)?;
    let mut reader = FrameReader::new(buffer_bytes);
    let head_end = loop {
        match check(reader.pending()) {
            Ok(Some(end)) => break end,
            Ok(None) => {}
            Err(Answer::Status(status)) => {
                return Err(RawError::Refused {
                    url: url.to_owned(),
                    status,
                });
            }
            Err(Answer::Invalid(why)) => return Err(invalid(why)),
        }
        if reader.pending().len() >= MAX_HEAD_BYTES {
            return Err(invalid("upgrade response too long".to_owned()));
        }
        if reader.fill(&mut stream).await.map_err(io_error)? == 0 {
            return Err(io_error(io::ErrorKind::UnexpectedEof.into()));
        }
    };
    reader.consume(head_end);
    Ok(RawSocket { stream, reader })
}

/// What was wrong with an answer.
#[derive(Debug, PartialEq, Eq)]
enum Answer {
    /// Not status 101: the status line, for the error.
    Status(String),
    /// Not HTTP, or a 101 without the right `Sec-WebSocket-Accept`.
    Invalid(String),
}

/// Where the head ends once it is all buffered and is a proper 101 (`None`: not all here yet).
fn check(pending: &[u8]) -> Result<Option<usize>, Answer> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    let end = match response.parse(pending) {
        Ok(httparse::Status::Complete(end)) => end,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(e) => return Err(Answer::Invalid(format!("not an HTTP answer: {e}"))),
    };
    if response.code != Some(101) {
        return Err(Answer::Status(format!(
            "HTTP/1.{} {} {}",
            response.version.unwrap_or(1),
            response.code.unwrap_or(0),
            response.reason.unwrap_or_default()
        )));
    }
    let accept = response
        .headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|header| header.value.trim_ascii());
    match accept {
        Some(value) if value == ACCEPT => Ok(Some(end)),
        Some(_) => Err(Answer::Invalid(
            "wrong Sec-WebSocket-Accept in the 101".to_owned(),
        )),
        None => Err(Answer::Invalid(
            "no Sec-WebSocket-Accept in the 101".to_owned(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expected_accept_is_the_one_the_key_derives() {
        let derived = tokio_tungstenite::tungstenite::handshake::derive_accept_key(KEY.as_bytes());
        assert_eq!(derived.as_bytes(), ACCEPT);
    }

    #[test]
    fn a_101_with_the_right_accept_passes_in_any_header_case() {
        let head = b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\n\
            sec-websocket-accept:s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        assert_eq!(check(head), Ok(Some(head.len())));
        let head = b"HTTP/1.1 101\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n";
        assert_eq!(check(head), Ok(Some(head.len())));
    }

    #[test]
    fn other_statuses_and_wrong_or_missing_accepts_fail() {
        let refused = b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(
            check(refused),
            Err(Answer::Status("HTTP/1.1 403 Forbidden".to_owned()))
        );
        assert!(check(b"HTTP/1.1 1010 Odd\r\n\r\n").is_err());
        let wrong = b"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        assert!(matches!(check(wrong), Err(Answer::Invalid(_))));
        let missing = b"HTTP/1.1 101 OK\r\nUpgrade: websocket\r\n\r\n";
        assert!(matches!(check(missing), Err(Answer::Invalid(_))));
    }

    #[test]
    fn the_head_ends_after_its_blank_line_and_frames_may_follow() {
        let head = b"HTTP/1.1 101\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
        let mut with_frame = head.to_vec();
        with_frame.extend_from_slice(b"\x81\x00");
        assert_eq!(check(&with_frame), Ok(Some(head.len())));
        assert_eq!(check(b"HTTP/1.1 101\r\n"), Ok(None));
    }
}
