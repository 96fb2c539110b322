//! Reading's turn: one read from the socket, then every complete frame it finished.

use std::io;
use std::task::{Context, Waker};

use super::heartbeat::Heartbeat;
use super::rate::Admit;
use super::{Connection, Exit, Session};
use crate::frames::Frame;
use crate::websocket::reader::{Inbound, ReadError};

/// RFC 6455 §5.5: a ping's payload is at most 125 bytes, and its pong echoes it.
const MAX_PING_PAYLOAD_BYTES: usize = 125;

/// The payload of the latest ping of a read batch: only it is answered (RFC 6455 §5.5.3 allows
/// answering only the most recent), so a client streaming pings gets one pong per read, not
/// one per ping.
struct LatestPing {
    bytes: [u8; MAX_PING_PAYLOAD_BYTES],
    len: usize,
}

impl Session {
    /// Reads once, if the socket has bytes (no syscall otherwise), and handles what arrived.
    pub(super) fn read_turn(
        &mut self,
        connection: &mut Connection,
        heartbeat: &mut Heartbeat,
    ) -> Result<(), Exit> {
        // Most turns find nothing to read: ask tokio's readiness first, so that those turns
        // neither allocate a read buffer nor zero one on the stack (a 4 KiB stack buffer per
        // turn was 9% of the server's instructions in a 100-member room). A `Pending` leaves a
        // no-op waker behind, which is harmless: the loop waits on `readable()`, not on it.
        let mut cx = Context::from_waker(Waker::noop());
        if connection.stream.poll_read_ready(&mut cx).is_pending() {
            return Ok(());
        }
        let read = connection
            .stream
            .try_read_buf(connection.reader.read_buffer());
        match read {
            Ok(0) => Err(Exit::Vanished),
            Ok(_) => self.handle_batch(connection, heartbeat),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                connection.reader.end_batch();
                Ok(())
            }
            Err(e) => {
                tracing::debug!(session = self.id, error = %e, "read failed");
                Err(Exit::Vanished)
            }
        }
    }

    /// Handles every complete frame in the reader, fans out the publishes among them (whatever
    /// ended the read: the other members must still get what was published), then answers
    /// the latest ping, if any.
    pub(super) fn handle_batch(
        &mut self,
        connection: &mut Connection,
        heartbeat: &mut Heartbeat,
    ) -> Result<(), Exit> {
        let handled = self.handle_frames(connection, heartbeat);
        self.flush_deferred();
        handled
    }

    fn handle_frames(
        &mut self,
        connection: &mut Connection,
        heartbeat: &mut Heartbeat,
    ) -> Result<(), Exit> {
        heartbeat.heard();
        let mut latest_ping = None;
        loop {
            let inbound = match connection.reader.next() {
                Ok(Some(inbound)) => {
                    // The client has said something: it is not an idle socket.
                    self.first_frame_deadline = None;
                    inbound
                }
                Ok(None) => break,
                Err(ReadError::TooBig) => {
                    return Err(Exit::TooBig(self.state.config.max_message_bytes));
                }
                Err(ReadError::Protocol(why)) => {
                    tracing::debug!(session = self.id, why, "protocol error");
                    return Err(Exit::ProtocolError);
                }
                Err(ReadError::NotUtf8) => return Err(Exit::NotUtf8),
            };
            match inbound {
                Inbound::Text(text) => self.handle_text(text)?,
                Inbound::Binary => self.refuse_binary()?,
                Inbound::Ping(payload) => {
                    if self.admit_control()? {
                        // The reader refuses longer control frames; `min` keeps this
                        // in bounds whatever it lets through.
                        let len = payload.len().min(MAX_PING_PAYLOAD_BYTES);
                        let mut ping = LatestPing {
                            bytes: [0; MAX_PING_PAYLOAD_BYTES],
                            len,
                        };
                        ping.bytes[..len].copy_from_slice(&payload[..len]);
                        latest_ping = Some(ping);
                    }
                }
                Inbound::Pong => {
                    self.admit_control()?;
                }
                Inbound::Close(code) => return Err(Exit::ClientClosed(code)),
            }
        }
        connection.reader.end_batch();
        if let Some(ping) = latest_ping {
            let pong = Frame::pong(&ping.bytes[..ping.len]);
            self.writer.put_ahead(pong, &connection.stream);
        }
        Ok(())
    }

    /// The rate limit for control frames: a refused ping is not answered, and a client that
    /// keeps sending control frames over the rate is closed like any flood (4002).
    fn admit_control(&mut self) -> Result<bool, Exit> {
        match self.rate.admit(std::time::Instant::now()) {
            Admit::Yes => Ok(true),
            Admit::Refuse => {
                self.state.metrics.record_refused_frame("rate_limited");
                Ok(false)
            }
            Admit::Flood => Err(Exit::Flood),
        }
    }
}
