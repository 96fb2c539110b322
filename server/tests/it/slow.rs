//! Slow consumers: evicted once their queue passes its bound; the room never waits for them.

use std::time::Duration;

use futures_util::future::join;
use roomcast_protocol::{Incoming, TutorialFrame};
use roomcast_server::Config;

use crate::support::{TestServer, eventually, within};

/// 6.4 MB in all: five times what the slow reader can hold (its 1 MiB queue and the kernel's
/// buffers), small enough for a debug build on a busy machine to publish within the wait.
const MESSAGES: usize = 400;
const MESSAGE_BYTES: usize = 16 * 1024;
/// Messages the publisher may have in flight before it waits for its own echo: keeps the live
/// members' lag (16 x 16 KiB) well under their 1 MiB bound, as a paced real publisher would.
const WINDOW: usize = 16;

#[tokio::test]
async fn a_reader_that_stops_is_closed_as_slow_while_the_others_receive_everything() {
    let config = Config {
        // Long enough that the queue bound, not a stalled write, is what evicts.
        write_timeout: Duration::from_secs(60),
        rate_per_second: 0,
        ..Config::default()
    };
    let server = TestServer::start(config).await;

    // A reader that never reads, with a tiny receive window so the kernel cannot hide it.
    let mut slow = server.stalled_reader("lobby", "slow").await;

    let mut live = server.tutorial("lobby").await;
    let (mut send, mut echo) = server.tutorial("lobby").await.split();
    let payload = "x".repeat(MESSAGE_BYTES);

    // The publisher is a member too and reads its own echo, which also paces it.
    let publishing = async {
        let mut echoed = 0;
        for i in 0..MESSAGES {
            if i >= WINDOW {
                echo.recv().await.expect("echo");
                echoed += 1;
            }
            let frame = roomcast_protocol::TutorialSend {
                message: format!("{i:04}{payload}"),
            };
            send.send(&frame).await.expect("send");
        }
        while echoed < MESSAGES {
            echo.recv().await.expect("echo");
            echoed += 1;
        }
    };
    let receiving = async {
        for i in 0..MESSAGES {
            match live.recv().await.expect("recv") {
                Incoming::Frame(TutorialFrame::Message(m)) => {
                    assert_eq!(&m.message[..4], format!("{i:04}"), "in order, none lost");
                }
                other => panic!("live member got {other:?} at message {i}"),
            }
        }
    };
    within(
        "every message to reach the live member",
        join(publishing, receiving),
    )
    .await;

    eventually("the slow reader to be evicted", || async {
        (server.sessions_in("lobby").await == 2).then_some(())
    })
    .await;
    let metrics = server.metrics().await;
    assert!(
        metrics.contains("roomcast_evictions_total{reason=\"slow\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("roomcast_queue_overflows_total 1"),
        "{metrics}"
    );

    // The server stopped sending to it: what it can still read is far less than was published.
    let mut received = 0;
    within("the slow socket to end", async {
        while let Ok(Some(frame)) = slow.read_frame().await {
            received += frame.payload.len();
        }
    })
    .await;
    assert!(
        received < MESSAGES * MESSAGE_BYTES / 2,
        "the slow reader was sent {} bytes of {}",
        received,
        MESSAGES * MESSAGE_BYTES
    );
}
