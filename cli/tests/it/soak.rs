//! A short, bounded soak passes with nothing lost, and a threshold that cannot hold fails it.

use predicates::prelude::*;

use crate::support::{TestServer, assert, fast_heartbeat, json_lines};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_bounded_soak_loses_nothing_and_evicts_every_dead_client() {
    let server = TestServer::start(fast_heartbeat()).await;
    let mut soak = server.roomcast();
    soak.args([
        "soak",
        "--clients",
        "6",
        "--rooms",
        "2",
        "--rate",
        "60",
        "--duration",
        "2s",
        "--churn",
        "2",
        "--dead-fraction",
        "0.7",
        "--json",
        "--assert",
        "lost=0,repeated=0,reordered=0,dropped=0,evicted=all,p99<1s",
    ]);
    let output = assert(soak).await.success();
    let summary = &json_lines(&output.get_output().stdout)[0];
    assert_eq!(summary["kind"], "soak");
    assert_eq!(summary["lost"], 0);
    assert_eq!(summary["passed"], true, "{summary}");
    assert!(summary["delivered"].as_u64() > Some(100), "{summary}");
    assert!(summary["churned"].as_u64() >= Some(2), "{summary}");
    let dead = &summary["dead"];
    assert_eq!(dead["created"], 5, "ceil(0.7 x 6) dead clients");
    assert_eq!(dead["evicted"], dead["evictions_due"], "{dead}");
    assert_eq!(dead["failed"], 0, "{dead}");
    assert!(
        summary["rss_end_bytes"].as_f64() > Some(0.0),
        "memory read from /metrics"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_threshold_that_cannot_hold_fails_the_soak_with_exit_3() {
    let server = TestServer::start(fast_heartbeat()).await;
    let mut soak = server.roomcast();
    soak.args([
        "soak",
        "--clients",
        "2",
        "--rooms",
        "1",
        "--rate",
        "20",
        "--duration",
        "500ms",
        "--dead-fraction",
        "0",
        "--churn",
        "0",
        "--assert",
        "lost=0,p99<1us",
    ]);
    assert(soak)
        .await
        .code(3)
        .stdout(predicate::str::contains("check p99<1us: FAILED"))
        .stderr(predicate::str::contains("failed: p99<1us"));
}
