//! The whole configuration checked once, at start: a value that cannot work is refused naming
//! its flag and the rule, instead of failing later in every session.

use std::time::Duration;

use super::Config;

/// Longest accepted duration for any setting. No timer here needs more, and clock arithmetic
/// on much longer ones overflows (a deadline past the clock's end panics).
pub const MAX_SETTING_DURATION: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// Smallest accepted `--max-message-bytes`: a client must be able to send a `join` with the
/// longest room name (100 characters), a position and a `ref`, and a short message.
pub const MIN_MESSAGE_BYTES: usize = 512;

/// What an outgoing frame adds around a message's text: room (up to 100 bytes), user (up to
/// 32 characters, 128 bytes), seq, ts and the JSON around them. `--max-queue-bytes` must hold at
/// least one frame carrying the largest message, or every such message would evict its readers.
pub const FRAME_ENVELOPE_BYTES: usize = 1024;

/// Shortest accepted `--redis-node-timeout`: nodes heartbeat every third of it, and a beat
/// much shorter than a Redis round trip under load would count live nodes dead.
pub const MIN_REDIS_NODE_TIMEOUT: Duration = Duration::from_millis(300);

/// A [`Config`] in which every value can work: what [`crate::run`] and
/// [`crate::AppState::new`] accept. Made only by [`Config::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidConfig(Config);

impl ValidConfig {
    /// The settings.
    pub fn get(&self) -> &Config {
        &self.0
    }

    /// The settings, by value.
    pub fn into_inner(self) -> Config {
        self.0
    }
}

/// A setting that cannot work: the flag that sets it, the value given, and the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid value '{value}' for '{flag}': {rule}")]
pub struct InvalidSetting {
    /// The flag, as written on the command line (its `ROOMCAST_*` twin sets the same).
    pub flag: &'static str,
    /// The value given, as the server read it.
    pub value: String,
    /// The rule it broke, and what to do instead.
    pub rule: String,
}

impl Config {
    /// Checks every setting; the first that cannot work is the error.
    pub fn validate(self) -> Result<ValidConfig, InvalidSetting> {
        self.problems()
            .into_iter()
            .next()
            .map_or(Ok(ValidConfig(self)), Err)
    }

    fn problems(&self) -> Vec<InvalidSetting> {
        let mut found = Vec::new();
        let mut check = |ok: bool, flag: &'static str, value: String, rule: &str| {
            if !ok {
                found.push(InvalidSetting {
                    flag,
                    value,
                    rule: rule.to_owned(),
                });
            }
        };
        let durations = [
            ("--ping-interval", self.ping_interval, false),
            ("--ping-timeout", self.ping_timeout, false),
            ("--write-timeout", self.write_timeout, false),
            ("--shutdown-grace", self.shutdown_grace, false),
            ("--room-ttl", self.room_ttl, true),
        ];
        for (flag, duration, zero_allowed) in durations {
            let value = humantime::format_duration(duration).to_string();
            check(
                zero_allowed || !duration.is_zero(),
                flag,
                value.clone(),
                "must be more than 0",
            );
            check(
                duration <= MAX_SETTING_DURATION,
                flag,
                value,
                "must be at most 365 days",
            );
        }
        let bytes = self.max_message_bytes;
        check(
            bytes >= MIN_MESSAGE_BYTES,
            "--max-message-bytes",
            bytes.to_string(),
            &format!("must be at least {MIN_MESSAGE_BYTES}: a join frame must fit"),
        );
        let queue_floor = bytes.saturating_add(FRAME_ENVELOPE_BYTES);
        check(
            self.max_queue_bytes >= queue_floor,
            "--max-queue-bytes",
            self.max_queue_bytes.to_string(),
            &format!(
                "must be at least --max-message-bytes + {FRAME_ENVELOPE_BYTES} ({queue_floor}): \
                 the queue must hold one frame carrying the largest message"
            ),
        );
        for (flag, count) in [
            ("--max-connections", self.max_connections),
            ("--max-rooms", self.max_rooms),
            ("--max-rooms-per-session", self.max_rooms_per_session),
        ] {
            check(count >= 1, flag, count.to_string(), "must be at least 1");
        }
        check(
            self.rate_per_second == 0 || self.rate_burst >= 1,
            "--rate-burst",
            self.rate_burst.to_string(),
            "must be at least 1 while --rate-per-second is set (0 there turns the limit off)",
        );
        check(
            self.history_size == 0 || self.history_bytes >= 1,
            "--history-bytes",
            self.history_bytes.to_string(),
            "must be more than 0; to keep no history, set --history-size 0",
        );
        check(
            self.latest_on_join.iter().all(|prefix| !prefix.is_empty()),
            "--latest-on-join",
            self.latest_on_join.join(","),
            "prefixes must not be empty (an empty one would match nothing)",
        );
        if let Err(rule) = crate::drain::check_shutdown_budget(self) {
            check(
                false,
                "--shutdown-grace",
                humantime::format_duration(self.shutdown_grace).to_string(),
                &rule,
            );
        }
        if !self.redis_url.is_empty() {
            check(
                self.redis_node_timeout >= MIN_REDIS_NODE_TIMEOUT,
                "--redis-node-timeout",
                humantime::format_duration(self.redis_node_timeout).to_string(),
                "must be at least 300ms: nodes heartbeat every third of it",
            );
            if let Err(rule) = crate::relay::redis::check_prefix(&self.redis_prefix) {
                check(false, "--redis-prefix", self.redis_prefix.clone(), &rule);
            }
            if let Err(rule) = crate::relay::redis::clients(self) {
                // The rule names the URL, without its password.
                check(false, "--redis-url", "(hidden)".to_owned(), &rule);
            }
        }
        for (flag, value, rule) in self.channels.problems(&self.redis_url) {
            check(false, flag, value, &rule);
        }
        if let Some(key) = &self.api_key {
            check(
                !key.is_empty() && key.trim() == key,
                "--api-key",
                "(hidden)".to_owned(),
                "must not be empty or start or end with whitespace (HTTP trims header \
                 values, so no request could carry it)",
            );
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(config: Config) -> &'static str {
        match config.validate() {
            Ok(_) => panic!("accepted"),
            Err(invalid) => invalid.flag,
        }
    }

