//! The server's base URL as users type it, and the WebSocket and HTTP addresses derived from it.

use std::fmt;
use std::str::FromStr;

use url::Url;

use crate::room::RoomName;

/// Where a local server listens by default (`roomcast-server` with no flags).
pub const DEFAULT_SERVER_URL: &str = "http://127.0.0.1:8000";

/// A server's base URL. Accepts `http://`, `https://`, `ws://` and `wss://` alike (and a bare
/// `host:port`, read as `http://`), keeps any path prefix, and derives every address from it:
/// `ws(s)://` for sockets, `http(s)://` for the HTTP API.
#[derive(Clone, PartialEq, Eq)]
pub struct ServerUrl {
    /// Normalized to `http` or `https`, with a path ending in `/`.
    base: Url,
}

/// Why a string is not a usable server URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ServerUrlError {
    /// The text does not parse as a URL.
    #[error("{input:?} is not a URL ({reason}); try http://127.0.0.1:8000")]
    Parse {
        /// What was given.
        input: String,
        /// What the parser said.
        reason: String,
    },
    /// The scheme is not one of http, https, ws, wss.
    #[error("unsupported scheme {0:?}; use http, https, ws or wss")]
    Scheme(String),
    /// The URL has a query or fragment, which a base URL cannot carry.
    #[error("the server URL must not have a query or fragment")]
    QueryOrFragment,
}

impl ServerUrl {
    /// The `ws(s)://` address of `path` (relative to the base, e.g. `"ws"` or `"ws/chat/lobby/"`).
    pub fn ws(&self, path: &str) -> Url {
        let mut url = self.http(path);
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        // Switching between special schemes of the same kind always succeeds.
        let _switched = url.set_scheme(scheme);
        url
    }

    /// The `http(s)://` address of `path` (relative to the base, e.g. `"api/info"`).
    pub fn http(&self, path: &str) -> Url {
        let mut url = self.base.clone();
        let joined = format!("{}{}", url.path(), path.trim_start_matches('/'));
        url.set_path(&joined);
        url
    }

    /// The tutorial socket of `room`: `ws://HOST/ws/chat/<room>/`.
    pub fn room_socket(&self, room: &RoomName) -> Url {
        self.ws(&format!("ws/chat/{}/", room.path_segment()))
    }

    /// The host and port, for messages like "is the server running at ...?".
    pub fn authority(&self) -> String {
        let host = self.base.host_str().unwrap_or("?");
        match self.base.port_or_known_default() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        }
    }
}

impl Default for ServerUrl {
    fn default() -> Self {
        // The constant is a valid URL; the test below proves it.
        DEFAULT_SERVER_URL
            .parse()
            .unwrap_or_else(|_| unreachable!("DEFAULT_SERVER_URL parses"))
    }
}

impl FromStr for ServerUrl {
    type Err = ServerUrlError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let trimmed = input.trim();
        let with_scheme = if trimmed.contains("://") {
            trimmed.to_owned()
        } else {
            format!("http://{trimmed}")
        };
        let parsed = Url::parse(&with_scheme).map_err(|e| ServerUrlError::Parse {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        if parsed.query().is_some() || parsed.fragment().is_some() {
            return Err(ServerUrlError::QueryOrFragment);
        }
        let scheme = match parsed.scheme() {
            "http" | "ws" => "http",
            "https" | "wss" => "https",
            other => return Err(ServerUrlError::Scheme(other.to_owned())),
        };
        let path = parsed.path();
        let path = if path.ends_with('/') {
            path.to_owned()
        } else {
            format!("{path}/")
        };
        let port = parsed.port().map(|p| format!(":{p}")).unwrap_or_default();
        let host = parsed.host_str().unwrap_or_default();
        let rebuilt = format!("{scheme}://{host}{port}{path}");
        let base = Url::parse(&rebuilt).map_err(|e| ServerUrlError::Parse {
            input: input.to_owned(),
            reason: e.to_string(),
        })?;
        Ok(Self { base })
    }
}

impl fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base.as_str().trim_end_matches('/'))
    }
}

impl fmt::Debug for ServerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ServerUrl({})", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> ServerUrl {
        text.parse().expect("test URL parses")
    }

    #[test]
    fn the_default_parses() {
        assert_eq!(ServerUrl::default().to_string(), "http://127.0.0.1:8000");
    }

    #[test]
    fn every_scheme_derives_both_addresses() {
        for base in ["http://h:1", "ws://h:1", "ws://h:1/", "h:1"] {
            let server = url(base);
            assert_eq!(server.ws("ws").as_str(), "ws://h:1/ws", "from {base}");
            assert_eq!(server.http("api/info").as_str(), "http://h:1/api/info");
        }
        let secure = url("wss://chat.example.com");
        assert_eq!(secure.ws("/ws").as_str(), "wss://chat.example.com/ws");
        assert_eq!(
            secure.http("healthz").as_str(),
            "https://chat.example.com/healthz"
        );
    }

    #[test]
    fn a_path_prefix_is_kept() {
        let server = url("https://example.com/rooms");
        let room = RoomName::new("lobby").expect("valid room");
        assert_eq!(
            server.room_socket(&room).as_str(),
            "wss://example.com/rooms/ws/chat/lobby/"
        );
    }

    #[test]
    fn bad_urls_say_what_to_do() {
        assert!(matches!(
            "ftp://x".parse::<ServerUrl>(),
            Err(ServerUrlError::Scheme(_))
        ));
        assert!("http://x/?a=1".parse::<ServerUrl>().is_err());
        let err = "http://".parse::<ServerUrl>().err().map(|e| e.to_string());
        assert!(err.is_some_and(|e| e.contains("try http://127.0.0.1:8000")));
    }
}
