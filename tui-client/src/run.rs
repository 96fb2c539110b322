//! The event loop: terminal input, network news, the clock and signals (TERM, HUP, INT)
//! become [`Event`]s for
//! the app; its [`Effect`]s are carried out here and nowhere else.

use std::time::Duration;

use anyhow::{Context, bail};
use futures_util::StreamExt;
use jiff::tz::TimeZone;
use ratatui::DefaultTerminal;
use ratatui::crossterm::event::{self as term, EventStream, KeyEventKind, MouseEventKind};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::mpsc::{self, error::TrySendError};

use crate::app::{App, Settings};
use crate::cli::Args;
use crate::clock;
use crate::event::{Effect, Event};
use crate::net::{self, COMMAND_QUEUE, EVENT_QUEUE, NetCommand, NetConfig, NetEvent};
use crate::terminal::TerminalGuard;
use crate::ui;

/// How often the clock ticks: often enough for a smooth "reconnecting in Ns" countdown.
const TICK: Duration = Duration::from_millis(250);
/// Network events applied per redraw at most, so a burst costs one frame, not hundreds.
const MAX_BATCH: usize = 256;
/// How long quitting waits for the network task to close the session cleanly.
const QUIT_WAIT: Duration = Duration::from_secs(2);
/// Rows one mouse-wheel notch scrolls.
const WHEEL_ROWS: i16 = 3;

/// Runs the chat until the user quits.
pub async fn run(args: Args, time_zone: TimeZone) -> anyhow::Result<()> {
    let (commands, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, mut net_events) = mpsc::channel(EVENT_QUEUE);
    let mut config = NetConfig::new(args.url.clone(), args.user.clone(), args.rooms.clone());
    config.server_timeout = args.server_timeout;
    config.token = args.token.clone();
    let network = tokio::spawn(net::run(config, command_rx, event_tx));

    let (guard, mut terminal) =
        TerminalGuard::enter(args.mouse).context("setting up the terminal")?;
    let size = terminal.size().context("reading the terminal size")?;
    let settings = Settings {
        server_label: args.url.authority(),
        time_zone,
        hide_presence: args.hide_joins,
        show_members: !args.no_members,
    };
    let mut app = App::new(
        settings,
        args.user.clone(),
        &args.rooms,
        clock::now_ms(),
        (size.width, size.height),
    );
    let result = event_loop(
        &mut terminal,
        &mut app,
        &mut net_events,
        &commands,
        args.mouse,
    )
    .await;
    drop(guard);

    // The session's close frame tells the room we left on purpose rather than vanished.
    if commands.try_send(NetCommand::Quit).is_ok()
        && tokio::time::timeout(QUIT_WAIT, network).await.is_err()
    {
        tracing::warn!("the network task did not finish closing in time");
    }
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    app: &mut App,
    net_events: &mut mpsc::Receiver<NetEvent>,
    commands: &mpsc::Sender<NetCommand>,
    mouse: bool,
) -> anyhow::Result<()> {
    let mut input = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    let mut terminate = signal(SignalKind::terminate()).context("listening for SIGTERM")?;
    let mut hangup = signal(SignalKind::hangup()).context("listening for SIGHUP")?;
    // Raw mode turns Ctrl-C into a key; SIGINT still comes from `kill -INT`.
    let mut interrupt = signal(SignalKind::interrupt()).context("listening for SIGINT")?;
    loop {
        terminal.draw(|frame| {
            frame.render_widget(&*app, frame.area());
            if let Some(position) = ui::cursor_position(app) {
                frame.set_cursor_position(position);
            }
        })?;
        let event = tokio::select! {
            next = input.next() => match next {
                Some(Ok(event)) => match translate(event, mouse) {
                    Some(event) => event,
                    None => continue,
                },
                Some(Err(error)) => return Err(error).context("reading the terminal"),
                None => return Ok(()),
            },
            news = net_events.recv() => match news {
                Some(news) => Event::Net(news),
                None => bail!("the network task stopped unexpectedly (see --log-file)"),
            },
            _ = tick.tick() => Event::Tick(clock::now_ms()),
            _ = terminate.recv() => Event::Terminate,
            _ = hangup.recv() => Event::Terminate,
            _ = interrupt.recv() => Event::Terminate,
        };
        if apply(app, event, commands)? {
            return Ok(());
        }
        for _ in 0..MAX_BATCH {
            let Ok(news) = net_events.try_recv() else {
                break;
            };
            if apply(app, Event::Net(news), commands)? {
                return Ok(());
            }
        }
    }
}

/// Applies one event and carries out its effect; true when the app quits.
fn apply(app: &mut App, event: Event, commands: &mpsc::Sender<NetCommand>) -> anyhow::Result<bool> {
    match app.update(event) {
        None => Ok(false),
        Some(Effect::Quit) => Ok(true),
        Some(Effect::Net(command)) => match commands.try_send(command) {
            Ok(()) => Ok(false),
            Err(TrySendError::Full(command)) => {
                // Never wait on the network task here: it may be waiting on us.
                let _no_follow_up = app.update(Event::NetBusy(command));
                Ok(false)
            }
            Err(TrySendError::Closed(_)) => bail!("the network task stopped unexpectedly"),
        },
    }
}

/// The terminal events the app cares about.
fn translate(event: term::Event, mouse: bool) -> Option<Event> {
    match event {
        term::Event::Key(key) if key.kind != KeyEventKind::Release => Some(Event::Key(key)),
        term::Event::Paste(text) => Some(Event::Paste(text)),
        term::Event::Resize(width, height) => Some(Event::Resize(width, height)),
        term::Event::Mouse(m) if mouse => match m.kind {
            MouseEventKind::ScrollUp => Some(Event::Scroll(WHEEL_ROWS)),
            MouseEventKind::ScrollDown => Some(Event::Scroll(-WHEEL_ROWS)),
            _ => None,
        },
        _ => None,
    }
}
