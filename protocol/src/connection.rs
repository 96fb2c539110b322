//! One WebSocket session, generic over the frames it sends and receives: JSON in and out, the
//! server's close code surfaced, splittable into a reader half and a writer half.

use std::marker::PhantomData;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use url::Url;

use crate::redact::redacted;

use crate::close::CloseCode;

/// How long connecting (TCP, TLS, HTTP upgrade, and the typed `welcome`) may take before
/// [`ClientError::Timeout`]: long enough for a cold start on a free hosting plan, short enough
/// that a script never hangs.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);

/// Read buffer per client socket, in bytes. tungstenite allocates its whole read buffer up front
/// (128 KiB by default); load tools open thousands of clients, and chat frames are small.
const CLIENT_READ_BUFFER_BYTES: usize = 8 * 1024;

type WsStream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a session ended, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseInfo {
    /// The server's close code; `None` when the socket ended without a close frame (1006).
    pub code: Option<CloseCode>,
    /// The close frame's reason text (empty when there was none).
    pub reason: String,
}

impl std::fmt::Display for CloseInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.code, self.reason.is_empty()) {
            (Some(code), true) => write!(f, "closed with {code}"),
            (Some(code), false) => write!(f, "closed with {code}: {}", self.reason),
            (None, _) => f.write_str("connection lost without a close frame"),
        }
    }
}

/// What [`Receiver::recv`] yields.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming<T> {
    /// A frame this client understands.
    Frame(T),
    /// A text frame that did not decode (a newer server, or a bug); the session goes on.
    Undecodable {
        /// The frame as received.
        text: String,
        /// Why it did not decode.
        error: String,
    },
    /// The session ended. Later calls return [`ClientError::Closed`].
    Closed(CloseInfo),
}

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No connection could be made (refused, unreachable, DNS, TLS).
    #[error("could not connect to {url}: {source}")]
    Connect {
        /// The address tried (a `token` in its query shown as `REDACTED`).
        url: Url,
        /// The underlying failure.
        #[source]
        source: tungstenite::Error,
    },
    /// The server answered the upgrade with an HTTP error instead of switching protocols.
    #[error("{url} refused the WebSocket upgrade with HTTP {status}: {body}")]
    Rejected {
        /// The address tried (a `token` in its query shown as `REDACTED`).
        url: Url,
        /// The HTTP status.
        status: u16,
        /// The response body, for its reason.
        body: String,
    },
    /// Connecting or waiting for `welcome` took longer than [`CONNECT_TIMEOUT`].
    #[error("timed out after {0:?} connecting to {1}")]
    Timeout(Duration, Url),
    /// The typed session did not start with a `welcome` frame.
    #[error("expected a welcome frame first, got {0}")]
    NoWelcome(String),
    /// The session is closed (the close was already reported once).
    #[error("the session is closed: {0}")]
    Closed(CloseInfo),
    /// Reading or writing the socket failed.
    #[error("socket error: {0}")]
    Transport(#[from] tungstenite::Error),
    /// A frame could not be encoded.
    #[error("could not encode a frame: {0}")]
    Encode(#[from] serde_json::Error),
}

impl ClientError {
    /// True when the server could not be reached at all (nothing listening, DNS, TLS, timeout):
    /// the CLI's exit code 4.
    pub fn is_unreachable(&self) -> bool {
        matches!(self, ClientError::Connect { .. } | ClientError::Timeout(..))
    }
}

/// Opens a WebSocket to `url`, asking for `subprotocol` when given.
async fn open_socket(url: &Url, subprotocol: Option<&str>) -> Result<WsStream, ClientError> {
    let mut request =
        url.as_str()
            .into_client_request()
            .map_err(|source| ClientError::Connect {
                url: redacted(url),
                source,
            })?;
    if let Some(subprotocol) = subprotocol {
        let value = HeaderValue::from_str(subprotocol).map_err(|e| ClientError::Connect {
            url: redacted(url),
            source: e.into(),
        })?;
        request
            .headers_mut()
            .insert("sec-websocket-protocol", value);
    }
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER_BYTES);
    let connecting = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    match tokio::time::timeout(CONNECT_TIMEOUT, connecting).await {
        Err(_) => Err(ClientError::Timeout(CONNECT_TIMEOUT, redacted(url))),
        Ok(Ok((stream, _response))) => Ok(stream),
        Ok(Err(tungstenite::Error::Http(response))) => Err(ClientError::Rejected {
            url: redacted(url),
            status: response.status().as_u16(),
            body: response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).into_owned())
                .unwrap_or_default(),
        }),
        Ok(Err(source)) => Err(ClientError::Connect {
            url: redacted(url),
            source,
        }),
    }
}

