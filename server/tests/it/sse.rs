//! Followers over Server-Sent Events (`/sse/...`), over real sockets: every message in order,
//! resume through `Last-Event-ID` with exactly what was missed, `gap` past history, several
//! rooms on one cursor, eviction of a follower that stops reading, heartbeats, shutdown, caps,
//! presence, and two nodes on Redis.

use std::time::Duration;

use roomcast_protocol::sse::Item;
use roomcast_server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::redis_support::{RedisServer, node};
use crate::support::{SseFollower, TestServer, eventually, within};

/// `POST /api/rooms/{room}/messages` as `hq`, failing the test on any refusal.
async fn publish(server: &TestServer, room: &str, text: &str) {
    let response = server.publish_as(room, "hq", text).await;
    assert!(
        response.status().is_success(),
        "publish: {}",
        response.status()
    );
}

/// The seq at the end of a one-room id (`room:epoch:seq`).
fn seq_of(id: &str) -> u64 {
    id.rsplit(':')
        .next()
        .and_then(|s| s.parse().ok())
        .expect("an id ends in a seq")
}

#[tokio::test]
async fn a_follower_gets_every_message_in_order_and_resumes_with_exactly_the_missed_ones() {
    let server = TestServer::start(Config::default()).await;
    let mut follower = SseFollower::open(&server, "sse/lobby/", None).await;
    let joined = follower.next_named("joined").await;
    assert_eq!(joined.json()["seq"], 0);
    for n in 1..=5 {
        publish(&server, "lobby", &format!("m{n}")).await;
    }
    for n in 1..=5 {
        let event = follower.next_event().await;
        assert_eq!(event.name, "message");
        assert_eq!(event.json()["message"], format!("m{n}"));
        assert_eq!(seq_of(event.id.as_deref().unwrap_or_default()), n);
    }
    let last = follower.last_id.clone().expect("an id was seen");
    drop(follower);
    eventually("the follower to leave", || async {
        (server.sessions_in("lobby").await == 0).then_some(())
    })
    .await;
    for n in 6..=8 {
        publish(&server, "lobby", &format!("m{n}")).await;
    }

    let mut back = SseFollower::open(&server, "sse/lobby/", Some(&last)).await;
    for n in 6..=8 {
        let event = back.next_event().await;
        assert_eq!(event.name, "message", "{event:?}");
        assert_eq!(event.json()["message"], format!("m{n}"));
    }
    let joined = back.next_event().await;
    assert_eq!(joined.name, "joined");
    assert_eq!(joined.json()["recovered"], true);
    assert_eq!(joined.json()["replay"], 3);
    publish(&server, "lobby", "m9").await;
    let next = back.next_event().await;
    assert_eq!(
        (next.name.as_str(), next.json()["message"].as_str()),
        ("message", Some("m9"))
    );
}

