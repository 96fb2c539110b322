//! The typed protocol (`roomcast.v1`) beside the tutorial one.

use roomcast_protocol::raw::opcode;
use roomcast_protocol::{
    ClientFrame, ConnectOptions, ErrorCode, Incoming, Ref, ServerFrame, TutorialFrame,
};
use roomcast_server::Config;

use crate::support::{
    TestServer, next_text, next_tutorial, next_typed, room, user, wait_for, within,
};

async fn joined(client: &mut roomcast_protocol::Client, name: &str) -> (String, u64) {
    within(
        "join",
        client.join(&room(name), None, Some(Ref::Text(format!("join-{name}")))),
    )
    .await
    .expect("send join");
    wait_for(client, "joined", |frame| match frame {
        ServerFrame::Joined {
            room, epoch, seq, ..
        } if room.as_str() == name => Some((epoch.clone(), *seq)),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn typed_and_tutorial_members_of_one_room_each_get_their_own_format() {
    let server = TestServer::start(Config::default()).await;
    let mut typed = server.typed("ana").await;
    joined(&mut typed, "lobby").await;
    let mut tutorial = server.tutorial_as("lobby", "bob").await;
    // bob's arrival reaches ana as a presence event; tutorial clients never see those.
    let arrived = next_typed(&mut typed).await;
    assert!(
        matches!(&arrived, ServerFrame::Join { user, .. } if user.as_str() == "bob"),
        "{arrived:?}"
    );

    within("send", tutorial.send_message("from the tutorial page"))
        .await
        .expect("send");
    match next_typed(&mut typed).await {
        ServerFrame::Message(m) => {
            assert_eq!((m.room.as_str(), m.user.as_str()), ("lobby", "bob"));
            assert_eq!((m.seq, m.message.as_str()), (1, "from the tutorial page"));
            assert!(
                m.ts > 1_600_000_000_000,
                "ts is server time in ms: {}",
                m.ts
            );
        }
        other => panic!("expected a typed message, got {other:?}"),
    }
    assert_eq!(next_text(&mut tutorial).await, "from the tutorial page");

    within(
        "publish",
        typed.publish(&room("lobby"), "from the terminal", Some(Ref::Number(9))),
    )
    .await
    .expect("publish");
    match next_typed(&mut typed).await {
        ServerFrame::Message(m) => assert_eq!((m.seq, m.user.as_str()), (2, "ana")),
        other => panic!("expected own message first, got {other:?}"),
    }
    match next_typed(&mut typed).await {
        ServerFrame::Ack {
            room,
            seq,
            reference,
        } => {
            assert_eq!(
                (room.as_str(), seq, reference),
                ("lobby", 2, Ref::Number(9))
            );
        }
        other => panic!("expected the ack, got {other:?}"),
    }
    match next_tutorial(&mut tutorial).await {
        TutorialFrame::Message(m) => assert_eq!(
            (m.user.as_str(), m.message.as_str()),
            ("ana", "from the terminal")
        ),
        other => panic!("expected a tutorial message, got {other:?}"),
    }
}

#[tokio::test]
async fn one_connection_in_three_rooms_gets_each_rooms_messages_tagged_with_the_room() {
    let server = TestServer::start(Config::default()).await;
    let mut client = server.typed("ana").await;
    for name in ["red", "green", "blue"] {
        joined(&mut client, name).await;
    }
    for name in ["blue", "red", "green"] {
        let url = server.http_url(&format!("chat/{name}/send-test/"));
        let response = within(
            "send-test",
            server.http().get(url).query(&[("message", name)]).send(),
        )
        .await
        .expect("send-test");
        assert_eq!(response.status(), 200);
    }
    for expected in ["blue", "red", "green"] {
        match next_typed(&mut client).await {
            ServerFrame::Message(m) => {
                assert_eq!(m.room.as_str(), expected);
                assert_eq!(
                    m.message, expected,
                    "the text matches the room it was sent to"
                );
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn welcome_carries_the_settings_and_a_room_url_joins_at_connect() {
    let config = Config {
        ping_interval: std::time::Duration::from_secs(7),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let options = ConnectOptions {
        user: Some(user("ana")),
        room: Some(room("lobby")),
        token: None,
    };
    let mut client = within(
        "connect",
        roomcast_protocol::Client::connect(&server.url, options),
    )
    .await
    .expect("connect");
    assert_eq!(client.user().as_str(), "ana");
    assert_eq!(client.server_info().ping_interval_ms, 7000);
    assert_eq!(client.server_info().ping_timeout_ms, 30_000);
    match next_typed(&mut client).await {
        ServerFrame::Joined {
            room,
            members,
            replay,
            recovered,
            ..
        } => {
            assert_eq!(room.as_str(), "lobby");
            assert_eq!(members, vec![user("ana")]);
            assert_eq!((replay, recovered), (0, None));
        }
        other => panic!("expected joined, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_frames_are_answered_by_ref_and_the_session_goes_on() {
    let config = Config {
        max_rooms_per_session: 2,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut client = server.typed("ana").await;
    let raw_cases = [
        (
            r#"{"type":"shout","ref":"a"}"#,
            ErrorCode::UnknownType,
            Some(Ref::Text("a".into())),
        ),
        (
            r#"{"type":"join","room":"../etc","ref":2}"#,
            ErrorCode::InvalidRoom,
            Some(Ref::Number(2)),
        ),
        (
            r#"{"type":"publish","room":"lobby","ref":3}"#,
            ErrorCode::InvalidFrame,
            Some(Ref::Number(3)),
        ),
        (
            r#"{"type":"publish","room":"lobby","message":"x","ref":4}"#,
            ErrorCode::NotJoined,
            Some(Ref::Number(4)),
        ),
        ("{broken", ErrorCode::InvalidJson, None),
    ];
    let (mut sender, mut receiver) = client.split();
    for (text, code, reference) in raw_cases {
        within("send", sender.send_text(text)).await.expect("send");
        match within("answer", receiver.recv()).await.expect("recv") {
            Incoming::Frame(ServerFrame::Error {
                code: got,
                reference: got_ref,
                message,
                ..
            }) => {
                assert_eq!((got, &got_ref), (code, &reference), "for {text}: {message}");
                assert!(!message.is_empty());
            }
            other => panic!("expected an error for {text}, got {other:?}"),
        }
    }
    for name in ["one", "two", "three"] {
        let join = ClientFrame::Join {
            room: room(name),
            since: None,
            token: None,
            reference: None,
        };
        within("join", sender.send(&join)).await.expect("send");
    }
    let mut joins = 0;
    let refusal = within("the third join to be refused", async {
        loop {
            match receiver.recv().await.expect("recv") {
                Incoming::Frame(ServerFrame::Joined { .. }) => joins += 1,
                Incoming::Frame(ServerFrame::Error { code, room, .. }) => return (code, room),
                other => panic!("unexpected {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(joins, 2);
    assert_eq!(refusal, (ErrorCode::TooManyRooms, Some(room("three"))));
    within(
        "ping",
        sender.send(&ClientFrame::Ping {
            reference: Some(Ref::Number(5)),
        }),
    )
    .await
    .expect("ping");
    match within("pong", receiver.recv()).await.expect("recv") {
        Incoming::Frame(ServerFrame::Pong { reference, ts }) => {
            assert_eq!(reference, Some(Ref::Number(5)));
            assert!(ts > 0);
        }
        other => panic!("expected pong, got {other:?}"),
    }
    client = roomcast_protocol::Client::connect(&server.url, ConnectOptions::default())
        .await
        .expect("a new session");
    assert!(
        client.user().as_str().starts_with("guest-"),
        "{}",
        client.user()
    );
}

#[tokio::test]
async fn the_bare_socket_needs_the_typed_subprotocol() {
    let server = TestServer::start(Config::default()).await;
    let url = server.url.ws("ws");
    match tokio_tungstenite::connect_async(url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 400);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("roomcast.v1"), "{body}");
        }
        other => panic!("expected HTTP 400, got {other:?}"),
    }
}

/// Messages the room numbers while the leaver is not reading: more than its session takes
/// from the room's ring in one turn (256 frames) plus what the kernel buffers, so some are
/// still in the ring when the `leave` arrives.
const BEFORE_LEAVE: usize = 1_000;

#[tokio::test]
async fn a_leaver_gets_every_message_numbered_before_its_leave_then_left() {
    let config = Config {
        // Room for the whole backlog: this is about order, not about the slow bound.
        max_queue_bytes: 8 << 20,
        write_timeout: std::time::Duration::from_secs(60),
        rate_per_second: 0,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut url = server.url.ws("ws");
    url.query_pairs_mut().append_pair("user", "leaver");
    let mut leaver = server.small_window(&url, Some("roomcast.v1")).await;
    let send = |value: serde_json::Value| value.to_string().into_bytes();
    let join = send(serde_json::json!({"type": "join", "room": "lobby"}));
    let leave = send(serde_json::json!({"type": "leave", "room": "lobby"}));
    within("join", leaver.send(opcode::TEXT, &join))
        .await
        .expect("send");
    loop {
        let frame = within("a frame", leaver.read_frame())
            .await
            .expect("read")
            .expect("a frame");
        if let Ok(ServerFrame::Joined { .. }) = serde_json::from_slice(&frame.payload) {
            break;
        }
    }

    let text = "p".repeat(2048);
    for i in 0..BEFORE_LEAVE {
        let published = server
            .publish_as("lobby", "backend", &format!("{i:04}{text}"))
            .await;
        assert!(published.status().is_success(), "publish {i}");
    }
    // Every message is numbered; the leaver, which read none of them, leaves.
    within("leave", leaver.send(opcode::TEXT, &leave))
        .await
        .expect("send");
    let mut got = 0;
    loop {
        let frame = within("a frame", leaver.read_frame())
            .await
            .expect("read")
            .expect("a frame before `left`");
        match serde_json::from_slice(&frame.payload).expect("a typed frame") {
            ServerFrame::Message(m) => {
                assert_eq!(m.message[..4], format!("{got:04}"), "in order, none lost");
                got += 1;
            }
            ServerFrame::Left { .. } => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, BEFORE_LEAVE, "every message came before `left`");
}
