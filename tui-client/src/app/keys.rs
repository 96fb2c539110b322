//! Keys in normal mode: the keymap's actions applied to the input, the room list and the
//! scrollback; Enter turns the input into a message or a command.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use super::{App, Mode};
use crate::commands::{self, Command, Parsed};
use crate::complete::Completion;
use crate::event::Effect;
use crate::keymap::{self, Action};
use crate::net::NetCommand;
use crate::rooms::Room;
use crate::ui::timeline;

impl App {
    pub(crate) fn on_key(&mut self, key: &KeyEvent) -> Option<Effect> {
        match self.mode {
            Mode::Normal => {}
            _ => return self.on_modal_key(key),
        }
        let action = keymap::action_for(key);
        if action != Some(Action::Complete) {
            self.completion = None;
        }
        match action {
            Some(action) => self.apply(action, key),
            None => {
                if let KeyCode::Char(c) = key.code
                    && !key
                        .modifiers
                        .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
                {
                    self.editor.insert(c.encode_utf8(&mut [0; 4]));
                }
                None
            }
        }
    }

    fn apply(&mut self, action: Action, key: &KeyEvent) -> Option<Effect> {
        match action {
            Action::Submit => return self.submit(),
            Action::NewLine => self.editor.insert("\n"),
            Action::Quit => return self.quit(),
            Action::NextRoom => self.cycle_room(1),
            Action::PrevRoom => self.cycle_room(-1),
            Action::GoToRoom => {
                if let KeyCode::Char(c) = key.code
                    && let Some(n) = c.to_digit(10)
                {
                    match usize::try_from(n).ok().filter(|n| *n <= self.rooms.len()) {
                        Some(n) => self.show_room(n - 1),
                        None => self.flash(format!("no room {n}")),
                    }
                }
            }
            Action::NextUnread => self.next_unread(),
            Action::KillOrFilter => {
                if !self.editor.kill_to_end() {
                    self.mode = Mode::Filter {
                        query: String::new(),
                        selected: 0,
                    };
                }
            }
            Action::Help => {
                // `?` is also a character people type; it opens help only on an empty input.
                if key.code == KeyCode::Char('?') && !self.editor.is_empty() {
                    self.editor.insert("?");
                } else {
                    self.mode = Mode::Help { scroll: 0 };
                }
            }
            Action::ToggleMembers => self.show_members = !self.show_members,
            Action::TogglePresence => {
                self.hide_presence = !self.hide_presence;
                self.scroll_to_bottom();
            }
            Action::PageUp => self.scroll_by(self.page()),
            Action::PageDown => self.scroll_by(-self.page()),
            Action::ScrollTop => self.scroll_by(isize::MAX / 2),
            Action::ScrollBottom => self.scroll_to_bottom(),
            Action::HistoryOlder => {
                let current = self.editor.text().to_owned();
                if let Some(room) = self.rooms.get_mut(self.active)
                    && let Some(line) = room.history.older(&current)
                {
                    self.editor.set(line);
                }
            }
            Action::HistoryNewer => {
                if let Some(room) = self.rooms.get_mut(self.active)
                    && let Some(line) = room.history.newer()
                {
                    self.editor.set(line);
                }
            }
            Action::Complete => self.complete(),
            Action::Left => self.editor.left(),
            Action::Right => self.editor.right(),
            Action::Home => self.editor.home(),
            Action::End => self.editor.end(),
            Action::WordLeft => self.editor.word_left(),
            Action::WordRight => self.editor.word_right(),
            Action::Backspace => self.editor.delete_back(),
            Action::Delete => self.editor.delete_forward(),
            Action::DeleteWord => self.editor.delete_word_back(),
            Action::DeleteToStart => self.editor.delete_to_start(),
            Action::Cancel => self.scroll_to_bottom(),
        }
        None
    }

    fn submit(&mut self) -> Option<Effect> {
        let line = self.editor.text().trim_end().to_owned();
        if line.trim().is_empty() {
            return None;
        }
        match commands::parse(&line) {
            Parsed::Invalid(why) => {
                // Keep the text so a typo is fixed, not retyped.
                self.flash(why);
                None
            }
            Parsed::Command(command) => {
                self.editor.take();
                self.run_command(command)
            }
            Parsed::Message(text) => {
                let room = self.rooms.get(self.active)?;
                let (name, joined) = (room.name.clone(), room.joined);
                if !joined {
                    self.flash("not in the room yet; the message stays in the input");
                    return None;
                }
                // A frame over the server's limit would close the whole session (1009).
                if let Some(limit) = self.server.as_ref().map(|s| s.max_message_bytes) {
                    let frame_bytes = publish_frame_bytes(&name, &text);
                    if frame_bytes > limit {
                        self.flash(format!(
                            "too long to send ({frame_bytes} bytes; the server takes {limit}); it stays in the input"
                        ));
                        return None;
                    }
                }
                if let Some(room) = self.rooms.get_mut(self.active) {
                    room.history.push(line);
                }
                self.editor.take();
                self.scroll_to_bottom();
                let room = name;
                Some(Effect::Net(NetCommand::Publish { room, text }))
            }
        }
    }

