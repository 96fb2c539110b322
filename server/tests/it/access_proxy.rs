//! The join proxy: a real tiny app (axum on port 0) that allows, denies, stalls, or is down,
//! asked at connect (the URL's room) and on a later typed `join` (off the session's loop).

use std::net::SocketAddr;
use std::time::Duration;

use axum::Json;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use roomcast_protocol::SUBPROTOCOL_V1;
use roomcast_server::Config;
use roomcast_server::config::AccessConfig;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use url::Url;

use crate::support::{TestServer, within};

/// The app's join view: `session=ana` may follow `pagamento_1`; `pagamento_slow` never
/// answers in time; `pagamento_fwd` admits the client forwarded as 198.51.100.4; everyone
/// else is refused.
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
    // Admits whoever the proxy in front of the server saw as 198.51.100.4: the server must
    // forward the handshake's X-Forwarded-For when --join-proxy-headers names it.
    let forwarded = headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if room == "pagamento_fwd" && forwarded == "198.51.100.4" {
        return StatusCode::OK.into_response();
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

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A typed session on `/ws` named `user`, whose handshake carries `headers`.
async fn typed_socket(server: &TestServer, user: &str, headers: &[(&'static str, &str)]) -> Socket {
    let mut url: Url = server.url.ws("ws");
    url.query_pairs_mut().append_pair("user", user);
    let mut request = url.as_str().into_client_request().expect("a request");
    request.headers_mut().insert(
        "sec-websocket-protocol",
        SUBPROTOCOL_V1.parse().expect("a header value"),
    );
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("a header value"));
    }
    let (socket, _) = within("connect", tokio_tungstenite::connect_async(request))
        .await
        .expect("the upgrade is admitted");
    socket
}

/// Sends one typed frame.
async fn send(socket: &mut Socket, frame: Value) {
    within("send", socket.send(Message::text(frame.to_string())))
        .await
        .expect("send");
}

/// Reads until the frame answering `reference`; returns it, with the types of the answered
/// frames that came before it.
async fn answer_to(socket: &mut Socket, reference: u64) -> (Value, Vec<String>) {
    let mut before = Vec::new();
    loop {
        match within("the answer", socket.next()).await {
            Some(Ok(Message::Text(text))) => {
                let frame: Value = serde_json::from_str(&text).expect("JSON");
                if frame["ref"] == reference {
                    return (frame, before);
                }
                if let Some(answered) = frame["ref"].as_u64() {
                    before.push(format!(
                        "{}:{answered}",
                        frame["type"].as_str().unwrap_or("")
                    ));
                }
            }
            Some(Ok(_)) => {}
            other => panic!("the session ended before answering {reference}: {other:?}"),
        }
    }
}

fn join(room: &str, reference: u64) -> Value {
    serde_json::json!({ "type": "join", "room": room, "ref": reference })
}

fn ping(reference: u64) -> Value {
    serde_json::json!({ "type": "ping", "ref": reference })
}

/// The error frame's code and message, or a panic naming what came instead.
fn error_of(frame: &Value) -> (&str, &str) {
    assert_eq!(frame["type"], "error", "{frame}");
    (
        frame["code"].as_str().unwrap_or_default(),
        frame["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn a_typed_join_of_a_private_room_asks_the_join_proxy_without_stalling_the_session() {
    let app = start_app().await;
    let mut config = proxied(format!("http://{app}/join"));
    config.access.join_proxy_headers = vec!["x-forwarded-for".to_owned()];
    let server = TestServer::start(config).await;

    let mut ana = typed_socket(&server, "ana", &[("cookie", "session=ana")]).await;
    send(&mut ana, join("pagamento_1", 1)).await;
    let (joined, _) = answer_to(&mut ana, 1).await;
    assert_eq!(joined["type"], "joined", "the app admits ana: {joined}");
    assert_eq!(joined["room"], "pagamento_1");

    let mut mallory = typed_socket(&server, "mallory", &[("cookie", "session=mallory")]).await;
    send(&mut mallory, join("pagamento_1", 1)).await;
    let (refused, _) = answer_to(&mut mallory, 1).await;
    let (code, message) = error_of(&refused);
    assert_eq!(code, "forbidden");
    assert!(message.starts_with("forbidden: denied:"), "{message}");
    // The refusal is an error frame: the session goes on.
    send(&mut mallory, ping(2)).await;
    assert_eq!(answer_to(&mut mallory, 2).await.0["type"], "pong");

    // The app names ana, the session is bob: nobody speaks as someone else.
    let mut bob = typed_socket(&server, "bob", &[("cookie", "session=ana")]).await;
    send(&mut bob, join("pagamento_1", 1)).await;
    let (refused, _) = answer_to(&mut bob, 1).await;
    let (code, message) = error_of(&refused);
    assert_eq!(code, "forbidden");
    assert!(
        message.starts_with("forbidden: impersonation:"),
        "{message}"
    );

    // The handshake's X-Forwarded-For reaches the app (--join-proxy-headers names it).
    let mut forwarded =
        typed_socket(&server, "carla", &[("x-forwarded-for", "198.51.100.4")]).await;
    send(&mut forwarded, join("pagamento_fwd", 1)).await;
    assert_eq!(answer_to(&mut forwarded, 1).await.0["type"], "joined");

    // A stalled app: the session answers its ping while the join waits, then says unavailable
    // within --join-proxy-timeout.
    let started = tokio::time::Instant::now();
    send(&mut ana, join("pagamento_slow", 3)).await;
    send(&mut ana, ping(4)).await;
    let (pong, before) = answer_to(&mut ana, 4).await;
    assert_eq!(pong["type"], "pong");
    assert_eq!(
        before,
        Vec::<String>::new(),
        "the pong came before the join's answer"
    );
    let (slow, _) = answer_to(&mut ana, 3).await;
    let (code, message) = error_of(&slow);
    assert_eq!(code, "unavailable");
    assert!(message.starts_with("unavailable:"), "{message}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "bounded by --join-proxy-timeout"
    );
    // ana is still in pagamento_1 and can publish there.
    send(
        &mut ana,
        serde_json::json!({"type": "publish", "room": "pagamento_1", "message": "hi", "ref": 5}),
    )
    .await;
    assert_eq!(answer_to(&mut ana, 5).await.0["type"], "ack");

    // The app is down.
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let down_addr = closed.local_addr().expect("address");
    drop(closed);
    let server = TestServer::start(proxied(format!("http://{down_addr}/join"))).await;
    let mut ana = typed_socket(&server, "ana", &[("cookie", "session=ana")]).await;
    send(&mut ana, join("pagamento_1", 1)).await;
    let (down, _) = answer_to(&mut ana, 1).await;
    let (code, message) = error_of(&down);
    assert_eq!(code, "unavailable");
    assert!(message.starts_with("unavailable:"), "{message}");
}
