//! Who may publish over HTTP: holders of `--api-key`, or loopback peers when no key is set.

use std::net::SocketAddr;

use axum::http::{HeaderMap, StatusCode, header};
use roomcast_protocol::ErrorCode;
use subtle::ConstantTimeEq;

use crate::api_error::ApiError;

/// The peer address of a request, added by the accept loop.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

/// Checks a publish request. With a key configured, `Authorization: Bearer <key>` must match
/// (compared in constant time, so timing does not reveal how much of a guess was right).
/// Without one, only loopback peers may publish.
pub(crate) fn authorize_publish(
    api_key: Option<&str>,
    headers: &HeaderMap,
    peer: Option<PeerAddr>,
) -> Result<(), ApiError> {
    match api_key {
        Some(key) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .map(str::trim);
            match presented {
                Some(given) if bool::from(given.as_bytes().ct_eq(key.as_bytes())) => Ok(()),
                Some(_) => Err(unauthorized("wrong API key in the Authorization header")),
                None => Err(unauthorized(
                    "publishing needs the header Authorization: Bearer <key> (the server's --api-key)",
                )),
            }
        }
        None => match peer {
            Some(PeerAddr(addr)) if addr.ip().to_canonical().is_loopback() => Ok(()),
            Some(PeerAddr(addr)) => Err(unauthorized(format!(
                "publishing from {} is refused: the server has no --api-key, so only loopback \
                 peers may publish; start it with --api-key and send Authorization: Bearer <key>",
                addr.ip()
            ))),
            None => Err(unauthorized(
                "the peer address is unknown and no --api-key is set",
            )),
        },
    }
}

fn unauthorized(message: impl Into<String>) -> ApiError {
    ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message)
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn peer(ip: &str) -> Option<PeerAddr> {
        let addr: SocketAddr = format!("{ip}:1234").parse().expect("test address");
        Some(PeerAddr(addr))
    }

    fn bearer(key: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {key}")).expect("header value");
        headers.insert(header::AUTHORIZATION, value);
        headers
    }

    #[test]
    fn without_a_key_only_loopback_publishes() {
        let none = HeaderMap::new();
        assert!(authorize_publish(None, &none, peer("127.0.0.1")).is_ok());
        assert!(authorize_publish(None, &none, peer("[::1]")).is_ok());
        assert!(authorize_publish(None, &none, peer("[::ffff:127.0.0.1]")).is_ok());
        assert!(authorize_publish(None, &none, peer("10.0.0.7")).is_err());
        assert!(authorize_publish(None, &none, None).is_err());
    }

    #[test]
    fn with_a_key_the_bearer_must_match_from_anywhere() {
        let key = Some("s3cret");
        assert!(authorize_publish(key, &bearer("s3cret"), peer("10.0.0.7")).is_ok());
        let wrong = authorize_publish(key, &bearer("guess"), peer("127.0.0.1"));
        assert_eq!(wrong.map_err(|e| e.status), Err(StatusCode::UNAUTHORIZED));
        assert!(authorize_publish(key, &HeaderMap::new(), peer("127.0.0.1")).is_err());
    }
}
