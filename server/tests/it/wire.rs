//! The session loop on the wire: writing gets its turn during a burst, control frames are rate
//! limited, and RFC 6455's framing rules hold. (How sessions close is in `closing.rs`.)

use std::io;

use futures_util::future::join;
use roomcast_protocol::raw::{FrameReader, OwnedFrame, RawSocket, client_frame, opcode};
use roomcast_server::Config;
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

use crate::support::{TestServer, raw_close, within};

/// A raw socket split so one task can write while another reads.
pub struct Split {
    pub read: OwnedReadHalf,
    pub write: OwnedWriteHalf,
    pub reader: FrameReader,
}

impl Split {
    pub fn new(socket: RawSocket) -> Self {
        let (read, write) = socket.stream.into_split();
        Self {
            read,
            write,
            reader: socket.reader,
        }
    }
}

/// The next frame from a split reader; `None` at end of stream.
pub async fn next_frame(
    read: &mut OwnedReadHalf,
    reader: &mut FrameReader,
) -> io::Result<Option<OwnedFrame>> {
    loop {
        if let Some(frame) = reader.next_frame()? {
            return Ok(Some(frame.to_owned_frame()));
        }
        if reader.fill(read).await? == 0 {
            return Ok(None);
        }
    }
}

/// A tutorial message frame from a client.
pub fn message(text: &str) -> Vec<u8> {
    let body = serde_json::json!({ "message": text }).to_string();
    client_frame(opcode::TEXT, body.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_that_sends_a_burst_while_reading_gets_every_echo() {
    // Issue 8 #4: the loop drained every inbound frame before writing, so a member bursting
    // 10 KB messages overflowed its own 64 KiB queue with its echoes and was closed as slow
    // before the socket was ever tried.
    /// 300 KB: more than the 64 KiB bound, less than the kernel buffers between the two ends,
    /// so a reader that keeps reading can never be the reason the queue fills.
    const BURST: usize = 30;
    let config = Config {
        max_queue_bytes: 64 * 1024,
        // 10 KB messages; the queue must hold the largest one plus a frame header.
        max_message_bytes: 16 * 1024,
        rate_per_second: 0,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let Split {
        mut read,
        mut write,
        mut reader,
    } = Split::new(server.raw("lobby").await);
    let padding = "x".repeat(10_000);
    let burst: Vec<u8> = (0..BURST)
        .flat_map(|i| message(&format!("{i:03}{padding}")))
        .collect();
    let writing = async { write.write_all(&burst).await.expect("write the burst") };
    let reading = async {
        for i in 0..BURST {
            let frame = next_frame(&mut read, &mut reader)
                .await
                .expect("read")
                .unwrap_or_else(|| panic!("the stream ended after {i} echoes"));
            if let Some((code, reason)) = frame.close() {
                panic!("closed with {code} ({reason}) after {i} echoes");
            }
            let marker = format!(r#""message":"{i:03}"#);
            let body = String::from_utf8_lossy(&frame.payload);
            assert!(body.contains(&marker), "echo {i} in order");
        }
    };
    within("every echo of the burst", join(writing, reading)).await;
    assert_eq!(server.sessions_in("lobby").await, 1, "still a member");
}

#[tokio::test]
async fn pings_count_against_the_rate_limit_and_a_ping_flood_is_closed_with_4002() {
    let config = Config {
        rate_per_second: 1,
        rate_burst: 3,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut socket = server.raw("lobby").await;
    let pings: Vec<u8> = (0..50)
        .flat_map(|_| client_frame(opcode::PING, b""))
        .collect();
    within("write", socket.stream.write_all(&pings))
        .await
        .expect("write pings");
    let (code, reason) = within("the flood to be closed", raw_close(&mut socket)).await;
    assert_eq!(code, 4002, "{reason}");
}

#[tokio::test]
async fn a_client_streaming_pings_gets_one_pong_per_read_not_one_per_ping() {
    const PINGS: usize = 200;
    let config = Config {
        rate_per_second: 0,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut socket = server.raw("lobby").await;
    let mut bytes: Vec<u8> = (0..PINGS)
        .flat_map(|i| client_frame(opcode::PING, i.to_string().as_bytes()))
        .collect();
    bytes.extend(message("after the pings"));
    within("write", socket.stream.write_all(&bytes))
        .await
        .expect("write");
    let mut pongs = Vec::new();
    within("the echo after the pings", async {
        loop {
            let frame = socket.read_frame().await.expect("read").expect("a frame");
            match frame.opcode {
                opcode::PONG => pongs.push(String::from_utf8(frame.payload).expect("UTF-8")),
                opcode::TEXT => break,
                other => panic!("unexpected opcode {other}"),
            }
        }
    })
    .await;
    assert!(
        !pongs.is_empty() && pongs.len() < PINGS / 2,
        "{} pongs for {PINGS} pings",
        pongs.len()
    );
    assert_eq!(
        pongs.last().map(String::as_str),
        Some("199"),
        "the latest ping is answered"
    );
}

#[tokio::test]
async fn a_fragmented_message_with_a_ping_between_its_fragments_is_published_whole() {
    let server = TestServer::start(Config::default()).await;
    let mut watcher = server.member("lobby").await;
    let mut socket = server.raw("lobby").await;
    let body = br#"{"message":"in three pieces"}"#;
    let mut first = client_frame(opcode::TEXT, &body[..10]);
    first[0] &= 0x7f; // not final
    let mut middle = client_frame(0x0, &body[10..20]);
    middle[0] &= 0x7f;
    let last = client_frame(0x0, &body[20..]);
    let ping = client_frame(opcode::PING, b"mid");
    let bytes = [first, ping, middle, last].concat();
    within("write", socket.stream.write_all(&bytes))
        .await
        .expect("write");
    assert_eq!(watcher.next_text().await, "in three pieces");
    let pong = within("the pong", socket.read_frame())
        .await
        .expect("read")
        .expect("a frame");
    assert_eq!(
        (pong.opcode, &pong.payload[..]),
        (opcode::PONG, &b"mid"[..])
    );
}

#[tokio::test]
async fn an_unmasked_client_frame_is_a_protocol_error_1002() {
    let server = TestServer::start(Config::default()).await;
    let mut socket = server.raw("lobby").await;
    within("write", socket.stream.write_all(&[0x81, 0x02, b'h', b'i']))
        .await
        .expect("write");
    let (code, _) = within("the close", raw_close(&mut socket)).await;
    assert_eq!(code, 1002);
}

#[tokio::test]
async fn a_text_message_that_is_not_utf8_is_closed_with_1007_and_the_room_goes_on() {
    let server = TestServer::start(Config::default()).await;
    let mut other = server.member("lobby").await;
    let mut socket = server.raw("lobby").await;
    let not_utf8 = client_frame(opcode::TEXT, b"{\"message\":\"\xff\xfe\"}");
    within("write", socket.stream.write_all(&not_utf8))
        .await
        .expect("write");
    let (code, reason) = within("the close", raw_close(&mut socket)).await;
    assert_eq!(
        (code, reason.as_str()),
        (1007, "a text message was not valid UTF-8")
    );
    server.send_test("lobby", "still here").await;
    assert_eq!(other.next_text().await, "still here");
}

#[tokio::test]
async fn a_plain_get_on_a_socket_url_is_told_to_upgrade() {
    let server = TestServer::start(Config::default()).await;
    let response = within(
        "GET",
        server.http().get(server.http_url("ws/chat/lobby/")).send(),
    )
    .await
    .expect("GET");
    assert_eq!(response.status(), 426);
    let body: serde_json::Value = within("body", response.json()).await.expect("JSON");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("WebSocket")),
        "{body}"
    );
}

#[tokio::test]
async fn a_delay_between_frames_changes_nothing() {
    // Frames split across many reads (here, byte by byte) read the same as whole ones.
    let server = TestServer::start(Config::default()).await;
    let mut watcher = server.member("lobby").await;
    let mut socket = server.raw("lobby").await;
    for byte in message("one byte at a time") {
        within("write", socket.stream.write_all(&[byte]))
            .await
            .expect("write");
        tokio::task::yield_now().await;
    }
    assert_eq!(watcher.next_text().await, "one byte at a time");
}

#[tokio::test]
async fn a_router_served_by_another_server_refuses_upgrades_before_the_101() {
    // Sessions take over the bare socket roomcast's accept loop gave hyper; under
    // `axum::serve` they cannot, and a 101 followed by a dead socket would only show as 1006.
    let state = roomcast_server::AppState::new(Config::default().validate().expect("valid"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("address");
    let serving =
        tokio::spawn(async move { axum::serve(listener, roomcast_server::router(state)).await });
    let url = format!("ws://{addr}/ws/chat/lobby/");
    let refused = within("the handshake", tokio_tungstenite::connect_async(url)).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 500);
            let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default())
                .into_owned();
            assert!(body.contains("serve_router"), "{body}");
        }
        other => panic!("expected an HTTP refusal, got {other:?}"),
    }
    serving.abort();
}

#[tokio::test]
async fn publishes_sent_in_one_write_reach_every_member_in_order_and_each_ack_follows_its_copy() {
    // A session's publishes of one read are fanned out together (session/batch.rs): every
    // member must still get each exactly once and in order, and the sender its own copy of a
    // message before the ack for it.
    const BURST: u64 = 50;
    let config = Config {
        rate_per_second: 0,
        ..Config::default()
    };
    let server = TestServer::start(config).await;
    let mut tutorial = server.raw_as("lobby", "tom").await;
    let mut typed_watcher = server.peer("wen", "lobby").await;
    let url = server
        .url
        .room_socket(&roomcast_protocol::RoomName::new("lobby").expect("valid room"));
    let mut sender = within(
        "a typed raw upgrade",
        RawSocket::connect(
            &url,
            Some(roomcast_protocol::v1::SUBPROTOCOL_V1),
            crate::support::WAIT,
        ),
    )
    .await
    .expect("typed raw upgrade");
    let burst: Vec<u8> = (1..=BURST)
        .flat_map(|i| {
            let publish = serde_json::json!({
                "type": "publish", "room": "lobby", "message": format!("m{i}"), "ref": i,
            });
            client_frame(opcode::TEXT, publish.to_string().as_bytes())
        })
        .collect();
    // The welcome and the joined answer come first; the burst goes out in one write.
    let mut seen = Vec::new();
    while !seen
        .iter()
        .any(|t: &String| t.contains(r#""type":"joined""#))
    {
        let frame = within("welcome and joined", sender.read_frame())
            .await
            .expect("read")
            .expect("open");
        seen.push(String::from_utf8_lossy(&frame.payload).into_owned());
    }
    within("the burst", sender.stream.write_all(&burst))
        .await
        .expect("write the burst");

    let mut copies = 0u64;
    let mut acks = 0u64;
    while acks < BURST {
        let frame = within("the sender's copies and acks", sender.read_frame())
            .await
            .expect("read")
            .expect("the sender's stream stays open");
        let json: serde_json::Value = serde_json::from_slice(&frame.payload).expect("JSON");
        match json["type"].as_str() {
            Some("message") => {
                copies += 1;
                assert_eq!(json["message"], format!("m{copies}"), "copies in order");
            }
            Some("ack") => {
                acks += 1;
                assert_eq!(json["ref"], acks, "acks in order");
                assert!(
                    acks <= copies,
                    "ack {acks} came before the sender's copy of it"
                );
            }
            other => panic!("unexpected frame {other:?}: {json}"),
        }
    }
    assert_eq!(copies, BURST);
    for i in 1..=BURST {
        let frame = within("the tutorial member's messages", tutorial.read_frame())
            .await
            .expect("read")
            .expect("open");
        let json: serde_json::Value = serde_json::from_slice(&frame.payload).expect("JSON");
        assert_eq!(
            json["message"],
            format!("m{i}"),
            "tutorial member: in order, once"
        );
    }
    let mut typed_seen = 0u64;
    while typed_seen < BURST {
        if let roomcast_protocol::v1::ServerFrame::Message(m) =
            crate::support::next_typed(&mut typed_watcher).await
        {
            typed_seen += 1;
            assert_eq!(
                m.message,
                format!("m{typed_seen}"),
                "typed member: in order, once"
            );
        }
    }
}
