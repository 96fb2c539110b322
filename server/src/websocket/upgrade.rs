//! The WebSocket handshake (RFC 6455 §4.2), done here so the session owns the bare
//! [`TcpStream`] afterwards and writes pre-encoded frames to it (see the parent module).
//!
//! The request is checked as an extractor; the answer is `101 Switching Protocols` with the
//! accept key from tungstenite's [`derive_accept_key`]. Once hyper hands the connection over,
//! it is downcast back to the `TokioIo<TcpStream>` the accept loop gave hyper, keeping the
//! bytes hyper read past the request (a client may send frames before it sees the 101).

use std::future::Future;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use roomcast_protocol::ErrorCode;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tracing::{debug, error};

use crate::api_error::ApiError;

/// Put on every request by roomcast's accept loop (`serve`), whose connections hand sessions
/// the bare `TcpStream` after an upgrade; another server's would not.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AcceptLoop;

/// A valid WebSocket upgrade request, not answered yet.
#[derive(Debug)]
pub(crate) struct UpgradeRequest {
    key: HeaderValue,
    protocols: Option<HeaderValue>,
    on_upgrade: OnUpgrade,
}

/// Why a request is not a WebSocket upgrade we can accept.
#[derive(Debug)]
pub(crate) struct NotAnUpgrade {
    error: ApiError,
    /// RFC 6455 §4.2.2: a version we do not speak is answered with the one we do.
    wrong_version: bool,
}

impl IntoResponse for NotAnUpgrade {
    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if self.wrong_version {
            response.headers_mut().insert(
                header::SEC_WEBSOCKET_VERSION,
                HeaderValue::from_static("13"),
            );
        }
        response
    }
}

fn refuse(status: StatusCode, message: &str) -> NotAnUpgrade {
    NotAnUpgrade {
        error: ApiError::new(status, ErrorCode::InvalidFrame, message),
        wrong_version: false,
    }
}

/// Whether the comma-separated `name` header contains `token` (case-insensitive).
fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .any(|item| item.trim().eq_ignore_ascii_case(token))
}

impl<S: Sync> FromRequestParts<S> for UpgradeRequest {
    type Rejection = NotAnUpgrade;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        const ONLY: &str = "this is a WebSocket endpoint: send a GET with Upgrade: websocket";
        if parts.method != Method::GET {
            return Err(refuse(StatusCode::METHOD_NOT_ALLOWED, ONLY));
        }
        let headers = &parts.headers;
        if !has_token(headers, header::CONNECTION, "upgrade")
            || !has_token(headers, header::UPGRADE, "websocket")
        {
            return Err(refuse(StatusCode::UPGRADE_REQUIRED, ONLY));
        }
        if headers.get(header::SEC_WEBSOCKET_VERSION) != Some(&HeaderValue::from_static("13")) {
            let mut refusal = refuse(
                StatusCode::UPGRADE_REQUIRED,
                "only WebSocket version 13 is spoken here",
            );
            refusal.wrong_version = true;
            return Err(refusal);
        }
        let Some(key) = headers.get(header::SEC_WEBSOCKET_KEY).cloned() else {
            return Err(refuse(
                StatusCode::BAD_REQUEST,
                "Sec-WebSocket-Key is missing",
            ));
        };
        let protocols = headers.get(header::SEC_WEBSOCKET_PROTOCOL).cloned();
        if parts.extensions.get::<AcceptLoop>().is_none() {
            // Refused before the 101: after it, a socket we cannot take would close without a
            // code, and the client would only see a 1006.
            error!(
                "a WebSocket upgrade reached the router without roomcast's accept loop; serve it with roomcast_server::serve_router"
            );
            return Err(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "this server was not started with roomcast's accept loop (serve_router)",
            ));
        }
        let Some(on_upgrade) = parts.extensions.remove::<OnUpgrade>() else {
            return Err(refuse(
                StatusCode::UPGRADE_REQUIRED,
                "this connection cannot be upgraded",
            ));
        };
        Ok(Self {
            key,
            protocols,
            on_upgrade,
        })
    }
}

impl UpgradeRequest {
    /// Whether the client offered `subprotocol` in `Sec-WebSocket-Protocol`.
    pub(crate) fn offers(&self, subprotocol: &str) -> bool {
        self.protocols
            .as_ref()
            .and_then(|value| value.to_str().ok())
            .is_some_and(|list| list.split(',').any(|p| p.trim() == subprotocol))
    }

    /// Answers `101 Switching Protocols` (selecting `subprotocol` when given) and runs `session`
    /// on its own task once hyper has handed the connection over. `session` gets the stream and
    /// the bytes the client sent past its request.
    pub(crate) fn accept<F, Fut>(self, subprotocol: Option<&'static str>, session: F) -> Response
    where
        F: FnOnce(TcpStream, Bytes) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let on_upgrade = self.on_upgrade;
        tokio::spawn(async move {
            let upgraded = match on_upgrade.await {
                Ok(upgraded) => upgraded,
                Err(e) => {
                    debug!(error = %e, "the upgrade did not complete");
                    return;
                }
            };
            match upgraded.downcast::<TokioIo<TcpStream>>() {
                Ok(parts) => session(parts.io.into_inner(), parts.read_buf).await,
                Err(_) => error!(
                    "an upgraded connection is not the accept loop's TCP stream; \
                     sessions need roomcast's own `serve`"
                ),
            }
        });
        let mut response = (
            StatusCode::SWITCHING_PROTOCOLS,
            [
                (header::CONNECTION, HeaderValue::from_static("upgrade")),
                (header::UPGRADE, HeaderValue::from_static("websocket")),
            ],
        )
            .into_response();
        let headers = response.headers_mut();
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(self.key.as_bytes())) {
            headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
        }
        if let Some(subprotocol) = subprotocol {
            headers.insert(
                header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(subprotocol),
            );
        }
        response
    }
}
