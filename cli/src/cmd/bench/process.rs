//! CPU time and memory of this process and of the server under test, from `/proc` (Linux).

use std::time::Duration;

/// Which process to read: this one, or the server by its PID (`--server-pid`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Process {
    /// The load generator itself.
    Myself,
    /// Another process on this machine.
    Pid(u32),
}

impl Process {
    fn proc_path(self, file: &str) -> String {
        match self {
            Process::Myself => format!("/proc/self/{file}"),
            Process::Pid(pid) => format!("/proc/{pid}/{file}"),
        }
    }

    /// CPU time used so far (user + system, all threads); `None` off Linux or once it exited.
    pub fn cpu_time(self) -> Option<Duration> {
        /// Linux reports CPU time in clock ticks, 100 per second on every mainstream build.
        const TICKS_PER_SECOND: u64 = 100;
        let stat = std::fs::read_to_string(self.proc_path("stat")).ok()?;
        // Fields after the command name (which may contain spaces) start after the last ')'.
        let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
        let user: u64 = fields.get(11)?.parse().ok()?;
        let system: u64 = fields.get(12)?.parse().ok()?;
        Some(Duration::from_millis(
            (user + system) * 1000 / TICKS_PER_SECOND,
        ))
    }

    /// Resident memory in bytes (`VmRSS`), the figure the server's own gauge reports.
    pub fn resident_bytes(self) -> Option<f64> {
        let status = std::fs::read_to_string(self.proc_path("status")).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
        let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024.0)
    }
}

/// CPU use between two readings.
#[derive(Debug, Clone, Copy)]
pub struct CpuMeter {
    process: Process,
    before: Option<Duration>,
    started: tokio::time::Instant,
}

impl CpuMeter {
    /// Starts measuring `process`.
    pub fn start(process: Process) -> Self {
        Self {
            process,
            before: process.cpu_time(),
            started: tokio::time::Instant::now(),
        }
    }

    /// Cores kept busy on average since [`CpuMeter::start`], to two decimals.
    pub fn cores(&self) -> Option<f64> {
        let wall = self.started.elapsed();
        let used = self.process.cpu_time()?.checked_sub(self.before?)?;
        (!wall.is_zero()).then(|| (used.as_secs_f64() / wall.as_secs_f64() * 100.0).round() / 100.0)
    }
}

/// Meters for the generator, and for the server when its PID is known.
#[derive(Debug, Clone, Copy)]
pub struct Meters {
    generator: CpuMeter,
    server: Option<CpuMeter>,
}

impl Meters {
    /// Starts both.
    pub fn start(server_pid: Option<u32>) -> Self {
        Self {
            generator: CpuMeter::start(Process::Myself),
            server: server_pid.map(|pid| CpuMeter::start(Process::Pid(pid))),
        }
    }

    /// (generator cores, server cores) since the start.
    pub fn read(&self) -> (Option<f64>, Option<f64>) {
        (
            self.generator.cores(),
            self.server.as_ref().and_then(CpuMeter::cores),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_has_a_cpu_time_and_a_resident_size() {
        assert!(Process::Myself.cpu_time().is_some());
        let rss = Process::Myself.resident_bytes().expect("VmRSS on Linux");
        assert!(rss > 1024.0 * 1024.0, "{rss}");
        let pid = std::process::id();
        assert!(Process::Pid(pid).resident_bytes().is_some());
    }
}
