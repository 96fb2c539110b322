//! Heartbeat eviction: what the original POC existed to prove.

use std::sync::Arc;
use std::time::Duration;

use roomcast_protocol::raw::opcode;
use roomcast_server::Config;
use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::support::{TestServer, eventually, raw_close, within};

fn quick_heartbeat() -> Config {
    Config {
        ping_interval: Duration::from_millis(300),
        ping_timeout: Duration::from_millis(500),
        ..Config::default()
    }
}

#[tokio::test]
async fn a_client_that_never_pongs_is_evicted_within_the_heartbeat_bounds_and_then_left_alone() {
    let config = quick_heartbeat();
    let (interval, timeout) = (config.ping_interval, config.ping_timeout);
    let server = TestServer::start(config).await;
    let mut live = server.member("lobby").await;
    // Completes the handshake, then only reads: it never answers a ping.
    let mut dead = server.raw("lobby").await;
    let went_silent = Instant::now();

    let (code, reason) = within("the eviction", raw_close(&mut dead)).await;
    let evicted_after = went_silent.elapsed();
    assert_eq!(code, 4000, "evicted with the heartbeat code: {reason}");
    assert!(reason.contains("pong"), "the reason says why: {reason}");
    assert!(
        evicted_after >= timeout && evicted_after <= interval + timeout + Duration::from_secs(1),
        "evicted after {evicted_after:?}, outside [{timeout:?}, {:?}]",
        interval + timeout + Duration::from_secs(1)
    );
    // It left the room before the close frame was sent, and nothing is sent to it afterwards.
    assert_eq!(server.sessions_in("lobby").await, 1);
    live.say("after eviction").await;
    assert_eq!(live.next_text().await, "after eviction");
    let after = within("the server to close the socket", dead.read_frame())
        .await
        .expect("clean end of stream");
    assert_eq!(after, None, "nothing may follow the close frame");
}

#[tokio::test]
async fn a_client_that_pauses_for_less_than_the_timeout_is_not_evicted() {
    let config = Config {
        ping_interval: Duration::from_millis(200),
        ping_timeout: Duration::from_millis(800),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut live = server.member("lobby").await;
    let mut pausing = server.raw("lobby").await;
    // Five pauses of 300 ms (the behaviour under test), each followed by a sign of life: the
    // session stays silent past several pings, but never for the 800 ms timeout.
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        within("a pong", pausing.send(opcode::PONG, b""))
            .await
            .expect("write pong");
    }
    let hello = br#"{"message":"still here"}"#;
    within("a message", pausing.send(opcode::TEXT, hello))
        .await
        .expect("write message");
    assert_eq!(
        live.next_text().await,
        "still here",
        "the paused client is still a member"
    );
    assert_eq!(server.sessions_in("lobby").await, 2);
}

#[tokio::test]
async fn a_vanished_client_leaves_the_room_as_soon_as_the_kernel_says_so() {
    // A heartbeat of minutes: only the reset or end of stream can explain a prompt leave.
    let config = Config {
        ping_interval: Duration::from_secs(300),
        ping_timeout: Duration::from_secs(300),
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let _live = server.member("lobby").await;
    let reset = server.raw("lobby").await;
    let closed = server.raw("lobby").await;
    assert_eq!(server.sessions_in("lobby").await, 3);

    reset
        .stream
        .set_zero_linger()
        .expect("SO_LINGER 0, so dropping sends a reset");
    drop(reset);
    eventually("the reset client to leave", || async {
        (server.sessions_in("lobby").await == 2).then_some(())
    })
    .await;

    drop(closed); // a FIN without a close frame
    eventually("the closed client to leave", || async {
        (server.sessions_in("lobby").await == 1).then_some(())
    })
    .await;

    // Vanishing is not misbehaving: no eviction of any kind is counted for either.
    let metrics = server
        .http()
        .get(server.http_url("metrics"))
        .send()
        .await
        .expect("GET");
    let metrics = metrics.text().await.expect("text");
    assert!(!metrics.contains("roomcast_evictions_total{"), "{metrics}");
}

// Multi-threaded like the real server, with each client on its own task: on one thread the
// test's own clients would starve each other of the chance to answer pings.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_of_a_busy_room_keeps_answering_pings_and_is_not_evicted() {
    let config = Config {
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(300),
        rate_per_second: 0,
        // Room enough that the backlog, never the queue bound, is what is exercised.
        max_queue_bytes: 64 * 1024 * 1024,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    // A raw member answers pings itself, so the test sees every ping it was sent.
    let mut reader = server.raw("busy").await;
    let (mut publisher, mut echo) = server.tutorial("busy").await.split();
    /// Pings the busy member must see and answer: five intervals of a room that never goes
    /// quiet, longer than the timeout, so unread pongs would have evicted it.
    const PINGS: usize = 5;
    /// Messages the publisher may be ahead of the reader: the reader's queue is never empty
    /// for long, yet it never falls so far behind that a ping waits in the kernel's buffers
    /// for longer than the timeout (that would be a slow reader, another test's subject).
    const WINDOW: usize = 64;
    /// A bound on the publishing, whatever the machine's speed.
    const MAX_MESSAGES: usize = 100_000;
    let ahead = Arc::new(Semaphore::new(WINDOW));
    let frame = roomcast_protocol::TutorialSend {
        message: "y".repeat(2048),
    };
    let publishing = tokio::spawn({
        let ahead = ahead.clone();
        async move {
            for _ in 0..MAX_MESSAGES {
                let Ok(permit) = ahead.acquire().await else {
                    break;
                };
                permit.forget();
                if publisher.send(&frame).await.is_err() {
                    break;
                }
            }
        }
    });
    let draining_echo = tokio::spawn(async move { while echo.recv().await.is_ok() {} });
    let (mut pings, mut messages) = (0, 0);
    within("pings answered while the room stays busy", async {
        while pings < PINGS || messages < 1000 {
            let frame = reader.read_frame().await.expect("read").expect("a frame");
            match frame.opcode {
                opcode::PING => {
                    pings += 1;
                    reader.pong(&frame.payload).await.expect("pong");
                }
                opcode::TEXT => {
                    messages += 1;
                    ahead.add_permits(1);
                }
                _ => panic!("the busy member was closed: {:?}", frame.close()),
            }
        }
    })
    .await;
    assert_eq!(
        server.sessions_in("busy").await,
        2,
        "neither member was evicted"
    );
    ahead.close();
    publishing.abort();
    draining_echo.abort();
}
