//! The payment-status page, `/status/<room>/`, on a latest-on-join room.

use roomcast_server::Config;
use serde_json::json;

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
