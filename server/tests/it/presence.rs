//! Presence: who is in a room, and why they left.

use std::time::Duration;

use roomcast_protocol::{LeaveReason, ServerFrame, UserName};
use roomcast_server::Config;

use crate::support::{TestServer, next_typed, room, user, wait_for, within};

async fn join(client: &mut roomcast_protocol::Client, name: &str) -> Vec<UserName> {
    within("join", client.join(&room(name), None, None))
        .await
        .expect("send join");
    wait_for(client, "joined", |frame| match frame {
        ServerFrame::Joined { members, .. } => Some(members.clone()),
        _ => None,
    })
    .await
}

async fn next_leave(client: &mut roomcast_protocol::Client) -> (String, LeaveReason) {
    wait_for(client, "a leave event", |frame| match frame {
        ServerFrame::Leave { user, reason, .. } => Some((user.to_string(), *reason)),
        _ => None,
    })
    .await
}

#[tokio::test]
async fn members_see_joins_and_leaves_with_reasons_and_a_users_sessions_count_once() {
    let server = TestServer::start(Config::default()).await;
    let mut alice = server.typed("alice").await;
    assert_eq!(join(&mut alice, "lobby").await, vec![user("alice")]);

    let mut bob_phone = server.typed("bob").await;
    assert_eq!(
        join(&mut bob_phone, "lobby").await,
        vec![user("alice"), user("bob")]
    );
    match next_typed(&mut alice).await {
        ServerFrame::Join { room, user: who } => {
            assert_eq!((room.as_str(), who.as_str()), ("lobby", "bob"))
        }
        other => panic!("expected bob's join, got {other:?}"),
    }

    // bob's second session is not news: alice's next frame is the marker message, not a join.
    let mut bob_laptop = server.typed("bob").await;
    join(&mut bob_laptop, "lobby").await;
    within(
        "publish",
        bob_laptop.publish(&room("lobby"), "marker", None),
    )
    .await
    .expect("publish");
    assert!(
        matches!(next_typed(&mut alice).await, ServerFrame::Message(m) if m.message == "marker")
    );

    // One of bob's sessions leaving is not news either; the last one is.
    within(
        "leave",
        bob_phone.send(&roomcast_protocol::ClientFrame::Leave {
            room: room("lobby"),
            reference: None,
        }),
    )
    .await
    .expect("leave");
    wait_for(&mut bob_phone, "left", |f| {
        matches!(f, ServerFrame::Left { .. }).then_some(())
    })
    .await;
    within(
        "publish",
        bob_laptop.publish(&room("lobby"), "marker 2", None),
    )
    .await
    .expect("publish");
    assert!(
        matches!(next_typed(&mut alice).await, ServerFrame::Message(m) if m.message == "marker 2")
    );
    within("close", bob_laptop.close("bye"))
        .await
        .expect("close");
    assert_eq!(
        next_leave(&mut alice).await,
        ("bob".to_owned(), LeaveReason::Left)
    );

    // A socket that just vanishes is reported as closed.
    let ghost = server.raw_as("lobby", "ghost").await;
    assert!(
        matches!(next_typed(&mut alice).await, ServerFrame::Join { user, .. } if user.as_str() == "ghost")
    );
    drop(ghost);
    assert_eq!(
        next_leave(&mut alice).await,
        ("ghost".to_owned(), LeaveReason::Closed)
    );
}

#[tokio::test]
async fn a_silent_member_leaves_with_reason_timeout() {
    let config = Config {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(400),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut alice = server.typed("alice").await;
    join(&mut alice, "lobby").await;
    let _silent = server.raw_as("lobby", "sleepy").await;
    // alice keeps reading (and so answering pings) while she waits.
    assert_eq!(
        next_leave(&mut alice).await,
        ("sleepy".to_owned(), LeaveReason::Timeout)
    );
}

#[tokio::test]
async fn a_member_that_stops_reading_leaves_with_reason_slow() {
    let config = Config {
        max_queue_bytes: 256 * 1024,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut alice = server.typed("alice").await;
    join(&mut alice, "lobby").await;

    let _sloth = server.stalled_reader("lobby", "sloth").await;

    let send_test = server.http_url("chat/lobby/send-test/");
    let payload = "z".repeat(16 * 1024);
    let publishing = async {
        // Bounded: 64 MiB is far past the sloth's queue and kernel buffers.
        for _ in 0..4096 {
            let body = serde_json::json!({ "message": payload });
            server
                .http()
                .post(&send_test)
                .json(&body)
                .send()
                .await
                .expect("publish");
        }
    };
    tokio::select! {
        left = next_leave(&mut alice) => assert_eq!(left, ("sloth".to_owned(), LeaveReason::Slow)),
        () = publishing => panic!("published 64 MiB and the reader that stopped is still a member"),
    }
}
