//! Who may join which room, checked in one place for every transport before a session joins:
//! private rooms (`--private-rooms`, `--require-auth`) and the tokens that open them
//! (`access/tokens`), room patterns (`access/patterns`), browser origins (`access/origins`)
//! and sessions per client IP (`access/per_ip`).
//!
//! A refusal names the rule that failed (`Refusal::rule`) and says nothing about the room:
//! no presence, history or latest state is sent before admission.

mod origins;
mod patterns;
mod per_ip;
mod proxy;
mod tokens;

use std::net::IpAddr;

use axum::http::{HeaderMap, header};
use roomcast_protocol::{CloseCode, ErrorCode, RoomName, UserName};

pub(crate) use self::origins::OriginRule;
pub(crate) use self::patterns::Pattern;
pub(crate) use self::per_ip::{IpPermit, PerIp};
use self::proxy::JoinProxy;
pub use self::tokens::mint;
pub(crate) use self::tokens::{Grant, MIN_SECRET_BYTES, Verifier};
use crate::config::Config;

/// Why a join of a private room was refused. Each variant is one rule, with a stable name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No token came with the join (nor at connect).
    Missing,
    /// The token's `exp` has passed.
    Expired,
    /// The token's `nbf` is still ahead.
    NotYetValid,
    /// The token is valid but its `rooms` do not include this room.
    WrongRoom,
    /// The signature does not match: a wrong secret, or a changed header or payload.
    BadSignature,
    /// Not a JWT, or claims of the wrong shape (the detail says which).
    Malformed(String),
    /// The header names an algorithm other than HS256 (`none` included).
    Algorithm(String),
    /// The session's name is not the token's `sub`.
    Impersonation,
    /// The app's join proxy answered 403.
    Denied,
    /// The app's join proxy did not answer (timeout, down, an unexpected status or body).
    Unavailable(String),
}

impl Refusal {
    /// The rule's stable name, as in the close reason, the error frame and the metric label.
    pub(crate) const fn rule(&self) -> &'static str {
        match self {
            Refusal::Missing => "missing",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
            Refusal::WrongRoom => "wrong_room",
            Refusal::BadSignature => "bad_signature",
            Refusal::Malformed(_) => "malformed",
            Refusal::Algorithm(_) => "algorithm",
            Refusal::Impersonation => "impersonation",
            Refusal::Denied => "denied",
            Refusal::Unavailable(_) => "unavailable",
        }
    }

    /// Every rule name (the metric renders each from the start).
    pub(crate) const RULES: [&'static str; 10] = [
        "missing",
        "expired",
        "not_yet_valid",
        "wrong_room",
        "bad_signature",
        "malformed",
        "algorithm",
        "impersonation",
        "denied",
        "unavailable",
    ];

    /// `forbidden: <rule>: <what to do>`, short enough for a close frame's reason.
    pub(crate) fn reason(&self) -> String {
        let detail = match self {
            Refusal::Missing => {
                "this room needs a token (?token= or Authorization: Bearer)".to_owned()
            }
            Refusal::Expired => "the token has expired; get a new one".to_owned(),
            Refusal::NotYetValid => "the token's nbf is in the future".to_owned(),
            Refusal::WrongRoom => "the token does not open this room".to_owned(),
            Refusal::BadSignature => "the token's signature does not match".to_owned(),
            Refusal::Malformed(why) => why.clone(),
            Refusal::Algorithm(alg) => format!("only HS256 tokens are accepted, not {alg:?}"),
            Refusal::Impersonation => "the user name is not the token's sub".to_owned(),
            Refusal::Denied => "the app's join proxy said no".to_owned(),
            Refusal::Unavailable(why) => format!("{why}; try again later"),
        };
        let reason = match self {
            Refusal::Unavailable(_) => format!("unavailable: {detail}"),
            _ => format!("forbidden: {}: {detail}", self.rule()),
        };
        roomcast_protocol::close::fit_close_reason(&reason).to_owned()
    }

    /// The close code for a refusal at connect: 4503, do not reconnect with the same request;
    /// 1013 when the app could not be asked (the same request may pass later).
    pub(crate) const fn close_code(&self) -> CloseCode {
        match self {
            Refusal::Unavailable(_) => CloseCode::TryAgainLater,
            _ => CloseCode::Forbidden,
        }
    }

    /// The error code of a refused typed `join`.
    pub(crate) const fn error_code(&self) -> ErrorCode {
        match self {
            Refusal::Unavailable(_) => ErrorCode::Unavailable,
            _ => ErrorCode::Forbidden,
        }
    }
}

