//! Who may get in: private rooms, tokens, origins and per-client bounds (`--private-rooms`,
//! `--token-secret`, `--allowed-origins`, ...). Flattened into [`super::Config`]; checked with
//! the rest in `validate`, and secrets read from their files there, once.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

/// The access flags. Secrets are hidden from `--help` (`hide_env_values`) and from `Debug`.
#[derive(Clone, PartialEq, Eq, Args)]
pub struct AccessConfig {
    /// Rooms only an authorised session may join: names or patterns where `*` stands for any
    /// run of characters (`pagamento_*`). Repeat the flag or separate with commas.
    #[arg(long, env = "ROOMCAST_PRIVATE_ROOMS", value_delimiter = ',')]
    pub private_rooms: Vec<String>,

    /// Treat every room as private.
    #[arg(long, env = "ROOMCAST_REQUIRE_AUTH", default_value_t = false)]
    pub require_auth: bool,

    /// Secret that signs access tokens (HS256), at least 32 bytes. Prefer
    /// --token-secret-file, so the secret is not in the process list.
    #[arg(long, env = "ROOMCAST_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// File holding the token secret (one trailing newline is ignored), for container
    /// secrets.
    #[arg(long, env = "ROOMCAST_TOKEN_SECRET_FILE")]
    pub token_secret_file: Option<PathBuf>,

    /// File holding --api-key (one trailing newline is ignored), for container secrets.
    #[arg(long, env = "ROOMCAST_API_KEY_FILE")]
    pub api_key_file: Option<PathBuf>,

    /// Origins whose browsers may open sockets: exact (`https://app.example.com`) or one
    /// leading wildcard label (`https://*.example.com`). Others get HTTP 403. Empty allows
    /// every origin.
    #[arg(long, env = "ROOMCAST_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,

    /// Refuse handshakes that carry no Origin header (non-browser clients) with HTTP 403.
    #[arg(long, env = "ROOMCAST_REQUIRE_ORIGIN", default_value_t = false)]
    pub require_origin: bool,

    /// Most WebSocket sessions and SSE streams one client IP may hold open together; past it
    /// upgrades and streams get HTTP 429. 0 turns the limit off.
    #[arg(long, env = "ROOMCAST_MAX_CONNECTIONS_PER_IP", default_value_t = 0)]
    pub max_connections_per_ip: usize,

    /// Read the client IP from the last X-Forwarded-For entry (behind a proxy such as
    /// Render's), not the socket's peer.
    #[arg(long, env = "ROOMCAST_TRUST_PROXY_HEADERS", default_value_t = false)]
    pub trust_proxy_headers: bool,

    /// The app's join check: on a join of a private room without a token, POST
    /// {"room", "user"} here with the handshake's cookies; 200 admits (its JSON may set
    /// "user"), 403 denies, anything else or no answer refuses as unavailable.
    #[arg(long, env = "ROOMCAST_JOIN_PROXY")]
    pub join_proxy: Option<String>,

    /// How long the join proxy may take to answer. More than 0.
    #[arg(long, env = "ROOMCAST_JOIN_PROXY_TIMEOUT", default_value = "2s", value_parser = super::parse_duration)]
    pub join_proxy_timeout: Duration,

    /// Handshake headers forwarded to the join proxy besides Cookie (always forwarded), e.g.
    /// Authorization. Repeat the flag or separate with commas.
    #[arg(long, env = "ROOMCAST_JOIN_PROXY_HEADERS", value_delimiter = ',')]
    pub join_proxy_headers: Vec<String>,

    /// How long the join proxy's answers (admit or deny) are reused for the same room, user
    /// and forwarded headers. 0 asks every time.
    #[arg(long, env = "ROOMCAST_JOIN_PROXY_CACHE_TTL", default_value = "10s", value_parser = super::parse_duration)]
    pub join_proxy_cache_ttl: Duration,

    /// How long a client may take to send its request headers, WebSocket upgrades included:
    /// connections that open and send nothing, or trickle a header a byte at a time
    /// (slowloris), are closed after it. An upgraded session that sends no frame and is in
    /// no room within it is closed too (4003). More than 0.
    #[arg(long, env = "ROOMCAST_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = super::parse_duration)]
    pub handshake_timeout: Duration,

    /// Turn off `GET /chat/<room>/send-test/` (the POC's test view): it answers 404.
    #[arg(long, env = "ROOMCAST_NO_SEND_TEST", default_value_t = false)]
    pub no_send_test: bool,
}

