//! Access tokens: HS256 JWTs verified with `jsonwebtoken`, never by hand. Only HS256 is
//! accepted; `alg: none` and every other algorithm are refused before any key is used, so a
//! token cannot choose how it is checked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use roomcast_protocol::{RoomName, TokenClaims, UserName};
use serde::Deserialize;

use super::Refusal;
use super::patterns::{self, Pattern};

/// Clock skew tolerated between the backend that signs and this server, on `exp` and `nbf`.
/// Small, so an expired token stops working within seconds.
pub(crate) const TOKEN_LEEWAY_SECS: u64 = 5;

/// Longest token read, in bytes. A real one is a few hundred; the bound keeps a peer from
/// making the server decode megabytes of base64 per handshake.
pub(crate) const MAX_TOKEN_BYTES: usize = 4096;

/// Most `rooms` entries a token may carry (each one is matched on every private join).
pub(crate) const MAX_TOKEN_ROOMS: usize = 64;

/// Shortest accepted `--token-secret`, in bytes: RFC 7518 §3.2 asks for a key at least as long
/// as the hash (256 bits) for HS256.
pub(crate) const MIN_SECRET_BYTES: usize = 32;

/// What a verified token grants: a name and the rooms it opens, until it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Grant {
    /// The token's `sub`: the member's name in the rooms it opens.
    pub(crate) user: UserName,
    rooms: Vec<Pattern>,
    /// `exp`, seconds since the Unix epoch.
    expires: u64,
}

impl Grant {
    /// Whether this grant opens `room`.
    pub(crate) fn covers(&self, room: &RoomName) -> bool {
        patterns::any_matches(&self.rooms, room.as_str())
    }

    /// Whether the grant has expired at `now` (seconds since the Unix epoch).
    pub(crate) fn expired_at(&self, now: u64) -> bool {
        self.expires.saturating_add(TOKEN_LEEWAY_SECS) < now
    }

    /// The first second (since the Unix epoch) at which [`Grant::expired_at`] holds: `exp`
    /// plus the leeway, plus one. A member it admitted is removed then.
    pub(crate) fn admits_until(&self) -> u64 {
        self.expires
            .saturating_add(TOKEN_LEEWAY_SECS)
            .saturating_add(1)
    }
}

/// Checks tokens against one secret.
pub(crate) struct Verifier {
    key: DecodingKey,
    validation: Validation,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.write_str("Verifier(HS256)")
    }
}

/// Just enough of the header to refuse other algorithms by name (the library cannot even
/// parse `none`, which would otherwise be reported as merely malformed).
#[derive(Deserialize)]
struct AlgOnly {
    alg: String,
}

impl Verifier {
    /// A verifier for `secret` (at least [`MIN_SECRET_BYTES`], checked at start).
    pub(crate) fn new(secret: &[u8]) -> Option<Self> {
        let key = DecodingKey::from_secret(secret).ok()?;
        let mut validation = Validation::new(Algorithm::HS256);
        validation.algorithms = vec![Algorithm::HS256];
        validation.leeway = TOKEN_LEEWAY_SECS;
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = false;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Some(Self { key, validation })
    }

    /// Verifies `token`: its algorithm, signature, times and claims. Which rooms it opens is
    /// the caller's question ([`Grant::covers`]).
    pub(crate) fn verify(&self, token: &str) -> Result<Grant, Refusal> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Refusal::Malformed(format!(
                "token longer than {MAX_TOKEN_BYTES} bytes"
            )));
        }
        let alg = header_alg(token)?;
        if alg != "HS256" {
            return Err(Refusal::Algorithm(alg));
        }
        let data = jsonwebtoken::decode::<TokenClaims>(token, &self.key, &self.validation)
            .map_err(|e| refusal_for(e.kind()))?;
        grant(&data.claims)
    }
}

/// The `alg` of a token's header, read without trusting anything else in it.
fn header_alg(token: &str) -> Result<String, Refusal> {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Refusal::Malformed(
            "a token has three base64url parts separated by dots".to_owned(),
        ));
    };
    let bytes = URL_SAFE_NO_PAD
        .decode(header)
        .map_err(|_| Refusal::Malformed("the header is not base64url".to_owned()))?;
    let header: AlgOnly = serde_json::from_slice(&bytes)
        .map_err(|_| Refusal::Malformed("the header is not JSON with an alg".to_owned()))?;
    // Bounded by MAX_TOKEN_BYTES; cut further so a reason stays short.
    Ok(header.alg.chars().take(16).collect())
}

fn refusal_for(kind: &ErrorKind) -> Refusal {
    match kind {
        ErrorKind::ExpiredSignature => Refusal::Expired,
        ErrorKind::ImmatureSignature => Refusal::NotYetValid,
        ErrorKind::InvalidSignature => Refusal::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => {
            Refusal::Algorithm("not HS256".to_owned())
        }
        ErrorKind::MissingRequiredClaim(claim) => Refusal::Malformed(format!("no {claim} claim")),
        ErrorKind::InvalidClaimFormat(claim) => {
            Refusal::Malformed(format!("the {claim} claim has the wrong type"))
        }
        ErrorKind::Json(_) => Refusal::Malformed("the claims are not the expected JSON".to_owned()),
        _ => Refusal::Malformed("not a JWT".to_owned()),
    }
}

