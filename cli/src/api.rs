//! The server's HTTP API as the CLI uses it: info, rooms, send-test and metrics.
//!
//! Every failure says what to do: an unreachable server becomes [`Unreachable`] (exit 4), an
//! error answer keeps the server's own `{"error": {"code", "message"}}` sentence.

use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::{RequestBuilder, Response, StatusCode};
use roomcast_protocol::{
    ErrorCode, ErrorEnvelope, PublishReceipt, RoomList, RoomName, RoomSummary, ServerInfo,
    ServerUrl,
};
use serde::de::DeserializeOwned;

use crate::exit::Unreachable;

/// How long one HTTP request may take: long enough for a cold server, short enough that a
/// script never hangs on a dead one.
const HTTP_TIMEOUT: Duration = Duration::from_secs(15);

/// The few numbers the load commands read from `GET /metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MetricsSample {
    /// `roomcast_process_resident_memory_bytes`, when the server reports it.
    pub resident_bytes: Option<f64>,
    /// `roomcast_sessions_open`.
    pub sessions_open: Option<f64>,
    /// `roomcast_evictions_total` with `reason="timeout"` (the heartbeat's).
    pub timeout_evictions: Option<f64>,
    /// `roomcast_evictions_total` over every other reason but `shutdown`.
    pub other_evictions: Option<f64>,
}

/// An error answer from the server.
#[derive(Debug, thiserror::Error)]
#[error("{url} answered HTTP {status} ({code}): {message}{hint}")]
pub struct ApiError {
    /// The request's address.
    pub url: String,
    /// The HTTP status.
    pub status: StatusCode,
    /// The server's error code.
    pub code: ErrorCode,
    /// The server's sentence.
    pub message: String,
    hint: &'static str,
}

/// The HTTP API of one server.
#[derive(Debug, Clone)]
pub struct Api {
    client: reqwest::Client,
    server: ServerUrl,
    key: Option<String>,
}

impl Api {
    /// A client for `server`, sending `key` as a bearer token on publishes.
    pub fn new(server: &ServerUrl, key: Option<String>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(HTTP_TIMEOUT)
            .user_agent(concat!("roomcast-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("could not build the HTTP client")?;
        Ok(Self {
            client,
            server: server.clone(),
            key,
        })
    }

    /// `GET /api/info`: the server's version, heartbeat settings and limits.
    pub async fn info(&self) -> Result<ServerInfo> {
        let request = self.client.get(self.server.http("api/info"));
        decode(self.send(request, "api/info").await?).await
    }

    /// `GET /api/rooms`: every room.
    pub async fn rooms(&self) -> Result<Vec<RoomSummary>> {
        let request = self.client.get(self.server.http("api/rooms"));
        let list: RoomList = decode(self.send(request, "api/rooms").await?).await?;
        Ok(list.rooms)
    }

    /// `GET /api/rooms/{room}`: one room, `None` when it does not exist.
    pub async fn room(&self, room: &RoomName) -> Result<Option<RoomSummary>> {
        let path = format!("api/rooms/{}", room.path_segment());
        let request = self.client.get(self.server.http(&path));
        let response = self.send(request, &path).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        decode(response).await.map(Some)
    }

    /// `GET /chat/{room}/send-test/?message=...`: the POC's publish route.
    pub async fn send_test(&self, room: &RoomName, message: &str) -> Result<PublishReceipt> {
        let path = format!("chat/{}/send-test/", room.path_segment());
        let mut request = self
            .client
            .get(self.server.http(&path))
            .query(&[("message", message)]);
        if let Some(key) = &self.key {
            request = request.bearer_auth(key);
        }
        decode(self.send(request, &path).await?).await
    }

    /// `GET /metrics`, reduced to the numbers the load commands watch.
    pub async fn metrics(&self) -> Result<MetricsSample> {
        let request = self.client.get(self.server.http("metrics"));
        let response = self.send(request, "metrics").await?;
        let response = check(response).await?;
        let text = response.text().await.context("reading /metrics")?;
        Ok(parse_metrics(&text))
    }

    async fn send(&self, request: RequestBuilder, path: &str) -> Result<Response> {
        request.send().await.map_err(|e| {
            let url = self.server.http(path).to_string();
            if e.is_connect() || e.is_timeout() {
                anyhow::Error::new(Unreachable {
                    what: url,
                    detail: error_chain(&e),
                })
            } else {
                anyhow::Error::new(e).context(format!("requesting {url}"))
            }
        })
    }
}

/// The innermost cause of a transport error ("Connection refused (os error 111)"): the part
/// that says what happened, without reqwest's and hyper's wrappers around it.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut innermost = error;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

/// Turns an error status into an [`ApiError`] carrying the server's sentence.
async fn check(response: Response) -> Result<Response> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let url = response.url().to_string();
    let body = response.text().await.unwrap_or_default();
    let (code, message) = match serde_json::from_str::<ErrorEnvelope>(&body) {
        Ok(envelope) => (envelope.error.code, envelope.error.message),
        Err(_) => (ErrorCode::Unknown, body.chars().take(200).collect()),
    };
    let hint = match status {
        StatusCode::UNAUTHORIZED => "; pass --api-key or set ROOMCAST_API_KEY",
        StatusCode::NOT_FOUND if code == ErrorCode::Unknown => {
            "; is --url pointing at a roomcast server?"
        }
        _ => "",
    };
    Err(anyhow::Error::new(ApiError {
        url,
        status,
        code,
        message,
        hint,
    }))
}

async fn decode<T: DeserializeOwned>(response: Response) -> Result<T> {
    let response = check(response).await?;
    let url = response.url().to_string();
    response
        .json()
        .await
        .with_context(|| format!("{url} did not answer the JSON a roomcast server sends"))
}

/// Reads the gauges the load commands need from OpenMetrics text.
pub fn parse_metrics(text: &str) -> MetricsSample {
    let mut sample = MetricsSample::default();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let mut parts = line.split_whitespace();
        let (Some(name), Some(value)) = (parts.next(), parts.next()) else {
            continue;
        };
        let Ok(value) = value.parse::<f64>() else {
            continue;
        };
        match name {
            "roomcast_process_resident_memory_bytes" => sample.resident_bytes = Some(value),
            "roomcast_sessions_open" => sample.sessions_open = Some(value),
            r#"roomcast_evictions_total{reason="timeout"}"# => {
                sample.timeout_evictions = Some(value);
            }
            r#"roomcast_evictions_total{reason="shutdown"}"# => {}
            other if other.starts_with("roomcast_evictions_total{") => {
                *sample.other_evictions.get_or_insert(0.0) += value;
            }
            _ => {}
        }
    }
    sample
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_text_yields_memory_and_sessions() {
        let text = "# HELP roomcast_sessions_open WebSocket sessions open now\n\
                    # TYPE roomcast_sessions_open gauge\n\
                    roomcast_sessions_open 12\n\
                    roomcast_evictions_total{reason=\"timeout\"} 3\n\
                    roomcast_evictions_total{reason=\"slow\"} 2\n\
                    roomcast_evictions_total{reason=\"shutdown\"} 7\n\
                    roomcast_evictions_total{reason=\"flood\"} 1\n\
                    roomcast_process_resident_memory_bytes 10485760\n# EOF\n";
        let sample = parse_metrics(text);
        assert_eq!(sample.sessions_open, Some(12.0));
        assert_eq!(
            (sample.timeout_evictions, sample.other_evictions),
            (Some(3.0), Some(3.0))
        );
        assert_eq!(sample.resident_bytes, Some(10_485_760.0));
        assert_eq!(parse_metrics("garbage").resident_bytes, None);
    }
}
