//! The command line's top level: global flags and the list of commands. Each command's own
//! flags live next to its code in `cmd/*.rs`.

use clap::builder::FalseyValueParser;
use clap::{Args, Parser, Subcommand};
use roomcast_protocol::ServerUrl;
use roomcast_protocol::server_url::DEFAULT_SERVER_URL;

use crate::cmd::bench::BenchArgs;
use crate::cmd::completions::CompletionsArgs;
use crate::cmd::dead_clients::DeadClientsArgs;
use crate::cmd::listen::ListenArgs;
use crate::cmd::rooms::RoomsArgs;
use crate::cmd::send::SendArgs;
use crate::cmd::send_test::SendTestArgs;
use crate::cmd::soak::SoakArgs;
use crate::cmd::token::TokenArgs;

/// Poke, watch and prove a roomcast server from the shell.
#[derive(Debug, Parser)]
// args_override_self: a flag given twice takes the last value, so scripts can pass defaults
// and let their callers' flags override them.
#[command(
    name = "roomcast",
    version,
    about,
    long_about = LONG_ABOUT,
    propagate_version = true,
    args_override_self = true
)]
pub struct Cli {
    /// Flags every command takes.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

const LONG_ABOUT: &str = "\
Poke, watch and prove a roomcast server from the shell.

stdout carries data only (with --json, one JSON object per line); logs, progress and errors go
to stderr. Exit codes: 0 ok, 1 error, 2 usage, 3 an expectation or threshold failed, 4 could
not connect. Every flag has a ROOMCAST_* environment twin, shown in each command's --help.";

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Global options")]
pub struct GlobalArgs {
    /// The server's base URL, http(s):// or ws(s):// alike; socket and HTTP addresses are
    /// derived from it. `soak` and `bench fanout|connect|evict` take several (the nodes of one
    /// cluster: repeat the flag or separate with commas) and spread their clients over them;
    /// other commands use the first.
    #[arg(long, global = true, env = "ROOMCAST_URL", default_value = DEFAULT_SERVER_URL,
          value_delimiter = ',', action = clap::ArgAction::Append)]
    pub url: Vec<ServerUrl>,

    /// Key sent as `Authorization: Bearer <key>` when publishing over HTTP (the server's
    /// --api-key). Without a key, servers accept publishes from loopback only.
    #[arg(long, global = true, env = "ROOMCAST_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,

    /// Access token for the server's private rooms (from `roomcast token` or your backend),
    /// sent by every socket the command opens. A private room admits it only under its `sub`:
    /// for `soak` and `dead-clients`, whose clients have names of their own, give
    /// --token-secret-file instead.
    #[arg(
        long,
        global = true,
        env = "ROOMCAST_TOKEN",
        hide_env_values = true,
        conflicts_with = "token_secret_file"
    )]
    pub token: Option<String>,

    /// File holding the server's --token-secret: `soak` and `dead-clients` then mint one
    /// token per simulated client, for its own name and room (so they work in private rooms);
    /// `listen` and `send` mint one for their --user and rooms.
    #[arg(
        long,
        global = true,
        env = "ROOMCAST_TOKEN_SECRET_FILE",
        value_name = "FILE"
    )]
    pub token_secret_file: Option<std::path::PathBuf>,

    /// Machine-readable output: one JSON object per line on stdout.
    #[arg(long, global = true, env = "ROOMCAST_JSON", value_parser = FalseyValueParser::new(), default_value_t = false)]
    pub json: bool,

    /// No status lines or progress on stderr (errors are still printed).
    #[arg(long, short, global = true, env = "ROOMCAST_QUIET", value_parser = FalseyValueParser::new(), default_value_t = false)]
    pub quiet: bool,
}

impl GlobalArgs {
    /// The first `--url`: the server every command but `soak` talks to.
    pub fn server(&self) -> ServerUrl {
        self.url.first().cloned().unwrap_or_default()
    }
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Publish through the original POC's HTTP route `/chat/<room>/send-test/`.
    SendTest(SendTestArgs),
    /// Publish over WebSocket as a member of the room (from an argument or stdin lines).
    Send(SendArgs),
    /// Print messages of one or more rooms as they arrive.
    Listen(ListenArgs),
    /// Show rooms, their members and last seq from the HTTP API.
    Rooms(RoomsArgs),
    /// Open clients that go dead on purpose and check that the server evicts them in time.
    DeadClients(DeadClientsArgs),
    /// The long run: live clients, dead clients and churn, with loss and latency checks.
    Soak(SoakArgs),
    /// Throughput, connection rate and memory per idle connection.
    Bench(BenchArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
    /// Mint an access token for private rooms (HS256, signed with the server's
    /// --token-secret).
    Token(TokenArgs),
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    /// Every flag of every command can also come from the environment, under ROOMCAST_*.
    #[test]
    fn every_flag_has_a_roomcast_environment_twin() {
        fn check(command: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in command.get_arguments() {
                let id = arg.get_id().as_str();
                if arg.is_positional() || id == "help" || id == "version" {
                    continue;
                }
                let env = arg.get_env().and_then(|e| e.to_str());
                if !env.is_some_and(|e| e.starts_with("ROOMCAST_")) {
                    missing.push(format!("{path} --{id}"));
                }
            }
            for sub in command.get_subcommands() {
                check(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        check(&Cli::command(), "roomcast", &mut missing);
        assert!(missing.is_empty(), "flags without ROOMCAST_*: {missing:?}");
    }
}
