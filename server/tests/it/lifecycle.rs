//! One lifetime rule for every room, whichever way it came to exist: a room with no members is
//! removed `--room-ttl` after its last activity (at once with `--room-ttl 0`), and the room
//! count and `roomcast_rooms` go back to zero.

use std::time::Duration;

use roomcast_protocol::{ClientFrame, Ref, ServerFrame};
use roomcast_server::Config;
use serde_json::json;

use crate::support::{TestServer, eventually, room, tutorial_close, typed_close, wait_for, within};

/// Every way a room can come to exist.
#[derive(Debug, Clone, Copy)]
enum Origin {
    TutorialSocket,
    TypedJoinFrame,
    TypedUrl,
    SendTestGet,
    SendTestPost,
    PublishApi,
    Broadcast,
}

const ORIGINS: [Origin; 7] = [
    Origin::TutorialSocket,
    Origin::TypedJoinFrame,
    Origin::TypedUrl,
    Origin::SendTestGet,
    Origin::SendTestPost,
    Origin::PublishApi,
    Origin::Broadcast,
];

/// Brings `name` into existence the way `origin` does, and ends any membership that made it,
/// so the room is left with no members. Returns once the server has answered.
async fn create(server: &TestServer, origin: Origin, name: &str) {
    let http = server.http();
    let expect_ok = |response: reqwest::Result<reqwest::Response>| {
        let response = response.expect("HTTP request");
        assert!(response.status().is_success(), "{origin:?}: {response:?}");
    };
    match origin {
        Origin::TutorialSocket => {
            let mut client = server.tutorial(name).await;
            within("a message", client.send_message("hi"))
                .await
                .expect("send");
            crate::support::next_text(&mut client).await;
            within("close", client.close("bye")).await.expect("close");
            tutorial_close(&mut client).await;
        }
        Origin::TypedJoinFrame => {
            let mut client = server.typed("ana").await;
            within("join", client.join(&room(name), None, Some(Ref::Number(1))))
                .await
                .expect("join");
            wait_for(&mut client, "joined", |f| {
                matches!(f, ServerFrame::Joined { .. }).then_some(())
            })
            .await;
            let leave = ClientFrame::Leave {
                room: room(name),
                reference: Some(Ref::Number(2)),
            };
            within("leave", client.send(&leave)).await.expect("leave");
            wait_for(&mut client, "left", |f| {
                matches!(f, ServerFrame::Left { .. }).then_some(())
            })
            .await;
            within("close", client.close("bye")).await.expect("close");
            typed_close(&mut client).await;
        }
        Origin::TypedUrl => {
            let options = roomcast_protocol::ConnectOptions {
                user: None,
                room: Some(room(name)),
                token: None,
            };
            let mut client = within(
                "a typed connection",
                roomcast_protocol::Client::connect(&server.url, options),
            )
            .await
            .expect("connect");
            wait_for(&mut client, "joined", |f| {
                matches!(f, ServerFrame::Joined { .. }).then_some(())
            })
            .await;
            within("close", client.close("bye")).await.expect("close");
            typed_close(&mut client).await;
        }
        Origin::SendTestGet => {
            let url = server.http_url(&format!("chat/{name}/send-test/"));
            let request = http.get(url).query(&[("message", "paid")]);
            expect_ok(within("send-test GET", request.send()).await);
        }
        Origin::SendTestPost => {
            let url = server.http_url(&format!("chat/{name}/send-test/"));
            let body = json!({"message": "paid"});
            expect_ok(within("send-test POST", http.post(url).json(&body).send()).await);
        }
        Origin::PublishApi => {
            let url = server.http_url(&format!("api/rooms/{name}/messages"));
            let body = json!({"message": "paid", "idempotency_key": format!("k-{name}")});
            expect_ok(within("publish API", http.post(url).json(&body).send()).await);
        }
        Origin::Broadcast => {
            let url = server.http_url("api/broadcast");
            let body = json!({"rooms": [name], "message": "paid"});
            expect_ok(within("broadcast", http.post(url).json(&body).send()).await);
        }
    }
}

