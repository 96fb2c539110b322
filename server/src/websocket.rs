//! The WebSocket wire, done by the server itself on the bare TCP stream: the upgrade, reading
//! client frames, and frames encoded once for every member.
//!
//! Why not tungstenite's `WebSocketStream`: measured with callgrind on a 100-member room
//! (`scripts/profile-fanout`, docs/BENCHMARKS.md), 65% of the server's instructions per
//! delivered message went to tungstenite's write path: a `Sink::start_send` per frame that
//! formats the header and copies the payload into a per-connection write buffer, flushed every
//! 8 KiB. Here each message's frame (header and payload) is encoded once, shared as
//! [`Frame`], and a session writes its queued frames with one vectored write, no copy. Reading
//! is ours too, so that idle sessions hold no read buffer. tungstenite still parses and formats
//! frame headers and derives the handshake's accept key.
//!
//! - `upgrade`: the handshake, and handing the session its [`tokio::net::TcpStream`].
//! - `reader`: client frames (masking, fragments, control frames, UTF-8, the size limit).
//! - `frame`: the outgoing [`Frame`].
//! - `tcp`: the kernel's share of a session (send buffer bound, user timeout, reset on close).

mod frame;
pub(crate) mod reader;
pub(crate) mod tcp;
mod upgrade;

pub(crate) use self::frame::{Frame, HEADER_ROOM_BYTES};
pub(crate) use self::upgrade::{AcceptLoop, UpgradeRequest};
