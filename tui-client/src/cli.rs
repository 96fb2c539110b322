//! Flags, each with a `ROOMCAST_*` environment twin.

use std::path::PathBuf;

use clap::Parser;
use roomcast_protocol::server_url::DEFAULT_SERVER_URL;
use roomcast_protocol::{RoomName, ServerUrl, UserName};

/// roomcast-chat: chat in roomcast rooms from a terminal.
#[derive(Debug, Clone, Parser)]
#[command(name = "roomcast-chat", version, about, long_about = LONG_ABOUT)]
pub struct Args {
    /// The server's base URL: http(s)://HOST[:PORT] or ws(s)://HOST[:PORT].
    #[arg(long, env = "ROOMCAST_URL", default_value = DEFAULT_SERVER_URL)]
    pub url: ServerUrl,

    /// The name to chat as (letters, digits, spaces, - _ . '); the server picks one if unset.
    #[arg(long, short, env = "ROOMCAST_USER")]
    pub user: Option<UserName>,

    /// Rooms to join at start, in the order the room list shows them.
    #[arg(env = "ROOMCAST_ROOMS", value_delimiter = ',')]
    pub rooms: Vec<RoomName>,

    /// Scroll with the mouse wheel. Capturing the mouse disables the terminal's own text
    /// selection (most terminals still select with Shift held).
    #[arg(long, env = "ROOMCAST_MOUSE")]
    pub mouse: bool,

    /// Write logs to this file (RUST_LOG-style filter in ROOMCAST_LOG, default "info").
    /// Without it nothing is logged: the screen belongs to the chat.
    #[arg(long, env = "ROOMCAST_LOG_FILE")]
    pub log_file: Option<PathBuf>,

    /// Start with join and leave lines hidden (F3 toggles).
    #[arg(long, env = "ROOMCAST_HIDE_JOINS")]
    pub hide_joins: bool,

    /// Start with the member list hidden (F2 toggles).
    #[arg(long, env = "ROOMCAST_NO_MEMBERS")]
    pub no_members: bool,
}

const LONG_ABOUT: &str = "\
roomcast-chat: chat in roomcast rooms from a terminal.

Examples:
  roomcast-chat --user ana lobby dev
  ROOMCAST_URL=https://chat.example.com roomcast-chat lobby

Inside: type and Enter to send, /join ROOM, /leave, /nick NAME, /who, /quit.
? or F1 lists every key. The status line shows the link (connected · RTT, or
reconnecting in Ns with the server's reason); reconnects rejoin every room and
recover missed messages, or say how many may be missing.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_users_and_rooms_are_validated_by_the_protocol_types() {
        let args = Args::try_parse_from([
            "roomcast-chat",
            "--url",
            "ws://127.0.0.1:9000",
            "--user",
            "Ana Lima",
            "lobby",
            "dev",
        ])
        .expect("valid flags parse");
        assert_eq!(args.url.to_string(), "http://127.0.0.1:9000");
        assert_eq!(
            args.user.map(|u| u.to_string()).as_deref(),
            Some("Ana Lima")
        );
        assert_eq!(args.rooms.len(), 2);
        assert!(Args::try_parse_from(["roomcast-chat", "bad room!"]).is_err());
        assert!(Args::try_parse_from(["roomcast-chat", "--url", "ftp://x"]).is_err());
    }
}
