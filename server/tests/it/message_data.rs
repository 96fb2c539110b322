//! A message's `data` end to end, over real sockets: an HTTP publish (or a typed `publish`
//! frame) with a `data` object reaches typed members, SSE followers and members recovering
//! with `since` exactly as sent, on one node and across nodes through a real Redis (live and
//! from Redis history); tutorial members get `{"message": ...}` without it; bad `data` is a
//! 400 (or an error frame) naming the field, and data counts toward `--max-message-bytes`.

use roomcast_protocol::{
    Client, ErrorCode, Incoming, Position, Ref, RoomMessage, ServerFrame, TutorialClient,
    TutorialFrame,
};
use roomcast_server::Config;
use serde_json::{Map, Value, json};

use crate::redis_support::{RedisServer, node};
use crate::support::{SseFollower, TestServer, next_tutorial, room, wait_for, within};

const ROOM: &str = "pay";

/// The payment-room use case's fields.
fn payment() -> Map<String, Value> {
    match json!({"status": "approved", "amount": 12.5, "items": [1, 2]}) {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// `POST /api/rooms/{ROOM}/messages` with `body`; the status and the JSON answer.
async fn post(server: &TestServer, path: &str, body: &Value) -> (u16, Value) {
    let response = within(
        "publish",
        server.http().post(server.http_url(path)).json(body).send(),
    )
    .await
    .expect("publish request");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

async fn publish_paid(server: &TestServer) {
    let body = json!({"message": "paid", "user": "shop", "data": payment()});
    let (status, answer) = post(server, &format!("api/rooms/{ROOM}/messages"), &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// The next chat message a typed client gets, skipping presence frames.
async fn next_message(client: &mut Client) -> RoomMessage {
    wait_for(client, "a message frame", |frame| match frame {
        ServerFrame::Message(m) => Some(m.clone()),
        _ => None,
    })
    .await
}

/// Joins `ROOM` (recovering from `since` when given); the `joined` position and replay count.
async fn join(client: &mut Client, since: Option<Position>) -> (Position, usize) {
    within("join", client.join(&room(ROOM), since, None))
        .await
        .expect("send join");
    wait_for(client, "joined", |frame| match frame {
        ServerFrame::Joined {
            epoch, seq, replay, ..
        } => Some((
            Position {
                epoch: epoch.clone(),
                seq: *seq,
            },
            *replay,
        )),
        _ => None,
    })
    .await
}

/// An SSE follower of `ROOM`, past its `joined` event.
async fn follower(server: &TestServer) -> SseFollower {
    let mut follower = SseFollower::open(server, &format!("sse/{ROOM}/"), None).await;
    follower.next_named("joined").await;
    follower
}

async fn next_sse_data(follower: &mut SseFollower) -> (String, Option<Value>) {
    let event = follower.next_named("message").await;
    let json = event.json();
    let text = json["message"].as_str().unwrap_or_default().to_owned();
    (text, json.get("data").cloned())
}

async fn tutorial_message(client: &mut TutorialClient) -> RoomMessage {
    match next_tutorial(client).await {
        TutorialFrame::Message(m) => m,
        other => panic!("expected a chat message, got {other:?}"),
    }
}

#[tokio::test]
async fn http_data_reaches_typed_members_followers_history_and_recovery_but_not_tutorial_members() {
    let server = TestServer::start(Config::default()).await;
    let mut typed = server.peer("ana", ROOM).await;
    let mut tutorial = server.tutorial(ROOM).await;
    let mut sse = follower(&server).await;
    // A member that saw the room empty, then went away: it recovers with `since`.
    let mut away = server.typed("bob").await;
    let (position, _) = join(&mut away, None).await;
    drop(away);

    publish_paid(&server).await;

    let live = next_message(&mut typed).await;
    assert_eq!(live.message, "paid");
    assert_eq!(live.data, Some(payment()));
    assert_eq!(
        next_sse_data(&mut sse).await,
        ("paid".to_owned(), Some(Value::Object(payment())))
    );
    let seen = tutorial_message(&mut tutorial).await;
    assert_eq!(seen.message, "paid");
    assert_eq!(seen.data, None, "tutorial frames carry no data");

    let mut back = server.typed("bob").await;
    let (_, replay) = join(&mut back, Some(position)).await;
    assert_eq!(replay, 1);
    assert_eq!(next_message(&mut back).await.data, Some(payment()));

    let history: Value = within(
        "history",
        server
            .http()
            .get(server.http_url(&format!("api/rooms/{ROOM}/history")))
            .send(),
    )
    .await
    .expect("history request")
    .json()
    .await
    .expect("history JSON");
    assert_eq!(
        history["messages"][0]["data"],
        Value::Object(payment()),
        "{history}"
    );
}

#[tokio::test]
async fn data_crosses_nodes_through_redis_live_and_from_redis_history() {
    let redis = RedisServer::start().await;
    let urls = [redis.url()];
    let a = node(&urls).await;
    let b = node(&urls).await;
    let mut on_b = b.peer("ana", ROOM).await;
    let mut sse_b = follower(&b).await;
    let mut watcher = a.typed("bob").await;
    let (position, _) = join(&mut watcher, None).await;
    drop(watcher);

    publish_paid(&a).await;
    assert_eq!(next_message(&mut on_b).await.data, Some(payment()));
    assert_eq!(
        next_sse_data(&mut sse_b).await.1,
        Some(Value::Object(payment()))
    );

    // A node that never held the room loads it from Redis history.
    let c = node(&urls).await;
    let mut back = c.typed("bob").await;
    let (_, replay) = join(&mut back, Some(position)).await;
    assert_eq!(replay, 1);
    let recovered = next_message(&mut back).await;
    assert_eq!(
        (recovered.message.as_str(), recovered.data),
        ("paid", Some(payment()))
    );
}

#[tokio::test]
async fn typed_publish_frames_carry_data_and_bad_data_gets_an_error_frame_naming_the_field() {
    let server = TestServer::start(Config::default()).await;
    let mut ana = server.peer("ana", ROOM).await;
    let mut bob = server.peer("bob", ROOM).await;

    within(
        "publish",
        ana.publish_with_data(&room(ROOM), "paid", payment(), Some(Ref::Number(1))),
    )
    .await
    .expect("send publish");
    let got = next_message(&mut bob).await;
    assert_eq!((got.user.as_str(), got.data), ("ana", Some(payment())));

    let (mut sender, mut receiver) = ana.split();
    within(
        "send",
        sender.send_text(r#"{"type":"publish","room":"pay","message":"x","data":[1],"ref":2}"#),
    )
    .await
    .expect("send");
    let refused = within("an answer", async {
        loop {
            match receiver.recv().await.expect("recv") {
                Incoming::Frame(ServerFrame::Error {
                    code,
                    message,
                    reference,
                    ..
                }) => return (code, message, reference),
                Incoming::Frame(ServerFrame::Message(m)) if m.message == "x" => {
                    panic!("a publish with bad data was published: {m:?}")
                }
                Incoming::Frame(_) => {}
                other => panic!("session ended: {other:?}"),
            }
        }
    })
    .await;
    assert_eq!(refused.0, ErrorCode::InvalidFrame);
    assert!(
        refused
            .1
            .contains("data must be a JSON object, not an array"),
        "{}",
        refused.1
    );
    assert_eq!(refused.2, Some(Ref::Number(2)));
    // Nothing was published: bob's next message is the next good one.
    within(
        "send",
        sender.send_text(r#"{"type":"publish","room":"pay","message":"after"}"#),
    )
    .await
    .expect("send");
    let after = next_message(&mut bob).await;
    assert_eq!((after.message.as_str(), after.data), ("after", None));
}

#[tokio::test]
async fn bad_data_is_a_400_naming_the_field_and_data_counts_toward_the_size_limit() {
    let server = TestServer::start(Config {
        max_message_bytes: 512,
        ..Config::default()
    })
    .await;
    let mut member = server.peer("ana", ROOM).await;
    let messages = format!("api/rooms/{ROOM}/messages");

    for bad in [json!("approved"), json!([1, 2]), json!(12)] {
        let (status, answer) =
            post(&server, &messages, &json!({"message": "m", "data": bad})).await;
        assert_eq!(status, 400, "{answer}");
        let text = answer["error"]["message"].as_str().unwrap_or_default();
        assert!(text.contains("data must be a JSON object"), "{answer}");
    }
    let (status, answer) = post(
        &server,
        "api/broadcast",
        &json!({"rooms": [ROOM], "message": "m", "data": "approved"}),
    )
    .await;
    assert_eq!(status, 400, "{answer}");

    // 300 bytes of text fit, and so would 300 of data alone; together they do not.
    let big = json!({"message": "t".repeat(300), "data": {"note": "x".repeat(290)}});
    let (status, answer) = post(&server, &messages, &big).await;
    assert_eq!(status, 413, "{answer}");
    let text = answer["error"]["message"].as_str().unwrap_or_default();
    assert!(
        text.contains("data") && text.contains("--max-message-bytes"),
        "{answer}"
    );

    let form = within(
        "a form publish",
        server
            .http()
            .post(server.http_url(&messages))
            .form(&[("message", "m"), ("data", "{}")])
            .send(),
    )
    .await
    .expect("form publish");
    assert_eq!(form.status(), 400, "a form cannot carry a data object");

    // None of that was published; a broadcast with data is.
    let (status, answer) = post(
        &server,
        "api/broadcast",
        &json!({"rooms": [ROOM], "message": "ok", "data": {"status": "approved"}}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let next = next_message(&mut member).await;
    assert_eq!(next.message, "ok");
    assert_eq!(next.seq, 1, "the refused publishes were not numbered");
    assert_eq!(
        next.data.and_then(|d| d.get("status").cloned()),
        Some(json!("approved"))
    );
}