#[tokio::test]
async fn a_resume_from_beyond_history_starts_with_a_gap_then_what_is_held() {
    let config = Config {
        history_size: 3,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut follower = SseFollower::open(&server, "sse/status/", None).await;
    let joined = follower.next_named("joined").await;
    let position = joined.id.expect("joined has an id");
    drop(follower);
    for n in 1..=10 {
        publish(&server, "status", &format!("m{n}")).await;
    }
    // `?since=` is the same cursor, for clients that cannot set headers.
    let mut back = SseFollower::open(&server, &format!("sse/status/?since={position}"), None).await;
    let gap = back.next_event().await;
    assert_eq!(gap.name, "gap", "{gap:?}");
    assert_eq!(gap.json()["resumes_at"], 8);
    assert_eq!(seq_of(gap.id.as_deref().unwrap_or_default()), 7);
    for n in 8..=10 {
        assert_eq!(back.next_event().await.json()["message"], format!("m{n}"));
    }
    let joined = back.next_event().await;
    assert_eq!(joined.name, "joined");
    assert_eq!(joined.json()["recovered"], false);

    // Another epoch (say, the server restarted) is a gap too; a malformed id is refused.
    let response = within(
        "a bad id",
        server
            .http()
            .get(server.http_url("sse/status/"))
            .header("last-event-id", "status:e1")
            .send(),
    )
    .await
    .expect("request");
    assert_eq!(response.status(), 400);
    let body = response.text().await.unwrap_or_default();
    assert!(body.contains("room:epoch:seq"), "{body}");
    let mut other =
        SseFollower::open(&server, "sse/status/", Some("status:0123456789abcdef:4")).await;
    assert_eq!(other.next_event().await.name, "gap");
}

#[tokio::test]
async fn several_rooms_share_one_cursor_that_resumes_each_of_them() {
    let server = TestServer::start(Config::default()).await;
    let mut follower = SseFollower::open(&server, "sse?rooms=a,b", None).await;
    follower.next_named("joined").await;
    follower.next_named("joined").await;
    publish(&server, "a", "a1").await;
    publish(&server, "b", "b1").await;
    assert_eq!(follower.next_message().await, "a1");
    assert_eq!(follower.next_message().await, "b1");
    let cursor = follower.last_id.clone().expect("an id");
    let parts: Vec<&str> = cursor.split(',').collect();
    assert_eq!(parts.len(), 2, "{cursor}");
    assert!(
        parts[0].starts_with("a:") && parts[0].ends_with(":1"),
        "{cursor}"
    );
    assert!(
        parts[1].starts_with("b:") && parts[1].ends_with(":1"),
        "{cursor}"
    );
    drop(follower);
    eventually("the follower to leave", || async {
        (server.sessions_in("a").await == 0).then_some(())
    })
    .await;
    publish(&server, "b", "b2").await;
    publish(&server, "a", "a2").await;
    publish(&server, "a", "a3").await;

    let mut back = SseFollower::open(&server, "sse?rooms=a,b", Some(&cursor)).await;
    let mut got = Vec::new();
    while got.len() < 5 {
        let event = back.next_event().await;
        got.push(match event.name.as_str() {
            "message" => event.json()["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            other => other.to_owned(),
        });
    }
    assert_eq!(got, ["a2", "a3", "joined", "b2", "joined"]);
    let cursor = back.last_id.clone().unwrap_or_default();
    assert!(
        cursor.contains(":3,b:") && cursor.ends_with(":2"),
        "{cursor}"
    );
}

#[tokio::test]
async fn followers_hear_presence_but_are_not_present() {
    let server = TestServer::start(Config::default()).await;
    let mut follower = SseFollower::open(&server, "sse/lobby/", None).await;
    assert_eq!(
        follower.next_named("joined").await.json()["members"],
        serde_json::json!([])
    );
    let ana = server.peer("ana", "lobby").await;
    let join = follower.next_event().await;
    assert_eq!(
        (join.name.as_str(), join.json()["user"].as_str()),
        ("join", Some("ana"))
    );
    let rooms = server.rooms().await;
    let lobby = rooms
        .rooms
        .iter()
        .find(|r| r.room.as_str() == "lobby")
        .expect("lobby");
    assert_eq!(lobby.sessions, 2);
    assert_eq!(lobby.followers, 1, "the room API shows the follower apart");
    assert_eq!(
        lobby.members.len(),
        1,
        "and only ana as present: {:?}",
        lobby.members
    );
    drop(ana);
    let leave = follower.next_event().await;
    assert_eq!(leave.name, "leave");
    // A second follower shows, and one that goes is no longer counted.
    let second = SseFollower::open(&server, "sse/lobby/", None).await;
    eventually("two followers in the room API", || async {
        let rooms = server.rooms().await;
        rooms
            .rooms
            .iter()
            .any(|r| r.room.as_str() == "lobby" && r.followers == 2)
            .then_some(())
    })
    .await;
    drop(second);
    eventually("one follower again once the second went", || async {
        let rooms = server.rooms().await;
        rooms
            .rooms
            .iter()
            .any(|r| r.room.as_str() == "lobby" && r.followers == 1)
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn heartbeats_arrive_at_the_configured_interval() {
    let config = Config {
        sse_heartbeat: Duration::from_millis(300),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut follower = SseFollower::open(&server, "sse/quiet/", None).await;
    follower.next_named("joined").await;
    let mut last = Instant::now();
    for _ in 0..3 {
        loop {
            if follower.next_item().await == Some(Item::Comment("ping".into())) {
                break;
            }
        }
        let gap = last.elapsed();
        assert!(
            gap >= Duration::from_millis(200) && gap < Duration::from_millis(1500),
            "a ping after {gap:?}"
        );
        last = Instant::now();
    }
}

#[tokio::test]
async fn streams_count_against_max_connections_and_show_by_transport() {
    let config = Config {
        max_connections: 1,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let text = server.metrics().await;
    assert!(
        text.contains("roomcast_connections_open{transport=\"sse\"} 0"),
        "{text}"
    );
    assert!(
        text.contains("roomcast_connections_open{transport=\"websocket\"} 0"),
        "{text}"
    );
    let mut follower = SseFollower::open(&server, "sse/lobby/", None).await;
    follower.next_named("joined").await;
    let refused = within(
        "a second stream",
        server.http().get(server.http_url("sse/lobby/")).send(),
    )
    .await
    .expect("request");
    assert_eq!(refused.status(), 503);
    let text = server.metrics().await;
    assert!(
        text.contains("roomcast_connections_open{transport=\"sse\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("roomcast_connections_refused_total 1"),
        "{text}"
    );
}

#[tokio::test]
async fn shutdown_ends_every_stream_with_a_final_event_and_a_retry() {
    let config = Config {
        sse_retry: Duration::from_millis(1000),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut follower = SseFollower::open(&server, "sse/lobby/", None).await;
    follower.next_named("joined").await;
    let stopping = tokio::spawn(server.stop());
    let mut retry = None;
    let last = loop {
        match follower.next_item().await {
            Some(Item::Retry(millis)) => retry = Some(millis),
            Some(Item::Event { name, .. }) => break name,
            Some(Item::Comment(_)) => {}
            None => panic!("the stream ended without a final event"),
        }
    };
    assert_eq!(last, "shutdown");
    assert!(
        retry.is_some_and(|ms| (1000..=2000).contains(&ms)),
        "{retry:?}"
    );
    assert_eq!(follower.next_item().await, None, "the stream ends after it");
    within("shutdown", stopping).await.expect("stop");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_stops_reading_is_evicted_while_others_keep_receiving() {
    let config = Config {
        max_message_bytes: 4 * 1024,
        // Room for about 80 messages: the live follower never comes near it, the stalled one
        // passes it once its kernel buffers are full.
        max_queue_bytes: 256 * 1024,
        // No beat during the test: the eviction must follow from the overflow itself, not
        // from the watchdog's next look.
        sse_heartbeat: Duration::from_secs(600),
        // Nor is its connection let go during the test: it leaves its room by being evicted.
        write_timeout: Duration::from_secs(600),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    // A reader that sends its request and never reads, with a small receive buffer.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("SO_RCVBUF");
    let mut stalled = within("connect", socket.connect(server.addr))
        .await
        .expect("connect");
    stalled
        .write_all(b"GET /sse/busy/ HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("request");
    let mut follower = SseFollower::open(&server, "sse/busy/", None).await;
    follower.next_named("joined").await;
    eventually("both followers in the room", || async {
        (server.sessions_in("busy").await == 2).then_some(())
    })
    .await;

    let (counted, mut counts) = tokio::sync::mpsc::channel(1);
    let reader = tokio::spawn(async move {
        let mut expected = 1u64;
        loop {
            let event = follower.next_named("message").await;
            assert_eq!(event.json()["seq"], expected, "in order, none missing");
            if counted.send(expected).await.is_err() {
                return;
            }
            expected += 1;
        }
    });
    let text = "x".repeat(3 * 1024);
    let mut published = 0u64;
    // The stalled reader's kernel buffers take some megabytes first; bounded in count.
    while published < 3000 {
        publish(&server, "busy", &text).await;
        published += 1;
        if published.is_multiple_of(25)
            && server
                .metrics()
                .await
                .contains("roomcast_evictions_total{reason=\"slow\"} 1")
        {
            break;
        }
    }
    assert!(
        server
            .metrics()
            .await
            .contains("roomcast_evictions_total{reason=\"slow\"} 1"),
        "evicted after {published} messages"
    );
    eventually(
        "the evicted follower to leave while it still reads nothing",
        || async { (server.sessions_in("busy").await == 1).then_some(()) },
    )
    .await;
    loop {
        let seen = within("the live follower's messages", counts.recv()).await;
        match seen {
            Some(seen) if seen == published => break,
            Some(_) => {}
            None => panic!("the live follower's stream ended"),
        }
    }
    drop(counts);
    reader.abort();
    // Reading again, the stalled one finds its final event after what it had queued.
    let mut seen = Vec::new();
    let mut buffer = vec![0; 64 * 1024];
    within("the final evicted event", async {
        while !String::from_utf8_lossy(&seen).contains("event: evicted") {
            let n = stalled.read(&mut buffer).await.expect("read");
            assert!(n > 0, "the connection closed before the final event");
            seen.extend_from_slice(&buffer[..n]);
            if seen.len() > 1024 * 1024 {
                seen.drain(..seen.len() - 1024);
            }
        }
    })
    .await;
    assert!(String::from_utf8_lossy(&seen).contains("\"reason\":\"slow\""));
    eventually("the evicted follower to leave", || async {
        (server.sessions_in("busy").await == 0).then_some(())
    })
    .await;
}

#[tokio::test]
async fn a_follower_on_one_node_gets_what_another_publishes_and_resumes_on_either() {
    let redis = RedisServer::start().await;
    let urls = [redis.url()];
    let a = node(&urls).await;
    let b = node(&urls).await;
    let mut follower = SseFollower::open(&b, "sse/shared/", None).await;
    follower.next_named("joined").await;
    publish(&a, "shared", "one").await;
    publish(&a, "shared", "two").await;
    assert_eq!(follower.next_message().await, "one");
    assert_eq!(follower.next_message().await, "two");
    let last = follower.last_id.clone().expect("an id");
    drop(follower);
    publish(&a, "shared", "three").await;
    // Resuming on the other node: the same epoch and seq, numbered in Redis.
    let mut back = SseFollower::open(&a, "sse/shared/", Some(&last)).await;
    assert_eq!(back.next_event().await.json()["message"], "three");
    let joined = back.next_event().await;
    assert_eq!(
        (joined.name.as_str(), joined.json()["recovered"].as_bool()),
        ("joined", Some(true))
    );
    publish(&b, "shared", "four").await;
    assert_eq!(back.next_message().await, "four");
}
