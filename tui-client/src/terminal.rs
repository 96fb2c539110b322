//! Raw mode, alternate screen, bracketed paste and (optionally) mouse capture, undone on every
//! way out: normal return, error (the guard's `Drop`) and panic (a hook, which runs before
//! the panic message is printed so the message lands on a sane screen).

use std::io::{self, stdout};
use std::sync::Once;

use ratatui::DefaultTerminal;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{
    DisableBracketedPaste, DisableMouseCapture, EnableBracketedPaste, EnableMouseCapture,
};
use ratatui::crossterm::execute;

static PANIC_HOOK: Once = Once::new();

/// While alive, the terminal is in chat mode; dropping it restores the terminal.
#[derive(Debug)]
pub struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    /// Enters chat mode; with `mouse`, captures the mouse for wheel scrolling.
    pub fn enter(mouse: bool) -> io::Result<(Self, DefaultTerminal)> {
        PANIC_HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        // ratatui's own hook (raw mode, alternate screen) wraps ours; both are idempotent.
        let terminal = ratatui::try_init()?;
        let guard = Self { _private: () };
        execute!(stdout(), EnableBracketedPaste)?;
        if mouse {
            execute!(stdout(), EnableMouseCapture)?;
        }
        Ok((guard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Undoes everything `enter` did. Disabling a mode that was never enabled is harmless, so this
/// does not need to know whether the mouse was captured.
fn restore() {
    let modes = execute!(stdout(), DisableMouseCapture, DisableBracketedPaste, Show);
    if let Err(error) = ratatui::try_restore().and(modes) {
        eprintln!("roomcast-chat: could not restore the terminal: {error}");
    }
}
