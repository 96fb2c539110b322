//! One reference session: the upgrade at `/ws/chat/<room>/`, then one loop that reads client
//! frames (publishing each text's `message` to the room) and writes the room's new frames from
//! its cursor, all that are queued in one vectored write.

use std::borrow::Cow;
use std::io::{self, IoSlice};
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::Reference;
use super::room::Room;

/// Longest upgrade request accepted, in bytes.
const MAX_HEAD_BYTES: usize = 8 * 1024;

/// How long a client may take to send its upgrade request.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one write may stall before the member is closed as slow (roomcast's default).
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// Frames per vectored write, under Linux's 1,024 iovecs per call.
const MAX_FRAMES_PER_WRITE: usize = 512;

/// Bytes read per syscall; on the stack, so an idle session holds no read buffer.
const READ_CHUNK_BYTES: usize = 16 * 1024;

/// Largest client frame accepted (roomcast's default `--max-message-bytes`).
const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;

#[derive(Deserialize)]
struct Inbound<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
}

/// Serves one connection to its end.
pub async fn serve(mut stream: TcpStream, reference: Arc<Reference>) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let Some((room, user, key, mut pending)) = handshake(&mut stream).await? else {
        return Ok(());
    };
    // Join before answering, so a client that got its 101 is a member.
    let membership = reference.registry.join(&room, reference.max_lag_bytes);
    let (mut head, mut cursor) = membership.room.subscribe();
    let accept = derive_accept_key(key.as_bytes());
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    reference.stats.sessions.fetch_add(1, Ordering::Relaxed);
    if let Some(block) = &reference.firehose {
        // Boxed: its buffer would otherwise be part of every session's state.
        return Box::pin(firehose(stream, block, &reference)).await;
    }
    let (mut payloads, mut ranges, mut batch) = (Vec::new(), Vec::new(), Vec::new());
    loop {
        tokio::select! {
            ready = stream.readable() => {
                ready?;
                let Some(read) = read_frames(&stream, &mut pending, &mut payloads, &mut ranges)? else {
                    return Ok(());
                };
                let texts = ranges.iter().filter_map(|r: &Range<usize>| {
                    serde_json::from_slice::<Inbound<'_>>(&payloads[r.clone()]).ok()
                });
                let messages: Vec<Inbound<'_>> = texts.collect();
                let published = membership.room.publish(&user, messages.iter().map(|m| &*m.message));
                reference.stats.published.fetch_add(published, Ordering::Relaxed);
                payloads.clear();
                ranges.clear();
                if let Some(code) = read.close {
                    let _best_effort = stream.write_all(&close_frame(code)).await;
                    return Ok(());
                }
            }
            changed = head.changed() => {
                changed.map_err(|_| io::ErrorKind::BrokenPipe)?;
                let drained = drain(&mut stream, &membership.room, &mut cursor, &mut batch, &reference).await;
                match drained {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                        reference.stats.slow_closed.fetch_add(1, Ordering::Relaxed);
                        let _best_effort = stream.try_write(&close_frame(4001));
                        return Ok(());
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
}

/// Writes everything from `cursor` to the room's head, [`MAX_FRAMES_PER_WRITE`] per write.
/// `TimedOut` means the member is too slow (it fell off the log, or a write stalled).
async fn drain(
    stream: &mut TcpStream,
    room: &Room,
    cursor: &mut u64,
    batch: &mut Vec<Bytes>,
    reference: &Reference,
) -> io::Result<()> {
    loop {
        let count = room
            .frames_from(*cursor, batch, MAX_FRAMES_PER_WRITE)
            .map_err(|_| io::ErrorKind::TimedOut)?;
        if count == 0 {
            return Ok(());
        }
        *cursor += count;
        let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
        let mut left = &mut slices[..];
        while !left.is_empty() {
            let written = tokio::time::timeout(WRITE_TIMEOUT, stream.write_vectored(left))
                .await
                .map_err(|_| io::ErrorKind::TimedOut)??;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            IoSlice::advance_slices(&mut left, written);
        }
        reference.stats.writes.fetch_add(1, Ordering::Relaxed);
        reference.stats.frames.fetch_add(count, Ordering::Relaxed);
        drop(slices);
        batch.clear();
    }
}

/// The firehose: the same block of frames, over and over, as fast as the socket takes it.
async fn firehose(mut stream: TcpStream, block: &Bytes, reference: &Reference) -> io::Result<()> {
    let (mut reading, mut writing) = stream.split();
    let (mut sink, mut at) = ([0u8; 1024], 0);
    loop {
        tokio::select! {
            read = reading.read(&mut sink) => if read? == 0 { return Ok(()) },
            written = writing.write(&block[at..]) => {
                at += written?;
                if at == block.len() {
                    at = 0;
                    reference.stats.writes.fetch_add(1, Ordering::Relaxed);
                    reference.stats.frames.fetch_add(super::FIREHOSE_FRAMES, Ordering::Relaxed);
                }
            }
        }
    }
}

/// What one round of reading found besides the text payloads.
struct Read {
    close: Option<u16>,
}

/// Reads what the socket has; unmasks every complete text frame into `payloads` (their spans
/// in `ranges`); keeps a cut frame in `pending`. `None` at the end of the stream.
fn read_frames(
    stream: &TcpStream,
    pending: &mut Vec<u8>,
    payloads: &mut Vec<u8>,
    ranges: &mut Vec<Range<usize>>,
) -> io::Result<Option<Read>> {
    let mut chunk = [0u8; READ_CHUNK_BYTES];
    let read = match stream.try_read(&mut chunk) {
        Ok(0) => return Ok(None),
        Ok(read) => read,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Some(Read { close: None })),
        Err(e) => return Err(e),
    };
    pending.extend_from_slice(&chunk[..read]);
    let (mut at, mut close) = (0, None);
    while let Some((code, header, len)) = client_header(&pending[at..])? {
        if pending.len() < at + header + len {
            break;
        }
        let mask = [
            pending[at + header - 4],
            pending[at + header - 3],
            pending[at + header - 2],
            pending[at + header - 1],
        ];
        let payload = &pending[at + header..at + header + len];
        at += header + len;
        match code {
            0x1 => {
                let start = payloads.len();
                payloads.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
                ranges.push(start..payloads.len());
            }
            0x8 => {
                close = Some(match payload {
                    [high, low, ..] => u16::from_be_bytes([high ^ mask[0], low ^ mask[1]]),
                    _ => 1000,
                });
                break;
            }
            _ => {}
        }
    }
    pending.drain(..at);
    Ok(Some(Read { close }))
}

/// Opcode, header length (mask included) and payload length of a masked client frame.
fn client_header(bytes: &[u8]) -> io::Result<Option<(u8, usize, usize)>> {
    let [first, second, rest @ ..] = bytes else {
        return Ok(None);
    };
    if second & 0x80 == 0 || first & 0x80 == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "unmasked or fragmented frame",
        ));
    }
    let (len, extended) = match second & 0x7f {
        126 => match rest {
            [a, b, ..] => (usize::from(u16::from_be_bytes([*a, *b])), 2),
            _ => return Ok(None),
        },
        127 => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "client frame too large",
            ));
        }
        short => (usize::from(short), 0),
    };
    if len > MAX_CLIENT_FRAME_BYTES {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "client frame too large",
        ));
    }
    Ok(Some((first & 0x0f, 2 + extended + 4, len)))
}

