//! The POC's send-test route: a message into a room from outside any socket.

use roomcast_server::{Config, PublishReceipt};
use serde_json::json;

use crate::support::{TestServer, next_text, within};

#[tokio::test]
async fn send_test_by_get_post_json_and_form_reaches_every_member() {
    let server = TestServer::start(Config::default()).await;
    let mut alice = server.tutorial("lobby").await;
    let mut bob = server.tutorial("lobby").await;
    let url = server.http_url("chat/lobby/send-test/");

    let by_get = server
        .http()
        .get(&url)
        .query(&[("message", "hello")])
        .send();
    let by_json = server
        .http()
        .post(&url)
        .json(&json!({"message": "from json"}))
        .send();
    let by_form = server
        .http()
        .post(&url)
        .form(&[("message", "from form")])
        .send();
    let mut seqs = Vec::new();
    for (request, text) in [
        (by_get, "hello"),
        (by_json, "from json"),
        (by_form, "from form"),
    ] {
        let response = within("send-test", request).await.expect("request");
        assert_eq!(response.status(), 200);
        let published: PublishReceipt = response.json().await.expect("publish result");
        assert_eq!((published.room.as_str(), published.delivered), ("lobby", 2));
        seqs.push(published.seq);
        assert_eq!(next_text(&mut alice).await, text);
        assert_eq!(next_text(&mut bob).await, text);
    }
    assert_eq!(seqs, [1, 2, 3]);
}

#[tokio::test]
async fn send_test_refuses_bad_requests_with_a_reason() {
    let server = TestServer::start(Config::default()).await;
    let cases = [
        ("chat/caf%C3%A9/send-test/", Some("x"), "invalid_room"),
        ("chat/a%20b/send-test/", Some("x"), "invalid_room"),
        ("chat/lobby/send-test/", None, "invalid_frame"),
    ];
    for (path, message, code) in cases {
        let mut request = server.http().get(format!("http://{}/{path}", server.addr));
        if let Some(message) = message {
            request = request.query(&[("message", message)]);
        }
        let response = within(path, request.send()).await.expect("request");
        assert_eq!(response.status(), 400, "{path}");
        let body: serde_json::Value = response.json().await.expect("JSON error");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    let broken = server
        .http()
        .post(server.http_url("chat/lobby/send-test/"))
        .header("content-type", "application/json")
        .body("{not json")
        .send();
    let response = within("broken JSON", broken).await.expect("request");
    assert_eq!(response.status(), 400);
    assert!(
        server.rooms().await.rooms.is_empty(),
        "nothing was published"
    );
}
