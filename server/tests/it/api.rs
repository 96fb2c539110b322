//! The HTTP API: publish with idempotency, broadcast, keys, rooms, history, info, metrics.

use std::collections::HashMap;
use std::time::Duration;

use roomcast_server::{Broadcast, Config, HistoryPage, PublishReceipt, RoomSummary};
use serde_json::json;

use crate::support::{TestServer, raw_close, within};

async fn post(server: &TestServer, path: &str, body: serde_json::Value) -> reqwest::Response {
    within(
        path,
        server.http().post(server.http_url(path)).json(&body).send(),
    )
    .await
    .expect("POST")
}

#[tokio::test]
async fn publish_answers_its_place_and_a_repeated_idempotency_key_publishes_once() {
    let server = TestServer::start(Config::default()).await;
    let mut member = server.member("orders").await;
    let body = json!({"message": "order 7 paid", "user": "billing", "idempotency_key": "pay-7"});
    let first: PublishReceipt = post(&server, "api/rooms/orders/messages", body.clone())
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (first.room.as_str(), first.seq, first.delivered),
        ("orders", 1, 1)
    );
    let retry: PublishReceipt = post(&server, "api/rooms/orders/messages", body)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(retry, first, "the retry answers the first result");

    let other = json!({"message": "order 8 paid", "idempotency_key": "pay-8"});
    let second: PublishReceipt = post(&server, "api/rooms/orders/messages", other)
        .await
        .json()
        .await
        .expect("JSON");
    assert_eq!(second.seq, 2);
    assert_eq!(member.next_text().await, "order 7 paid");
    assert_eq!(
        member.next_text().await,
        "order 8 paid",
        "the retry was not delivered again"
    );
}

#[tokio::test]
async fn broadcast_sends_one_message_to_many_rooms_and_a_bad_name_sends_nothing() {
    let server = TestServer::start(Config::default()).await;
    let mut red = server.member("red").await;
    let mut blue = server.member("blue").await;
    let bad = post(
        &server,
        "api/broadcast",
        json!({"rooms": ["red", "no way"], "message": "x"}),
    )
    .await;
    assert_eq!(bad.status(), 400);
    let body: serde_json::Value = bad.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "invalid_room");

    let response = post(
        &server,
        "api/broadcast",
        json!({"rooms": ["red", "blue"], "message": "all hands"}),
    )
    .await;
    let result: Broadcast = response.json().await.expect("JSON");
    let delivered: Vec<_> = result
        .results
        .iter()
        .map(|p| (p.room.as_str(), p.seq, p.delivered))
        .collect();
    assert_eq!(delivered, [("red", 1, 1), ("blue", 1, 1)]);
    assert_eq!(
        red.next_text().await,
        "all hands",
        "and not the refused broadcast"
    );
    assert_eq!(blue.next_text().await, "all hands");
}

#[tokio::test]
async fn with_an_api_key_unauthorized_publishes_get_401_and_deliver_nothing() {
    let config = Config {
        api_key: Some("s3cret".to_owned()),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut member = server.member("lobby").await;
    let attempts = [
        server
            .http()
            .get(server.http_url("chat/lobby/send-test/"))
            .query(&[("message", "no key")]),
        server
            .http()
            .post(server.http_url("api/rooms/lobby/messages"))
            .json(&json!({"message": "no key"})),
        server
            .http()
            .post(server.http_url("api/rooms/lobby/messages"))
            .bearer_auth("guess")
            .json(&json!({"message": "wrong key"})),
        server
            .http()
            .post(server.http_url("api/broadcast"))
            .json(&json!({"rooms": ["lobby"], "message": "x"})),
    ];
    for attempt in attempts {
        let response = within("publish", attempt.send()).await.expect("request");
        assert_eq!(response.status(), 401);
        let body: serde_json::Value = response.json().await.expect("JSON reason");
        assert_eq!(body["error"]["code"], "unauthorized");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("Authorization")),
            "{body}"
        );
    }
    let allowed = server
        .http()
        .post(server.http_url("api/rooms/lobby/messages"))
        .bearer_auth("s3cret")
        .json(&json!({"message": "with the key"}))
        .send();
    assert_eq!(
        within("publish", allowed).await.expect("request").status(),
        200
    );
    assert_eq!(
        member.next_text().await,
        "with the key",
        "nothing unauthorized came first"
    );
}

