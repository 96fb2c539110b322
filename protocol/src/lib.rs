//! roomcast's wire contract and client.
//!
//! Two protocols share one server:
//!
//! * the **tutorial protocol** of the Django Channels chat tutorial: connect to
//!   `ws://HOST/ws/chat/<room>/`, send `{"message": "hi"}`, and every member of the room receives
//!   `{"message": "hi", ...}` ([`tutorial`]);
//! * the **typed protocol** `roomcast.v1`, negotiated with the WebSocket subprotocol: many rooms
//!   per connection, presence, history with gap-free recovery, acks and an application ping
//!   ([`v1`]).
//!
//! Both name rooms with [`RoomName`], end sessions with a [`CloseCode`] that carries reconnect
//! advice, and report refused frames with an [`ErrorCode`]. `docs/PROTOCOL.md` is the full
//! contract with an example exchange for every frame.
//!
//! # Layout
//! - [`room`], [`user`]: validated names (the rules are in their docs).
//! - [`close`]: the close-code table and reconnect advice.
//! - [`error_code`]: error codes shared by error frames and HTTP error bodies.
//! - [`http_api`]: the bodies of the HTTP API.
//! - [`tutorial`], [`v1`]: the frames of each protocol.
//! - [`server_url`]: turning a user's `--url` into socket and HTTP addresses.
//! - [`units`]: sizes as people write them (`64KiB`), for every tool's flags.
//! - [`connection`]: one session, generic over its frames, splittable into halves.
//! - [`client`]: [`Client`] (typed) and [`TutorialClient`] built on it.
//! - [`terminal_text`]: the rule that keeps a peer's text from driving a terminal.
//! - [`liveness`], [`recovery`], [`backoff`]: what a long-lived client needs to notice a
//!   server that went silent, rejoin with `since`, and reconnect without stampeding.
//! - [`raw`]: a hand-made upgrade for clients that must misbehave (never pong, never read).

pub mod backoff;
pub mod client;
pub mod close;
pub mod connection;
pub mod error_code;
pub mod http_api;
pub mod liveness;
mod name;
pub mod raw;
pub mod recovery;
pub mod redact;
pub mod room;
pub mod server_url;
pub mod sse;
pub mod terminal_text;
pub mod token;
pub mod tutorial;
pub mod units;
pub mod user;
pub mod v1;

pub use backoff::Backoff;
pub use client::{
    Client, ClientError, CloseInfo, ConnectOptions, Connection, Incoming, Receiver, Sender,
    TutorialClient,
};
pub use close::{CloseCode, ReconnectAdvice};
pub use error_code::{ErrorBody, ErrorCode, ErrorEnvelope};
pub use http_api::{Broadcast, HistoryPage, PublishReceipt, RoomList, RoomSummary};
pub use liveness::{Beat, Liveness};
pub use recovery::Positions;
pub use room::{RoomName, RoomNameError};
pub use server_url::{ServerUrl, ServerUrlError};
pub use token::TokenClaims;
pub use tutorial::{TutorialFrame, TutorialSend};
pub use user::{UserName, UserNameError};
pub use v1::{
    ClientFrame, LeaveReason, Position, Ref, RoomMessage, SUBPROTOCOL_V1, ServerFrame, ServerInfo,
};