fn grant(claims: &TokenClaims) -> Result<Grant, Refusal> {
    let user = UserName::new(&claims.sub)
        .map_err(|e| Refusal::Malformed(format!("sub is not a user name: {e}")))?;
    if claims.rooms.len() > MAX_TOKEN_ROOMS {
        return Err(Refusal::Malformed(format!(
            "more than {MAX_TOKEN_ROOMS} rooms"
        )));
    }
    let rooms = claims
        .rooms
        .iter()
        .map(|room| Pattern::new(room))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Refusal::Malformed(format!("rooms: {e}")))?;
    Ok(Grant {
        user,
        rooms,
        expires: claims.exp,
    })
}

/// Signs `claims` with `secret` (HS256): what `roomcast token` and the tests use.
pub fn mint(secret: &[u8], claims: &TokenClaims) -> Result<String, jsonwebtoken::errors::Error> {
    let key = EncodingKey::from_secret(secret)?;
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn now() -> u64 {
        super::super::unix_now()
    }

    fn claims(rooms: &[&str]) -> TokenClaims {
        TokenClaims {
            sub: "ana".to_owned(),
            rooms: rooms.iter().map(|r| (*r).to_owned()).collect(),
            exp: now() + 3600,
            nbf: None,
        }
    }

    fn verifier() -> Verifier {
        Verifier::new(SECRET).expect("a verifier")
    }

    fn room(name: &str) -> RoomName {
        RoomName::new(name).expect("room")
    }

    #[test]
    fn a_valid_token_grants_its_name_and_rooms() {
        let token = mint(SECRET, &claims(&["pagamento_*"])).expect("mint");
        let grant = verifier().verify(&token).expect("valid");
        assert_eq!(grant.user.as_str(), "ana");
        assert!(grant.covers(&room("pagamento_42")));
        assert!(!grant.covers(&room("lobby")));
    }

    #[test]
    fn each_broken_rule_has_its_own_refusal() {
        let v = verifier();
        let expired = TokenClaims {
            exp: now() - 60,
            ..claims(&["a"])
        };
        let token = mint(SECRET, &expired).expect("mint");
        assert_eq!(v.verify(&token), Err(Refusal::Expired));

        let early = TokenClaims {
            nbf: Some(now() + 600),
            ..claims(&["a"])
        };
        let token = mint(SECRET, &early).expect("mint");
        assert_eq!(v.verify(&token), Err(Refusal::NotYetValid));

        let other = mint(b"another secret, also 32 bytes lo", &claims(&["a"])).expect("mint");
        assert_eq!(v.verify(&other), Err(Refusal::BadSignature));

        let good = mint(SECRET, &claims(&["a"])).expect("mint");
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims(&["*"])).expect("json"));
        parts[1] = &forged;
        assert_eq!(v.verify(&parts.join(".")), Err(Refusal::BadSignature));

        let none_header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert_eq!(
            v.verify(&unsigned),
            Err(Refusal::Algorithm("none".to_owned()))
        );
        assert!(matches!(
            v.verify("not-a-token"),
            Err(Refusal::Malformed(_))
        ));
        assert!(matches!(v.verify("a.b.c"), Err(Refusal::Malformed(_))));
    }

    /// Seeds that broke JWT libraries before: empty parts, `none`, huge numbers, nested
    /// JSON, wrong types. Each must be refused with a rule, never panic.
    const CORPUS: &str = include_str!("../../tests/corpus/tokens.txt");

    #[test]
    fn the_seed_corpus_is_refused_without_a_panic() {
        let v = verifier();
        let mut seeds = 0;
        for line in CORPUS
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
        {
            assert!(v.verify(line).is_err(), "{line}");
            seeds += 1;
        }
        assert!(seeds >= 10, "the corpus has its seeds");
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

        #[test]
        fn any_bytes_are_refused_without_a_panic(text in "\\PC{0,300}") {
            proptest::prop_assert!(verifier().verify(&text).is_err());
        }

        #[test]
        fn a_changed_character_never_verifies_as_something_else(
            at in 0usize..400,
            with in "[A-Za-z0-9_.-]",
        ) {
            let good = mint(SECRET, &claims(&["a"])).expect("mint");
            let at = at % good.len();
            let mut changed = good.clone();
            changed.replace_range(at..=at, &with);
            match verifier().verify(&changed) {
                // Only the same token (the character was the same, or base64's unused low
                // bits of a last character changed) grants anything, and then the same.
                Ok(grant) => proptest::prop_assert_eq!(Some(grant), verifier().verify(&good).ok()),
                Err(refusal) => proptest::prop_assert!(!refusal.reason().is_empty()),
            }
        }

        #[test]
        fn parts_of_any_base64_are_refused_without_a_panic(
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            payload in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400),
        ) {
            let token = format!("{}.{}.sig", URL_SAFE_NO_PAD.encode(&header), URL_SAFE_NO_PAD.encode(&payload));
            proptest::prop_assert!(verifier().verify(&token).is_err());
        }
    }
}
