//! What every roomcast test suite shares: a real server in this process on 127.0.0.1:0, the one
//! [`WAIT`] bound, and helpers that wait for events instead of sleeping.
//!
//! Dev-only (`publish = false`): the server, CLI and TUI suites list it under
//! `[dev-dependencies]`, so the restart-on-the-same-port rule, the timeouts and the clients'
//! helpers exist once.
//!
//! # Layout
//! - [`wait`]: [`WAIT`], [`within`], [`eventually`]: every wait in every suite is bounded by one
//!   constant.
//! - [`server`]: [`TestServer`] (start, stop, restart on the same port, HTTP and socket helpers).
//! - [`member`]: [`Member`] and the `next_*` / `*_close` readers the tests assert with.
//! - [`sse`]: [`SseFollower`], a real `/sse/...` stream read event by event.
//! - [`proxy`]: [`TcpProxy`], a link between client and server that a test makes go silent
//!   (nothing arrives, no FIN, no RST) or cut.
//! - [`netns`]: real silent loss in the kernel: [`Netns`] (a namespace and veth link that a test
//!   cuts), [`netns::Remote`] members inside it, [`netns::sockets_to`] (the kernel's view, `ss`),
//!   [`netns::server_for`] (a server its clients reach), and [`assert_noticed_within`] (a lost
//!   server noticed within a client's bound, through a namespace or a [`TcpProxy`]).

pub mod member;
pub mod netns;
pub mod proxy;
pub mod server;
pub mod sse;
pub mod wait;

pub use member::{
    Member, next_text, next_tutorial, next_typed, raw_close, tutorial_close, typed_close, wait_for,
};
pub use netns::{Netns, assert_noticed_within, netns};
pub use proxy::TcpProxy;
pub use server::{TestServer, reusable_listener, sample_value};
pub use sse::{SseEvent, SseFollower};
pub use wait::{WAIT, eventually, within};

use roomcast_protocol::{RoomName, UserName};

/// A room name the test knows is valid.
pub fn room(name: &str) -> RoomName {
    RoomName::new(name).expect("test room names are valid")
}

/// A user name the test knows is valid.
pub fn user(name: &str) -> UserName {
    UserName::new(name).expect("test user names are valid")
}
