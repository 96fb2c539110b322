//! Exit codes, the errors that choose them, and the one place errors are printed.

use std::process::ExitCode;

use roomcast_protocol::{ClientError, CloseCode, CloseInfo, ServerUrl};

/// The process's exit status. Scripts branch on these, so they never change meaning.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    /// Everything worked (and every expectation held).
    Ok = 0,
    /// Something failed while running (a refused request, a closed session, a bug).
    Error = 1,
    /// The command line was wrong: a flag, a value, a combination.
    Usage = 2,
    /// The run completed but an expectation or threshold did not hold (eviction, loss, p99).
    Failed = 3,
    /// The server could not be reached at all.
    Unreachable = 4,
}

impl From<Code> for ExitCode {
    fn from(code: Code) -> Self {
        ExitCode::from(code as u8)
    }
}

/// A mistake in how the command was called, found after clap's own checks: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Usage(pub String);

impl Usage {
    /// A usage error as an `anyhow::Error`, for `?` in validation code.
    pub fn err(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(Usage(message.into()))
    }
}

/// The server could not be reached (nothing listening, DNS, TLS, timeout): exit 4.
#[derive(Debug, thiserror::Error)]
#[error("could not reach {what}: {detail}")]
pub struct Unreachable {
    /// The address or the thing tried ("ws://127.0.0.1:8000/ws").
    pub what: String,
    /// Why, as the transport said it.
    pub detail: String,
}

/// The exit code an error calls for, from the first cause in its chain that decides it.
pub fn code_for(err: &anyhow::Error) -> Code {
    for cause in err.chain() {
        if cause.is::<Usage>() {
            return Code::Usage;
        }
        if cause.is::<Unreachable>() {
            return Code::Unreachable;
        }
        if let Some(client) = cause.downcast_ref::<ClientError>()
            && client.is_unreachable()
        {
            return Code::Unreachable;
        }
        if let Some(http) = cause.downcast_ref::<reqwest::Error>()
            && (http.is_connect() || http.is_timeout())
        {
            return Code::Unreachable;
        }
    }
    Code::Error
}

/// The one error printer: `error: ...` with the whole cause chain on stderr, plus what to do
/// when the server was not there. Returns the exit code.
pub fn report(err: &anyhow::Error, server: &ServerUrl) -> Code {
    let code = code_for(err);
    eprintln!("error: {err:#}");
    match code {
        Code::Unreachable => eprintln!(
            "hint: is the server running at {}? start it with `cargo run -p roomcast-server`, \
             or point --url (ROOMCAST_URL) at it",
            server.ws("").as_str().trim_end_matches('/')
        ),
        Code::Usage => eprintln!("hint: see `roomcast --help` or `roomcast <command> --help`"),
        _ if refused_by_a_private_room(err) => eprintln!(
            "hint: the room is private: give --token (a token whose sub is the client's name), \
             or --token-secret-file to mint one per client"
        ),
        _ => {}
    }
    code
}

/// Whether a session in the chain was closed with 4503 (a private room's refusal).
fn refused_by_a_private_room(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<ClientError>(),
            Some(ClientError::Closed(CloseInfo {
                code: Some(CloseCode::Forbidden),
                ..
            }))
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_codes_are_the_documented_ones() {
        assert_eq!(Code::Ok as u8, 0);
        assert_eq!(Code::Error as u8, 1);
        assert_eq!(Code::Usage as u8, 2);
        assert_eq!(Code::Failed as u8, 3);
        assert_eq!(Code::Unreachable as u8, 4);
    }

    #[test]
    fn the_first_deciding_cause_picks_the_code() {
        let usage = Usage::err("--count must be at least 1").context("sending");
        assert_eq!(code_for(&usage), Code::Usage);
        let gone = anyhow::Error::new(Unreachable {
            what: "ws://x".into(),
            detail: "refused".into(),
        })
        .context("connecting the observer");
        assert_eq!(code_for(&gone), Code::Unreachable);
        assert_eq!(code_for(&anyhow::anyhow!("boom")), Code::Error);
    }
}