    fn run_command(&mut self, command: Command) -> Option<Effect> {
        match command {
            Command::Join(name) => {
                if let Some(index) = self.room_index(&name) {
                    self.show_room(index);
                    return None;
                }
                self.rooms.push(Room::new(name.clone()));
                self.show_room(self.rooms.len() - 1);
                Some(Effect::Net(NetCommand::Join(name)))
            }
            Command::Leave(name) => {
                let index = match name {
                    Some(name) => self.room_index(&name),
                    None => (self.active < self.rooms.len()).then_some(self.active),
                };
                let Some(index) = index else {
                    self.flash("not in that room");
                    return None;
                };
                let room = self.rooms.remove(index);
                if self.active >= index && self.active > 0 {
                    self.active -= 1;
                }
                self.show_room(self.active);
                Some(Effect::Net(NetCommand::Leave(room.name)))
            }
            Command::Nick(name) => {
                self.flash(format!("reconnecting as {name}…"));
                Some(Effect::Net(NetCommand::Nick(name)))
            }
            Command::Who => {
                let text = match self.active_room() {
                    Some(room) if room.joined => {
                        let names: Vec<&str> = room.members.iter().map(|u| u.as_str()).collect();
                        format!("{} here: {}", names.len(), names.join(", "))
                    }
                    Some(_) => "not in the room yet".to_owned(),
                    None => "no room shown; /join ROOM first".to_owned(),
                };
                self.notice(text, false);
                None
            }
            Command::Quit => self.quit(),
            Command::Help => {
                self.mode = Mode::Help { scroll: 0 };
                None
            }
        }
    }

    fn cycle_room(&mut self, step: isize) {
        let count = self.rooms.len();
        if count == 0 {
            return;
        }
        let next = (self.active as isize + step).rem_euclid(count as isize);
        self.show_room(usize::try_from(next).unwrap_or(0));
    }

    /// Jumps to the next room (after the shown one) with unread messages, mentions first.
    fn next_unread(&mut self) {
        let count = self.rooms.len();
        let order = (1..=count).map(|step| (self.active + step) % count);
        let pick = order
            .clone()
            .find(|&i| self.rooms[i].mentioned)
            .or_else(|| order.clone().find(|&i| self.rooms[i].unread > 0));
        match pick {
            Some(index) => self.show_room(index),
            None => self.flash("no unread messages"),
        }
    }

    fn complete(&mut self) {
        if let Some(completion) = &mut self.completion {
            let old_len = completion.current().len();
            completion.advance();
            let start = completion.start;
            let replacement = completion.current().to_owned();
            // Put the cursor back at the end of the previous candidate, then replace it.
            let cursor = start + old_len;
            if cursor == self.editor.cursor() {
                self.editor.replace_before_cursor(start, &replacement);
            }
            return;
        }
        let mut nicks: Vec<&str> = self
            .active_room()
            .map(|room| room.members.iter().map(|u| u.as_str()).collect())
            .unwrap_or_default();
        if let Some(me) = &self.me {
            nicks.retain(|n| *n != me.as_str());
        }
        let completion = Completion::start(self.editor.text(), self.editor.cursor(), &nicks);
        if let Some(completion) = completion {
            let replacement = completion.current().to_owned();
            self.editor
                .replace_before_cursor(completion.start, &replacement);
            self.completion = Some(completion);
        }
    }

    /// Rows in a page of the timeline (PgUp/PgDn keep two rows of context).
    fn page(&self) -> isize {
        let rows = self.areas().timeline.height.saturating_sub(2).max(1);
        isize::try_from(rows).unwrap_or(1)
    }

    /// Scrolls the shown room by `rows` (positive is up, into the past), within the timeline.
    pub(crate) fn scroll_by(&mut self, rows: isize) {
        let area = self.areas().timeline;
        let Some(room) = self.rooms.get(self.active) else {
            return;
        };
        let total = timeline::total_rows(self, room, area.width);
        let max = total.saturating_sub(usize::from(area.height));
        let scroll = room.scroll.saturating_add_signed(rows).min(max);
        if let Some(room) = self.rooms.get_mut(self.active) {
            room.scroll = scroll;
            if scroll == 0 {
                room.new_below = 0;
            }
        }
    }

    pub(crate) fn scroll_to_bottom(&mut self) {
        if let Some(room) = self.rooms.get_mut(self.active) {
            room.scroll = 0;
            room.new_below = 0;
        }
    }
}

/// The size of the `publish` frame that carries `text` to `room`, as the server measures it.
fn publish_frame_bytes(room: &roomcast_protocol::RoomName, text: &str) -> usize {
    let frame = roomcast_protocol::ClientFrame::Publish {
        room: room.clone(),
        message: text.to_owned(),
        data: None,
        reference: None,
    };
    serde_json::to_string(&frame).map_or(usize::MAX, |json| json.len())
}
