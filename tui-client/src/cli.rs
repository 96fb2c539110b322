//! Flags, each with a `ROOMCAST_*` environment twin.

use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use roomcast_protocol::liveness::parse_server_timeout;
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

    /// Access token for the server's private rooms (from `roomcast token` or your backend),
    /// presented at connect and used by every join. Its `sub` must be your --user (or,
    /// without --user, it names you).
    #[arg(long, env = "ROOMCAST_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

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

    /// Reconnect when the server sends nothing (not even an answer to a ping) for this long:
    /// how long a server that vanished without closing (sleep, Wi-Fi change, a NAT that forgot
    /// the flow) can go unnoticed. At least 100ms.
    #[arg(
        long,
        env = "ROOMCAST_SERVER_TIMEOUT",
        value_name = "DURATION",
        default_value = "10s",
        value_parser = parse_server_timeout
    )]
    pub server_timeout: Duration,
}

const LONG_ABOUT: &str = "\
roomcast-chat: chat in roomcast rooms from a terminal.

Examples:
  roomcast-chat --user ana lobby dev
  ROOMCAST_URL=https://chat.example.com roomcast-chat lobby

Inside: type and Enter to send, /join ROOM, /leave, /nick NAME, /who, /quit.
? or F1 lists every key. The status line shows the link (connected · RTT, or
reconnecting in Ns with the server's reason, or \"no answer from the server for
10s\" when it went silent); reconnects rejoin every room and recover missed
messages, or say how many may be missing.";

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

    #[test]
    fn the_server_timeout_defaults_to_10s_and_refuses_a_bound_that_cannot_work() {
        let args = Args::try_parse_from(["roomcast-chat"]).expect("defaults parse");
        assert_eq!(args.server_timeout, Duration::from_secs(10));
        let args = Args::try_parse_from(["roomcast-chat", "--server-timeout", "2500ms"])
            .expect("a duration parses");
        assert_eq!(args.server_timeout, Duration::from_millis(2500));
        let refused = Args::try_parse_from(["roomcast-chat", "--server-timeout", "0s"])
            .expect_err("zero cannot work");
        assert_eq!(refused.exit_code(), 2);
        let said = refused.to_string();
        assert!(
            said.contains("--server-timeout") && said.contains("at least 100ms"),
            "{said}"
        );
    }
}
