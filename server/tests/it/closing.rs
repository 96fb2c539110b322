//! How sessions close on the wire: an evicted peer that still listens hears why and sees a clean
//! end, a client's close is echoed, and the kernel lets go of a dead reader at once.

use std::net::SocketAddr;

use roomcast_protocol::raw::opcode;
use roomcast_server::Config;
use tokio::io::AsyncWriteExt;

use crate::support::{TestServer, eventually, raw_close, within};
use crate::wire::{Split, message, next_frame};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_evicted_as_slow_while_it_still_sends_sees_4001_not_a_reset() {
    // Issue 8 #4: the socket was dropped with the client's frames unread, which resets the
    // connection and destroys the close frame in flight.
    let config = Config {
        max_queue_bytes: 64 * 1024,
        // 10 KB messages; the queue must hold the largest one plus a frame header.
        max_message_bytes: 16 * 1024,
        send_buffer_bytes: 16 * 1024,
        rate_per_second: 0,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let Split {
        mut read,
        mut write,
        mut reader,
    } = Split::new(server.stalled_reader("lobby", "bursty").await);
    let padding = "y".repeat(10_000);
    let burst: Vec<u8> = (0..400).flat_map(|_| message(&padding)).collect();
    // It sends far more than it reads: its echoes pile up and it is evicted as slow while
    // bytes it sent are still unread by the server.
    let writing = tokio::spawn(async move {
        // The server may end the connection before all of it is written.
        let _unfinished = write.write_all(&burst).await;
        write
    });
    eventually("the bursty member to be evicted", || async {
        (server.sessions_in("lobby").await == 0).then_some(())
    })
    .await;
    let close = within("the close frame", async {
        loop {
            match next_frame(&mut read, &mut reader).await {
                Ok(Some(frame)) => {
                    if let Some(close) = frame.close() {
                        return close;
                    }
                }
                Ok(None) => panic!("the stream ended without a close frame"),
                Err(e) => panic!("no close frame, the connection failed: {e}"),
            }
        }
    })
    .await;
    assert_eq!(close.0, 4001, "{}", close.1);
    // The server shut its side down after the close frame and is discarding what the member
    // still sends: the member reads a clean end of stream, not a reset.
    let end = within("the end of the stream", next_frame(&mut read, &mut reader)).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    drop(writing);
}

/// The kernel's view of the server's end of a connection from `/proc/net/tcp`: its TCP state
/// and the bytes in its send queue; `None` once the kernel has freed it.
async fn server_socket(server: SocketAddr, client: SocketAddr) -> Option<(u8, u64)> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_ne_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => panic!("the test server listens on IPv4"),
    };
    let (local, remote) = (hex(server), hex(client));
    let table = tokio::fs::read_to_string("/proc/net/tcp")
        .await
        .expect("read /proc/net/tcp");
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) != Some(&local.as_str()) || fields.get(2) != Some(&remote.as_str()) {
            return None;
        }
        let state = u8::from_str_radix(fields[3], 16).expect("state");
        let queue = fields[4].split(':').next().expect("tx_queue");
        Some((state, u64::from_str_radix(queue, 16).expect("tx_queue")))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_reader_that_stopped_reading_leaves_nothing_in_the_kernel() {
    // Issue 8 #5: the server's socket stayed in FIN-WAIT-1 with megabytes queued for minutes.
    const SEND_BUFFER_BYTES: usize = 64 * 1024;
    let config = Config {
        max_queue_bytes: 256 * 1024,
        send_buffer_bytes: SEND_BUFFER_BYTES,
        rate_per_second: 0,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut dead = server.stalled_reader("lobby", "dead").await;
    let client = dead.stream.local_addr().expect("client address");
    let mut publisher = server.member("lobby").await;
    let payload = "z".repeat(16 * 1024);
    let mut most_queued = 0;
    for _ in 0..200 {
        publisher.say(&payload).await;
        publisher.next_text().await;
        if let Some((_, queued)) = server_socket(server.addr, client).await {
            most_queued = most_queued.max(queued);
        }
        if server.sessions_in("lobby").await == 1 {
            break;
        }
    }
    assert_eq!(
        server.sessions_in("lobby").await,
        1,
        "the dead reader was evicted"
    );
    // Linux doubles SO_SNDBUF for its bookkeeping; payload bytes stay under that.
    assert!(
        most_queued <= 2 * SEND_BUFFER_BYTES as u64,
        "the kernel held {most_queued} bytes for a reader that stopped"
    );
    eventually("the kernel to free the evicted socket", || async {
        match server_socket(server.addr, client).await {
            None | Some((_, 0)) => Some(()),
            Some(_) => None,
        }
    })
    .await;
    // And the client learns its connection is over instead of waiting on it.
    within("the dead reader's connection to end", async {
        while let Ok(Some(_)) = dead.read_frame().await {}
    })
    .await;
}

#[tokio::test]
async fn a_client_close_is_answered_with_its_code_and_the_server_closes_its_side() {
    let server = TestServer::start(Config::default()).await;
    let mut socket = server.raw("lobby").await;
    let mut payload = 4100u16.to_be_bytes().to_vec();
    payload.extend_from_slice(b"leaving");
    within("write", socket.send(opcode::CLOSE, &payload))
        .await
        .expect("write close");
    let (code, _) = within("the answer", raw_close(&mut socket)).await;
    assert_eq!(code, 4100, "the close is echoed");
    let after = within("the server's end of the stream", socket.read_frame())
        .await
        .expect("a clean end, not a reset");
    assert_eq!(after, None);
}
