//! `roomcast token --secret S --user U --room R --ttl 1h`: mints an access token (HS256 JWT)
//! for the server's private rooms, the same a backend would sign. Printed on stdout (with
//! `--json`, as `{"token": ...}`), so `TOKEN=$(roomcast token ...)` works.

use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use roomcast_protocol::{TokenClaims, UserName};

use crate::exit::Code;

/// Shortest secret the server accepts (`--token-secret`), in bytes.
const MIN_SECRET_BYTES: usize = 32;

/// Flags of `token`.
#[derive(Debug, Args)]
pub struct TokenArgs {
    /// The server's --token-secret (at least 32 bytes).
    #[arg(long, env = "ROOMCAST_TOKEN_SECRET", hide_env_values = true)]
    pub secret: String,
    /// The member's name in the rooms the token opens (its `sub`).
    #[arg(long, env = "ROOMCAST_TOKEN_USER")]
    pub user: String,
    /// A room the token opens: a name or a pattern with `*` (`pagamento_*`). Repeat the flag
    /// or separate with commas.
    #[arg(
        long,
        env = "ROOMCAST_TOKEN_ROOM",
        value_delimiter = ',',
        required = true
    )]
    pub room: Vec<String>,
    /// How long the token stays valid.
    #[arg(long, env = "ROOMCAST_TOKEN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub ttl: Duration,
}

/// Prints a token for `args` on `out`.
pub fn run<W: Write>(args: &TokenArgs, json: bool, out: &mut W) -> Result<Code> {
    if args.secret.len() < MIN_SECRET_BYTES {
        bail!(
            "--secret must be at least {MIN_SECRET_BYTES} bytes, like the server's --token-secret"
        );
    }
    UserName::new(&args.user).with_context(|| format!("--user {:?}", args.user))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let claims = TokenClaims {
        sub: args.user.clone(),
        rooms: args.room.clone(),
        exp: (now + args.ttl).as_secs(),
        nbf: None,
    };
    let key = EncodingKey::from_secret(args.secret.as_bytes()).context("the secret")?;
    let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key)
        .context("signing the token")?;
    if json {
        writeln!(out, "{}", serde_json::json!({ "token": token }))?;
    } else {
        writeln!(out, "{token}")?;
    }
    Ok(Code::Ok)
}