impl std::fmt::Debug for AccessConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessConfig")
            .field("private_rooms", &self.private_rooms)
            .field("require_auth", &self.require_auth)
            .field(
                "token_secret",
                &self.token_secret.as_ref().map(|_| "(hidden)"),
            )
            .field("token_secret_file", &self.token_secret_file)
            .field("api_key_file", &self.api_key_file)
            .field("allowed_origins", &self.allowed_origins)
            .field("require_origin", &self.require_origin)
            .field("max_connections_per_ip", &self.max_connections_per_ip)
            .field("trust_proxy_headers", &self.trust_proxy_headers)
            .field("join_proxy", &self.join_proxy)
            .field("join_proxy_timeout", &self.join_proxy_timeout)
            .field("join_proxy_headers", &self.join_proxy_headers)
            .field("join_proxy_cache_ttl", &self.join_proxy_cache_ttl)
            .field("handshake_timeout", &self.handshake_timeout)
            .field("no_send_test", &self.no_send_test)
            .finish()
    }
}

/// Default for `--handshake-timeout`.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for AccessConfig {
    fn default() -> Self {
        Self {
            private_rooms: Vec::new(),
            require_auth: false,
            token_secret: None,
            token_secret_file: None,
            api_key_file: None,
            allowed_origins: Vec::new(),
            require_origin: false,
            max_connections_per_ip: 0,
            trust_proxy_headers: false,
            join_proxy: None,
            join_proxy_timeout: Duration::from_secs(2),
            join_proxy_headers: Vec::new(),
            join_proxy_cache_ttl: Duration::from_secs(10),
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            no_send_test: false,
        }
    }
}

/// Reads a secret file: its text less one trailing newline (what `echo` and editors add).
pub(crate) fn read_secret(path: &std::path::Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let text = text.strip_suffix('\n').unwrap_or(&text);
    let text = text.strip_suffix('\r').unwrap_or(text);
    Ok(text.to_owned())
}

