//! The network task and the app against a real server.

use std::time::Duration;

use roomcast_chat::app::Link;
use roomcast_chat::rooms::Entry;
use roomcast_protocol::ServerFrame;
use roomcast_server::Config;
use tokio::time::Instant;

use crate::support::{Chat, TestServer, entries, is_joined, room, texts, wait_for};
use roomcast_testing::TcpProxy;

fn missing_lines(entries: &[Entry]) -> Vec<Option<u64>> {
    entries
        .iter()
        .filter_map(|e| match e {
            Entry::Missing { count, .. } => Some(*count),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn joins_sends_and_receives_through_a_real_server() {
    let server = TestServer::start(Config::default()).await;
    let mut bob = server.peer("bob", "lobby").await;
    let mut chat = Chat::start(&server.url, "ana", &["lobby"]);
    chat.until("ana to join lobby", |app| is_joined(app, "lobby"))
        .await;
    chat.until("an RTT from the application ping", |app| {
        matches!(app.link(), Link::Connected { rtt: Some(_) })
    })
    .await;

    chat.type_line("hello bob");
    let (from, text) = wait_for(&mut bob, "ana's message", |f| match f {
        ServerFrame::Message(m) => Some((m.user.to_string(), m.message.clone())),
        _ => None,
    })
    .await;
    assert_eq!((from.as_str(), text.as_str()), ("ana", "hello bob"));

    bob.publish(&room("lobby"), "hi ana", None)
        .await
        .expect("bob publishes");
    server.send_test("lobby", "from the send-test page").await;
    chat.until("bob's and the HTTP message", |app| {
        texts(app, "lobby").len() == 3
    })
    .await;
    assert_eq!(
        texts(&chat.app, "lobby"),
        ["hello bob", "hi ana", "from the send-test page"]
    );
    let members = &chat.app.rooms()[0].members;
    assert_eq!(
        members.iter().map(|u| u.as_str()).collect::<Vec<_>>(),
        ["ana", "bob"]
    );
    chat.quit().await;
}

#[tokio::test]
async fn a_server_restart_reconnects_and_says_messages_may_be_missing() {
    let server = TestServer::start(Config::default()).await;
    let mut chat = Chat::start(&server.url, "ana", &["lobby", "dev"]);
    chat.until("both rooms joined", |app| {
        is_joined(app, "lobby") && is_joined(app, "dev")
    })
    .await;
    server.send_test("lobby", "before the restart").await;
    chat.until("the first message", |app| texts(app, "lobby").len() == 1)
        .await;

    let server = server.restart(Config::default()).await;
    chat.until("the reconnect countdown", |app| {
        matches!(app.link(), Link::Reconnecting { .. })
    })
    .await;
    let Link::Reconnecting { reason, .. } = chat.app.link().clone() else {
        unreachable!("checked just above");
    };
    assert!(
        reason.starts_with("1001 going_away"),
        "the close code's reason is shown: {reason}"
    );

    chat.until("both rooms rejoined", |app| {
        matches!(app.link(), Link::Connected { .. })
            && is_joined(app, "lobby")
            && is_joined(app, "dev")
    })
    .await;
    // The new server has a new epoch: the history after `since` is gone.
    assert_eq!(missing_lines(&entries(&chat.app, "lobby")), [None]);
    assert_eq!(missing_lines(&entries(&chat.app, "dev")), [None]);

    server.send_test("lobby", "after the restart").await;
    chat.until("a message on the new server", |app| {
        texts(app, "lobby").len() == 2
    })
    .await;
    chat.quit().await;
}

#[tokio::test]
async fn a_dropped_link_recovers_every_missed_message_without_a_gap_line() {
    let server = TestServer::start(Config::default()).await;
    let proxy = TcpProxy::start(server.addr).await;
    let mut chat = Chat::start(&proxy.url, "ana", &["lobby"]);
    chat.until("lobby joined", |app| is_joined(app, "lobby"))
        .await;
    server.send_test("lobby", "one").await;
    chat.until("the first message", |app| texts(app, "lobby").len() == 1)
        .await;

    proxy.cut();
    chat.until("the link to drop", |app| {
        matches!(app.link(), Link::Reconnecting { .. })
    })
    .await;
    for text in ["two", "three", "four"] {
        server.send_test("lobby", text).await;
    }
    proxy.reopen();
    chat.until("the missed messages replayed", |app| {
        texts(app, "lobby").len() == 4
    })
    .await;
    assert_eq!(texts(&chat.app, "lobby"), ["one", "two", "three", "four"]);
    assert!(
        missing_lines(&entries(&chat.app, "lobby")).is_empty(),
        "recovered: no gap line"
    );
    chat.quit().await;
}

#[tokio::test]
async fn nick_reconnects_as_the_new_name_and_rejoins_without_a_gap() {
    let server = TestServer::start(Config::default()).await;
    let mut bob = server.peer("bob", "lobby").await;
    let mut chat = Chat::start(&server.url, "ana", &["lobby"]);
    chat.until("lobby joined", |app| is_joined(app, "lobby"))
        .await;
    chat.type_line("/nick Ana Lima");
    chat.until("the new name", |app| {
        app.me().is_some_and(|me| me.as_str() == "Ana Lima")
    })
    .await;
    chat.until("lobby rejoined", |app| is_joined(app, "lobby"))
        .await;
    let joined = wait_for(&mut bob, "the new name joining", |f| match f {
        ServerFrame::Join { user, .. } if user.as_str() == "Ana Lima" => Some(()),
        _ => None,
    });
    joined.await;
    chat.type_line("renamed");
    let from = wait_for(&mut bob, "a message under the new name", |f| match f {
        ServerFrame::Message(m) => Some(m.user.to_string()),
        _ => None,
    })
    .await;
    assert_eq!(from, "Ana Lima");
    assert!(missing_lines(&entries(&chat.app, "lobby")).is_empty());
    chat.quit().await;
}

#[tokio::test]
async fn a_server_gone_silent_is_dropped_within_the_bound_and_recovered_without_a_gap() {
    let server_timeout = Duration::from_secs(1);
    let server = TestServer::start(Config::default()).await;
    let proxy = TcpProxy::start(server.addr).await;
    let mut chat = Chat::start_with(&proxy.url, "ana", &["lobby"], |config| {
        config.server_timeout = server_timeout;
    });
    chat.until("lobby joined", |app| is_joined(app, "lobby"))
        .await;
    server.send_test("lobby", "one").await;
    chat.until("the first message", |app| texts(app, "lobby").len() == 1)
        .await;

    // No FIN, no RST, no close frame: only the client's own bound can tell.
    proxy.go_silent();
    let silent_since = Instant::now();
    chat.until("the silent server to be dropped", |app| {
        matches!(app.link(), Link::Reconnecting { .. })
    })
    .await;
    roomcast_testing::assert_noticed_within(silent_since, server_timeout);
    let Link::Reconnecting { reason, .. } = chat.app.link().clone() else {
        unreachable!("checked just above");
    };
    assert_eq!(reason, "no answer from the server for 1s");

    for text in ["two", "three"] {
        server.send_test("lobby", text).await;
    }
    proxy.resume();
    chat.until("the missed messages replayed", |app| {
        texts(app, "lobby").len() == 3
    })
    .await;
    server.send_test("lobby", "four").await;
    chat.until("a live message after recovery", |app| {
        texts(app, "lobby").len() == 4
    })
    .await;
    assert_eq!(texts(&chat.app, "lobby"), ["one", "two", "three", "four"]);
    assert!(
        missing_lines(&entries(&chat.app, "lobby")).is_empty(),
        "recovered: no gap line"
    );
    chat.quit().await;
}
