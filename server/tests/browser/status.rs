//! The payment-status page, `/status/<room>/`, on a latest-on-join room.

use roomcast_server::Config;
use serde_json::json;

use crate::no_websocket::NoWebSocketProxy;
use crate::support::{Browser, Server};

#[tokio::test]
async fn the_status_page_shows_the_current_state_at_once_and_updates_when_the_backend_posts() {
    let server = Server::start(Config {
        latest_on_join: vec!["pagamento_".to_owned()],
        ..Config::default()
    })
    .await;
    server.send_test("pagamento_42", "pending").await;

    let browser = Browser::start().await;
    browser.goto(&server.url("/status/pagamento_42/")).await;
    browser.wait_state("connected").await;
    browser
        .wait_texts("the status posted before the page opened", "#value", |v| {
            v == ["pending"]
        })
        .await;
    let tone = browser
        .eval(
            "return document.querySelector('#current').dataset.tone;",
            vec![],
        )
        .await;
    assert_eq!(tone, json!("warn"));

    server.send_test("pagamento_42", "paid").await;
    browser
        .wait_texts("the new status", "#value", |v| v == ["paid"])
        .await;
    let tone = browser
        .eval(
            "return document.querySelector('#current').dataset.tone;",
            vec![],
        )
        .await;
    assert_eq!(tone, json!("ok"));
    browser
        .wait_texts("the history, newest first", "#history li span", |h| {
            h == ["paid", "pending"]
        })
        .await;
    browser.close().await;
}

#[tokio::test]
async fn the_status_page_over_sse_alone_follows_survives_a_restart_and_shows_what_came_after() {
    let config = Config {
        latest_on_join: vec!["pagamento_".to_owned()],
        sse_retry: std::time::Duration::from_millis(200),
        ..Config::default()
    };
    let mut server = Server::start(config.clone()).await;
    server.send_test("pagamento_7", "pending").await;

    let browser = Browser::start().await;
    browser
        .goto(&server.url("/status/pagamento_7/?transport=sse"))
        .await;
    browser.wait_state("connected").await;
    assert_eq!(transport(&browser).await, json!("sse"));
    browser
        .wait_texts("the latest status, from the stream", "#value", |v| {
            v == ["pending"]
        })
        .await;
    server.send_test("pagamento_7", "paid").await;
    browser
        .wait_texts("the update", "#value", |v| v == ["paid"])
        .await;

    server.stop().await;
    browser.wait_state("reconnecting").await;
    server.start_again();
    server.send_test("pagamento_7", "refunded").await;
    browser.wait_state("connected").await;
    browser
        .wait_texts("the status posted while the page was away", "#value", |v| {
            v == ["refunded"]
        })
        .await;
    browser
        .wait_texts("every status once, newest first", "#history li span", |h| {
            h == ["refunded", "paid", "pending"]
        })
        .await;
    let gaps = browser.texts("#history li.gap").await;
    assert!(
        gaps.iter().any(|g| g.contains("may be missing")),
        "the new history is flagged: {gaps:?}"
    );
    browser.close().await;
}

/// Behind a proxy that refuses every WebSocket upgrade, the status page falls back to SSE by
/// itself: it says so, shows the current status, and keeps updating live.
#[tokio::test]
async fn the_status_page_falls_back_to_sse_when_websockets_are_blocked_and_says_so() {
    let server = Server::start(Config {
        latest_on_join: vec!["pagamento_".to_owned()],
        ..Config::default()
    })
    .await;
    server.send_test("pagamento_9", "pending").await;
    let proxy = NoWebSocketProxy::start(server.addr).await;

    let browser = Browser::start().await;
    browser.goto(&proxy.url("/status/pagamento_9/")).await;
    let state = browser.wait_state("connected").await;
    assert_eq!(
        state, "connected · over SSE",
        "the page names its transport"
    );
    assert!(proxy.refused() >= 1, "the page tried a WebSocket first");
    assert_eq!(transport(&browser).await, json!("sse"));
    browser
        .wait_texts("the latest status, over SSE", "#value", |v| {
            v == ["pending"]
        })
        .await;

    server.send_test("pagamento_9", "paid").await;
    browser
        .wait_texts("the live update", "#value", |v| v == ["paid"])
        .await;
    browser
        .wait_texts("the history, newest first", "#history li span", |h| {
            h == ["paid", "pending"]
        })
        .await;
    browser.close().await;
}

/// The transport the state badge says the page follows on (`websocket` or `sse`).
async fn transport(browser: &Browser) -> serde_json::Value {
    browser
        .eval(
            "return document.querySelector('#state').dataset.transport;",
            vec![],
        )
        .await
}
