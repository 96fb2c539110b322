//! The room page, `/chat/<room>/`: messages, members, send-test, peer text, reconnects.

use roomcast_server::Config;
use serde_json::{Value, json};

use crate::proxy::Proxy;
use crate::support::{Browser, Server};

const TEXTS: &str = "#timeline .text";
const EVENTS: &str = "#timeline .event";
const GAPS: &str = "#timeline .gap";

#[tokio::test]
async fn two_pages_in_one_room_exchange_messages_and_see_each_other_arrive() {
    let server = Server::start(Config::default()).await;
    let browser = Browser::start().await;
    browser.goto(&server.url("/chat/lobby/?user=ana")).await;
    browser.wait_state("connected").await;
    let ana = browser.client.window().await.expect("ana's tab");

    let bob = browser
        .client
        .new_window(true)
        .await
        .expect("a second tab")
        .handle;
    browser
        .client
        .switch_to_window(bob.clone())
        .await
        .expect("switch");
    browser.goto(&server.url("/chat/lobby/?user=bob")).await;
    browser.wait_state("connected").await;
    browser
        .wait_texts("both members listed", "#members li", |members| {
            members == ["ana", "bob (you)"]
        })
        .await;
    browser.type_and_enter("#message", "hi ana").await;
    browser
        .wait_for_line("bob's own message", TEXTS, "hi ana")
        .await;

    browser.client.switch_to_window(ana).await.expect("switch");
    browser
        .wait_for_line("bob's message on ana's page", TEXTS, "hi ana")
        .await;
    browser
        .wait_texts("bob's arrival", EVENTS, |lines| {
            lines.iter().any(|l| l.ends_with("bob joined"))
        })
        .await;
    browser
        .wait_texts("bob in ana's member list", "#members li", |members| {
            members == ["ana (you)", "bob"]
        })
        .await;
    browser.type_and_enter("#message", "hello bob").await;
    browser
        .wait_for_line("ana's own message", TEXTS, "hello bob")
        .await;
    let input = browser
        .eval("return document.querySelector('#message').value;", vec![])
        .await;
    assert_eq!(input, json!(""), "the input is cleared once sent");

    browser.client.switch_to_window(bob).await.expect("switch");
    browser
        .wait_for_line("ana's message on bob's page", TEXTS, "hello bob")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_send_test_message_appears_on_the_page() {
    let server = Server::start(Config::default()).await;
    let browser = Browser::start().await;
    browser.goto(&server.url("/chat/lobby/?user=ana")).await;
    browser.wait_state("connected").await;
    server.send_test("lobby", "deploy done").await;
    browser
        .wait_for_line("the send-test message", TEXTS, "deploy done")
        .await;
    browser
        .wait_for_line("who sent it", "#timeline .user", "backend")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn a_peers_script_is_shown_as_text_and_never_run() {
    let server = Server::start(Config::default()).await;
    let browser = Browser::start().await;
    browser.goto(&server.url("/chat/lobby/?user=ana")).await;
    browser.wait_state("connected").await;
    let hostile = r#"<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2"><b>bold?</b>"#;
    server.send_test("lobby", hostile).await;
    browser
        .wait_for_line("the message, as text", TEXTS, hostile)
        .await;
    let verdict = browser
        .eval(
            "return { ran: window.__pwned ?? null, \
                      elements: document.querySelectorAll('#timeline script, #timeline img, #timeline b').length };",
            vec![],
        )
        .await;
    assert_eq!(verdict, json!({ "ran": Value::Null, "elements": 0 }));
    browser.close().await;
}

#[tokio::test]
async fn the_page_shows_reconnecting_while_the_server_restarts_and_shows_what_came_after() {
    let mut server = Server::start(Config::default()).await;
    let browser = Browser::start().await;
    browser.goto(&server.url("/chat/lobby/?user=ana")).await;
    browser.wait_state("connected").await;
    server.send_test("lobby", "before the restart").await;
    browser
        .wait_for_line("the first message", TEXTS, "before the restart")
        .await;

    server.stop().await;
    let state = browser.wait_state("reconnecting").await;
    assert!(state.contains("server shutting down (1001)"), "{state}");
    let input = browser
        .eval(
            "return document.querySelector('#message').disabled;",
            vec![],
        )
        .await;
    assert_eq!(input, json!(true), "no typing into a dead connection");

    // The new server has a new history: what it holds is replayed on rejoin (or arrives live
    // if the page was quicker), and the page says something may be missing in between.
    server.start_again();
    server.send_test("lobby", "after the restart").await;
    browser.wait_state("connected").await;
    browser
        .wait_for_line(
            "the message sent after the restart",
            TEXTS,
            "after the restart",
        )
        .await;
    browser
        .wait_texts("the history-reset warning", GAPS, |lines| {
            lines
                .iter()
                .any(|l| l.contains("some messages may be missing"))
        })
        .await;
    let texts = browser.texts(TEXTS).await;
    assert_eq!(
        texts,
        ["before the restart", "after the restart"],
        "each message once"
    );
    browser.close().await;
}

#[tokio::test]
async fn a_page_cut_off_from_the_server_recovers_every_missed_message() {
    let server = Server::start(Config::default()).await;
    let proxy = Proxy::start(server.addr).await;
    let browser = Browser::start().await;
    browser.goto(&proxy.url("/chat/lobby/?user=ana")).await;
    browser.wait_state("connected").await;
    server.send_test("lobby", "one").await;
    browser
        .wait_for_line("the first message", TEXTS, "one")
        .await;

    proxy.cut();
    browser.wait_state("reconnecting").await;
    server.send_test("lobby", "two").await;
    server.send_test("lobby", "three").await;
    proxy.reopen();

    browser.wait_state("connected").await;
    browser
        .wait_for_line("the last missed message", TEXTS, "three")
        .await;
    server.send_test("lobby", "four").await;
    browser
        .wait_for_line("a live message after recovery", TEXTS, "four")
        .await;
    assert_eq!(browser.texts(TEXTS).await, ["one", "two", "three", "four"]);
    assert!(browser.texts(GAPS).await.is_empty(), "nothing was missing");
    browser.close().await;
}
