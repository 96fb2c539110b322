//! `POST /api/broadcast` is all or nothing, and a keyed broadcast is answered once.

use roomcast_server::{Broadcast, Config, HistoryPage};
use serde_json::json;

use crate::support::{TestServer, within};

async fn broadcast(server: &TestServer, body: serde_json::Value) -> reqwest::Response {
    let url = server.http_url("api/broadcast");
    within(
        "POST /api/broadcast",
        server.http().post(url).json(&body).send(),
    )
    .await
    .expect("POST")
}

async fn last_seq(server: &TestServer, room: &str) -> u64 {
    let url = server.http_url(&format!("api/rooms/{room}/history"));
    let page: HistoryPage = within("history", server.http().get(url).send())
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    page.seq
}

#[tokio::test]
async fn a_broadcast_past_max_rooms_publishes_nothing_and_says_so() {
    let server = TestServer::start(Config {
        max_rooms: 3,
        ..Config::default()
    })
    .await;
    let mut member = server.member("red").await;
    // red exists; blue, green and teal would be three more: one past --max-rooms.
    let refused = broadcast(
        &server,
        json!({"rooms": ["red", "blue", "green", "teal"], "message": "all hands"}),
    )
    .await;
    assert_eq!(refused.status(), 503);
    let body: serde_json::Value = refused.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "unavailable");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("--max-rooms") && message.contains("nothing was published"),
        "{message}"
    );

    let rooms: Vec<String> = server
        .rooms()
        .await
        .rooms
        .into_iter()
        .map(|r| r.room.to_string())
        .collect();
    assert_eq!(rooms, ["red"], "no room was created");
    assert_eq!(last_seq(&server, "red").await, 0, "red got nothing");

    let fits = broadcast(
        &server,
        json!({"rooms": ["red", "blue", "green"], "message": "fits"}),
    )
    .await;
    assert_eq!(fits.status(), 200);
    assert_eq!(
        member.next_text().await,
        "fits",
        "the refused one never arrived"
    );
}

#[tokio::test]
async fn a_retried_keyed_broadcast_is_answered_once_and_delivered_once() {
    let server = TestServer::start(Config::default()).await;
    let mut red = server.member("red").await;
    let body = json!({
        "rooms": ["red", "blue"],
        "message": "deploy done",
        "idempotency_key": "deploy-42",
    });
    let first: Broadcast = broadcast(&server, body.clone())
        .await
        .json()
        .await
        .expect("JSON");
    let retry: Broadcast = broadcast(&server, body).await.json().await.expect("JSON");
    assert_eq!(retry, first, "the retry answers the first result");
    assert_eq!(
        (
            last_seq(&server, "red").await,
            last_seq(&server, "blue").await
        ),
        (1, 1)
    );

    let marker = json!({"rooms": ["red"], "message": "after the retry"});
    assert_eq!(broadcast(&server, marker).await.status(), 200);
    assert_eq!(red.next_text().await, "deploy done");
    assert_eq!(
        red.next_text().await,
        "after the retry",
        "the retry was not delivered again"
    );
}

#[tokio::test]
async fn a_broadcast_naming_a_room_twice_is_refused_before_anything_is_published() {
    let server = TestServer::start(Config::default()).await;
    let refused = broadcast(
        &server,
        json!({"rooms": ["red", "blue", "red"], "message": "twice?"}),
    )
    .await;
    assert_eq!(refused.status(), 400);
    let body: serde_json::Value = refused.json().await.expect("JSON error");
    assert_eq!(body["error"]["code"], "invalid_frame");
    assert!(server.rooms().await.rooms.is_empty());
}
