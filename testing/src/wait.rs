//! Bounded waiting: a test never sleeps to synchronise; it waits for an event with a timeout.

use std::future::Future;
use std::time::Duration;

/// How long any one awaited event (or one run of a CLI command) may take before the test fails.
/// Generous for this 2-core machine shared by several builds; a hang still fails in seconds
/// rather than stalling the suite until nextest's own limit.
pub const WAIT: Duration = Duration::from_secs(20);

/// How often [`eventually`] polls: quick enough not to slow a test, slow enough not to load the
/// server it is asking.
const POLL_EVERY: Duration = Duration::from_millis(20);

/// Awaits `future`, failing the test with `what` if it takes longer than [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`]. For state with no event to
/// wait on (an HTTP stats route, a terminal's screen); every poll is a real request.
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    within(what, async {
        loop {
            if let Some(value) = check().await {
                return value;
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    })
    .await
}
