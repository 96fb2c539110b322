//! Many nodes on Redis: every test starts its own redis-server(s) on free ports and nodes
//! pointed at them, and talks to them the way users do.

use std::collections::BTreeSet;
use std::time::Duration;

use roomcast_protocol::{
    Client, ConnectOptions, LeaveReason, Position, Ref, RoomMessage, ServerFrame, UserName,
};
use tokio::time::Instant;

use crate::redis_support::{NodeProcess, RedisServer, node, relayed, wait_ready};
use crate::support::{TestServer, eventually, next_text, room, user, wait_for, within};

/// Joins `name`; returns the `joined` frame's (epoch, seq, members, recovered, replay).
async fn join(
    client: &mut Client,
    name: &str,
    since: Option<Position>,
) -> (String, u64, Vec<UserName>, Option<bool>, usize) {
    within("join", client.join(&room(name), since, None))
        .await
        .expect("send join");
    wait_for(client, "joined", |frame| match frame {
        ServerFrame::Joined {
            epoch,
            seq,
            members,
            recovered,
            replay,
            ..
        } => Some((epoch.clone(), *seq, members.clone(), *recovered, *replay)),
        ServerFrame::Error { code, message, .. } => panic!("join refused: {code:?} {message}"),
        _ => None,
    })
    .await
}

async fn next_message(client: &mut Client) -> RoomMessage {
    wait_for(client, "a message", |frame| match frame {
        ServerFrame::Message(m) => Some(m.clone()),
        _ => None,
    })
    .await
}

async fn typed_at(url: &roomcast_protocol::ServerUrl, name: &str) -> Client {
    let options = ConnectOptions {
        user: Some(user(name)),
        room: None,
        token: None,
    };
    within("a typed connection", Client::connect(url, options))
        .await
        .expect("typed client connects")
}

/// `POST /api/rooms/{room}/messages`; returns the HTTP status and the receipt's seq.
async fn http_publish(server: &TestServer, name: &str, text: &str) -> (u16, Option<u64>) {
    let response = server.publish_as(name, "hq", text).await;
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.unwrap_or_default();
    (status, body["seq"].as_u64())
}

async fn members_listed(url: String) -> Option<Vec<String>> {
    let response = reqwest::get(url).await.ok()?;
    if !response.status().is_success() {
        return None;
    }
    let body: serde_json::Value = response.json().await.ok()?;
    body["members"].as_array().map(|m| {
        m.iter()
            .filter_map(|u| u.as_str().map(str::to_owned))
            .collect()
    })
}

#[tokio::test]
async fn members_on_three_nodes_get_every_message_from_any_node_in_one_order_and_see_each_other() {
    let redis = RedisServer::start().await;
    let urls = [redis.url()];
    let nodes = [node(&urls).await, node(&urls).await, node(&urls).await];
    let names = ["ana", "bo", "cy"];
    let mut clients = Vec::new();
    for (server, name) in nodes.iter().zip(names) {
        let mut client = server.typed(name).await;
        join(&mut client, "lobby", None).await;
        clients.push(client);
    }
    // The last joiner already sees the members of the other nodes.
    for server in &nodes {
        let listed = eventually("presence of all nodes", || {
            let url = server.http_url("api/rooms/lobby");
            async move { members_listed(url).await.filter(|m| m.len() == 3) }
        })
        .await;
        assert_eq!(listed, names);
    }
    let mut tutorial = nodes[1].member("lobby").await;

    // Each node's typed member sends 5 (with refs: each gets an ack), node 3's HTTP API sends 5.
    for round in 0..5 {
        for (i, client) in clients.iter_mut().enumerate() {
            within(
                "publish",
                client.publish(
                    &room("lobby"),
                    &format!("{}-{round}", names[i]),
                    Some(Ref::Number(round)),
                ),
            )
            .await
            .expect("publish");
        }
        assert_eq!(
            http_publish(&nodes[2], "lobby", &format!("hq-{round}"))
                .await
                .0,
            200
        );
    }
    let mut orders = Vec::new();
    for client in &mut clients {
        let mut seen = Vec::new();
        while seen.len() < 20 {
            let m = next_message(client).await;
            seen.push((m.seq, m.message));
        }
        let seqs: Vec<u64> = seen.iter().map(|(s, _)| *s).collect();
        assert_eq!(
            seqs,
            (1..=20).collect::<Vec<_>>(),
            "one numbering, no gap, no duplicate"
        );
        for sender in ["ana", "bo", "cy", "hq"] {
            let own: Vec<&String> = seen
                .iter()
                .map(|(_, t)| t)
                .filter(|t| t.starts_with(sender))
                .collect();
            let expected: Vec<String> = (0..5).map(|r| format!("{sender}-{r}")).collect();
            assert_eq!(
                own,
                expected.iter().collect::<Vec<_>>(),
                "{sender}'s messages keep their order"
            );
        }
        orders.push(seen);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "every node delivers the same order"
    );
    let mut tutorial_texts = Vec::new();
    for _ in 0..20 {
        tutorial_texts.push(tutorial.next_text().await);
    }
    let typed_texts: Vec<String> = orders[0].iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(tutorial_texts, typed_texts);
}

