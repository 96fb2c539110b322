//! Settings that cannot work are refused at start, by the binary, naming the flag and the rule.

use std::process::Stdio;

use tokio::process::Command;

use crate::support::WAIT;

const BINARY: &str = env!("CARGO_BIN_EXE_roomcast-server");

/// Runs the server with `args` and `env` on a free port; returns its exit code and stderr, or
/// fails the test if it is still running after [`WAIT`] (it accepted the setting).
async fn refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let child = Command::new(BINARY)
        .args(["--port", "0"])
        .args(args)
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the server");
    let Ok(output) = tokio::time::timeout(WAIT, child.wait_with_output()).await else {
        panic!("{args:?} {env:?} was accepted: the server kept running");
    };
    let output = output.expect("output");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn a_zero_ping_interval_exits_2_naming_the_flag_and_the_rule() {
    let (code, stderr) = refused(&["--ping-interval", "0s"], &[]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--ping-interval"), "{stderr}");
    assert!(stderr.contains("more than 0"), "{stderr}");
}

#[tokio::test]
async fn every_setting_that_cannot_work_is_a_usage_error_naming_its_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["--ping-timeout", "0s"], "--ping-timeout"),
        (&["--write-timeout", "0ms"], "--write-timeout"),
        (&["--shutdown-grace", "0s"], "--shutdown-grace"),
        (&["--max-message-bytes", "0"], "--max-message-bytes"),
        (&["--max-queue-bytes", "1KiB"], "--max-queue-bytes"),
        (&["--max-connections", "0"], "--max-connections"),
        (&["--max-rooms", "0"], "--max-rooms"),
        (&["--max-rooms-per-session", "0"], "--max-rooms-per-session"),
        (&["--rate-burst", "0"], "--rate-burst"),
        (&["--history-bytes", "0"], "--history-bytes"),
        (&["--room-ttl", "100000d"], "--room-ttl"),
        (&["--latest-on-join", "pagamento_,"], "--latest-on-join"),
        (&["--api-key", ""], "--api-key"),
        (&["--channels-layer", "core"], "--channels-layer"),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--channels-layer",
                "pubsub",
                "--channels-group",
                "chat",
            ],
            "--channels-group",
        ),
        (
            &[
                "--redis-url",
                "redis://127.0.0.1:1",
                "--channels-layer",
                "core",
                "--channels-registration-ttl",
                "500ms",
            ],
            "--channels-registration-ttl",
        ),
    ];
    for (args, flag) in cases {
        let (code, stderr) = refused(args, &[]).await;
        assert_eq!(code, Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?} names {flag}: {stderr}");
    }
    // The environment twin is held to the same rules.
    let (code, stderr) = refused(&[], &[("ROOMCAST_PING_INTERVAL", "0s")]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--ping-interval"), "{stderr}");
    let (code, stderr) = refused(&[], &[("ROOMCAST_CHANNELS_LAYER", "pubsub")]).await;
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("--channels-layer"), "{stderr}");
}