impl super::Config {
    /// Replaces `--token-secret-file` and `--api-key-file` by what they hold.
    pub(super) fn read_secret_files(&mut self) -> Result<(), super::InvalidSetting> {
        let refuse = |flag: &'static str, value: String, rule: String| super::InvalidSetting {
            flag,
            value,
            rule,
        };
        if let Some(path) = self.access.token_secret_file.clone() {
            if self.access.token_secret.is_some() {
                return Err(refuse(
                    "--token-secret-file",
                    path.display().to_string(),
                    "give the secret once: --token-secret or --token-secret-file".to_owned(),
                ));
            }
            let secret = read_secret(&path)
                .map_err(|rule| refuse("--token-secret-file", path.display().to_string(), rule))?;
            self.access.token_secret = Some(secret);
        }
        if let Some(path) = self.access.api_key_file.clone() {
            if self.api_key.is_some() {
                return Err(refuse(
                    "--api-key-file",
                    path.display().to_string(),
                    "give the key once: --api-key or --api-key-file".to_owned(),
                ));
            }
            let key = read_secret(&path)
                .map_err(|rule| refuse("--api-key-file", path.display().to_string(), rule))?;
            self.api_key = Some(key);
        }
        Ok(())
    }

    /// The access flags' rules, added to `found`.
    pub(super) fn access_problems(&self, found: &mut Vec<super::InvalidSetting>) {
        let access = &self.access;
        let mut check = |ok: bool, flag: &'static str, value: String, rule: String| {
            if !ok {
                found.push(super::InvalidSetting { flag, value, rule });
            }
        };
        if let Some(secret) = &access.token_secret {
            check(
                secret.len() >= crate::access::MIN_SECRET_BYTES,
                "--token-secret",
                "(hidden)".to_owned(),
                format!(
                    "must be at least {} bytes (HS256 wants a 256-bit key); make one with \
                     `openssl rand -hex 32`",
                    crate::access::MIN_SECRET_BYTES
                ),
            );
        }
        for pattern in &access.private_rooms {
            if let Err(e) = crate::access::Pattern::new(pattern) {
                check(false, "--private-rooms", pattern.clone(), e.to_string());
            }
        }
        let has_private = !access.private_rooms.is_empty() || access.require_auth;
        if has_private && access.token_secret.is_none() && access.join_proxy.is_none() {
            let flag = if access.require_auth {
                "--require-auth"
            } else {
                "--private-rooms"
            };
            check(
                false,
                flag,
                access.private_rooms.join(","),
                "private rooms need --token-secret (or --token-secret-file) to check tokens, or \
                 --join-proxy"
                    .to_owned(),
            );
        }
        for origin in &access.allowed_origins {
            if let Err(rule) = crate::access::OriginRule::new(origin) {
                check(false, "--allowed-origins", origin.clone(), rule);
            }
        }
        if let Some(url) = &access.join_proxy {
            let ok = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            check(
                ok,
                "--join-proxy",
                url.clone(),
                "must be an http:// or https:// URL, e.g. http://127.0.0.1:8000/roomcast/join/"
                    .to_owned(),
            );
        }
        check(
            !access.join_proxy_timeout.is_zero()
                && access.join_proxy_timeout <= super::MAX_SETTING_DURATION,
            "--join-proxy-timeout",
            humantime::format_duration(access.join_proxy_timeout).to_string(),
            "must be more than 0 and at most 365 days".to_owned(),
        );
        check(
            access.join_proxy_cache_ttl <= super::MAX_SETTING_DURATION,
            "--join-proxy-cache-ttl",
            humantime::format_duration(access.join_proxy_cache_ttl).to_string(),
            "must be at most 365 days".to_owned(),
        );
        for name in &access.join_proxy_headers {
            check(
                axum::http::HeaderName::try_from(name.as_str()).is_ok(),
                "--join-proxy-headers",
                name.clone(),
                "must be a header name, e.g. Authorization".to_owned(),
            );
        }
        check(
            !access.handshake_timeout.is_zero()
                && access.handshake_timeout <= super::MAX_SETTING_DURATION,
            "--handshake-timeout",
            humantime::format_duration(access.handshake_timeout).to_string(),
            "must be more than 0 and at most 365 days".to_owned(),
        );
        check(
            !access.require_origin || !access.allowed_origins.is_empty(),
            "--require-origin",
            "true".to_owned(),
            "needs --allowed-origins: without it no origin could be accepted".to_owned(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use super::*;

    fn refused(access: AccessConfig) -> &'static str {
        let config = Config {
            access,
            ..Config::default()
        };
        match config.validate() {
            Ok(_) => panic!("accepted"),
            Err(e) => e.flag,
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn access_values_that_cannot_work_name_their_flag() {
        let short = AccessConfig {
            token_secret: Some("short".to_owned()),
            ..AccessConfig::default()
        };
        assert_eq!(refused(short), "--token-secret");
        let no_secret = AccessConfig {
            private_rooms: vec!["pagamento_*".to_owned()],
            ..AccessConfig::default()
        };
        assert_eq!(refused(no_secret), "--private-rooms");
        let everything = AccessConfig {
            require_auth: true,
            ..AccessConfig::default()
        };
        assert_eq!(refused(everything), "--require-auth");
        let bad_pattern = AccessConfig {
            private_rooms: vec!["pay ment".to_owned()],
            token_secret: Some(SECRET.to_owned()),
            ..AccessConfig::default()
        };
        assert_eq!(refused(bad_pattern), "--private-rooms");
        let bad_origin = AccessConfig {
            allowed_origins: vec!["example.com".to_owned()],
            ..AccessConfig::default()
        };
        assert_eq!(refused(bad_origin), "--allowed-origins");
        let lonely = AccessConfig {
            require_origin: true,
            ..AccessConfig::default()
        };
        assert_eq!(refused(lonely), "--require-origin");
        let zero = AccessConfig {
            handshake_timeout: Duration::ZERO,
            ..AccessConfig::default()
        };
        assert_eq!(refused(zero), "--handshake-timeout");
        let missing = AccessConfig {
            token_secret_file: Some(PathBuf::from("/nonexistent/roomcast-secret")),
            ..AccessConfig::default()
        };
        assert_eq!(refused(missing), "--token-secret-file");
    }

    #[test]
    fn secrets_come_from_files_less_their_newline_and_never_show_in_debug() {
        let dir = std::env::temp_dir().join(format!("roomcast-secret-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a temp dir");
        let path = dir.join("token_secret");
        std::fs::write(&path, format!("{SECRET}\n")).expect("write");
        let config = Config {
            access: AccessConfig {
                token_secret_file: Some(path),
                private_rooms: vec!["pagamento_*".to_owned()],
                ..AccessConfig::default()
            },
            ..Config::default()
        }
        .validate()
        .expect("a secret from a file");
        assert_eq!(config.get().access.token_secret.as_deref(), Some(SECRET));
        assert!(!format!("{:?}", config.get().access).contains(SECRET));
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
