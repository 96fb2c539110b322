//! Private rooms: each token rule refused with its own reason and nothing of the room sent;
//! impersonation; a token for one room does not open another; origins; per-IP and total caps
//! (WebSocket and SSE together, X-Forwarded-For behind a trusted proxy); slowloris sockets and
//! upgraded sockets that never join a room.

use roomcast_protocol::raw::RawSocket;
use roomcast_protocol::{
    ClientError, ClientFrame, Connection, ErrorCode, Incoming, Ref, SUBPROTOCOL_V1, ServerFrame,
    TokenClaims, TutorialFrame, TutorialSend,
};
use roomcast_server::Config;
use roomcast_server::access::mint;
use roomcast_server::config::AccessConfig;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use url::Url;

use crate::support::{TestServer, WAIT, eventually, next_typed, raw_close, room, within};

const SECRET: &str = "test-secret-of-at-least-32-bytes!!";
const SECRET_STATUS: &str = "payment 1 is paid";

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn claims(sub: &str, rooms: &[&str]) -> TokenClaims {
    TokenClaims {
        sub: sub.to_owned(),
        rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
        exp: now() + 3600,
        nbf: None,
    }
}

fn token(claims: &TokenClaims) -> String {
    mint(SECRET.as_bytes(), claims).expect("mint")
}

fn private_config() -> Config {
    Config {
        latest_on_join: vec!["pagamento_".to_owned()],
        access: AccessConfig {
            private_rooms: vec!["pagamento_*".to_owned()],
            token_secret: Some(SECRET.to_owned()),
            ..AccessConfig::default()
        },
        ..Config::default()
    }
}

const API_KEY: &str = "the-backends-key";

/// Publishes `message` into `room` over HTTP with `key`; returns the status.
async fn publish_with(server: &TestServer, room: &str, key: Option<&str>, message: &str) -> u16 {
    let mut request = server
        .http()
        .post(server.http_url(&format!("api/rooms/{room}/messages")))
        .json(&serde_json::json!({ "message": message }));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    within("publish", request.send())
        .await
        .expect("an answer")
        .status()
        .as_u16()
}

/// A server whose private room `pagamento_1` holds a latest state that must not leak.
async fn server_with_a_secret() -> TestServer {
    let server = TestServer::start(Config {
        api_key: Some(API_KEY.to_owned()),
        ..private_config()
    })
    .await;
    assert_eq!(
        publish_with(&server, "pagamento_1", Some(API_KEY), SECRET_STATUS).await,
        200
    );
    server
}

fn socket_url(server: &TestServer, path: &str, query: &[(&str, &str)]) -> Url {
    let mut url = server.url.ws(path);
    for (key, value) in query {
        url.query_pairs_mut().append_pair(key, value);
    }
    url
}

