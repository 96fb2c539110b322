//! `roomcast-chat`: a terminal chat client for roomcast rooms. Everything lives in the library;
//! this parses flags, sets up logging and the runtime, and prints the one error message.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use roomcast_chat::cli::Args;
use roomcast_chat::{clock, run};
use tracing_appender::non_blocking::WorkerGuard;

fn main() -> ExitCode {
    let args = Args::parse();
    let result = logging(args.log_file.as_deref()).and_then(|_guard| {
        // Once, after logging starts (a zone that cannot be read is logged), before the runtime.
        let time_zone = clock::local_zone();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .context("starting the async runtime")?;
        runtime.block_on(run::run(args, time_zone))
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("roomcast-chat: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to `path` when given; otherwise nowhere (the screen belongs to the chat).
fn logging(path: Option<&Path>) -> anyhow::Result<Option<WorkerGuard>> {
    let Some(path) = path else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening the log file {}", path.display()))?;
    let (writer, guard) = tracing_appender::non_blocking(file);
    let filter = tracing_subscriber::EnvFilter::try_from_env("ROOMCAST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_writer(writer)
        .with_ansi(false)
        .with_env_filter(filter)
        .init();
    Ok(Some(guard))
}