#[tokio::test]
async fn a_client_that_moves_to_another_node_recovers_exactly_what_it_missed() {
    let redis = RedisServer::start().await;
    let urls = [redis.url()];
    let (one, two) = (node(&urls).await, node(&urls).await);
    let mut ana = one.typed("ana").await;
    let (epoch, _, _, _, _) = join(&mut ana, "lobby", None).await;
    for i in 1..=3 {
        http_publish(&one, "lobby", &format!("before {i}")).await;
    }
    for _ in 0..3 {
        next_message(&mut ana).await;
    }
    within("close", ana.close("moving")).await.expect("close");
    for i in 1..=7 {
        assert_eq!(
            http_publish(&one, "lobby", &format!("missed {i}")).await.0,
            200
        );
    }
    let mut back = two.typed("ana").await;
    let since = Position {
        epoch: epoch.clone(),
        seq: 3,
    };
    let (now_epoch, seq, _, recovered, replay) = join(&mut back, "lobby", Some(since)).await;
    assert_eq!(
        (now_epoch, seq, recovered, replay),
        (epoch, 10, Some(true), 7)
    );
    for i in 1..=7 {
        let m = next_message(&mut back).await;
        assert_eq!((m.seq, m.message), (3 + i, format!("missed {i}")));
    }
    http_publish(&one, "lobby", "live").await;
    let m = next_message(&mut back).await;
    assert_eq!((m.seq, m.message.as_str()), (11, "live"));
}

