//! The join proxy: a real tiny app (axum on port 0) that allows, denies, stalls, or is down.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use roomcast_server::Config;
use roomcast_server::config::AccessConfig;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use url::Url;

use crate::support::{TestServer, within};

/// The app's join view: `session=ana` may follow `pagamento_1`; `pagamento_slow` never
/// answers in time; everyone else is refused.
async fn join_view(headers: HeaderMap, Json(body): Json<Value>) -> Response {
    let cookie = headers
        .get(header::COOKIE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let room = body["room"].as_str().unwrap_or_default();
    if room == "pagamento_slow" {
        // The app being slow, not the test waiting: the server must give up first.
        tokio::time::sleep(Duration::from_secs(30)).await;
    }
    if cookie.contains("session=ana") && room == "pagamento_1" {
        return Json(serde_json::json!({ "user": "ana" })).into_response();
    }
    StatusCode::FORBIDDEN.into_response()
}

async fn start_app() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the app");
    let addr = listener.local_addr().expect("address");
    let app = axum::Router::new().route("/join", post(join_view));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

fn proxied(url: String) -> Config {
    Config {
        access: AccessConfig {
            private_rooms: vec!["pagamento_*".to_owned()],
            join_proxy: Some(url),
            join_proxy_timeout: Duration::from_millis(500),
            ..AccessConfig::default()
        },
        ..Config::default()
    }
}

/// Opens the tutorial socket of `room` with `cookie`, sends a message, and returns the name
/// its echo carries, or the close code and reason.
async fn try_join(server: &TestServer, room: &str, cookie: &str) -> Result<String, (u16, String)> {
    let url: Url = server.url.ws(&format!("ws/chat/{room}/"));
    let mut request = url.as_str().into_client_request().expect("a request");
    request
        .headers_mut()
        .insert(header::COOKIE, cookie.parse().expect("a cookie"));
    let (mut socket, _) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .expect("the upgrade is admitted");
    // A refused session may be closed before this arrives; that is fine.
    let hello = Message::text(r#"{"message": "hello"}"#);
    if within("send", socket.send(hello)).await.is_err() {
        // Closed already: read the close below.
    }
    loop {
        match within("the answer", socket.next()).await {
            Some(Ok(Message::Text(text))) => {
                let value: Value = serde_json::from_str(&text).expect("JSON");
                return Ok(value["user"].as_str().unwrap_or_default().to_owned());
            }
            Some(Ok(Message::Close(Some(frame)))) => {
                return Err((u16::from(frame.code), frame.reason.to_string()));
            }
            Some(Ok(_)) => {}
            other => panic!("no answer and no close: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_join_proxy_admits_denies_times_out_and_is_down_each_with_its_answer() {
    let app = start_app().await;
    let server = TestServer::start(proxied(format!("http://{app}/join"))).await;
    assert_eq!(
        try_join(&server, "pagamento_1", "session=ana").await,
        Ok("ana".to_owned()),
        "the app admits ana under its own name for her"
    );
    let denied = try_join(&server, "pagamento_1", "session=mallory").await;
    assert!(
        matches!(&denied, Err((4503, reason)) if reason.starts_with("forbidden: denied:")),
        "{denied:?}"
    );
    let started = tokio::time::Instant::now();
    let slow = try_join(&server, "pagamento_slow", "session=ana").await;
    assert!(
        matches!(&slow, Err((1013, reason)) if reason.starts_with("unavailable:")),
        "{slow:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by --join-proxy-timeout"
    );
    // Public rooms never ask the app.
    assert_eq!(
        try_join(&server, "lobby", "")
            .await
            .map(|user| user.starts_with("guest-")),
        Ok(true)
    );

    // The app is down: a port nobody listens on.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let down_addr = closed.local_addr().expect("address");
    drop(closed);
    let server = TestServer::start(proxied(format!("http://{down_addr}/join"))).await;
    let down = try_join(&server, "pagamento_1", "session=ana").await;
    assert!(
        matches!(&down, Err((1013, reason)) if reason.starts_with("unavailable:")),
        "{down:?}"
    );
}
