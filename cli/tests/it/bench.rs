//! The benchmarks run end to end on a small scale and report their figures.

use roomcast_server::Config;

use crate::support::{TestServer, assert, json_lines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_delivers_every_message_to_every_member() {
    let server = TestServer::start(Config {
        rate_per_second: 0,
        ..Config::default()
    })
    .await;
    let mut bench = server.roomcast();
    bench.args([
        "bench",
        "fanout",
        "--rooms",
        "2",
        "--members",
        "20",
        "--duration",
        "500ms",
        "--warmup",
        "100ms",
        "--json",
    ]);
    let result = &json_lines(&assert(bench).await.success().get_output().stdout)[0];
    assert_eq!(result["kind"], "fanout");
    assert_eq!(result["connections"], 42);
    assert_eq!(result["lost"], 0, "{result}");
    assert_eq!(result["closed_by_server"], 0, "{result}");
    assert!(result["delivered_per_s"].as_f64() > Some(0.0), "{result}");
    assert!(result["latency"]["count"].as_u64() > Some(0), "{result}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_and_idle_report_their_figures() {
    let server = TestServer::start(Config::default()).await;
    let mut connect = server.roomcast();
    connect.args(["bench", "connect", "--connections", "50", "--json"]);
    let result = &json_lines(&assert(connect).await.success().get_output().stdout)[0];
    assert_eq!(result["connections"], 50);
    assert!(result["connections_per_s"].as_f64() > Some(0.0), "{result}");

    let mut idle = server.roomcast();
    idle.args(["bench", "idle", "--connections", "50", "--json"]);
    let result = &json_lines(&assert(idle).await.success().get_output().stdout)[0];
    assert_eq!(result["kind"], "idle");
    assert!(result["per_session_bytes"].is_number(), "{result}");
    assert!(
        result["rss_after_close_bytes"].is_number(),
        "every session was let go: {result}"
    );
}
