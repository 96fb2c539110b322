//! Running `ip` (iproute2): every change to namespaces, links, addresses and neighbours goes
//! through it, so what this crate does is what an operator would type.

use std::process::Command;

use crate::NetnsError;

/// Runs `ip args…` and returns its stdout; a non-zero exit is an error carrying stderr.
pub(crate) fn ip(args: &[&str]) -> Result<String, NetnsError> {
    let command = format!("ip {}", args.join(" "));
    let output = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| NetnsError::Spawn {
            command: command.clone(),
            source,
        })?;
    if !output.status.success() {
        return Err(NetnsError::Command {
            command,
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Runs `ip args…` where failing only means there was nothing left to remove (cleanup paths).
pub(crate) fn ip_quiet(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
