//! Graceful shutdown: every session hears 1001, readiness fails, `run` returns in time.

use std::time::Duration;

use roomcast_server::Config;

use crate::support::{TestServer, eventually, tutorial_close, typed_close, within};

#[tokio::test]
async fn every_session_gets_1001_and_run_returns_within_the_grace_period() {
    let grace = Duration::from_secs(3);
    let server = TestServer::start(Config {
        shutdown_grace: grace,
        ..Config::default()
    })
    .await;
    let mut tutorial_a = server.tutorial("lobby").await;
    let mut tutorial_b = server.tutorial("kitchen").await;
    let mut typed = server.typed("ana").await;

    let took = server.stop().await;
    for (code, reason) in [
        tutorial_close(&mut tutorial_a).await,
        tutorial_close(&mut tutorial_b).await,
        typed_close(&mut typed).await,
    ] {
        assert_eq!(code, Some(1001), "{reason}");
        assert_eq!(reason, "server shutting down");
    }
    assert!(took < grace, "run() took {took:?}, grace is {grace:?}");
}

#[tokio::test]
async fn while_draining_readiness_fails_and_new_sessions_are_refused() {
    let grace = Duration::from_secs(5);
    let server = TestServer::start(Config {
        shutdown_grace: grace,
        ..Config::default()
    })
    .await;
    // Never answers our close frame, so draining lasts the close linger (about a second).
    let _stubborn = server.raw("lobby").await;
    let readyz = server.http_url("readyz");
    let url = server.url.clone();
    let http = server.http().clone();
    assert_eq!(
        within("readyz", http.get(&readyz).send())
            .await
            .expect("GET")
            .status(),
        200
    );

    let stopping = tokio::spawn(server.stop());
    eventually("readiness to fail", || async {
        let status = http.get(&readyz).send().await.ok()?.status();
        (status == 503).then_some(())
    })
    .await;
    let room = crate::support::room("lobby");
    let refused = roomcast_protocol::TutorialClient::connect(&url, &room, None).await;
    match refused {
        Err(roomcast_protocol::ClientError::Rejected { status, .. }) => assert_eq!(status, 503),
        Err(other) => panic!("expected a 503 refusal, got {other}"),
        Ok(_) => panic!("a new session was accepted while draining"),
    }
    let took = within("shutdown", stopping).await.expect("stop task");
    assert!(took < grace, "run() took {took:?}, grace is {grace:?}");
}
