//! `roomcast`: the command line for a roomcast server.
//!
//! `main` parses, calls [`cmd::run`], and hands whatever comes back to the one error printer, which
//! also chooses the exit code (0 ok, 1 error, 2 usage, 3 an expectation failed, 4 could not
//! connect). stdout carries data only (`--json`: one JSON object per line); logs, progress and
//! errors go to stderr.
//!
//! # Layout
//! - `cli`: the clap structs of the top level and the global flags.
//! - `cmd/*`: one file per command: its flags, their validation into a config, and the run.
//! - `exit`: exit codes and the errors that choose them.
//! - `api`: the HTTP API client (info, rooms, send-test, metrics).
//! - `load/*`: what the load commands share: raw sockets that misbehave on purpose, message
//!   stamps, latency histograms, pacing and sequence checks.
//! - `tokens`: access tokens minted (`token`, and each load client) or given (`--token`).
//! - `units`: how durations, rates and sizes are written on the command line.

mod api;
mod cli;
mod cmd;
mod exit;
mod load;
mod tokens;
mod units;

use std::process::ExitCode;

use clap::Parser;

use crate::cli::Cli;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout (exit 0) and usage errors to stderr (2).
            let _printed = err.print();
            return ExitCode::from(u8::try_from(err.exit_code()).unwrap_or(2));
        }
    };
    init_logs();
    let server = cli.global.server();
    match cmd::run(cli) {
        Ok(code) => code.into(),
        Err(err) => exit::report(&err, &server).into(),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (warnings by default), so they never mix with data.
fn init_logs() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
