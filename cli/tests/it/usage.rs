//! Usage errors exit 2, an absent server exits 4 with what to do, completions generate.

use predicates::prelude::*;

use crate::support::{assert, closed_port, roomcast};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_errors_exit_2_and_name_the_problem() {
    let cases: [(&[&str], &str); 8] = [
        (&[], "Usage"),
        (&["send-test"], "required"),
        (
            &["send-test", "bad room", "hi"],
            "only A-Z a-z 0-9 - _ . are allowed",
        ),
        (
            &["listen", "lobby", "--count", "0"],
            "--count must be at least 1",
        ),
        (
            &["send", "lobby", "--count", "2"],
            "--count repeats a MESSAGE argument",
        ),
        (
            &["soak", "--clients", "2", "--rooms", "5"],
            "no more rooms than clients",
        ),
        (&["soak", "--assert", "speed<1"], "unknown metric"),
        (
            &["dead-clients", "--mode", "ghost"],
            "possible values: nopong, noread, vanish, pause",
        ),
    ];
    for (args, says) in cases {
        let mut command = roomcast();
        command.args(args).env(
            "ROOMCAST_URL",
            format!("http://127.0.0.1:{}", closed_port()),
        );
        assert(command)
            .await
            .code(2)
            .stderr(predicate::str::contains(says));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_server_exits_4_and_says_how_to_start_one() {
    let url = format!("http://127.0.0.1:{}", closed_port());
    let commands: [&[&str]; 7] = [
        &["send-test", "lobby", "hi"],
        &["send", "lobby", "hi"],
        &["listen", "lobby"],
        &["rooms"],
        &["dead-clients"],
        &["soak"],
        &["bench", "idle"],
    ];
    for args in commands {
        let mut command = roomcast();
        command.args(["--url", &url]).args(args);
        assert(command)
            .await
            .code(4)
            .stderr(predicate::str::contains(format!(
                "is the server running at ws://{}",
                &url[7..]
            )))
            .stderr(predicate::str::contains("cargo run -p roomcast-server"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_are_generated_for_each_shell() {
    for shell in ["bash", "zsh", "fish"] {
        let mut command = roomcast();
        command.args(["completions", shell]);
        assert(command)
            .await
            .success()
            .stdout(predicate::str::contains("dead-clients"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn help_lists_every_command_and_the_exit_codes() {
    let mut command = roomcast();
    command.arg("--help");
    let help = assert(command).await.success();
    let text = String::from_utf8_lossy(&help.get_output().stdout).into_owned();
    for word in [
        "send-test",
        "listen",
        "dead-clients",
        "soak",
        "bench",
        "3 an expectation",
    ] {
        assert!(text.contains(word), "--help lacks {word:?}:\n{text}");
    }
}