    #[test]
    fn the_defaults_are_valid() {
        assert!(Config::default().validate().is_ok());
    }

    #[test]
    fn values_that_cannot_work_name_their_flag() {
        let base = Config::default;
        let zero = Duration::ZERO;
        let cases = [
            (
                Config {
                    ping_interval: zero,
                    ..base()
                },
                "--ping-interval",
            ),
            (
                Config {
                    ping_timeout: zero,
                    ..base()
                },
                "--ping-timeout",
            ),
            (
                Config {
                    write_timeout: zero,
                    ..base()
                },
                "--write-timeout",
            ),
            (
                Config {
                    shutdown_grace: zero,
                    ..base()
                },
                "--shutdown-grace",
            ),
            (
                Config {
                    room_ttl: MAX_SETTING_DURATION * 2,
                    ..base()
                },
                "--room-ttl",
            ),
            (
                Config {
                    max_message_bytes: 0,
                    ..base()
                },
                "--max-message-bytes",
            ),
            (
                Config {
                    max_queue_bytes: 64 * 1024,
                    ..base()
                },
                "--max-queue-bytes",
            ),
            (
                Config {
                    max_connections: 0,
                    ..base()
                },
                "--max-connections",
            ),
            (
                Config {
                    max_rooms: 0,
                    ..base()
                },
                "--max-rooms",
            ),
            (
                Config {
                    max_rooms_per_session: 0,
                    ..base()
                },
                "--max-rooms-per-session",
            ),
            (
                Config {
                    rate_burst: 0,
                    ..base()
                },
                "--rate-burst",
            ),
            (
                Config {
                    history_bytes: 0,
                    ..base()
                },
                "--history-bytes",
            ),
            (
                Config {
                    latest_on_join: vec![String::new()],
                    ..base()
                },
                "--latest-on-join",
            ),
            (
                Config {
                    api_key: Some(" key".to_owned()),
                    ..base()
                },
                "--api-key",
            ),
        ];
        for (config, flag) in cases {
            assert_eq!(refused(config), flag);
        }
    }

    #[test]
    fn zero_means_off_where_the_help_says_so() {
        let off = Config {
            rate_per_second: 0,
            rate_burst: 0,
            history_size: 0,
            history_bytes: 0,
            room_ttl: Duration::ZERO,
            ..Config::default()
        };
        assert!(off.validate().is_ok());
    }
}
