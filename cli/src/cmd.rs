//! The commands, one file each, and what they share: the context built once from the global
//! flags, and the runtime they run on.

pub mod bench;
pub mod completions;
pub mod dead_clients;
pub mod listen;
pub mod rooms;
pub mod send;
pub mod send_test;
pub mod soak;
pub mod token;

use std::io::{self, Write};

use anyhow::{Context, Result};
use roomcast_protocol::ServerUrl;
use roomcast_protocol::terminal_text::TerminalSafeJson;
use serde::Serialize;

use crate::api::Api;
use crate::cli::{Cli, Command};
use crate::exit::Code;
use crate::tokens::{Credentials, Minter};

/// What every command gets: where the server is, how to talk to its HTTP API, and how to
/// print.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// The server's base URL (the first `--url`).
    pub server: ServerUrl,
    /// Every `--url`, first included: the nodes `soak` spreads its clients over.
    pub servers: Vec<ServerUrl>,
    /// Its HTTP API.
    pub api: Api,
    /// `--json`: data as one JSON object per line.
    pub json: bool,
    /// `--quiet`: no status lines on stderr.
    pub quiet: bool,
    /// `--token` or `--token-secret-file`: the tokens sockets present for private rooms.
    pub credentials: Credentials,
}

impl Ctx {
    /// A status line on stderr (not data), unless `--quiet`.
    pub fn status(&self, line: impl std::fmt::Display) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}

/// Runs the parsed command line to its exit code.
pub fn run(cli: Cli) -> Result<Code> {
    if let Command::Completions(args) = &cli.command {
        return completions::run(args, &mut io::stdout().lock());
    }
    if let Command::Token(args) = &cli.command {
        return token::run(args, cli.global.json, &mut io::stdout().lock());
    }
    let global = cli.global;
    let server = global.server();
    let ctx = Ctx {
        api: Api::new(&server, global.api_key)?,
        server,
        servers: global.url,
        json: global.json,
        quiet: global.quiet,
        credentials: credentials(global.token, global.token_secret_file.as_deref())?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("could not start the async runtime")?;
    let code = runtime.block_on(async move {
        match cli.command {
            Command::SendTest(args) => send_test::run(&ctx, args.try_into()?).await,
            Command::Send(args) => send::run(&ctx, args.try_into()?).await,
            Command::Listen(args) => listen::run(&ctx, args.try_into()?).await,
            Command::Rooms(args) => rooms::run(&ctx, args).await,
            Command::DeadClients(args) => dead_clients::run(&ctx, args.try_into()?).await,
            Command::Soak(args) => soak::run(&ctx, args.try_into()?).await,
            Command::Bench(args) => bench::run(&ctx, args).await,
            Command::Completions(_) | Command::Token(_) => Ok(Code::Ok),
        }
    });
    // Load commands leave sockets in tasks; do not wait for them past the answer.
    runtime.shutdown_background();
    code
}

/// The tokens the command's sockets present: `--token` as given, or minted per client from
/// `--token-secret-file` (read once, at start: a missing file is a usage error).
fn credentials(
    token: Option<String>,
    secret_file: Option<&std::path::Path>,
) -> Result<Credentials> {
    Ok(match (token, secret_file) {
        (Some(token), _) => Credentials::Shared(token),
        (None, Some(path)) => Credentials::Minted(Minter::from_file(path)?),
        (None, None) => Credentials::Anonymous,
    })
}

/// Writes `value` as one JSON line and flushes, so a reader of a pipe sees it at once. Strings
/// carry no character a terminal acts on (JSON leaves C1 controls such as U+009B raw; these are
/// written as `\uXXXX`), so `--json` is safe on a screen and parses to the same values.
pub fn json_line<W: Write, T: Serialize>(out: &mut W, value: &T) -> io::Result<()> {
    let mut serializer = serde_json::Serializer::with_formatter(&mut *out, TerminalSafeJson);
    value.serialize(&mut serializer)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// True for the error a closed stdout gives (`roomcast listen | head -1`): not a failure.
pub fn is_broken_pipe(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::BrokenPipe
}
