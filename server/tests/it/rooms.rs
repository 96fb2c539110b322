//! The Django Channels tutorial chat: rooms, fan-out, isolation, cleanup.

use roomcast_server::Config;

use crate::support::{TestServer, next_text, tutorial_close, within};

#[tokio::test]
async fn every_member_including_the_sender_receives_a_message_and_other_rooms_do_not() {
    let server = TestServer::start(Config::default()).await;
    let mut alice = server.tutorial("lobby").await;
    let mut bob = server.tutorial("lobby").await;
    let mut carol = server.tutorial("kitchen").await;

    within("send", alice.send_message("hi"))
        .await
        .expect("send");
    assert_eq!(next_text(&mut alice).await, "hi");
    assert_eq!(next_text(&mut bob).await, "hi");

    // Had "hi" leaked into the kitchen, it would arrive before carol's own message.
    within("send", carol.send_message("kitchen only"))
        .await
        .expect("send");
    assert_eq!(next_text(&mut carol).await, "kitchen only");
}

#[tokio::test]
async fn delivered_messages_carry_the_tutorial_field_and_their_place_in_the_room() {
    let server = TestServer::start(Config::default()).await;
    let mut ana = server.tutorial_as("lobby", "ana").await;
    within("send", ana.send_message("one")).await.expect("send");
    within("send", ana.send_message("two")).await.expect("send");
    for (expected_seq, text) in [(1, "one"), (2, "two")] {
        match crate::support::next_tutorial(&mut ana).await {
            roomcast_protocol::TutorialFrame::Message(m) => {
                assert_eq!(
                    (m.seq, m.message.as_str(), m.user.as_str()),
                    (expected_seq, text, "ana")
                );
                assert_eq!(m.room.as_str(), "lobby");
            }
            other => panic!("expected a message, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_room_is_removed_when_its_last_member_leaves() {
    let config = Config {
        room_ttl: std::time::Duration::ZERO,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut first = server.tutorial("ephemeral").await;
    let mut second = server.tutorial("ephemeral").await;
    within("send", first.send_message("keeps history"))
        .await
        .expect("send");
    assert_eq!(server.sessions_in("ephemeral").await, 2);

    within("close", first.close("bye")).await.expect("close");
    assert_eq!(tutorial_close(&mut first).await.0, Some(1000));
    // The server leaves the room before it answers the close, so this is already settled.
    assert_eq!(server.sessions_in("ephemeral").await, 1);

    within("close", second.close("bye")).await.expect("close");
    tutorial_close(&mut second).await;
    let rooms = server.rooms().await.rooms;
    assert!(
        rooms.is_empty(),
        "no room may outlive its last member: {rooms:?}"
    );
}

#[tokio::test]
async fn an_invalid_room_name_is_refused_with_the_rule_it_broke() {
    let server = TestServer::start(Config::default()).await;
    let url = server.url.ws("ws/chat/caf%C3%A9/");
    let (mut socket, _) = within("connect", tokio_tungstenite::connect_async(url.as_str()))
        .await
        .expect("the upgrade itself succeeds so the reason can be read");
    use futures_util::StreamExt;
    let close = within("close frame", socket.next()).await;
    match close {
        Some(Ok(tokio_tungstenite::tungstenite::Message::Close(Some(frame)))) => {
            assert_eq!(u16::from(frame.code), 4500);
            assert!(
                frame.reason.contains("only A-Z a-z 0-9 - _ ."),
                "{}",
                frame.reason
            );
        }
        other => panic!("expected close 4500, got {other:?}"),
    }
    assert!(server.rooms().await.rooms.is_empty());
}
