//! `roomcast-server`: parse the configuration, bind, serve until SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use roomcast_server::{Config, RUNTIME_EVENT_INTERVAL, run};
use tokio::net::TcpListener;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(RUNTIME_EVENT_INTERVAL)
        .build();
    match runtime {
        Ok(runtime) => runtime.block_on(serve()),
        Err(e) => {
            eprintln!("roomcast-server: could not start the async runtime: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve() -> ExitCode {
    // Every value that cannot work is a usage error, printed the way clap prints its own.
    let config = match Config::parse().validate() {
        Ok(config) => config,
        Err(invalid) => Config::command()
            .error(ErrorKind::ValueValidation, invalid)
            .exit(),
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();

    let shutdown = match shutdown_signal() {
        Ok(shutdown) => shutdown,
        Err(e) => {
            error!("could not listen for SIGINT/SIGTERM: {e}");
            return ExitCode::FAILURE;
        }
    };
    let port = match config.get().resolved_port() {
        Ok(port) => port,
        Err(message) => {
            error!("{message}");
            return ExitCode::from(2);
        }
    };
    let settings = config.get();
    let listener = match TcpListener::bind((settings.host, port)).await {
        Ok(listener) => listener,
        Err(e) => {
            error!(
                "could not listen on {}:{port}: {e}; is another server running there? \
                 pick another --port",
                settings.host
            );
            return ExitCode::FAILURE;
        }
    };
    let address = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    info!(
        %address,
        ping_interval = ?settings.ping_interval,
        ping_timeout = ?settings.ping_timeout,
        "roomcast-server listening: ws://{address}/ws/chat/<room>/"
    );
    if !settings.host.is_loopback() && settings.api_key.is_none() {
        warn!(
            "listening beyond loopback without --api-key: HTTP publishing is refused for \
             every non-loopback peer; set ROOMCAST_API_KEY to allow it"
        );
    }
    run(listener, config, shutdown).await;
    ExitCode::SUCCESS
}

/// Registers for SIGINT (Ctrl-C) and SIGTERM (what Render and most supervisors send) now, and
/// returns a future that completes on either. Registering before the server announces itself
/// matters: a signal that arrives earlier would otherwise kill the process without a drain.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => info!("SIGINT received"),
            _ = terminate.recv() => info!("SIGTERM received"),
        }
    })
}