#[tokio::test]
async fn rooms_members_history_and_info_describe_the_server() {
    let config = Config {
        ping_interval: Duration::from_secs(5),
        history_size: 3,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut member = server.member("lobby").await;
    for i in 1..=5 {
        post(
            &server,
            "api/rooms/lobby/messages",
            json!({"message": format!("m{i}")}),
        )
        .await;
        member.next_text().await;
    }
    let summary: RoomSummary = server
        .http()
        .get(server.http_url("api/rooms/lobby"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!(
        (summary.sessions, summary.seq, summary.members.len()),
        (1, 5, 1)
    );

    let page: HistoryPage = server
        .http()
        .get(server.http_url("api/rooms/lobby/history"))
        .query(&[("since", "3"), ("limit", "10")])
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    let kept: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.seq, m.message.as_str()))
        .collect();
    assert_eq!(kept, [(4, "m4"), (5, "m5")]);

    let missing = server
        .http()
        .get(server.http_url("api/rooms/nowhere"))
        .send()
        .await
        .expect("GET");
    assert_eq!(missing.status(), 404);

    let info: roomcast_protocol::ServerInfo = server
        .http()
        .get(server.http_url("api/info"))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!((info.ping_interval_ms, info.history_size), (5000, 3));
    assert_eq!(info.version, env!("CARGO_PKG_VERSION"));
}

/// Parses the OpenMetrics text: every sample line must be `name{labels} value`.
fn parse_metrics(text: &str) -> HashMap<String, f64> {
    assert!(
        text.ends_with("# EOF\n"),
        "OpenMetrics text ends with # EOF"
    );
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (name, value) = line
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {line:?}"));
            let value: f64 = value
                .parse()
                .unwrap_or_else(|_| panic!("bad value in {line:?}"));
            (name.to_owned(), value)
        })
        .collect()
}

async fn metrics(server: &TestServer) -> HashMap<String, f64> {
    let response = within(
        "metrics",
        server.http().get(server.http_url("metrics")).send(),
    )
    .await
    .expect("GET");
    assert!(
        response.headers()["content-type"]
            .to_str()
            .is_ok_and(|t| t.contains("openmetrics"))
    );
    parse_metrics(&response.text().await.expect("text"))
}

#[tokio::test]
async fn the_metrics_page_parses_and_its_counters_move_when_things_happen() {
    let config = Config {
        api_key: Some("k".to_owned()),
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let before = metrics(&server).await;
    let value = |m: &HashMap<String, f64>, key: &str| m.get(key).copied().unwrap_or(0.0);
    assert!(value(&before, "roomcast_process_resident_memory_bytes") > 1_000_000.0);

    let mut member = server.member("lobby").await;
    member.say("over the socket").await;
    member.next_text().await;
    let ok = server
        .http()
        .post(server.http_url("api/rooms/lobby/messages"))
        .bearer_auth("k")
        .json(&json!({"message": "over http"}))
        .send();
    assert_eq!(within("publish", ok).await.expect("POST").status(), 200);
    member.next_text().await;
    let refused = server
        .http()
        .post(server.http_url("api/rooms/lobby/messages"))
        .json(&json!({"message": "x"}))
        .send();
    assert_eq!(
        within("publish", refused).await.expect("POST").status(),
        401
    );
    let mut silent = server.raw("lobby").await;
    assert_eq!(raw_close(&mut silent).await.0, 4000);

    let after = metrics(&server).await;
    let moved = |key: &str| value(&after, key) - value(&before, key);
    assert_eq!(
        moved("roomcast_sessions_open"),
        1.0,
        "the member is still open; the silent one is gone"
    );
    assert_eq!(
        moved("roomcast_messages_published_total{source=\"ws\"}"),
        1.0
    );
    assert_eq!(
        moved("roomcast_messages_published_total{source=\"http\"}"),
        1.0
    );
    assert_eq!(moved("roomcast_http_publishes_total{status=\"200\"}"), 1.0);
    assert_eq!(moved("roomcast_http_publishes_total{status=\"401\"}"), 1.0);
    assert_eq!(moved("roomcast_evictions_total{reason=\"timeout\"}"), 1.0);
    assert!(moved("roomcast_messages_delivered_total") >= 2.0);
    assert_eq!(value(&after, "roomcast_rooms"), 1.0);
}

#[tokio::test]
async fn a_body_field_of_the_wrong_type_is_a_400_that_names_the_field() {
    let server = TestServer::start(Config::default()).await;
    for (path, body, field) in [
        (
            "api/rooms/lobby/messages",
            serde_json::json!({"message": 5}),
            "message",
        ),
        (
            "api/broadcast",
            serde_json::json!({"rooms": ["a", 7], "message": "hi"}),
            "rooms[1]",
        ),
    ] {
        let response = post(&server, path, body).await;
        assert_eq!(response.status(), 400, "{path}");
        let error: serde_json::Value = response.json().await.expect("a JSON error");
        assert_eq!(error["error"]["code"], "invalid_json", "{path}: {error}");
        let message = error["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("{field}: invalid type")),
            "{path}: the error names {field}: {message}"
        );
    }
}
