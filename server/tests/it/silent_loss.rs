//! Real silent loss: members whose sockets live in a network namespace, whose link is then cut
//! (nothing arrives either way, no FIN, no RST). The heartbeat must evict them in its bound,
//! the room must hear why, and the kernel must hold nothing for them afterwards.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use roomcast_protocol::{ClientFrame, Incoming, LeaveReason, ServerFrame, TutorialSend};
use roomcast_server::Config;
use roomcast_testing::netns::{Remote, sockets_to};
use tokio::time::Instant;

use crate::support::{Netns, TestServer, netns, reusable_listener, room, wait_for, within};

const INTERVAL: Duration = Duration::from_secs(1);
const TIMEOUT: Duration = Duration::from_secs(2);
/// Scheduling tolerance on the heartbeat's upper bound, as in the heartbeat tests.
const SLACK: Duration = Duration::from_secs(1);
/// Speaker messages one test sends at most (one every 100 ms covers the 4 s bound).
const MAX_SPOKEN: u64 = 100;

/// A server listening on the host end of `netns`'s link, reachable from both sides.
fn server_on_link(netns: &Netns, config: Config) -> TestServer {
    let addr = SocketAddr::new(IpAddr::V4(netns.host_addr()), 0);
    TestServer::start_on(reusable_listener(addr), config)
}

