//! Access tokens for private rooms, as the CLI gets them: minted here (HS256, the same a
//! backend signs) for `roomcast token` and for each simulated client of the load commands, or
//! handed over whole with `--token`.
//!
//! A private room admits a session only under its token's `sub` (the server's
//! `impersonation` rule), so load commands, whose clients all have names of their own, mint one
//! token per client with `--token-secret-file`; one `--token` for all serves public rooms on a
//! server that checks every token given, and commands whose one name is the token's.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use roomcast_protocol::{RoomName, TokenClaims, UserName};

use crate::exit::Usage;

/// Shortest secret the server accepts (`--token-secret`), in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// How long a token minted for a load client stays valid: tokens are checked when a session
/// joins, and each client gets its own token when it connects (churned-in clients included),
/// so this only has to outlast one connect.
pub const LOAD_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// Signs tokens with one secret.
#[derive(Clone)]
pub struct Minter {
    key: EncodingKey,
}

impl std::fmt::Debug for Minter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the secret.
        f.write_str("Minter { .. }")
    }
}

impl Minter {
    /// A minter for `secret`; refuses one shorter than the server accepts (a usage error).
    pub fn new(secret: &str, flag: &str) -> Result<Self> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(Usage::err(format!(
                "{flag} must be at least {MIN_SECRET_BYTES} bytes, like the server's --token-secret"
            )));
        }
        Ok(Self {
            key: EncodingKey::from_secret(secret.as_bytes()).context("the secret")?,
        })
    }

    /// A minter for the secret in `path`: its text less one trailing newline, read the way the
    /// server reads its `--token-secret-file`.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Usage::err(format!(
                "--token-secret-file: cannot read {}: {e}",
                path.display()
            ))
        })?;
        let text = text.strip_suffix('\n').unwrap_or(&text);
        let text = text.strip_suffix('\r').unwrap_or(text);
        Self::new(text, "the secret in --token-secret-file")
    }

    /// A token naming `user` (its `sub`) that opens `rooms` (names or `*` patterns) for `ttl`
    /// from now.
    pub fn mint(&self, user: &str, rooms: &[String], ttl: Duration) -> Result<String> {
        UserName::new(user).map_err(|e| Usage::err(format!("user {user:?}: {e}")))?;
        if rooms.is_empty() {
            bail!("a token must open at least one room");
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?;
        let claims = TokenClaims {
            sub: user.to_owned(),
            rooms: rooms.to_vec(),
            exp: (now + ttl).as_secs(),
            nbf: None,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.key)
            .context("signing the token")
    }
}

/// Where the sockets of a command get their token from.
#[derive(Debug, Clone, Default)]
pub enum Credentials {
    /// No token: public rooms only.
    #[default]
    Anonymous,
    /// `--token`: the same token for every socket.
    Shared(String),
    /// `--token-secret-file`: a token minted for each client, for its own name and room.
    Minted(Minter),
}

impl Credentials {
    /// The token a client named `user` presents to join `room`; `None` without one.
    pub fn for_client(&self, user: &UserName, room: &RoomName) -> Result<Option<String>> {
        match self {
            Self::Anonymous => Ok(None),
            Self::Shared(token) => Ok(Some(token.clone())),
            Self::Minted(minter) => minter
                .mint(user.as_str(), &[room.as_str().to_owned()], LOAD_TOKEN_TTL)
                .map(Some),
        }
    }

    /// The token of a session (`listen`, `send`) named `user` that joins `rooms`: a minted
    /// one needs the name, so `--token-secret-file` without `--user` is a usage error.
    pub fn for_session(
        &self,
        user: Option<&UserName>,
        rooms: &[RoomName],
    ) -> Result<Option<String>> {
        match (self, user) {
            (Self::Minted(_), None) => Err(Usage::err(
                "--token-secret-file mints a token for a name: give --user too",
            )),
            (Self::Minted(minter), Some(user)) => {
                let rooms: Vec<String> = rooms.iter().map(|r| r.as_str().to_owned()).collect();
                minter.mint(user.as_str(), &rooms, LOAD_TOKEN_TTL).map(Some)
            }
            (Self::Shared(token), _) => Ok(Some(token.clone())),
            (Self::Anonymous, _) => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{DecodingKey, Validation};

    use super::*;

    const SECRET: &str = "a-secret-of-at-least-thirty-two-bytes";

    fn decode(token: &str) -> TokenClaims {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<TokenClaims>(
            token,
            &DecodingKey::from_secret(SECRET.as_bytes()).expect("a key"),
            &validation,
        )
        .expect("a valid token")
        .claims
    }

    #[test]
    fn a_minted_token_names_the_client_and_opens_only_its_room() {
        let credentials =
            Credentials::Minted(Minter::new(SECRET, "--secret").expect("long enough"));
        let user = UserName::new("soak-1").expect("name");
        let room = RoomName::new("pagamento_1").expect("room");
        let token = credentials
            .for_client(&user, &room)
            .expect("mints")
            .expect("a token");
        let claims = decode(&token);
        assert_eq!(claims.sub, "soak-1");
        assert_eq!(claims.rooms, vec!["pagamento_1".to_owned()]);
    }

    #[test]
    fn a_short_secret_is_a_usage_error() {
        let refused = Minter::new("short", "--secret").expect_err("too short");
        assert_eq!(crate::exit::code_for(&refused), crate::exit::Code::Usage);
        assert!(
            refused.to_string().contains("at least 32 bytes"),
            "{refused}"
        );
    }
}
