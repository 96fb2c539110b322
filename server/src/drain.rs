//! Deploy drain: on shutdown, sessions are closed (1001) in waves spread over `--drain-window`
//! rather than all at once, so thousands of clients do not reconnect to the next instance in the
//! same second.
//!
//! Each session waits on one wave's token, chosen by its id, so a wave closes about
//! `1 / waves` of the sessions and firing it costs time in proportion to those sessions only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};
use tracing::info;

use crate::config::Config;
use crate::session::SessionId;

/// Pause between two waves. Short enough that a 20 s window closes 1/200 of the sessions at a
/// time, long enough that a wave is a batch (hundreds of sessions at 100,000), not a trickle.
const WAVE_INTERVAL: Duration = Duration::from_millis(100);

/// Most waves, whatever the window: bounds the tokens kept per server (one per wave) and keeps
/// a very long window from closing sessions one by one.
const MAX_WAVES: u32 = 1_000;

/// What the last wave's sessions need after it fires to finish their closing handshake: the
/// session's close write (1 s) plus its linger for the client's answer (1 s), see `session.rs`.
/// `--shutdown-grace` must cover `--drain-window` plus this.
pub const CLOSE_HANDSHAKE_ALLOWANCE: Duration = Duration::from_secs(2);

/// The waves of one server's shutdown. Built at start from `--drain-window`; fired once, by
/// [`crate::run`], when shutdown starts.
#[derive(Debug)]
pub(crate) struct Drain {
    window: Duration,
    waves: Vec<CancellationToken>,
    /// Set when the wave of the same index fires, before its token is cancelled: what a
    /// session's loop reads every turn, one atomic load where the token's own check takes a
    /// mutex shared by the wave ([`Drain::fired_flag`]).
    fired: Vec<AtomicBool>,
}

impl Drain {
    /// Waves spread over `window`, one every [`WAVE_INTERVAL`] (at most [`MAX_WAVES`]); a zero
    /// window is one wave that closes everything at once.
    pub(crate) fn new(window: Duration) -> Self {
        let count = (window.as_millis() / WAVE_INTERVAL.as_millis()).clamp(1, MAX_WAVES.into());
        let count = usize::try_from(count).unwrap_or(1);
        Self {
            window,
            waves: (0..count).map(|_| CancellationToken::new()).collect(),
            fired: (0..count).map(|_| AtomicBool::new(false)).collect(),
        }
    }

    /// Completes when session `id` must close for shutdown. Sessions with consecutive ids are
    /// in consecutive waves, so every wave holds about the same share.
    pub(crate) fn signal(&self, id: SessionId) -> WaitForCancellationFutureOwned {
        self.waves[self.wave_of(id)].clone().cancelled_owned()
    }

    /// True (with `Acquire`) once session `id`'s wave has fired. A loop that polled
    /// [`Drain::signal`]'s future once (so the wave's firing wakes it) can read this on later
    /// turns instead of polling the future again: the flag is set before the wake.
    pub(crate) fn fired_flag(&self, id: SessionId) -> &AtomicBool {
        &self.fired[self.wave_of(id)]
    }

    fn wave_of(&self, id: SessionId) -> usize {
        usize::try_from(id).unwrap_or(0) % self.waves.len()
    }

    /// Fires the waves: the first at once, the others evenly over the window, so the last fires
    /// one interval before it ends. Returns when every wave has fired.
    pub(crate) async fn run(&self, sessions: impl Fn() -> usize) {
        let started = tokio::time::Instant::now();
        let count = u32::try_from(self.waves.len()).unwrap_or(MAX_WAVES);
        info!(
            sessions = sessions(),
            window = ?self.window,
            waves = count,
            "draining: closing sessions with 1001 in waves"
        );
        for ((index, wave), fired) in (0..count).zip(&self.waves).zip(&self.fired) {
            tokio::time::sleep_until(started + self.window * index / count).await;
            fired.store(true, Ordering::Release);
            wave.cancel();
        }
        info!(sessions = sessions(), "draining: every wave has fired");
    }
}

/// Refuses a shutdown budget that cannot work: `--shutdown-grace` must cover `--drain-window`
/// plus [`CLOSE_HANDSHAKE_ALLOWANCE`], or the last waves would be cut off by the exit. The
/// message names both flags.
pub(crate) fn check_shutdown_budget(config: &Config) -> Result<(), String> {
    let needed = config.drain_window + CLOSE_HANDSHAKE_ALLOWANCE;
    if config.shutdown_grace >= needed {
        return Ok(());
    }
    Err(format!(
        "--shutdown-grace ({grace:?}) must cover --drain-window ({window:?}) plus {allowance:?} \
         for the last closing handshakes: raise --shutdown-grace to at least {needed:?} or lower \
         --drain-window (ROOMCAST_SHUTDOWN_GRACE, ROOMCAST_DRAIN_WINDOW)",
        grace = config.shutdown_grace,
        window = config.drain_window,
        allowance = CLOSE_HANDSHAKE_ALLOWANCE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waves_follow_the_window_within_their_bounds() {
        assert_eq!(Drain::new(Duration::ZERO).waves.len(), 1);
        assert_eq!(Drain::new(Duration::from_millis(50)).waves.len(), 1);
        assert_eq!(Drain::new(Duration::from_secs(20)).waves.len(), 200);
        assert_eq!(
            Drain::new(Duration::from_secs(3600)).waves.len(),
            MAX_WAVES as usize
        );
    }

    #[test]
    fn a_grace_shorter_than_the_window_is_refused_naming_both_flags() {
        let config = Config {
            drain_window: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(10),
            ..Config::default()
        };
        let message = check_shutdown_budget(&config).err().unwrap_or_default();
        assert!(message.contains("--shutdown-grace"), "{message}");
        assert!(message.contains("--drain-window"), "{message}");
        assert!(message.contains("22s"), "{message}");
        assert!(check_shutdown_budget(&Config::default()).is_ok());
        let fits = Config {
            drain_window: Duration::from_secs(20),
            shutdown_grace: Duration::from_secs(22),
            ..Config::default()
        };
        assert!(check_shutdown_budget(&fits).is_ok());
    }
}