/// The access rules of one server, built once from its config.
#[derive(Debug)]
pub(crate) struct Access {
    private: Vec<Pattern>,
    require_auth: bool,
    verifier: Option<Verifier>,
    origins: Vec<OriginRule>,
    require_origin: bool,
    trust_proxy_headers: bool,
    /// Sessions per client IP (`--max-connections-per-ip`).
    pub(crate) per_ip: PerIp,
    /// The app's join check (`--join-proxy`).
    join_proxy: Option<JoinProxy>,
}

impl Access {
    /// The rules `config` (validated) sets.
    pub(crate) fn new(config: &Config) -> Self {
        let access = &config.access;
        Self {
            private: access
                .private_rooms
                .iter()
                .filter_map(|p| Pattern::new(p).ok())
                .collect(),
            require_auth: access.require_auth,
            verifier: access
                .token_secret
                .as_deref()
                .and_then(|secret| Verifier::new(secret.as_bytes())),
            origins: access
                .allowed_origins
                .iter()
                .filter_map(|o| OriginRule::new(o).ok())
                .collect(),
            require_origin: access.require_origin,
            trust_proxy_headers: access.trust_proxy_headers,
            per_ip: PerIp::new(access.max_connections_per_ip),
            join_proxy: access.join_proxy.as_deref().map(|url| {
                JoinProxy::new(
                    url,
                    access.join_proxy_timeout,
                    &access.join_proxy_headers,
                    access.join_proxy_cache_ttl,
                )
            }),
        }
    }

    /// Whether `room` is private (`--private-rooms`, or every room with `--require-auth`).
    pub(crate) fn is_private(&self, room: &RoomName) -> bool {
        self.require_auth || patterns::any_matches(&self.private, room.as_str())
    }

    /// Verifies a token on its own (at connect, before knowing which rooms it will open).
    pub(crate) fn verify(&self, token: &str) -> Result<Grant, Refusal> {
        match &self.verifier {
            Some(verifier) => verifier.verify(token),
            // No secret: no token can be checked, so none opens anything.
            None => Err(Refusal::BadSignature),
        }
    }

    /// Decides whether a session named `user` may join `room`, with `token` given for this
    /// join or else the grant `held` from its connect. `Ok(None)`: the room is public.
    pub(crate) fn check_join(
        &self,
        room: &RoomName,
        token: Option<&str>,
        held: Option<&Grant>,
        user: Option<&UserName>,
    ) -> Result<Option<Grant>, Refusal> {
        if !self.is_private(room) {
            return Ok(None);
        }
        let grant = match (token, held) {
            (Some(token), _) => self.verify(token)?,
            (None, Some(held)) if held.expired_at(unix_now()) => return Err(Refusal::Expired),
            (None, Some(held)) => held.clone(),
            (None, None) => return Err(Refusal::Missing),
        };
        if !grant.covers(room) {
            return Err(Refusal::WrongRoom);
        }
        if user.is_some_and(|user| *user != grant.user) {
            return Err(Refusal::Impersonation);
        }
        Ok(Some(grant))
    }

    /// Asks the app's join proxy, when there is one, about a join of private `room` that came
    /// with no token. `None`: no proxy (the join needs a token). `Some(Ok(name))`: admitted,
    /// under the app's name for the member when it gave one.
    pub(crate) async fn ask_proxy(
        &self,
        room: &RoomName,
        user: Option<&UserName>,
        headers: &HeaderMap,
    ) -> Option<Result<Option<UserName>, Refusal>> {
        let proxy = self.join_proxy.as_ref()?;
        Some(proxy.ask(room, user, headers).await)
    }