/// Polls the kernel's socket table until nothing to `peer` remains; fails at `deadline` with
/// what is left.
async fn no_sockets_by(peer: IpAddr, deadline: Instant) {
    loop {
        let left = sockets_to(peer).await;
        if left.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "sockets to {peer} still exist at the bound:\n{}",
            left.join("\n")
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn members_lost_without_a_word_are_evicted_in_the_bound_and_their_sockets_are_gone() {
    let config = Config {
        ping_interval: INTERVAL,
        ping_timeout: TIMEOUT,
        ..Config::default()
    };
    let netns = netns().await;
    let server = server_on_link(&netns, config);
    let mut observer = server.peer("observer", "lobby").await;
    let (mut speaker, mut speaker_reads) = server.peer("speaker", "lobby").await.split();
    // The speaker reads (and so answers pings) on its own; what it reads is not under test.
    let speaker_reader =
        tokio::spawn(
            async move { while let Ok(Incoming::Frame(_)) = speaker_reads.recv().await {} },
        );

    let mut lost = Vec::new();
    for i in 0..3 {
        let name = format!("lost-{i}");
        lost.push(Remote::join(&netns, server.addr, "lobby", &name).await);
        wait_for(&mut observer, "the lost member's join", |f| {
            matches!(f, ServerFrame::Join { user, .. } if user.as_str() == name).then_some(())
        })
        .await;
    }
    assert!(
        lost.iter()
            .all(|r| r.local.ip() == IpAddr::V4(netns.ns_addr()))
    );

    netns.cut().await.expect("cut the link");
    let cut = Instant::now();
    let lobby = room("lobby");
    let speaking = tokio::spawn(async move {
        for i in 0..MAX_SPOKEN {
            let text = format!("after the cut {i}");
            let frame = ClientFrame::Publish {
                room: lobby.clone(),
                message: text,
                data: None,
                reference: None,
            };
            if speaker.send(&frame).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });

    // Every leave, with its time since the cut; every speaker message, in order.
    let mut left = Vec::new();
    let mut spoken = Vec::new();
    within("three leaves", async {
        while left.len() < 3 {
            match observer.recv().await.expect("observer reads") {
                Incoming::Frame(ServerFrame::Leave { user, reason, .. }) => {
                    left.push((user.as_str().to_owned(), reason, cut.elapsed()));
                }
                Incoming::Frame(ServerFrame::Message(m)) if m.user.as_str() == "speaker" => {
                    spoken.push(m.seq);
                }
                Incoming::Closed(info) => panic!("the observer was closed: {info}"),
                _ => {}
            }
        }
    })
    .await;
    let upper = INTERVAL + TIMEOUT + SLACK;
    for (user, reason, after) in &left {
        assert!(user.starts_with("lost-"), "only the lost left: {user}");
        assert_eq!(
            *reason,
            LeaveReason::Timeout,
            "{user} left for the heartbeat"
        );
        assert!(
            *after >= TIMEOUT && *after <= upper,
            "{user} evicted {after:?} after the cut, outside [{TIMEOUT:?}, {upper:?}]"
        );
    }
    // The live member kept talking to the room throughout, nothing lost or reordered.
    assert!(
        spoken.len() >= 10,
        "the speaker's messages kept flowing: {spoken:?}"
    );
    assert!(spoken.windows(2).all(|w| w[1] == w[0] + 1), "{spoken:?}");
    // The server reset what it evicted: no socket to the lost peers, in the kernel's own view.
    no_sockets_by(IpAddr::V4(netns.ns_addr()), cut + upper).await;
    assert_eq!(server.sessions_in("lobby").await, 2, "observer and speaker");

    speaking.abort();
    speaker_reader.abort();
    netns.remove().await;
}

#[tokio::test]
async fn a_room_publishing_to_a_lost_member_holds_no_more_for_it_than_the_queue_bound() {
    const QUEUE_BYTES: usize = 256 * 1024;
    const MESSAGE_BYTES: usize = 4 * 1024;
    /// 16 MiB published at the lost member: 64 times its queue bound.
    const MESSAGES: usize = 4096;
    /// Messages in flight before the publisher waits for its own echo (a paced publisher).
    const WINDOW: usize = 16;
    let config = Config {
        max_queue_bytes: QUEUE_BYTES,
        // Neither the heartbeat nor a stalled write may end it first: the queue bound must.
        ping_interval: Duration::from_secs(30),
        ping_timeout: Duration::from_secs(30),
        write_timeout: Duration::from_secs(60),
        rate_per_second: 0,
        ..Config::default()
    };
    let netns = netns().await;
    let server = server_on_link(&netns, config);
    let mut observer = server.peer("observer", "lobby").await;
    let lost = Remote::join(&netns, server.addr, "lobby", "lost").await;
    wait_for(&mut observer, "the lost member's join", |f| {
        matches!(f, ServerFrame::Join { user, .. } if user.as_str() == "lost").then_some(())
    })
    .await;
    // The observer reads all along (16 MiB passes through it too), keeping the lost one's leave.
    let lost_leave = tokio::spawn(async move {
        loop {
            match observer.recv().await.expect("observer reads") {
                Incoming::Frame(ServerFrame::Leave { user, reason, .. })
                    if user.as_str() == "lost" =>
                {
                    return reason;
                }
                Incoming::Closed(info) => panic!("the observer was closed: {info}"),
                _ => {}
            }
        }
    });
    let (mut send, mut echo) = server.tutorial_as("lobby", "publisher").await.split();
    let rss_before = resident_bytes(&server).await;

    netns.cut().await.expect("cut the link");
    let payload = "x".repeat(MESSAGE_BYTES);
    let mut peak = rss_before;
    let publishing = async {
        let mut echoed = 0;
        for i in 0..MESSAGES {
            if i >= WINDOW {
                echo.recv().await.expect("echo");
                echoed += 1;
            }
            let frame = TutorialSend {
                message: format!("{i:05}{payload}"),
            };
            send.send(&frame).await.expect("send");
            if i % 256 == 0 {
                peak = peak.max(resident_bytes(&server).await);
            }
        }
        while echoed < MESSAGES {
            echo.recv().await.expect("echo");
            echoed += 1;
        }
    };
    within("16 MiB published to a room with a lost member", publishing).await;
    let reason = within("the lost member's leave", lost_leave)
        .await
        .expect("observer task");
    assert_eq!(reason, LeaveReason::Slow, "evicted by its queue bound");
    peak = peak.max(resident_bytes(&server).await);
    let growth = peak.saturating_sub(rss_before);
    eprintln!("resident memory: {rss_before} before the cut, peak {peak}, growth {growth}");
    // An unbounded queue would have grown by the 16 MiB published; the bound allows the
    // queue, the socket's send buffer, and allocator noise.
    assert!(
        growth < 8 * 1024 * 1024,
        "resident memory grew by {growth} bytes while 16 MiB went to a lost member"
    );
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("roomcast_queue_overflows_total 1"),
        "{metrics}"
    );
    no_sockets_by(IpAddr::V4(netns.ns_addr()), Instant::now() + SLACK).await;
    drop(lost);
    netns.remove().await;
}

/// The server process's resident memory, from its own `/metrics`.
async fn resident_bytes(server: &TestServer) -> u64 {
    let metrics = server.metrics().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("roomcast_process_resident_memory_bytes "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the resident memory gauge")
}
