//! A page written to the Django Channels tutorial's contract keeps working: it opens
//! `ws://` + `location.host` + `/ws/chat/<room>/`, sends `{"message"}`, shows `data.message`.
//! The fixture is served only here, next to the server's own routes, so `location.host` is
//! the server.

use axum::extract::Path;
use axum::response::Html;
use axum::routing::get;
use roomcast_server::{AppState, Config, router};
use serde_json::json;
use tokio::net::TcpListener;

use crate::support::Browser;

const FIXTURE: &str = include_str!("fixtures/tutorial_room.html");

/// The fixture with the room name filled in, as Django's `json_script` would.
async fn tutorial_page(Path(room): Path<String>) -> Html<String> {
    let name = serde_json::to_string(&room)
        .unwrap_or_default()
        .replace('<', "\\u003c");
    Html(FIXTURE.replace("{{ROOM_NAME_JSON}}", &name))
}

#[tokio::test]
async fn the_tutorial_contract_page_talks_with_the_typed_room_page() {
    let app = router(AppState::new(
        Config::default()
            .validate()
            .expect("the defaults are valid"),
    ))
    .route("/tutorial/{room}/", get(tutorial_page));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let stop = tokio_util::sync::CancellationToken::new();
    let serving = tokio::spawn(roomcast_server::serve_router(listener, app, stop.clone()));

    let browser = Browser::start().await;
    browser
        .goto(&format!("http://{addr}/tutorial/lobby/"))
        .await;
    browser
        .wait_js(
            "the tutorial socket to open",
            "return document.body.dataset.socket ?? null;",
            |v| *v == json!("open"),
        )
        .await;
    let tutorial = browser.client.window().await.expect("tutorial tab");

    let chat = browser
        .client
        .new_window(true)
        .await
        .expect("a second tab")
        .handle;
    browser
        .client
        .switch_to_window(chat.clone())
        .await
        .expect("switch");
    browser
        .goto(&format!("http://{addr}/chat/lobby/?user=ana"))
        .await;
    browser.wait_state("connected").await;

    browser
        .client
        .switch_to_window(tutorial.clone())
        .await
        .expect("switch");
    browser
        .type_and_enter("#chat-message-input", "from the tutorial page")
        .await;
    let log = "return document.querySelector('#chat-log').value;";
    browser
        .wait_js("the tutorial page's own message in its log", log, |v| {
            v.as_str()
                .is_some_and(|t| t.contains("from the tutorial page\n"))
        })
        .await;

    browser.client.switch_to_window(chat).await.expect("switch");
    browser
        .wait_for_line(
            "the tutorial message on the room page",
            "#timeline .text",
            "from the tutorial page",
        )
        .await;
    browser
        .type_and_enter("#message", "from the room page")
        .await;

    browser
        .client
        .switch_to_window(tutorial)
        .await
        .expect("switch");
    browser
        .wait_js("the room page's message in the tutorial log", log, |v| {
            v.as_str() == Some("from the tutorial page\nfrom the room page\n")
        })
        .await;
    browser.close().await;
    stop.cancel();
    serving.abort();
}