#[tokio::test]
async fn a_killed_node_s_members_leave_presence_within_the_bound() {
    let redis = RedisServer::start().await;
    let one = node(&[redis.url()]).await;
    let mut two = NodeProcess::start(&redis.url(), "1s").await;
    let mut ana = one.typed("ana").await;
    join(&mut ana, "lobby", None).await;
    eventually("ana in presence", || {
        let url = one.http_url("api/rooms/lobby");
        async move { members_listed(url).await.filter(|m| m == &["ana"]) }
    })
    .await;
    let mut bob = typed_at(&two.url, "bob").await;
    let (_, _, members, _, _) = join(&mut bob, "lobby", None).await;
    assert_eq!(members, [user("ana"), user("bob")]);
    wait_for(&mut ana, "bob's join", |f| {
        matches!(f, ServerFrame::Join { user, .. } if user.as_str() == "bob").then_some(())
    })
    .await;

    two.kill().await;
    let killed = Instant::now();
    let reason = wait_for(&mut ana, "bob's leave", |frame| match frame {
        ServerFrame::Leave { user, reason, .. } if user.as_str() == "bob" => Some(*reason),
        _ => None,
    })
    .await;
    // The bound: the node timeout (1 s) plus a third of it for the sweeping node's next beat;
    // the margin is for a loaded machine, far below channels_redis's 24 hours.
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "took {:?}",
        killed.elapsed()
    );
    // `timeout` as the sweep announced it; `closed` if this node's own link to Redis dropped
    // meanwhile (a loaded machine) and it learnt of the leave by loading the room again.
    assert!(
        matches!(reason, LeaveReason::Timeout | LeaveReason::Closed),
        "{reason:?}"
    );
    let listed = members_listed(one.http_url("api/rooms/lobby")).await;
    assert_eq!(listed, Some(vec!["ana".to_owned()]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_redis_tells_its_members_who_left_meanwhile() {
    // Presence events published while a node's link to Redis is down never reach it; when it
    // comes back it loads the room again and must tell its members the difference.
    let redis = RedisServer::start().await;
    let target: std::net::SocketAddr = redis
        .url()
        .trim_start_matches("redis://")
        .parse()
        .expect("redis address");
    let proxy = roomcast_testing::TcpProxy::start(target).await;
    let through_proxy = format!(
        "redis://{}",
        proxy
            .url
            .to_string()
            .trim_start_matches("http://")
            .trim_end_matches('/')
    );
    let one = node(&[through_proxy]).await;
    let two = node(&[redis.url()]).await;
    let mut ana = one.typed("ana").await;
    join(&mut ana, "lobby", None).await;
    let mut bob = two.typed("bob").await;
    join(&mut bob, "lobby", None).await;
    wait_for(&mut ana, "bob's join", |f| {
        matches!(f, ServerFrame::Join { user, .. } if user.as_str() == "bob").then_some(())
    })
    .await;

    proxy.cut();
    wait_ready(&one, false).await;
    within("bob leaves", bob.close("bye"))
        .await
        .expect("close bob");
    eventually("bob gone from presence", || {
        let url = two.http_url("api/rooms/lobby");
        async move {
            members_listed(url)
                .await
                .filter(|m| !m.contains(&"bob".to_owned()))
        }
    })
    .await;
    proxy.reopen();
    wait_ready(&one, true).await;
    let reason = wait_for(&mut ana, "bob's leave", |frame| match frame {
        ServerFrame::Leave { user, reason, .. } if user.as_str() == "bob" => Some(*reason),
        _ => None,
    })
    .await;
    assert_eq!(
        reason,
        LeaveReason::Closed,
        "the reason was not seen, only the absence"
    );
}

/// A typed publisher that sends one message every 20 ms (under the rate limit) (bounded in count) and
/// collects what each publish was answered: the acked seqs, and how many were refused.
struct Traffic {
    stop: tokio::sync::oneshot::Sender<()>,
    answers: tokio::task::JoinHandle<(BTreeSet<u64>, usize)>,
}

impl Traffic {
    fn start(client: Client) -> Self {
        let (mut sender, mut receiver) = client.split();
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let (sent_tx, mut sent_rx) = tokio::sync::watch::channel(0_u64);
        tokio::spawn(async move {
            let mut pace = tokio::time::interval(Duration::from_millis(20));
            for i in 1..=4000_u64 {
                tokio::select! {
                    _ = &mut stopped => break,
                    _ = pace.tick() => {}
                }
                let frame = roomcast_protocol::ClientFrame::Publish {
                    room: room("lobby"),
                    message: format!("t{i}"),
                    data: None,
                    reference: Some(Ref::Number(i)),
                };
                if sender.send(&frame).await.is_err() {
                    break;
                }
                let _ = sent_tx.send(i);
            }
        });
        let answers = tokio::spawn(async move {
            let (mut acked, mut refused, mut answered) = (BTreeSet::new(), 0, 0_u64);
            loop {
                // Done once the sender stopped and every publish it sent was answered.
                if sent_rx.has_changed().is_err() && answered == *sent_rx.borrow() {
                    return (acked, refused);
                }
                let next = tokio::select! {
                    next = receiver.recv() => next,
                    _ = sent_rx.changed() => continue,
                };
                match next {
                    Ok(roomcast_protocol::Incoming::Frame(ServerFrame::Ack { seq, .. })) => {
                        acked.insert(seq);
                        answered += 1;
                    }
                    Ok(roomcast_protocol::Incoming::Frame(ServerFrame::Error { code, .. })) => {
                        assert_eq!(code.as_str(), "unavailable", "a refused publish says why");
                        refused += 1;
                        answered += 1;
                    }
                    Ok(roomcast_protocol::Incoming::Frame(_)) => {}
                    other => panic!("the publisher's session ended: {other:?}"),
                }
            }
        });
        Self { stop, answers }
    }

    async fn finish(self) -> (BTreeSet<u64>, usize) {
        let _ = self.stop.send(());
        within("the publisher's answers", self.answers)
            .await
            .expect("answers task")
    }
}

#[tokio::test]
async fn while_redis_is_down_publishes_fail_loudly_and_afterwards_nothing_acknowledged_is_lost() {
    let mut redis = RedisServer::start_persistent().await;
    let urls = [redis.url()];
    let (one, two) = (node(&urls).await, node(&urls).await);
    let mut watchers = Vec::new();
    for (server, name) in [(&one, "w1"), (&two, "w2")] {
        let mut client = server.typed(name).await;
        join(&mut client, "lobby", None).await;
        watchers.push(client);
    }
    let mut talker = two.typed("talker").await;
    join(&mut talker, "lobby", None).await;
    let traffic = Traffic::start(talker);
    let mut acked = BTreeSet::new();
    for i in 0..10 {
        let server = if i % 2 == 0 { &one } else { &two };
        let (status, seq) = http_publish(server, "lobby", &format!("m{i}")).await;
        assert_eq!(status, 200);
        acked.insert(seq.expect("a receipt has a seq"));
    }

    redis.kill().await;
    wait_ready(&one, false).await;
    wait_ready(&two, false).await;
    for i in 10..20 {
        let server = if i % 2 == 0 { &one } else { &two };
        let (status, _) = http_publish(server, "lobby", &format!("m{i}")).await;
        assert_eq!(status, 503, "a publish that cannot be delivered says so");
    }
    redis.restart().await;
    wait_ready(&one, true).await;
    wait_ready(&two, true).await;
    // Each node's first publish may still meet the restarted Redis loading its data (LOADING);
    // it is refused loudly (503) and a retry goes through: both retries are bounded.
    for (server, text) in [(&one, "r1"), (&two, "r2")] {
        let seq = eventually("a publish to go through after the restart", || async move {
            let (status, seq) = http_publish(server, "lobby", text).await;
            (status == 200).then_some(seq).flatten()
        })
        .await;
        acked.insert(seq);
    }
    for i in 20..30 {
        let server = if i % 2 == 0 { &one } else { &two };
        let (status, seq) = http_publish(server, "lobby", &format!("m{i}")).await;
        assert_eq!(
            status, 200,
            "delivery resumes without a restart of the nodes"
        );
        acked.insert(seq.expect("seq"));
    }
    let (talked, refused) = traffic.finish().await;
    assert!(
        refused > 0,
        "the publisher's session saw the outage as errors, and stayed open"
    );
    assert!(!talked.is_empty());
    acked.extend(talked);
    let last = *acked.iter().next_back().expect("acked");
    for watcher in &mut watchers {
        let mut seen = BTreeSet::new();
        while !seen.contains(&last) {
            let m = next_message(watcher).await;
            assert!(seen.insert(m.seq), "seq {} delivered twice", m.seq);
        }
        let missing: Vec<_> = acked.difference(&seen).collect();
        assert!(
            missing.is_empty(),
            "acknowledged but never delivered: {missing:?}"
        );
    }
}

#[tokio::test]
async fn a_node_unsubscribes_when_its_last_member_leaves() {
    let redis = RedisServer::start().await;
    let one = node(&[redis.url()]).await;
    let channel = "roomcast:room:quiet".to_owned();
    let mut ana = one.typed("ana").await;
    join(&mut ana, "quiet", None).await;
    assert!(redis.channels().await.contains(&channel));
    let mut tutorial = one.tutorial("quiet").await;
    within("close", ana.close("bye")).await.expect("close");
    // The tutorial member still holds the room: still subscribed, still delivering.
    http_publish(&one, "quiet", "still here").await;
    assert_eq!(next_text(&mut tutorial).await, "still here");
    assert!(redis.channels().await.contains(&channel));
    drop(tutorial);
    eventually("the node to unsubscribe", || async {
        (!redis.channels().await.contains(&channel)).then_some(())
    })
    .await;
}

#[tokio::test]
async fn with_two_shards_rooms_land_on_both_and_every_room_works_from_every_node() {
    let (first, second) = (RedisServer::start().await, RedisServer::start().await);
    let urls = [first.url(), second.url()];
    let (one, two) = (node(&urls).await, node(&urls).await);
    let rooms: Vec<String> = (0..8).map(|i| format!("room-{i}")).collect();
    let mut listeners = Vec::new();
    for name in &rooms {
        let mut client = two.typed("ana").await;
        join(&mut client, name, None).await;
        listeners.push(client);
    }
    let (on_first, on_second) = (first.channels().await, second.channels().await);
    assert!(
        !on_first.is_empty() && !on_second.is_empty(),
        "{on_first:?} / {on_second:?}"
    );
    assert_eq!(
        on_first.len() + on_second.len(),
        rooms.len(),
        "each room lives on one shard"
    );
    for (name, listener) in rooms.iter().zip(&mut listeners) {
        assert_eq!(http_publish(&one, name, &format!("to {name}")).await.0, 200);
        let m = next_message(listener).await;
        assert_eq!(
            (m.room.as_str(), m.message),
            (name.as_str(), format!("to {name}"))
        );
    }
}

#[tokio::test]
async fn garbage_on_a_room_channel_is_counted_and_delivery_goes_on() {
    let redis = RedisServer::start().await;
    let one = node(&[redis.url()]).await;
    let mut ana = one.typed("ana").await;
    join(&mut ana, "lobby", None).await;
    let mut connection = redis.connection().await;
    for payload in ["{\"message\":\"not ours\"}", "rc1\nzz\n1", "rc1\nm\nseven"] {
        let _: i64 = redis::cmd("PUBLISH")
            .arg("roomcast:room:lobby")
            .arg(payload)
            .query_async(&mut connection)
            .await
            .expect("PUBLISH");
    }
    http_publish(&one, "lobby", "real").await;
    assert_eq!(next_message(&mut ana).await.message, "real");
    let metrics = within("metrics", reqwest::get(one.http_url("metrics")))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("metrics text");
    for kind in ["foreign", "unknown_kind", "bad_field"] {
        assert!(
            metrics.contains(&format!(
                "roomcast_relay_garbage_total{{kind=\"{kind}\"}} 1"
            )),
            "{metrics}"
        );
    }
    assert!(
        metrics.contains("roomcast_redis_up{shard=\"0\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_relay_subscribed_rooms{shard=\"0\"} 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_node_whose_redis_is_unreachable_starts_unready_and_refuses_joins() {
    let port = crate::redis_support::free_port().await;
    let url = format!("redis://127.0.0.1:{port}");
    let server = TestServer::start(relayed(&[url])).await;
    wait_ready(&server, false).await;
    let mut tutorial = server.raw("lobby").await;
    let (code, _) = crate::support::raw_close(&mut tutorial).await;
    assert_eq!(
        code, 1013,
        "a tutorial join the node cannot serve is told to try again later"
    );
}

#[tokio::test]
async fn joining_while_another_node_publishes_replays_then_goes_live_without_a_gap_or_a_repeat() {
    let redis = RedisServer::start().await;
    let urls = [redis.url()];
    let (one, two) = (node(&urls).await, node(&urls).await);
    http_publish(&one, "busy", "first").await;
    // A publisher on node 1, bounded in count, running while node 2's joins happen.
    let publisher = {
        let url = one.http_url("api/rooms/busy/messages");
        let http = one.http().clone();
        tokio::spawn(async move {
            for i in 0..3000 {
                let sent = http
                    .post(&url)
                    .json(&serde_json::json!({"message": format!("m{i}")}))
                    .send()
                    .await;
                if sent.is_err() {
                    break;
                }
            }
        })
    };
    let channel = "roomcast:room:busy".to_owned();
    for round in 0..4 {
        // Node 2 has no member in the room: each join subscribes and loads it anew.
        eventually("node 2 to be unsubscribed", || async {
            (!redis.channels().await.contains(&channel)).then_some(())
        })
        .await;
        let mut client = two.typed(&format!("joiner{round}")).await;
        let (epoch, _, _, _, _) = join(&mut client, "busy", None).await;
        within("close", client.close("again")).await.expect("close");
        let mut client = two.typed(&format!("joiner{round}")).await;
        let since = Position { epoch, seq: 0 };
        let (_, seq, _, _, replay) = join(&mut client, "busy", Some(since)).await;
        let first = seq + 1 - replay as u64;
        for expected in first..first + replay as u64 + 30 {
            let m = next_message(&mut client).await;
            assert_eq!(
                m.seq, expected,
                "round {round}: replay then live, in order, once"
            );
        }
        within("close", client.close("done")).await.expect("close");
    }
    publisher.abort();
}
