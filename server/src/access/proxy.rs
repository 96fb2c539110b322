//! `--join-proxy URL`: the app's own login decides. On a join of a private room with no token,
//! the server POSTs `{"room": ..., "user": ...}` to the app with the handshake's cookies (and
//! the `--join-proxy-headers` it names), so a Django view sees its own `request.user`. A 200
//! admits (its JSON may set `user`, the member's name); a 403 denies; anything else, a timeout
//! or a refused connection is "unavailable" (try again later). Answers are cached for
//! `--join-proxy-cache-ttl`, at most [`MAX_CACHE_ENTRIES`] of them.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, HeaderName, StatusCode, header};
use roomcast_protocol::{RoomName, UserName};
use serde::{Deserialize, Serialize};

use super::Refusal;

/// Most answers kept at once. Each key holds the forwarded header values (a few KiB at most),
/// so the cache stays within a few MiB whoever connects.
pub(crate) const MAX_CACHE_ENTRIES: usize = 1024;

/// Largest answer body read from the app; a bigger one counts as unavailable.
pub(crate) const MAX_ANSWER_BYTES: usize = 16 * 1024;

/// What the app decided: admitted (perhaps under its own name for the member), or refused.
type Verdict = Result<Option<UserName>, Refusal>;

/// The app's join check.
#[derive(Debug)]
pub(crate) struct JoinProxy {
    url: String,
    client: reqwest::Client,
    timeout: Duration,
    forward: Vec<HeaderName>,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Verdict)>>,
}

#[derive(Serialize)]
struct Ask<'a> {
    room: &'a str,
    user: Option<&'a str>,
}

#[derive(Deserialize)]
struct Answer {
    user: Option<String>,
}

impl JoinProxy {
    /// A proxy to `url` (checked at start), waiting at most `timeout` for each answer.
    pub(crate) fn new(url: &str, timeout: Duration, forward: &[String], ttl: Duration) -> Self {
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap_or_default();
        Self {
            url: url.to_owned(),
            client,
            timeout,
            forward: forward
                .iter()
                .filter_map(|name| HeaderName::try_from(name.as_str()).ok())
                .collect(),
            ttl,
            cache: Mutex::default(),
        }
    }

    /// The headers of `headers` this proxy forwards: Cookie and `--join-proxy-headers`.
    pub(crate) fn forwarded(&self, headers: &HeaderMap) -> HeaderMap {
        let mut kept = HeaderMap::new();
        for name in std::iter::once(&header::COOKIE).chain(&self.forward) {
            for value in headers.get_all(name) {
                kept.append(name.clone(), value.clone());
            }
        }
        kept
    }

    /// Asks the app whether the handshake with `headers` may join `room` as `user` (when it
    /// named itself). `Ok(Some(name))`: admitted under the app's name for the member.
    pub(crate) async fn ask(
        &self,
        room: &RoomName,
        user: Option<&UserName>,
        headers: &HeaderMap,
    ) -> Verdict {
        let mut forwarded = Vec::new();
        for name in std::iter::once(&header::COOKIE).chain(&self.forward) {
            for value in headers.get_all(name) {
                forwarded.push((name.clone(), value.clone()));
            }
        }
        let key = cache_key(room, user, &forwarded);
        if let Some(answer) = self.cached(&key) {
            return answer;
        }
        let answer = self.call(room, user, forwarded).await;
        if !matches!(answer, Err(Refusal::Unavailable(_))) {
            self.remember(key, &answer);
        }
        answer
    }

    async fn call(
        &self,
        room: &RoomName,
        user: Option<&UserName>,
        forwarded: Vec<(HeaderName, axum::http::HeaderValue)>,
    ) -> Verdict {
        let unavailable = |why: String| Refusal::Unavailable(why);
        let mut request = self.client.post(&self.url).json(&Ask {
            room: room.as_str(),
            user: user.map(UserName::as_str),
        });
        for (name, value) in forwarded {
            request = request.header(name, value);
        }
        let mut response = request.send().await.map_err(|e| {
            if e.is_timeout() {
                unavailable(format!(
                    "the join proxy did not answer within {:?}",
                    self.timeout
                ))
            } else {
                unavailable("the join proxy cannot be reached".to_owned())
            }
        })?;
        match response.status() {
            StatusCode::OK => {}
            StatusCode::FORBIDDEN => return Err(Refusal::Denied),
            other => {
                return Err(unavailable(format!(
                    "the join proxy answered {}",
                    other.as_u16()
                )));
            }
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|_| unavailable("the join proxy's answer broke off".to_owned()))?
        {
            if body.len() + chunk.len() > MAX_ANSWER_BYTES {
                return Err(unavailable(format!(
                    "the join proxy's answer is over {MAX_ANSWER_BYTES} bytes"
                )));
            }
            body.extend_from_slice(&chunk);
        }
        if body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let answer: Answer = serde_json::from_slice(&body)
            .map_err(|_| unavailable("the join proxy's 200 is not JSON".to_owned()))?;
        answer
            .user
            .map(|name| {
                UserName::new(&name)
                    .map_err(|_| unavailable("the join proxy named an invalid user".to_owned()))
            })
            .transpose()
    }

    fn cached(&self, key: &str) -> Option<Verdict> {
        if self.ttl.is_zero() {
            return None;
        }
        let cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        cache
            .get(key)
            .filter(|(until, _)| Instant::now() < *until)
            .map(|(_, answer)| answer.clone())
    }

    fn remember(&self, key: String, answer: &Verdict) {
        if self.ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if cache.len() >= MAX_CACHE_ENTRIES {
            // Expired answers go first; if none has, this answer is simply not kept.
            cache.retain(|_, (until, _)| now < *until);
        }
        if cache.len() < MAX_CACHE_ENTRIES {
            cache.insert(key, (now + self.ttl, answer.clone()));
        }
    }
}

/// The whole question, so two handshakes share an answer only if the app would see the same
/// request.
fn cache_key(
    room: &RoomName,
    user: Option<&UserName>,
    forwarded: &[(HeaderName, axum::http::HeaderValue)],
) -> String {
    let mut key = format!("{room}\n{}\n", user.map_or("", UserName::as_str));
    for (name, value) in forwarded {
        key.push_str(name.as_str());
        key.push(':');
        key.push_str(&String::from_utf8_lossy(value.as_bytes()));
        key.push('\n');
    }
    key
}
