//! Raw sockets as the CLI uses them: addresses that name the session, and upgrade failures
//! turned into the CLI's errors (nothing answering is exit 4).

use roomcast_protocol::raw::RawError;
use roomcast_protocol::{RoomName, ServerUrl, UserName};
use url::Url;

use crate::exit::Unreachable;

/// `room`'s socket, naming the session `user` (so the room's presence can tell it apart) and
/// carrying `token` as `?token=` when given (how browsers present one too).
pub fn room_socket_as(
    server: &ServerUrl,
    room: &RoomName,
    user: &UserName,
    token: Option<&str>,
) -> Url {
    let mut url = server.room_socket(room);
    url.query_pairs_mut().append_pair("user", user.as_str());
    if let Some(token) = token {
        url.query_pairs_mut().append_pair("token", token);
    }
    url
}

/// The error for the CLI's printer: [`Unreachable`] (exit 4) when nothing answered.
pub fn into_cli(error: RawError, doing: &'static str) -> anyhow::Error {
    match error {
        RawError::Connect { url, source } => anyhow::Error::new(Unreachable {
            what: url,
            detail: source.to_string(),
        }),
        other => anyhow::Error::new(other).context(doing),
    }
}
