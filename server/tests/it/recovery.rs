//! History and recovery: a reconnecting client gets exactly what it missed, or is told it can't.

use std::time::Duration;

use roomcast_protocol::{Client, Position, ServerFrame, TutorialFrame};
use roomcast_server::Config;
use tokio::net::{TcpListener, TcpSocket};

use crate::support::{TestServer, eventually, next_tutorial, next_typed, room, within};

struct Joined {
    epoch: String,
    seq: u64,
    recovered: Option<bool>,
    replay: usize,
}

async fn join_since(client: &mut Client, name: &str, since: Option<Position>) -> Joined {
    within("join", client.join(&room(name), since, None))
        .await
        .expect("send join");
    match next_typed(client).await {
        ServerFrame::Joined {
            epoch,
            seq,
            recovered,
            replay,
            ..
        } => Joined {
            epoch,
            seq,
            recovered,
            replay,
        },
        other => panic!("expected joined, got {other:?}"),
    }
}

async fn next_message(client: &mut Client) -> (u64, String) {
    match next_typed(client).await {
        ServerFrame::Message(m) => (m.seq, m.message),
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn publish_http(server: &TestServer, name: &str, text: &str) {
    let url = server.http_url(&format!("chat/{name}/send-test/"));
    let response = within(
        "publish",
        server
            .http()
            .post(url)
            .json(&serde_json::json!({"message": text}))
            .send(),
    )
    .await
    .expect("publish");
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_client_that_missed_20_messages_gets_exactly_those_in_order_then_live_ones() {
    let server = TestServer::start(Config::default()).await;
    let mut ana = server.typed("ana").await;
    let start = join_since(&mut ana, "lobby", None).await;
    for i in 1..=5 {
        publish_http(&server, "lobby", &format!("before {i}")).await;
        assert_eq!(next_message(&mut ana).await.0, i);
    }
    within("close", ana.close("going offline"))
        .await
        .expect("close");
    for i in 1..=20 {
        publish_http(&server, "lobby", &format!("missed {i}")).await;
    }

    let mut back = server.typed("ana").await;
    let since = Position {
        epoch: start.epoch.clone(),
        seq: 5,
    };
    let joined = join_since(&mut back, "lobby", Some(since)).await;
    assert_eq!(
        (joined.recovered, joined.replay, joined.seq),
        (Some(true), 20, 25)
    );
    assert_eq!(joined.epoch, start.epoch);
    for i in 1..=20 {
        assert_eq!(
            next_message(&mut back).await,
            (5 + i, format!("missed {i}"))
        );
    }
    publish_http(&server, "lobby", "live").await;
    assert_eq!(next_message(&mut back).await, (26, "live".to_owned()));
}

#[tokio::test]
async fn a_gap_beyond_the_history_is_reported_as_not_recovered() {
    let server = TestServer::start(Config {
        history_size: 10,
        ..Config::default()
    })
    .await;
    let mut ana = server.typed("ana").await;
    let start = join_since(&mut ana, "lobby", None).await;
    within("close", ana.close("bye")).await.expect("close");
    for i in 1..=20 {
        publish_http(&server, "lobby", &format!("m{i}")).await;
    }
    let mut back = server.typed("ana").await;
    let joined = join_since(
        &mut back,
        "lobby",
        Some(Position {
            epoch: start.epoch,
            seq: 0,
        }),
    )
    .await;
    assert_eq!((joined.recovered, joined.replay), (Some(false), 10));
    // What is still held is replayed, so the client can show it after a "missing" line.
    assert_eq!(next_message(&mut back).await.0, 11);
}

#[tokio::test]
async fn after_a_server_restart_the_epoch_differs_and_recovery_fails() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    let server = TestServer::start_on(listener, Config::default());
    let mut ana = server.typed("ana").await;
    let before = join_since(&mut ana, "lobby", None).await;
    publish_http(&server, "lobby", "before the restart").await;
    let (seq, _) = next_message(&mut ana).await;
    server.stop().await;

    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("rebind the same port");
    let restarted = TestServer::start_on(socket.listen(64).expect("listen"), Config::default());
    let mut back = restarted.typed("ana").await;
    let joined = join_since(
        &mut back,
        "lobby",
        Some(Position {
            epoch: before.epoch.clone(),
            seq,
        }),
    )
    .await;
    assert_ne!(joined.epoch, before.epoch);
    assert_eq!((joined.recovered, joined.seq), (Some(false), 0));
}

#[tokio::test]
async fn history_outlives_an_empty_room_for_the_ttl_and_no_longer() {
    let server = TestServer::start(Config {
        room_ttl: Duration::from_secs(60),
        ..Config::default()
    })
    .await;
    let mut ana = server.typed("ana").await;
    let start = join_since(&mut ana, "lonely", None).await;
    publish_http(&server, "lonely", "note to self").await;
    let (seq, _) = next_message(&mut ana).await;
    within("close", ana.close("bye")).await.expect("close");
    publish_http(&server, "lonely", "while away").await;
    let mut back = server.typed("ana").await;
    let joined = join_since(
        &mut back,
        "lonely",
        Some(Position {
            epoch: start.epoch,
            seq,
        }),
    )
    .await;
    assert_eq!((joined.recovered, joined.replay), (Some(true), 1));

    let short = TestServer::start(Config {
        room_ttl: Duration::from_millis(50),
        ..Config::default()
    })
    .await;
    let mut bea = short.typed("bea").await;
    let first = join_since(&mut bea, "brief", None).await;
    publish_http(&short, "brief", "soon gone").await;
    let (seq, _) = next_message(&mut bea).await;
    within("close", bea.close("bye")).await.expect("close");
    eventually("the empty room to expire", || async {
        short.rooms().await.rooms.is_empty().then_some(())
    })
    .await;
    let mut again = short.typed("bea").await;
    let joined = join_since(
        &mut again,
        "brief",
        Some(Position {
            epoch: first.epoch.clone(),
            seq,
        }),
    )
    .await;
    assert_ne!(joined.epoch, first.epoch);
    assert_eq!(joined.recovered, Some(false));
}

#[tokio::test]
async fn latest_state_rooms_deliver_their_last_message_on_every_join() {
    let config = Config {
        latest_on_join: vec!["pagamento_".to_owned()],
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    publish_http(&server, "pagamento_42", "pending").await;
    publish_http(&server, "pagamento_42", "paid").await;
    publish_http(&server, "lobby", "old chatter").await;

    // A browser following the payment with the tutorial page sees the current status at once.
    let mut browser = server.tutorial("pagamento_42").await;
    match next_tutorial(&mut browser).await {
        TutorialFrame::Message(m) => assert_eq!((m.message.as_str(), m.seq), ("paid", 2)),
        other => panic!("expected the latest status, got {other:?}"),
    }
    let mut typed = server.typed("ops").await;
    let joined = join_since(&mut typed, "pagamento_42", None).await;
    assert_eq!((joined.replay, joined.recovered), (1, None));
    assert_eq!(next_message(&mut typed).await, (2, "paid".to_owned()));

    // Ordinary rooms replay nothing on a plain join.
    let joined = join_since(&mut typed, "lobby", None).await;
    assert_eq!(joined.replay, 0);
}
