//! A screenshot of every page at phone and desktop sizes, in `target/screenshots/`, so a
//! reviewer can look at them. The pages hold real content: members, messages, statuses.

use roomcast_server::Config;

use crate::support::{Browser, DESKTOP, PHONE, Server, screenshot_dir};

#[tokio::test]
async fn every_page_is_photographed_at_phone_and_desktop_sizes() {
    let server = Server::start(Config {
        latest_on_join: vec!["pagamento_".to_owned()],
        ..Config::default()
    })
    .await;
    for status in ["created", "pending", "paid"] {
        server.send_test("pagamento_1042", status).await;
    }
    let browser = Browser::start().await;

    // Someone in the lobby, so the index lists it and the chat has a second member.
    browser.goto(&server.url("/chat/lobby/?user=bob")).await;
    browser.wait_state("connected").await;
    let bob = browser.client.window().await.expect("bob's tab");
    let ana = browser
        .client
        .new_window(true)
        .await
        .expect("a second tab")
        .handle;
    browser.client.switch_to_window(ana).await.expect("switch");
    browser.goto(&server.url("/chat/lobby/?user=ana")).await;
    browser.wait_state("connected").await;
    browser.client.switch_to_window(bob).await.expect("switch");
    for line in [
        "hi ana, the deploy is at 14:00",
        "<b>tags</b> from peers stay text",
    ] {
        browser.type_and_enter("#message", line).await;
        browser
            .wait_for_line("bob's message", "#timeline .text", line)
            .await;
    }
    server.send_test("lobby", "deploy started by ci").await;
    browser
        .wait_for_line(
            "the backend's message",
            "#timeline .text",
            "deploy started by ci",
        )
        .await;

    for (name, size) in [("phone", PHONE), ("desktop", DESKTOP)] {
        browser.screenshot(&format!("chat-{name}"), size).await;
    }

    browser.goto(&server.url("/")).await;
    browser
        .wait_texts("the lobby in the room list", "#rooms li", |rooms| {
            rooms.iter().any(|r| r.starts_with("lobby"))
        })
        .await;
    for (name, size) in [("phone", PHONE), ("desktop", DESKTOP)] {
        browser.screenshot(&format!("index-{name}"), size).await;
    }

    browser.goto(&server.url("/status/pagamento_1042/")).await;
    browser
        .wait_texts("the current status", "#value", |v| v == ["paid"])
        .await;
    for (name, size) in [("phone", PHONE), ("desktop", DESKTOP)] {
        browser.screenshot(&format!("status-{name}"), size).await;
    }
    browser.close().await;

    for page in ["index", "chat", "status"] {
        for size in ["phone", "desktop"] {
            let path = screenshot_dir().join(format!("{page}-{size}.png"));
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", path.display());
        }
    }
}
