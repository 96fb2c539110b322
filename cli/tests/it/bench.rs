//! The benchmarks run end to end on a tiny scale, against a server in this process and
//! against the reference broadcaster in its own process, and their counts add up. No timing
//! is asserted: figures are for `scripts/bench`.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use roomcast_server::Config;
use serde_json::Value;

use crate::support::{TestServer, WAIT, assert, fast_heartbeat, json_lines, roomcast};

fn bench_config() -> Config {
    Config {
        rate_per_second: 0,
        ..Config::default()
    }
}

fn first_line(stdout: &[u8]) -> Value {
    json_lines(stdout).remove(0)
}

/// Runs `roomcast --url <url> bench <args> --json` and returns its one JSON line.
async fn bench_json(url: &str, args: &[&str]) -> Value {
    let mut command = roomcast();
    command
        .args(["--url", url, "--quiet", "bench"])
        .args(args)
        .arg("--json");
    first_line(&assert(command).await.success().get_output().stdout)
}

/// Every member of every room received every message of a burst, exactly once, and every one
/// of them carried a send time (bursts stamp them all).
fn assert_burst_adds_up(result: &Value, rooms: u64, members: u64, publishers: u64, burst: u64) {
    let published = rooms * publishers * burst;
    assert_eq!(result["kind"], "fanout");
    assert_eq!(result["mode"], "burst");
    assert_eq!(result["connections"], rooms * members, "{result}");
    assert_eq!(result["published"], published, "{result}");
    assert_eq!(result["delivered"], published * members, "{result}");
    assert_eq!(result["latency"]["count"], published * members, "{result}");
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["refused"], 0, "{result}");
    assert_eq!(result["closed_by_server"], 0, "{result}");
    assert!(result["generator_cores"].is_number(), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_from_several_publishers_reaches_every_member_once() {
    let server = TestServer::start(bench_config()).await;
    let args = [
        "fanout",
        "--rooms",
        "2",
        "--members",
        "10",
        "--publishers",
        "3",
        "--burst",
        "7",
    ];
    let result = bench_json(&server.url(), &args).await;
    assert_burst_adds_up(&result, 2, 10, 3, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_window_trial_counts_what_it_delivered_and_loses_nothing() {
    let server = TestServer::start(bench_config()).await;
    let args = [
        "fanout",
        "--rooms",
        "2",
        "--members",
        "10",
        "--publishers",
        "2",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--sample-every",
        "4",
    ];
    let result = bench_json(&server.url(), &args).await;
    assert_eq!(result["mode"], "window");
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["closed_by_server"], 0, "{result}");
    let (published, delivered) = (result["published"].as_u64(), result["delivered"].as_u64());
    assert!(delivered > Some(0), "{result}");
    assert!(
        delivered <= published.map(|p| p * 10),
        "members cannot receive more than was published to their room: {result}"
    );
    // One sample per 4 deliveries, give or take what one read per connection (up to a window
    // of frames) holds at each edge of the measured span: the count and the span's delivery
    // totals are taken a read apart. Ignoring --sample-every would come out 4 times higher.
    let edge = 20 * 128 / 4;
    assert!(
        result["latency"]["count"].as_u64() <= delivered.map(|d| d / 4 + edge),
        "{result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_reports_every_trial_and_a_light_one() {
    let server = TestServer::start(bench_config()).await;
    let mut command = server.roomcast();
    command.args([
        "--quiet",
        "bench",
        "fanout",
        "--members",
        "5",
        "--search",
        "--trials",
        "2",
        "--duration",
        "200ms",
        "--warmup",
        "50ms",
        "--tick",
        "5ms",
        "--json",
    ]);
    let output = assert(command).await.get_output().clone();
    // 3: no trial passed, which a loaded machine may cause; the report is whole either way.
    assert!(matches!(output.status.code(), Some(0 | 3)), "{output:?}");
    let result = first_line(&output.stdout);
    assert_eq!(result["mode"], "search");
    let trials = result["trials"].as_array().expect("trials");
    assert!((2..=3).contains(&trials.len()), "{result}");
    assert_eq!(trials[0]["pace"], "window");
    assert!(
        trials[1..]
            .iter()
            .all(|t| t["pace"] == "rate" && t["passed"].is_boolean())
    );
    assert!(trials.iter().all(|t| t["tick_ms"] == 5.0), "{result}");
    assert_eq!(result["light"]["pace"], "rate");
    // The light trial measures latency with the finest tick, not in 5 ms bursts.
    assert_eq!(result["light"]["tick_ms"], 1.0, "{result}");
    assert_eq!(result["p99_under_ms"], 100.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_idle_report_their_figures() {
    let server = TestServer::start(Config::default()).await;
    let result = bench_json(&server.url(), &["connect", "--connections", "50"]).await;
    assert_eq!(result["connections"], 50);
    assert!(result["connections_per_s"].as_f64() > Some(0.0), "{result}");
    assert!(result["generator_cores"].is_number(), "{result}");

    let result = bench_json(&server.url(), &["idle", "--connections", "50"]).await;
    assert_eq!(result["kind"], "idle");
    assert_eq!(result["rss_source"], "metrics");
    assert!(result["per_session_bytes"].is_number(), "{result}");
    assert!(
        result["rss_after_close_bytes"].is_number(),
        "every session was let go: {result}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evict_accounts_for_every_silent_client() {
    let server = TestServer::start(Config {
        rate_per_second: 0,
        ..fast_heartbeat()
    })
    .await;
    let args = [
        "evict",
        "--live",
        "20",
        "--silent",
        "10",
        "--rooms",
        "2",
        "--duration",
        "300ms",
    ];
    let result = bench_json(&server.url(), &args).await;
    assert_eq!(result["kind"], "evict");
    let e = &result["evictions"];
    let outcomes = [
        "in_time",
        "early",
        "late",
        "wrong_code",
        "dropped",
        "not_evicted",
    ];
    let total: u64 = outcomes.iter().filter_map(|k| e[k].as_u64()).sum();
    assert_eq!(
        total, 10,
        "every silent client is in exactly one outcome: {result}"
    );
    assert_eq!(e["in_time"], 10, "{result}");
    assert_eq!(result["with"]["lost"], 0, "{result}");
    assert_eq!(result["without"]["lost"], 0, "{result}");
    assert!(result["p99_change"].is_number(), "{result}");
    assert_eq!(result["control"]["lost"], 0, "{result}");
    assert!(
        result["control"]["latency"]["count"].as_u64() > Some(0),
        "the control trial measured the live members: {result}"
    );
    assert!(result["p99_change_vs_control"].is_number(), "{result}");
}

/// `roomcast bench reference` running in its own process until dropped.
struct Reference {
    child: Option<Child>,
    pid: String,
    url: String,
}

impl Reference {
    async fn start(extra: &[&str]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_roomcast"));
        for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("ROOMCAST_")) {
            command.env_remove(key);
        }
        let mut child = command
            .args([
                "--json",
                "bench",
                "reference",
                "--port",
                "0",
                "--for",
                "60s",
            ])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("roomcast starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let (found, announced) = std::sync::mpsc::channel();
        // Reads stderr to its end, so the reference never writes into a closed pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some((_, url)) = line.split_once("listening on ") {
                    let _sent = found.send(url.to_owned());
                }
            }
        });
        let url = tokio::task::spawn_blocking(move || announced.recv_timeout(WAIT))
            .await
            .expect("the reading thread")
            .expect("the reference announces its address");
        let pid = child.id().to_string();
        Self {
            child: Some(child),
            pid,
            url,
        }
    }

    /// Stops it with SIGTERM, as scripts do, and returns the summary it prints.
    async fn stop(mut self) -> Value {
        let (child, pid) = (self.child.take().expect("running"), self.pid.clone());
        tokio::task::spawn_blocking(move || {
            let status = Command::new("kill").args(["-TERM", &pid]).status();
            assert!(status.is_ok_and(|s| s.success()), "kill -TERM {pid}");
            let output = child.wait_with_output().expect("the reference exits");
            assert!(output.status.success(), "{output:?}");
            first_line(&output.stdout)
        })
        .await
        .expect("the waiting thread")
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        // A test that failed midway must not leave its process behind.
        if let Some(child) = self.child.as_mut() {
            let _killed = child.kill();
            let _reaped = child.wait();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_broadcasts_what_roomcast_would_to_the_same_generator() {
    let reference = Reference::start(&[]).await;
    let args = [
        "fanout",
        "--rooms",
        "2",
        "--members",
        "10",
        "--publishers",
        "3",
        "--burst",
        "7",
    ];
    let result = bench_json(&reference.url, &args).await;
    assert_burst_adds_up(&result, 2, 10, 3, 7);

    let result = bench_json(&reference.url, &["connect", "--connections", "30"]).await;
    assert_eq!(result["connections"], 30);

    let args = [
        "idle",
        "--connections",
        "30",
        "--server-pid",
        &reference.pid,
    ];
    let result = bench_json(&reference.url, &args).await;
    assert_eq!(result["rss_source"], "proc");
    assert!(result["rss_open_bytes"].as_f64() > Some(0.0), "{result}");

    let summary = reference.stop().await;
    assert_eq!(summary["kind"], "reference");
    // The burst's join barrier publishes one round per publisher before the burst itself.
    assert!(
        summary["published"].as_u64() >= Some(2 * 3 * 7),
        "{summary}"
    );
    assert!(
        summary["sessions"].as_u64() >= Some(20 + 30 + 30),
        "{summary}"
    );
    assert!(
        summary["frames_written"].as_u64() >= Some(2 * 3 * 7 * 10),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generator_counts_a_firehose_and_reports_its_own_ceiling() {
    let reference = Reference::start(&["--firehose"]).await;
    let args = [
        "ceiling",
        "--members",
        "4",
        "--duration",
        "300ms",
        "--warmup",
        "100ms",
        "--server-pid",
        &reference.pid,
    ];
    let result = bench_json(&reference.url, &args).await;
    assert_eq!(result["kind"], "ceiling");
    assert!(result["delivered"].as_u64() > Some(0), "{result}");
    assert!(result["generator_cores"].is_number(), "{result}");
    assert!(result["source_cores"].is_number(), "{result}");
    let summary = reference.stop().await;
    assert!(
        summary["frames_written"].as_u64() >= result["delivered"].as_u64(),
        "the generator cannot count more than the firehose wrote: {summary} {result}"
    );
}

/// A listener on 127.0.0.1:0 that answers every request with `response`, then keeps the
/// socket until the client goes.
async fn canned_server(response: &'static [u8]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match socket.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                if socket.write_all(response).await.is_ok() {
                    let _eof = socket.read(&mut buf).await;
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_counts_no_session_the_server_did_not_upgrade_properly() {
    let cases: [(&[u8], &str); 3] = [
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
              Connection: Upgrade\r\nSec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
            "wrong Sec-WebSocket-Accept",
        ),
        (
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
            "no Sec-WebSocket-Accept",
        ),
        (
            b"HTTP/1.1 403 Forbidden\r\ncontent-length: 0\r\n\r\n",
            "403 Forbidden",
        ),
    ];
    for (response, why) in cases {
        let url = canned_server(response).await;
        let mut command = roomcast();
        command.args([
            "--url",
            &url,
            "--quiet",
            "bench",
            "connect",
            "--connections",
            "5",
            "--json",
        ]);
        let output = assert(command).await.failure();
        let stderr = String::from_utf8_lossy(&output.get_output().stderr).into_owned();
        assert!(stderr.contains(why), "{why}: {stderr}");
        assert!(
            output.get_output().stdout.is_empty(),
            "no figure: {output:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_takes_a_correct_101_from_any_server() {
    let url = canned_server(
        b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
          sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
    )
    .await;
    let result = bench_json(
        &url,
        &["connect", "--connections", "40", "--concurrency", "8"],
    )
    .await;
    assert_eq!(result["connections"], 40, "{result}");
    assert_eq!(result["handshake"]["count"], 40, "{result}");
}
