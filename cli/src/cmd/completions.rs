//! `roomcast completions SHELL`: a completion script, generated from the same clap structs.

use std::io::Write;

use anyhow::Result;
use clap::{Args, CommandFactory};
use clap_complete::Shell;

use crate::cli::Cli;
use crate::exit::Code;

/// Flags of `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell: bash, zsh, fish, elvish or powershell.
    pub shell: Shell,
}

/// Writes the script to `out` (stdout), e.g. `roomcast completions bash > ~/.local/share/bash-completion/completions/roomcast`.
pub fn run<W: Write>(args: &CompletionsArgs, out: &mut W) -> Result<Code> {
    clap_complete::generate(args.shell, &mut Cli::command(), "roomcast", out);
    Ok(Code::Ok)
}
