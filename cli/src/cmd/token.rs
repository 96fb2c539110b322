//! `roomcast token --secret S --user U --room R --ttl 1h`: mints an access token (HS256 JWT)
//! for the server's private rooms, the same a backend would sign. Printed on stdout (with
//! `--json`, as `{"token": ...}`), so `TOKEN=$(roomcast token ...)` works.

use std::io::Write;
use std::time::Duration;

use anyhow::Result;
use clap::Args;

use crate::exit::Code;
use crate::tokens::Minter;

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
    let token = Minter::new(&args.secret, "--secret")?.mint(&args.user, &args.room, args.ttl)?;
    if json {
        writeln!(out, "{}", serde_json::json!({ "token": token }))?;
    } else {
        writeln!(out, "{token}")?;
    }
    Ok(Code::Ok)
}
