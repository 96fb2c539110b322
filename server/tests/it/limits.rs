//! Bad input gets a clear answer and takes nothing down.

use roomcast_protocol::raw::opcode;
use roomcast_protocol::{ErrorCode, Incoming, TutorialFrame};
use roomcast_server::Config;

use crate::support::{TestServer, next_text, tutorial_close, within};

fn error_code(frame: TutorialFrame) -> ErrorCode {
    match frame {
        TutorialFrame::Error { error } => error.code,
        other => panic!("expected an error frame, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversize_frame_closes_with_1009_and_the_server_keeps_serving() {
    let config = Config {
        max_message_bytes: 1024,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut big = server.tutorial("lobby").await;
    let mut bystander = server.tutorial("lobby").await;
    within("send", big.send_message(&"x".repeat(2000)))
        .await
        .expect("send");
    let (code, reason) = tutorial_close(&mut big).await;
    assert_eq!(code, Some(1009), "{reason}");
    assert!(
        reason.contains("1024"),
        "the reason names the limit: {reason}"
    );

    within("send", bystander.send_message("still fine"))
        .await
        .expect("send");
    assert_eq!(next_text(&mut bystander).await, "still fine");
    let mut newcomer = server.tutorial("lobby").await;
    within("send", newcomer.send_message("hello"))
        .await
        .expect("send");
    assert_eq!(next_text(&mut newcomer).await, "hello");
}

#[tokio::test]
async fn broken_json_and_missing_fields_get_an_error_frame_and_the_session_goes_on() {
    let server = TestServer::start(Config::default()).await;
    let (mut sender, mut receiver) = server.tutorial("lobby").await.split();
    for (text, expected) in [
        ("not json", ErrorCode::InvalidJson),
        (r#"{"text": "hi"}"#, ErrorCode::InvalidFrame),
        (r#"{"message": 42}"#, ErrorCode::InvalidFrame),
    ] {
        within("send", sender.send_text(text)).await.expect("send");
        match within("answer", receiver.recv()).await.expect("recv") {
            Incoming::Frame(frame) => assert_eq!(error_code(frame), expected, "for {text}"),
            other => panic!("expected an error frame for {text}, got {other:?}"),
        }
    }
    within("send", sender.send_text(r#"{"message": "ok"}"#))
        .await
        .expect("send");
    match within("answer", receiver.recv()).await.expect("recv") {
        Incoming::Frame(TutorialFrame::Message(m)) => assert_eq!(m.message, "ok"),
        other => panic!("expected the message, got {other:?}"),
    }
}

#[tokio::test]
async fn a_binary_frame_gets_an_error_frame_and_the_session_goes_on() {
    let server = TestServer::start(Config::default()).await;
    let mut watcher = server.tutorial("lobby").await;
    let mut socket = server.raw("lobby").await;
    within("write", socket.send(opcode::BINARY, &[0, 159, 146, 150]))
        .await
        .expect("write binary");
    let answer = within("answer", socket.read_frame())
        .await
        .expect("frame")
        .expect("an answer before the end");
    assert_eq!(answer.opcode, opcode::TEXT);
    let body: serde_json::Value = serde_json::from_slice(&answer.payload).expect("JSON");
    assert_eq!(body["error"]["code"], "binary_unsupported", "{body}");

    within(
        "write",
        socket.send(opcode::TEXT, br#"{"message":"text works"}"#),
    )
    .await
    .expect("write text");
    assert_eq!(next_text(&mut watcher).await, "text works");
}

#[tokio::test]
async fn frames_over_the_rate_are_refused_one_by_one_and_the_session_goes_on() {
    let config = Config {
        rate_per_second: 1,
        rate_burst: 3,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let (mut sender, mut receiver) = server.tutorial("lobby").await.split();
    for i in 0..4 {
        let text = format!(r#"{{"message":"{i}"}}"#);
        within("send", sender.send_text(text)).await.expect("send");
    }
    let mut answers = Vec::new();
    for _ in 0..4 {
        match within("answer", receiver.recv()).await.expect("recv") {
            Incoming::Frame(TutorialFrame::Message(m)) => answers.push(m.message),
            Incoming::Frame(frame) => answers.push(error_code(frame).to_string()),
            other => panic!("the session must go on, got {other:?}"),
        }
    }
    assert_eq!(answers, ["0", "1", "2", "rate_limited"]);
}

#[tokio::test]
async fn a_sustained_flood_is_closed_with_4002_after_the_burst_reached_the_room() {
    let config = Config {
        rate_per_second: 1,
        rate_burst: 3,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut observer = server.member("lobby").await;
    let (mut sender, mut receiver) = server.tutorial("lobby").await.split();
    for i in 0..20 {
        if sender
            .send_text(format!(r#"{{"message":"{i}"}}"#))
            .await
            .is_err()
        {
            break; // the server may close before all 20 are written
        }
    }
    let code = within("the flood to be closed", async {
        loop {
            match receiver.recv().await {
                Ok(Incoming::Closed(info)) => return info.code.map(|c| c.as_u16()),
                Ok(_) => {}
                Err(e) => panic!("error before the close: {e}"),
            }
        }
    })
    .await;
    assert_eq!(code, Some(4002));
    for expected in ["0", "1", "2"] {
        assert_eq!(
            observer.next_text().await,
            expected,
            "the burst was published"
        );
    }
}

#[tokio::test]
async fn past_max_rooms_new_rooms_are_refused_on_every_path_and_old_ones_keep_working() {
    let config = Config {
        max_rooms: 2,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut existing = server.tutorial("one").await;
    let _other = server.tutorial("two").await;

    let mut newcomer = server.tutorial("three").await;
    let (code, reason) = tutorial_close(&mut newcomer).await;
    assert_eq!(code, Some(1013), "{reason}");
    assert!(reason.contains("--max-rooms"), "{reason}");

    let mut typed = server.typed("ana").await;
    within(
        "join",
        typed.join(&crate::support::room("four"), None, None),
    )
    .await
    .expect("join");
    match crate::support::next_typed(&mut typed).await {
        roomcast_protocol::ServerFrame::Error { code, room, .. } => {
            assert_eq!(
                (code, room.map(|r| r.to_string())),
                (ErrorCode::Unavailable, Some("four".to_owned()))
            );
        }
        other => panic!("expected an error frame, got {other:?}"),
    }

    let url = server.http_url("chat/five/send-test/");
    let response = within(
        "publish",
        server.http().get(url).query(&[("message", "x")]).send(),
    )
    .await
    .expect("request");
    assert_eq!(response.status(), 503);

    within("send", existing.send_message("still here"))
        .await
        .expect("send");
    assert_eq!(next_text(&mut existing).await, "still here");
    assert_eq!(server.rooms().await.rooms.len(), 2);
}