/// The first thing a tutorial socket at `url` receives.
async fn first_tutorial(url: &Url) -> Incoming<TutorialFrame> {
    let mut client: Connection<TutorialSend, TutorialFrame> =
        within("connect", Connection::open(url, None))
            .await
            .expect("the upgrade is admitted");
    within("the first frame", client.recv())
        .await
        .expect("recv")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn every_broken_token_rule_closes_4503_naming_it_and_leaks_nothing_of_the_room() {
    let server = server_with_a_secret().await;
    let valid = token(&claims("ana", &["pagamento_*"]));
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let expired = token(&TokenClaims {
        exp: now() - 60,
        ..claims("ana", &["pagamento_1"])
    });
    let early = token(&TokenClaims {
        nbf: Some(now() + 600),
        ..claims("ana", &["pagamento_1"])
    });
    let other_room = token(&claims("ana", &["pagamento_2"]));
    let wrong_secret = mint(
        b"a different secret, 32 bytes long",
        &claims("ana", &["pagamento_1"]),
    )
    .expect("mint");
    parts[1] = b64(&serde_json::to_vec(&claims("ana", &["*"])).expect("json"));
    let tampered = parts.join(".");
    let alg_none = format!(
        "{}.{}.",
        b64(br#"{"alg":"none","typ":"JWT"}"#),
        b64(&serde_json::to_vec(&claims("ana", &["*"])).expect("json"))
    );
    let cases: [(&str, Option<&str>); 8] = [
        ("missing", None),
        ("expired", Some(&expired)),
        ("not_yet_valid", Some(&early)),
        ("wrong_room", Some(&other_room)),
        ("bad_signature", Some(&wrong_secret)),
        ("bad_signature", Some(&tampered)),
        ("algorithm", Some(&alg_none)),
        ("malformed", Some("not.a.jwt")),
    ];
    for (rule, token) in cases {
        let mut query = vec![("user", "ana")];
        if let Some(token) = token {
            query.push(("token", token));
        }
        let url = socket_url(&server, "ws/chat/pagamento_1/", &query);
        match first_tutorial(&url).await {
            Incoming::Closed(info) => {
                assert_eq!(
                    info.code.map(|c| c.as_u16()),
                    Some(4503),
                    "{rule}: {info:?}"
                );
                assert!(
                    info.reason.starts_with(&format!("forbidden: {rule}:")),
                    "{rule}: {:?}",
                    info.reason
                );
            }
            other => panic!("{rule}: the first thing sent must be the close, got {other:?}"),
        }
    }
    // The typed protocol is refused the same way, before its welcome.
    let url = socket_url(&server, "ws/chat/pagamento_1/", &[("token", &expired)]);
    let typed = Connection::<roomcast_protocol::ClientFrame, ServerFrame>::open(
        &url,
        Some(roomcast_protocol::SUBPROTOCOL_V1),
    );
    let mut typed = within("connect", typed).await.expect("upgrade");
    match within("first", typed.recv()).await.expect("recv") {
        Incoming::Closed(info) => assert_eq!(info.code.map(|c| c.as_u16()), Some(4503)),
        other => panic!("no welcome, no state, only the close: {other:?}"),
    }

    // A valid token, as the query or as a bearer header, gets the room and its latest state.
    let url = socket_url(&server, "ws/chat/pagamento_1/", &[("token", &valid)]);
    match first_tutorial(&url).await {
        Incoming::Frame(TutorialFrame::Message(message)) => {
            assert_eq!(message.message, SECRET_STATUS);
            assert_eq!(message.user.as_str(), "server");
        }
        other => panic!("a valid token opens the room: {other:?}"),
    }
    let refused = eventually("the refusals to be counted", || async {
        let text = server
            .http()
            .get(server.http_url("metrics"))
            .send()
            .await
            .ok()?
            .text()
            .await
            .ok()?;
        text.contains("roomcast_access_refused_total{rule=\"bad_signature\"} 2")
            .then_some(text)
    })
    .await;
    assert!(refused.contains("roomcast_access_refused_total{rule=\"expired\"} 2"));
}

#[tokio::test]
async fn a_name_other_than_the_tokens_is_impersonation() {
    let server = server_with_a_secret().await;
    let ana = token(&claims("ana", &["pagamento_1"]));
    let url = socket_url(
        &server,
        "ws/chat/pagamento_1/",
        &[("user", "bob"), ("token", &ana)],
    );
    match first_tutorial(&url).await {
        Incoming::Closed(info) => {
            assert_eq!(info.code.map(|c| c.as_u16()), Some(4503));
            assert!(
                info.reason.starts_with("forbidden: impersonation:"),
                "{info:?}"
            );
        }
        other => panic!("bob may not speak as ana: {other:?}"),
    }
    // Without ?user the token's sub is the name.
    let url = socket_url(&server, "ws/chat/pagamento_1/", &[("token", &ana)]);
    let mut client: Connection<TutorialSend, TutorialFrame> =
        within("connect", Connection::open(&url, None))
            .await
            .expect("upgrade");
    let _latest = within("latest", client.recv()).await.expect("recv");
    within(
        "send",
        client.send(&TutorialSend {
            message: "hi".to_owned(),
        }),
    )
    .await
    .expect("send");
    match within("echo", client.recv()).await.expect("recv") {
        Incoming::Frame(TutorialFrame::Message(message)) => {
            assert_eq!(message.user.as_str(), "ana");
        }
        other => panic!("{other:?}"),
    }
}

fn typed_error(frame: ServerFrame) -> (ErrorCode, String, Option<Ref>) {
    match frame {
        ServerFrame::Error {
            code,
            message,
            reference,
            ..
        } => (code, message, reference),
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn a_token_for_one_room_does_not_open_another_on_connect_or_on_a_typed_join() {
    let server = server_with_a_secret().await;
    let for_two = token(&claims("ana", &["pagamento_2"]));
    // On connect.
    let url = socket_url(&server, "ws/chat/pagamento_1/", &[("token", &for_two)]);
    match first_tutorial(&url).await {
        Incoming::Closed(info) => {
            assert!(
                info.reason.starts_with("forbidden: wrong_room:"),
                "{info:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    // On a typed join, with the handshake's token and with the join's own.
    let options = roomcast_protocol::ConnectOptions {
        user: None,
        room: None,
        token: Some(for_two.clone()),
    };
    let mut client = within(
        "connect",
        roomcast_protocol::Client::connect(&server.url, options),
    )
    .await
    .expect("a typed session with a token");
    assert_eq!(
        client.user().as_str(),
        "ana",
        "the token's sub names the session"
    );
    within(
        "join",
        client.join(&room("pagamento_1"), None, Some(Ref::Number(1))),
    )
    .await
    .expect("send");
    let (code, message, reference) = typed_error(next_typed(&mut client).await);
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(message.starts_with("forbidden: wrong_room:"), "{message}");
    assert_eq!(reference, Some(Ref::Number(1)));
    within(
        "join",
        client.join(&room("pagamento_2"), None, Some(Ref::Number(2))),
    )
    .await
    .expect("send");
    match next_typed(&mut client).await {
        ServerFrame::Joined { room: joined, .. } => assert_eq!(joined.as_str(), "pagamento_2"),
        other => panic!("the handshake's token opens pagamento_2: {other:?}"),
    }
    let for_one = token(&claims("ana", &["pagamento_1"]));
    within(
        "join",
        client.join_with_token(&room("pagamento_1"), &for_one, Some(Ref::Number(3))),
    )
    .await
    .expect("send");
    match next_typed(&mut client).await {
        ServerFrame::Joined { room: joined, .. } => assert_eq!(joined.as_str(), "pagamento_1"),
        other => panic!("the join's own token opens pagamento_1: {other:?}"),
    }
    // A typed join refused for impersonation: bob's token on ana's session.
    let bob = token(&claims("bob", &["pagamento_3"]));
    within(
        "join",
        client.join_with_token(&room("pagamento_3"), &bob, Some(Ref::Number(4))),
    )
    .await
    .expect("send");
    // Messages of pagamento_1 (its latest state) may arrive first; the error follows.
    let (code, message, _) = typed_error(
        crate::support::wait_for(&mut client, "the refusal", |frame| {
            matches!(frame, ServerFrame::Error { .. }).then(|| frame.clone())
        })
        .await,
    );
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(
        message.starts_with("forbidden: impersonation:"),
        "{message}"
    );
}

/// Sends a WebSocket upgrade with `extra` headers and returns the status line.
async fn handshake_status(server: &TestServer, extra: &str) -> String {
    let mut stream = within("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let request = format!(
        "GET /ws/chat/lobby/ HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{extra}\r\n",
        server.addr
    );
    within("write", stream.write_all(request.as_bytes()))
        .await
        .expect("write");
    let mut head = vec![0; 1024];
    let read = within("the answer", stream.read(&mut head))
        .await
        .expect("read");
    let head = String::from_utf8_lossy(&head[..read]).into_owned();
    head.lines().next().unwrap_or_default().to_owned()
}

#[tokio::test]
async fn handshakes_from_other_origins_get_403_and_allowed_ones_upgrade() {
    let server = TestServer::start(Config {
        access: AccessConfig {
            allowed_origins: vec![
                "https://app.example.com".to_owned(),
                "https://*.example.org".to_owned(),
            ],
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    for (origin, expected) in [
        ("Origin: https://app.example.com\r\n", "101"),
        ("Origin: https://a.b.example.org\r\n", "101"),
        ("", "101"),
        ("Origin: https://evil.test\r\n", "403"),
        ("Origin: https://example.org\r\n", "403"),
        ("Origin: http://app.example.com\r\n", "403"),
    ] {
        let status = handshake_status(&server, origin).await;
        assert!(
            status.starts_with(&format!("HTTP/1.1 {expected}")),
            "{origin:?}: {status}"
        );
    }
    let strict = TestServer::start(Config {
        access: AccessConfig {
            allowed_origins: vec!["https://app.example.com".to_owned()],
            require_origin: true,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    assert!(
        handshake_status(&strict, "")
            .await
            .starts_with("HTTP/1.1 403")
    );
}

async fn connect_status(server: &TestServer) -> Result<roomcast_protocol::Client, u16> {
    let options = roomcast_protocol::ConnectOptions::default();
    match within(
        "connect",
        roomcast_protocol::Client::connect(&server.url, options),
    )
    .await
    {
        Ok(client) => Ok(client),
        Err(ClientError::Rejected { status, .. }) => Err(status),
        Err(other) => panic!("{other}"),
    }
}

#[tokio::test]
async fn the_per_ip_and_total_caps_hold_and_release() {
    let server = TestServer::start(Config {
        access: AccessConfig {
            max_connections_per_ip: 2,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let first = connect_status(&server).await.expect("first");
    let _second = connect_status(&server).await.expect("second");
    assert_eq!(connect_status(&server).await.err(), Some(429));
    drop(first);
    eventually("the slot to come back", || async {
        connect_status(&server).await.ok()
    })
    .await;

    let server = TestServer::start(Config {
        max_connections: 1,
        ..Config::default()
    })
    .await;
    let only = connect_status(&server).await.expect("the one");
    assert_eq!(connect_status(&server).await.err(), Some(503));
    drop(only);
    eventually("the permit to come back", || async {
        connect_status(&server).await.ok()
    })
    .await;
}

#[tokio::test]
async fn publishing_into_a_private_room_needs_the_key_even_from_loopback() {
    let server = TestServer::start(private_config()).await;
    assert_eq!(
        publish_with(&server, "pagamento_9", None, "forged").await,
        401
    );
    assert_eq!(
        publish_with(&server, "lobby", None, "public is fine").await,
        200
    );
    let answer = within(
        "send-test",
        server
            .http()
            .get(server.http_url("chat/pagamento_9/send-test/"))
            .query(&[("message", "forged")])
            .send(),
    )
    .await
    .expect("an answer");
    assert_eq!(answer.status().as_u16(), 401);
}

#[tokio::test]
async fn get_send_test_is_refused_to_other_sites_and_can_be_turned_off() {
    let server = TestServer::start(Config::default()).await;
    let get = |headers: &'static [(&'static str, &'static str)]| {
        let mut request = server
            .http()
            .get(server.http_url("chat/lobby/send-test/"))
            .query(&[("message", "hi")]);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        async move {
            within("send-test", request.send())
                .await
                .expect("an answer")
                .status()
                .as_u16()
        }
    };
    assert_eq!(get(&[]).await, 200, "curl and scripts");
    assert_eq!(
        get(&[("sec-fetch-site", "none")]).await,
        200,
        "the address bar"
    );
    assert_eq!(get(&[("origin", "https://evil.test")]).await, 403);
    assert_eq!(
        get(&[("sec-fetch-site", "cross-site")]).await,
        403,
        "an <img src>"
    );

    let off = TestServer::start(Config {
        access: AccessConfig {
            no_send_test: true,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let answer = within(
        "send-test",
        off.http()
            .get(off.http_url("chat/lobby/send-test/"))
            .query(&[("message", "hi")])
            .send(),
    )
    .await
    .expect("an answer");
    assert_eq!(answer.status().as_u16(), 404);
}

#[tokio::test]
async fn five_hundred_slowloris_sockets_do_not_stop_a_chat_and_are_cut_at_the_handshake_timeout() {
    const SOCKETS: usize = 500;
    let timeout = std::time::Duration::from_secs(3);
    let server = TestServer::start(Config {
        access: AccessConfig {
            handshake_timeout: timeout,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let started = tokio::time::Instant::now();
    let mut loris = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        let mut stream = within("connect", TcpStream::connect(server.addr))
            .await
            .expect("connect");
        // Half a request, and then nothing.
        within(
            "write",
            stream.write_all(b"GET /ws/chat/lobby/ HTTP/1.1\r\nHost: x\r\n"),
        )
        .await
        .expect("write");
        loris.push(stream);
    }
    // A normal client joins and chats meanwhile.
    let mut member = server.member("lobby").await;
    member.say("still here").await;
    assert_eq!(member.next_text().await, "still here");
    assert!(
        started.elapsed() < timeout,
        "the chat did not wait for the handshake timeout"
    );
    // Every slowloris socket is closed by the server, within the timeout and a margin.
    let cut = within("every slowloris socket to be cut", async {
        for stream in &mut loris {
            let mut buf = [0u8; 256];
            // EOF, a reset, or hyper's 408: the server is done with it either way.
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
        started.elapsed()
    })
    .await;
    assert!(cut >= timeout, "cut before the timeout: {cut:?}");
    assert!(
        cut < timeout + std::time::Duration::from_secs(3),
        "cut late: {cut:?}"
    );
}

/// `GET path` on `server`; the status and body, for streams refused before their first event.
async fn sse_refusal(server: &TestServer, path: &str) -> (u16, String) {
    let url = match path.split_once('?') {
        Some((path, query)) => format!("{}?{query}", server.http_url(path)),
        None => server.http_url(path),
    };
    let response = within("the SSE answer", server.http().get(url).send())
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    let body = within("the body", response.text()).await.expect("a body");
    (status, body)
}

#[tokio::test]
async fn a_private_room_over_sse_needs_the_token_that_opens_it() {
    let server = server_with_a_secret().await;
    for (path, rule) in [
        ("sse/pagamento_1/".to_owned(), "missing"),
        (
            format!(
                "sse/pagamento_1/?token={}",
                token(&claims("ana", &["pagamento_2"]))
            ),
            "wrong_room",
        ),
        (
            format!(
                "sse?rooms=lobby,pagamento_1&token={}",
                mint(
                    b"another-secret-of-at-least-32-bytes",
                    &claims("ana", &["pagamento_1"])
                )
                .expect("mint")
            ),
            "bad_signature",
        ),
    ] {
        let (status, body) = sse_refusal(&server, &path).await;
        assert_eq!(status, 403, "{path}: {body}");
        assert!(body.contains(rule), "{path}: {body}");
        assert!(
            !body.contains(SECRET_STATUS),
            "nothing of the room leaks: {body}"
        );
    }
    let admitted = format!(
        "sse/pagamento_1/?token={}",
        token(&claims("ana", &["pagamento_*"]))
    );
    let mut follower = crate::support::SseFollower::open(&server, &admitted, None).await;
    assert_eq!(follower.next_message().await, SECRET_STATUS);
}

/// `roomcast_evictions_total{reason}` as `/metrics` renders it now.
async fn evictions(server: &TestServer, reason: &str) -> u64 {
    let text = server.metrics().await;
    let sample = format!("roomcast_evictions_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&sample))
        .map_or(0, |n| n.trim().parse().expect("a count"))
}

#[tokio::test]
async fn five_hundred_idle_typed_sockets_are_closed_4003_and_give_their_places_back() {
    const SOCKETS: usize = 500;
    // Long enough to open 500 upgrades on a loaded 2-core machine (4.8 s seen under a full
    // workspace run); each socket's bound is measured from its own upgrade.
    let timeout = std::time::Duration::from_secs(6);
    let server = TestServer::start(Config {
        // The idle sockets and one chat member fill the server exactly.
        max_connections: SOCKETS + 1,
        access: AccessConfig {
            handshake_timeout: timeout,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let url = server.url.ws("ws");
    let mut idle = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS {
        // Upgraded with the typed subprotocol, and then nothing: no frame, no join, ever. The
        // bound starts when the server has the upgrade, so after this instant.
        let asked = tokio::time::Instant::now();
        let socket = within(
            "an idle upgrade",
            RawSocket::connect(&url, Some(SUBPROTOCOL_V1), WAIT),
        )
        .await
        .expect("the upgrade");
        idle.push((socket, asked));
    }
    let mut member = server.member("lobby").await;
    let first_bound = idle[0].1 + timeout;
    assert!(
        tokio::time::Instant::now() < first_bound,
        "opening the sockets took longer than the bound"
    );
    assert_eq!(
        connect_status(&server).await.err(),
        Some(503),
        "the idle sockets hold their places until the bound"
    );
    member.say("still here").await;
    assert_eq!(member.next_text().await, "still here");
    within("every idle socket to be closed", async {
        for (socket, opened) in &mut idle {
            let (code, reason) = raw_close(socket).await;
            let after = opened.elapsed();
            assert_eq!(code, 4003, "{reason}");
            assert!(reason.contains("--handshake-timeout"), "{reason}");
            assert!(
                after >= timeout,
                "closed {after:?} after asking for its upgrade"
            );
        }
    })
    .await;
    let last_opened = idle[SOCKETS - 1].1;
    assert!(
        last_opened.elapsed() < timeout + std::time::Duration::from_secs(3),
        "closed late: {:?} after the last upgrade",
        last_opened.elapsed()
    );
    // Their places are free again, the member is still there, and the closes were counted.
    eventually("the places to come back", || async {
        connect_status(&server).await.ok()
    })
    .await;
    member.say("and still here").await;
    assert_eq!(member.next_text().await, "and still here");
    assert_eq!(
        evictions(&server, "first_frame_timeout").await,
        SOCKETS as u64
    );
}

#[tokio::test]
async fn sessions_that_said_something_or_are_in_a_room_are_not_closed_at_the_first_frame_bound() {
    let timeout = std::time::Duration::from_secs(1);
    let server = TestServer::start(Config {
        access: AccessConfig {
            handshake_timeout: timeout,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    // Joined with a frame; joined by its URL without a frame; a ping and no room (a chat
    // client waiting for its user to pick a room); and bob, who says nothing.
    let mut joined = server.peer("ana", "lobby").await;
    let mut by_url = server.member("lobby").await;
    let mut pinging = server.typed("carla").await;
    within(
        "ping",
        pinging.send(&ClientFrame::Ping {
            reference: Some(Ref::Number(1)),
        }),
    )
    .await
    .expect("send");
    let mut idle = server.typed("bob").await;
    let (code, reason) = crate::support::typed_close(&mut idle).await;
    assert_eq!(code, Some(4003), "{reason}");
    // Past the bound (bob was closed at it), the others are all still there.
    within(
        "publish",
        joined.publish(&room("lobby"), "hello", Some(Ref::Number(1))),
    )
    .await
    .expect("send");
    crate::support::wait_for(&mut joined, "the ack", |frame| {
        matches!(frame, ServerFrame::Ack { .. }).then_some(())
    })
    .await;
    assert_eq!(by_url.next_text().await, "hello");
    within(
        "ping",
        pinging.send(&ClientFrame::Ping {
            reference: Some(Ref::Number(2)),
        }),
    )
    .await
    .expect("send");
    crate::support::wait_for(&mut pinging, "the second pong", |frame| {
        matches!(
            frame,
            ServerFrame::Pong {
                reference: Some(Ref::Number(2)),
                ..
            }
        )
        .then_some(())
    })
    .await;
}

/// Opens `GET path` as a WebSocket upgrade (`/ws` with the typed subprotocol, else a tutorial
/// room URL) with `extra` header lines; returns the status line and the socket, kept open.
async fn upgrade_with(server: &TestServer, path: &str, extra: &str) -> (String, TcpStream) {
    let mut stream = within("connect", TcpStream::connect(server.addr))
        .await
        .expect("connect");
    let protocol = if path == "/ws" {
        format!("Sec-WebSocket-Protocol: {SUBPROTOCOL_V1}\r\n")
    } else {
        String::new()
    };
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n{protocol}{extra}\r\n",
        server.addr
    );
    within("write", stream.write_all(request.as_bytes()))
        .await
        .expect("write");
    let mut head = vec![0; 1024];
    let read = within("the answer", stream.read(&mut head))
        .await
        .expect("read");
    let head = String::from_utf8_lossy(&head[..read]).into_owned();
    (head.lines().next().unwrap_or_default().to_owned(), stream)
}

/// Opens an SSE stream of `lobby` with `extra` headers; the status and, when admitted, the
/// response (the stream stays open while it lives).
async fn sse_with(server: &TestServer, extra: &[(&str, &str)]) -> (u16, Option<reqwest::Response>) {
    let mut request = server.http().get(server.http_url("sse/lobby/"));
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = within("the SSE answer", request.send())
        .await
        .expect("an answer");
    let status = response.status().as_u16();
    if status == 200 {
        (status, Some(response))
    } else {
        let body = within("the body", response.text()).await.expect("a body");
        assert!(
            body.contains("--max-connections-per-ip"),
            "the refusal names the bound: {body}"
        );
        (status, None)
    }
}

#[tokio::test]
async fn sse_streams_and_websocket_sessions_share_the_per_ip_cap() {
    let server = TestServer::start(Config {
        access: AccessConfig {
            max_connections_per_ip: 3,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let (status, _ws) = upgrade_with(&server, "/ws", "").await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let (status, _first) = sse_with(&server, &[]).await;
    assert_eq!(status, 200);
    let (status, _second) = sse_with(&server, &[]).await;
    assert_eq!(status, 200);
    // One WebSocket and two streams: the fourth connection of either kind is refused.
    assert_eq!(sse_with(&server, &[]).await.0, 429, "a fourth stream");
    let (status, _) = upgrade_with(&server, "/ws", "").await;
    assert!(
        status.starts_with("HTTP/1.1 429"),
        "a fourth socket: {status}"
    );
    let text = server.metrics().await;
    assert!(
        text.contains("roomcast_connections_refused_per_ip_total 2"),
        "both refusals counted"
    );
}

#[tokio::test]
async fn with_trust_proxy_headers_the_last_x_forwarded_for_entry_is_the_client_and_without_it_the_header_is_ignored()
 {
    let trusting = TestServer::start(Config {
        access: AccessConfig {
            max_connections_per_ip: 1,
            trust_proxy_headers: true,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let upgrade = |xff: &'static str| {
        let extra = if xff.is_empty() {
            String::new()
        } else {
            format!("X-Forwarded-For: {xff}\r\n")
        };
        let server = &trusting;
        async move { upgrade_with(server, "/ws/chat/lobby/", &extra).await }
    };
    let (status, _a) = upgrade("203.0.113.9, 10.0.0.1").await;
    assert!(status.starts_with("HTTP/1.1 101"), "10.0.0.1: {status}");
    let (status, _) = upgrade("198.51.100.1, 10.0.0.1").await;
    assert!(
        status.starts_with("HTTP/1.1 429"),
        "10.0.0.1 again, whatever the client claimed before it: {status}"
    );
    let (status, _b) = upgrade("10.0.0.1, 10.0.0.2").await;
    assert!(
        status.starts_with("HTTP/1.1 101"),
        "10.0.0.2, though it names 10.0.0.1 first: {status}"
    );
    let (status, _peer) = upgrade("").await;
    assert!(
        status.starts_with("HTTP/1.1 101"),
        "no header: the socket's peer: {status}"
    );
    // SSE reads the same client IP and shares the same slots.
    assert_eq!(
        sse_with(&trusting, &[("x-forwarded-for", "10.0.0.2")])
            .await
            .0,
        429
    );
    let (status, _c) = sse_with(&trusting, &[("x-forwarded-for", "10.0.0.3")]).await;
    assert_eq!(status, 200);

    let ignoring = TestServer::start(Config {
        access: AccessConfig {
            max_connections_per_ip: 1,
            ..AccessConfig::default()
        },
        ..Config::default()
    })
    .await;
    let (status, _d) = upgrade_with(
        &ignoring,
        "/ws/chat/lobby/",
        "X-Forwarded-For: 10.0.0.1\r\n",
    )
    .await;
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    let (status, _) = upgrade_with(
        &ignoring,
        "/ws/chat/lobby/",
        "X-Forwarded-For: 10.0.0.2\r\n",
    )
    .await;
    assert!(
        status.starts_with("HTTP/1.1 429"),
        "without the flag both are 127.0.0.1: {status}"
    );
    assert_eq!(
        sse_with(&ignoring, &[("x-forwarded-for", "10.0.0.3")])
            .await
            .0,
        429
    );
}

/// A typed session named `name`, with no token at connect.
async fn typed_as(server: &TestServer, name: &str) -> roomcast_protocol::Client {
    let options = roomcast_protocol::ConnectOptions {
        user: Some(crate::support::user(name)),
        room: None,
        token: None,
    };
    within(
        "connect",
        roomcast_protocol::Client::connect(&server.url, options),
    )
    .await
    .expect("a typed session")
}

/// Joins `pagamento_1` with a token for `claims`, and reads its `joined`.
async fn join_with(client: &mut roomcast_protocol::Client, claims: &TokenClaims, reference: u64) {
    within(
        "join",
        client.join_with_token(
            &room("pagamento_1"),
            &token(claims),
            Some(Ref::Number(reference)),
        ),
    )
    .await
    .expect("send");
    crate::support::wait_for(client, "joined", |frame| {
        matches!(frame, ServerFrame::Joined { .. }).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_member_whose_token_expires_is_removed_unless_a_fresh_token_extended_its_hold() {
    let server = TestServer::start(private_config()).await;
    // `exp` a few seconds past: still admitted (5 s of leeway), expired a few seconds from now.
    let expiring = |sub: &str, ago: u64| TokenClaims {
        exp: now() - ago,
        ..claims(sub, &["pagamento_*"])
    };
    let mut ana = typed_as(&server, "ana").await;
    let mut bob = typed_as(&server, "bob").await;
    // bob's token ends a second before ana's; he joins again with a fresh one meanwhile.
    join_with(&mut ana, &expiring("ana", 2), 1).await;
    join_with(&mut bob, &expiring("bob", 3), 1).await;
    join_with(&mut bob, &claims("bob", &["pagamento_1"]), 2).await;
    // A tutorial session's one room, opened by a token of the same age as ana's; it waits
    // alongside her.
    let url = socket_url(
        &server,
        "ws/chat/pagamento_9/",
        &[("token", &token(&expiring("carla", 2)))],
    );
    let started = tokio::time::Instant::now();
    let ana_removed = crate::support::wait_for(&mut ana, "the expiry", |frame| match frame {
        ServerFrame::Error {
            code,
            message,
            room,
            ..
        } => Some((*code, message.clone(), room.clone())),
        _ => None,
    });
    let ((code, message, room_named), carla) = tokio::join!(ana_removed, first_tutorial(&url));
    assert_eq!(code, ErrorCode::Forbidden);
    assert!(message.starts_with("forbidden: expired:"), "{message}");
    assert_eq!(room_named.as_ref().map(|r| r.as_str()), Some("pagamento_1"));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(8),
        "removed at exp + leeway"
    );
    // ana is out of the room; her session goes on.
    within(
        "publish",
        ana.publish(&room("pagamento_1"), "still here?", Some(Ref::Number(2))),
    )
    .await
    .expect("send");
    let (code, _, reference) = typed_error(next_typed(&mut ana).await);
    assert_eq!(code, ErrorCode::NotJoined);
    assert_eq!(reference, Some(Ref::Number(2)));
    // bob's old token ended a second before ana's, but his fresh one holds the room.
    within(
        "publish",
        bob.publish(&room("pagamento_1"), "still here", Some(Ref::Number(3))),
    )
    .await
    .expect("send");
    let answer = crate::support::wait_for(&mut bob, "the publish's answer", |frame| match frame {
        ServerFrame::Ack { .. } | ServerFrame::Error { .. } => Some(frame.clone()),
        _ => None,
    })
    .await;
    assert!(matches!(answer, ServerFrame::Ack { .. }), "{answer:?}");

    // carla's tutorial session is closed.
    match carla {
        Incoming::Closed(info) => {
            assert_eq!(info.code.map(|c| c.as_u16()), Some(4503), "{info:?}");
            assert!(info.reason.starts_with("forbidden: expired:"), "{info:?}");
        }
        other => panic!("{other:?}"),
    }
    let text = server.metrics().await;
    assert!(
        text.contains("roomcast_access_expired_total 2"),
        "ana and carla counted"
    );
}