/// An unmasked close frame with `code`.
fn close_frame(code: u16) -> [u8; 4] {
    let [high, low] = code.to_be_bytes();
    [0x88, 2, high, low]
}

/// Reads the upgrade request: room, user and key, and any bytes after the head. Anything but
/// `GET /ws/chat/<room>/` with a WebSocket key is answered 404 and `None`.
async fn handshake(
    stream: &mut TcpStream,
) -> io::Result<Option<(String, String, String, Vec<u8>)>> {
    let mut head = Vec::with_capacity(1024);
    let end = loop {
        if let Some(at) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if head.len() > MAX_HEAD_BYTES {
            return Ok(None);
        }
        let read = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.read_buf(&mut head))
            .await
            .map_err(|_| io::ErrorKind::TimedOut)??;
        if read == 0 {
            return Ok(None);
        }
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let mut lines = text.split("\r\n");
    let target = lines
        .next()
        .and_then(|line| line.strip_prefix("GET "))
        .and_then(|rest| rest.split(' ').next());
    let key = lines
        .filter_map(|line| line.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("sec-websocket-key"))
        .map(|(_, value)| value.trim().to_owned());
    let (path, query) = target
        .map(|t| t.split_once('?').unwrap_or((t, "")))
        .unwrap_or(("", ""));
    let room = path
        .strip_prefix("/ws/chat/")
        .and_then(|r| r.strip_suffix('/'))
        .filter(|r| !r.is_empty() && !r.contains('/'));
    let (Some(room), Some(key)) = (room, key) else {
        let body = r#"{"error":{"code":"not_found","message":"the reference broadcaster serves only /ws/chat/<room>/"}}"#;
        let response = format!(
            "HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(response.as_bytes()).await?;
        return Ok(None);
    };
    let user = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("user="))
        .unwrap_or("guest")
        .to_owned();
    Ok(Some((room.to_owned(), user, key, head[end..].to_vec())))
}
