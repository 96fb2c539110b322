//! `roomcast-server`: parse the configuration, bind, serve until SIGINT or SIGTERM.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser};
use roomcast_server::{Config, run};
use tokio::net::TcpListener;
use tracing::{error, info, warn};
use tracing_subscriber::EnvFilter;

/// Scheduler ticks (task polls) between two looks at the sockets' readiness and the timers
/// while tasks keep the runtime busy; tokio's default is 61. A busy big room ran much faster
/// with a longer interval (1 room x 1,000 members at 6,000 messages/s, one core: p50 8.6-10.7 ms
/// and p99 26-39 ms with 61 or 128; 4.2-5.3 ms and 9.2-12.6 ms with 256 to 1,000; at 8,500/s
/// p50 22.9 -> 6.3 ms, p99 72 -> 21 ms; `docs/BENCHMARKS.md`). With a short interval the
/// publisher's session is polled every few dozen member turns, and each of its publishes
/// re-wakes the members already served, so members go round the run queue unevenly; we
/// measured the effect, not tokio's queues. Idle or lightly loaded, the runtime looks at the
/// sockets whenever it runs out of tasks, so this changes nothing there: under full load, a
/// readiness change waits at most this many polls (about 3 ms at 6 µs a poll).
const EVENT_INTERVAL: u32 = 512;

fn main() -> ExitCode {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .event_interval(EVENT_INTERVAL)
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
