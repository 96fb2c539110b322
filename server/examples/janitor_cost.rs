//! What the room janitor costs while many idle rooms wait out a long `--room-ttl`.
//!
//! Starts the server in this process, creates ROOMS rooms with one HTTP publish each (so every
//! one is empty and keeps history), lets it settle, then measures over a quiet window:
//! - the process's CPU time per second (every thread, from `/proc/self/task/*/schedstat`):
//!   nothing runs but the janitor, so this is its cost;
//! - in a second window, the slowest answers of `GET /api/rooms/<room>` sampled every 2 ms: that
//!   route takes the registry lock, so it waits whenever the janitor holds it.
//!
//! ```sh
//! cargo run --release -p roomcast-server --example janitor_cost -- 100000
//! ```

use std::time::{Duration, Instant};

use roomcast_server::{Config, ValidConfig, run};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Rooms created when no count is given.
const DEFAULT_ROOMS: usize = 100_000;
/// Publishes in flight while creating rooms.
const CREATORS: usize = 32;
/// Each measured window.
const WINDOW: Duration = Duration::from_secs(10);
/// Pause between latency probes.
const PROBE_EVERY: Duration = Duration::from_millis(2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let rooms: usize = match std::env::args().nth(1) {
        Some(text) => text.parse()?,
        None => DEFAULT_ROOMS,
    };
    let config = Config {
        room_ttl: Duration::from_secs(3600),
        max_rooms: rooms + 10,
        ..Config::default()
    };
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(start(listener, config.validate()?, stopped));

    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut creators = Vec::new();
    for creator in 0..CREATORS {
        let (http, base) = (http.clone(), base.clone());
        creators.push(tokio::spawn(async move {
            for room in (creator..rooms).step_by(CREATORS) {
                let url = format!("{base}/chat/idle_{room}/send-test/?message=x");
                let status = http.get(&url).send().await?.status();
                anyhow::ensure!(status.is_success(), "{url}: {status}");
            }
            anyhow::Ok(())
        }));
    }
    for creator in creators {
        creator.await??;
    }
    eprintln!("created {rooms} rooms in {:?}", started.elapsed());
    tokio::time::sleep(Duration::from_secs(2)).await;

    let before = cpu_time()?;
    let quiet = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let cpu = cpu_time()? - before;
    let per_second = cpu.as_secs_f64() * 1000.0 / quiet.elapsed().as_secs_f64();

    let url = format!("{base}/api/rooms/idle_0");
    let mut latencies = Vec::new();
    let probing = Instant::now();
    while probing.elapsed() < WINDOW {
        let sent = Instant::now();
        http.get(&url).send().await?.error_for_status()?;
        latencies.push(sent.elapsed());
        tokio::time::sleep(PROBE_EVERY).await;
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    println!(
        "rooms {rooms}: server cpu {per_second:.2} ms/s while idle; registry-lock probe \
         p50 {:?} p99 {:?} max {:?} ({} probes)",
        at(0.5),
        at(0.99),
        at(1.0),
        latencies.len()
    );
    let _ = stop.send(());
    server.await?;
    Ok(())
}

async fn start(listener: TcpListener, config: ValidConfig, stopped: oneshot::Receiver<()>) {
    run(listener, config, async move {
        let _ = stopped.await;
    })
    .await;
}

/// CPU time used so far by every thread of this process.
fn cpu_time() -> anyhow::Result<Duration> {
    let mut nanos: u64 = 0;
    for task in std::fs::read_dir("/proc/self/task")? {
        let stat = std::fs::read_to_string(task?.path().join("schedstat"))?;
        let on_cpu = stat.split_whitespace().next().unwrap_or("0");
        nanos += on_cpu.parse::<u64>()?;
    }
    Ok(Duration::from_nanos(nanos))
}