    /// Whether `--join-proxy` is set (a typed join of a private room with no token asks it).
    pub(crate) fn has_join_proxy(&self) -> bool {
        self.join_proxy.is_some()
    }

    /// What a session keeps of its handshake for later typed joins that ask the join proxy:
    /// only the headers the proxy forwards (Cookie and `--join-proxy-headers`), boxed, and
    /// nothing at all without a proxy, so an ordinary session stays small.
    pub(crate) fn proxy_headers(&self, headers: &HeaderMap) -> Option<Box<HeaderMap>> {
        let proxy = self.join_proxy.as_ref()?;
        Some(Box::new(proxy.forwarded(headers)))
    }

    /// Whether a request with these headers comes from an allowed origin. No `Origin` header
    /// (not a browser) passes unless `--require-origin`.
    pub(crate) fn origin_allowed(&self, headers: &HeaderMap) -> Result<(), String> {
        match headers.get(header::ORIGIN).map(|v| v.to_str()) {
            None if self.require_origin => {
                Err("this server requires an Origin header (--require-origin)".to_owned())
            }
            None => Ok(()),
            Some(_) if self.origins.is_empty() => Ok(()),
            Some(Ok(origin)) if self.origins.iter().any(|rule| rule.allows(origin)) => Ok(()),
            Some(Ok(origin)) => Err(format!(
                "origin {:?} is not in --allowed-origins",
                origin.chars().take(100).collect::<String>()
            )),
            Some(Err(_)) => Err("the Origin header is not text".to_owned()),
        }
    }

    /// Whether `origin` is in `--allowed-origins` (an empty list lists nothing).
    pub(crate) fn origin_listed(&self, origin: &str) -> bool {
        self.origins.iter().any(|rule| rule.allows(origin))
    }

    /// The client's IP: the socket peer, or with `--trust-proxy-headers` the last
    /// `X-Forwarded-For` entry (the one the trusted proxy added; earlier ones are the
    /// client's word).
    pub(crate) fn client_ip(&self, headers: &HeaderMap, peer: Option<IpAddr>) -> Option<IpAddr> {
        if self.trust_proxy_headers {
            let forwarded = headers
                .get_all("x-forwarded-for")
                .iter()
                .filter_map(|v| v.to_str().ok())
                .flat_map(|v| v.split(','))
                .last()
                .and_then(|ip| ip.trim().parse().ok());
            if forwarded.is_some() {
                return forwarded;
            }
        }
        peer.map(|ip| ip.to_canonical())
    }
}

/// A `--max-connections-per-ip` slot for the client of a WebSocket upgrade or an SSE stream
/// (`transport` names it in the log): the same rule and the same 429 for both, counted in
/// `roomcast_connections_refused_per_ip_total`. `Ok(None)` when the limit is off.
pub(crate) fn admit_ip(
    state: &crate::state::AppState,
    headers: &HeaderMap,
    peer: Option<IpAddr>,
    transport: &'static str,
) -> Result<Option<IpPermit>, crate::api_error::ApiError> {
    let client_ip = state.access.client_ip(headers, peer);
    state.access.per_ip.acquire(client_ip).map_err(|()| {
        state.metrics.record_connection_refused_per_ip();
        let limit = state.access.per_ip.limit();
        tracing::warn!(ip = ?client_ip, limit, transport, "refused with 429: --max-connections-per-ip");
        crate::api_error::ApiError::new(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RateLimited,
            format!(
                "this IP has {limit} sessions and streams open (--max-connections-per-ip); close one first"
            ),
        )
    })
}

/// The token a handshake carries: `?token=`, else `Authorization: Bearer`.
pub(crate) fn handshake_token<'a>(
    query: Option<&'a str>,
    headers: &'a HeaderMap,
) -> Option<&'a str> {
    query.or_else(|| {
        headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
    })
}

/// Seconds since the Unix epoch (what `exp` and `nbf` count).
pub(crate) fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