/// The value of the `roomcast_rooms` gauge.
async fn rooms_gauge(server: &TestServer) -> i64 {
    let text = server.metrics().await;
    text.lines()
        .find_map(|line| line.strip_prefix("roomcast_rooms "))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no roomcast_rooms gauge in {text}"))
}

async fn room_names(server: &TestServer) -> Vec<String> {
    let rooms = server.rooms().await.rooms;
    rooms.into_iter().map(|r| r.room.to_string()).collect()
}

async fn send_test_status(server: &TestServer, name: &str) -> u16 {
    let url = server.http_url(&format!("chat/{name}/send-test/"));
    let request = server.http().get(url).query(&[("message", "paid")]);
    within("send-test", request.send())
        .await
        .expect("send-test")
        .status()
        .as_u16()
}

#[tokio::test]
async fn rooms_only_http_touched_expire_after_the_ttl_and_free_their_places() {
    let server = TestServer::start(Config {
        room_ttl: Duration::from_secs(1),
        max_rooms: 50,
        ..Config::default()
    })
    .await;
    let mut statuses = Vec::new();
    for payment in 1..=60 {
        statuses.push(send_test_status(&server, &format!("pagamento_{payment}")).await);
    }
    assert_eq!(statuses[..50], [200; 50], "{statuses:?}");
    assert_eq!(statuses[50..], [503; 10], "past --max-rooms: {statuses:?}");

    eventually("the expired rooms to free their places", || async {
        (send_test_status(&server, "pagamento_61").await == 200).then_some(())
    })
    .await;
    eventually("every room to expire", || async {
        room_names(&server).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(rooms_gauge(&server).await, 0);
}

#[tokio::test]
async fn every_way_a_room_comes_to_exist_ends_with_no_room_after_the_ttl() {
    let server = TestServer::start(Config {
        room_ttl: Duration::from_secs(2),
        ..Config::default()
    })
    .await;
    let mut names = Vec::new();
    for origin in ORIGINS {
        let name = format!("{origin:?}").to_lowercase();
        create(&server, origin, &name).await;
        names.push(name);
    }
    names.sort();
    assert_eq!(
        room_names(&server).await,
        names,
        "every empty room stays for --room-ttl"
    );
    assert_eq!(rooms_gauge(&server).await, 7);
    eventually("every room to expire", || async {
        room_names(&server).await.is_empty().then_some(())
    })
    .await;
    assert_eq!(rooms_gauge(&server).await, 0);
}

#[tokio::test]
async fn with_a_zero_ttl_every_way_a_room_comes_to_exist_removes_it_at_once() {
    let server = TestServer::start(Config {
        room_ttl: Duration::ZERO,
        ..Config::default()
    })
    .await;
    for origin in ORIGINS {
        let name = format!("{origin:?}").to_lowercase();
        create(&server, origin, &name).await;
        // No waiting: the answer (or the close) comes after the room is gone.
        assert_eq!(
            room_names(&server).await,
            Vec::<String>::new(),
            "{origin:?}"
        );
        assert_eq!(rooms_gauge(&server).await, 0, "{origin:?}");
    }
}

#[tokio::test]
async fn a_room_with_a_member_outlives_the_ttl_and_expires_after_the_member_leaves() {
    let server = TestServer::start(Config {
        room_ttl: Duration::from_millis(200),
        ..Config::default()
    })
    .await;
    let mut member = server.member("lobby").await;
    create(&server, Origin::SendTestGet, "lobby").await;
    assert_eq!(member.next_text().await, "paid");
    // Several TTLs pass while the member stays: a message proves the room is the same one.
    for round in 0..3 {
        let name = format!("probe_{round}");
        create(&server, Origin::SendTestGet, &name).await;
        eventually("the probe room to expire", || async {
            (!room_names(&server).await.contains(&name)).then_some(())
        })
        .await;
    }
    let url = server.http_url("api/rooms/lobby");
    let summary: roomcast_server::RoomSummary = within("GET room", server.http().get(url).send())
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON");
    assert_eq!((summary.sessions, summary.seq), (1, 1));

    drop(member);
    eventually("the room to expire after its member left", || async {
        room_names(&server).await.is_empty().then_some(())
    })
    .await;
}
