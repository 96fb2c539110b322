//! Deploy drain: shutdown closes sessions with 1001 in waves spread over `--drain-window`, and
//! refuses to start when `--shutdown-grace` cannot cover the window.

use std::process::Command;
use std::time::Duration;

use futures_util::{StreamExt, stream};
use roomcast_protocol::raw::RawSocket;
use roomcast_server::Config;
use tokio::time::Instant;

use crate::support::{TestServer, WAIT, eventually, raw_close, room};

/// Sessions in the drain test: enough that closing them at once would be a visible spike.
const SESSIONS: usize = 2_000;

/// Upgrades the test keeps in flight while it opens the sessions.
const CONNECTS_IN_FLIGHT: usize = 64;

/// Parts the window is cut into to judge the spread: evenly spread closes put a tenth of the
/// sessions in each.
const SLICES: u32 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_sessions_hear_1001_in_waves_spread_over_the_window_and_run_ends_in_time() {
    // Long enough that closing everything at once, which takes this loaded 2-core machine about
    // 2 s for 2,000 debug-build sessions, cannot pass for a spread.
    let window = Duration::from_secs(6);
    let grace = window + Duration::from_secs(3);
    let server = TestServer::start(Config {
        drain_window: window,
        shutdown_grace: grace,
        ..Config::default()
    })
    .await;
    let url = server.url.room_socket(&room("lobby"));
    // A bounded number of handshakes in flight: 2,000 at once would overflow the listen
    // backlog and wait out SYN retransmits.
    let mut connected = stream::iter(0..SESSIONS)
        .map(|_| RawSocket::connect(&url, None, WAIT))
        .buffer_unordered(CONNECTS_IN_FLIGHT);
    let mut closes = tokio::task::JoinSet::new();
    while let Some(socket) = connected.next().await {
        let mut socket = socket.expect("upgrade");
        // Each client stamps the moment it reads its close frame, as a user's client would
        // see it, then answers it so the closing handshake completes.
        closes.spawn(async move {
            let close = raw_close(&mut socket).await;
            let at = Instant::now();
            socket.close().await;
            (close, at)
        });
    }
    eventually("every session to be in the room", || async {
        (server.sessions_in("lobby").await == SESSIONS).then_some(())
    })
    .await;

    let stop_started = Instant::now();
    let took = server.stop().await;
    let mut offsets = Vec::with_capacity(SESSIONS);
    while let Some(closed) = closes.join_next().await {
        let ((code, reason), at) = closed.expect("close task");
        assert_eq!((code, reason.as_str()), (1001, "server shutting down"));
        offsets.push(at.duration_since(stop_started));
    }
    assert_eq!(offsets.len(), SESSIONS, "every session heard its close");
    assert!(took <= grace, "run() took {took:?}, grace is {grace:?}");

    offsets.sort();
    let first = offsets[0];
    let last = offsets[SESSIONS - 1];
    assert!(
        last - first >= window * 7 / 10,
        "closes from {first:?} to {last:?}: not spread over the {window:?} window"
    );
    let slice = window / SLICES;
    let crowded = (0..SLICES)
        .map(|i| {
            let (start, end) = (slice * i, slice * (i + 1));
            offsets.iter().filter(|o| **o >= start && **o < end).count()
        })
        .max()
        .unwrap_or(SESSIONS);
    assert!(
        crowded <= SESSIONS / 5,
        "{crowded} of {SESSIONS} closes fell in one {slice:?} slice; evenly spread is {}",
        SESSIONS / SLICES as usize
    );
}

#[test]
fn a_grace_that_cannot_cover_the_drain_window_exits_2_naming_both_flags() {
    let output = Command::new(env!("CARGO_BIN_EXE_roomcast-server"))
        .args(["--port", "0", "--drain-window", "20s"])
        .env("ROOMCAST_SHUTDOWN_GRACE", "10s")
        .output()
        .expect("run the server");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("--shutdown-grace") && stderr.contains("--drain-window"),
        "{stderr}"
    );
    assert!(
        stderr.contains("at least 22s"),
        "says what would work: {stderr}"
    );
}

#[test]
fn help_explains_the_drain_window_and_its_environment_twin() {
    let output = Command::new(env!("CARGO_BIN_EXE_roomcast-server"))
        .arg("--help")
        .output()
        .expect("run --help");
    let help = String::from_utf8_lossy(&output.stdout);
    assert!(help.contains("--drain-window"), "{help}");
    assert!(help.contains("ROOMCAST_DRAIN_WINDOW"), "{help}");
}