/// The writing half of a client.
#[derive(Debug)]
pub struct Sender<Out> {
    sink: SplitSink<WsStream, Message>,
    _frames: PhantomData<fn(Out)>,
}

impl<Out: Serialize> Sender<Out> {
    /// Sends one frame.
    pub async fn send(&mut self, frame: &Out) -> Result<(), ClientError> {
        let text = serde_json::to_string(frame)?;
        self.sink.send(Message::text(text)).await?;
        Ok(())
    }

    /// Sends raw text as one frame, unchecked (for tests and load tools that pre-encode).
    pub async fn send_text(&mut self, text: impl Into<String>) -> Result<(), ClientError> {
        self.sink.send(Message::text(text.into())).await?;
        Ok(())
    }

    /// Starts a clean close with 1000 and `reason`. Keep reading to see the server's reply.
    pub async fn close(&mut self, reason: &str) -> Result<(), ClientError> {
        let frame = CloseFrame {
            code: CloseCode::Normal.as_u16().into(),
            reason: crate::close::fit_close_reason(reason).into(),
        };
        self.sink.send(Message::Close(Some(frame))).await?;
        Ok(())
    }
}

/// The reading half of a client.
#[derive(Debug)]
pub struct Receiver<In> {
    stream: SplitStream<WsStream>,
    closed: Option<CloseInfo>,
    _frames: PhantomData<fn() -> In>,
}

impl<In: DeserializeOwned> Receiver<In> {
    /// Waits for the next frame. Pings are answered automatically and never returned.
    /// Cancel-safe: dropping the future loses no frame.
    pub async fn recv(&mut self) -> Result<Incoming<In>, ClientError> {
        if let Some(info) = &self.closed {
            return Err(ClientError::Closed(info.clone()));
        }
        loop {
            let message = match self.stream.next().await {
                Some(Ok(message)) => message,
                None | Some(Err(tungstenite::Error::ConnectionClosed)) => {
                    return Ok(self.finish(None, String::new()));
                }
                Some(Err(tungstenite::Error::Io(_) | tungstenite::Error::Protocol(_))) => {
                    // Reset or truncated: to the user this is a close without a frame (1006).
                    return Ok(self.finish(None, String::new()));
                }
                Some(Err(other)) => return Err(other.into()),
            };
            match message {
                Message::Text(text) => {
                    return Ok(match serde_json::from_str(text.as_str()) {
                        Ok(frame) => Incoming::Frame(frame),
                        Err(e) => Incoming::Undecodable {
                            text: text.as_str().to_owned(),
                            error: e.to_string(),
                        },
                    });
                }
                Message::Binary(data) => {
                    return Ok(Incoming::Undecodable {
                        text: String::from_utf8_lossy(&data).into_owned(),
                        error: "binary frame".to_owned(),
                    });
                }
                Message::Close(frame) => {
                    let (code, reason) = match frame {
                        Some(f) => (
                            Some(CloseCode::from(u16::from(f.code))),
                            f.reason.to_string(),
                        ),
                        None => (None, String::new()),
                    };
                    return Ok(self.finish(code, reason));
                }
                Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn finish(&mut self, code: Option<CloseCode>, reason: String) -> Incoming<In> {
        let info = CloseInfo { code, reason };
        self.closed = Some(info.clone());
        Incoming::Closed(info)
    }
}

/// Both halves of one WebSocket session.
#[derive(Debug)]
pub struct Connection<Out, In> {
    sender: Sender<Out>,
    receiver: Receiver<In>,
}

impl<Out: Serialize, In: DeserializeOwned> Connection<Out, In> {
    /// Opens a session to `url`, asking for `subprotocol` when given.
    pub async fn open(url: &Url, subprotocol: Option<&str>) -> Result<Self, ClientError> {
        let (sink, stream) = open_socket(url, subprotocol).await?.split();
        Ok(Self {
            sender: Sender {
                sink,
                _frames: PhantomData,
            },
            receiver: Receiver {
                stream,
                closed: None,
                _frames: PhantomData,
            },
        })
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &Out) -> Result<(), ClientError> {
        self.sender.send(frame).await
    }

    /// Waits for the next frame; see [`Receiver::recv`].
    pub async fn recv(&mut self) -> Result<Incoming<In>, ClientError> {
        self.receiver.recv().await
    }

    /// Starts a clean close; see [`Sender::close`].
    pub async fn close(&mut self, reason: &str) -> Result<(), ClientError> {
        self.sender.close(reason).await
    }

    /// The two halves, for a reader task and a writer task.
    pub fn split(self) -> (Sender<Out>, Receiver<In>) {
        (self.sender, self.receiver)
    }
}
