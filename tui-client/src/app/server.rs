//! News from the network task: the link's state, joins (with recovery), messages, presence
//! and errors, each turned into room state the screen shows.

use roomcast_protocol::{RoomMessage, ServerFrame};

use super::{App, Link};
use crate::event::Effect;
use crate::net::{Joined, NetEvent};
use crate::rooms::{Entry, mentions};
use crate::ui::timeline;

impl App {
    pub(crate) fn on_net(&mut self, event: NetEvent) -> Option<Effect> {
        match event {
            NetEvent::Connecting { attempt } => self.link = Link::Connecting { attempt },
            NetEvent::Connected { user, server } => {
                if self.me.as_ref().is_some_and(|me| *me != user) {
                    self.flash(format!("you are now {user}"));
                }
                self.me = Some(user);
                self.server = Some(server);
                self.link = Link::Connected { rtt: None };
            }
            NetEvent::Rtt(rtt) => {
                if let Link::Connected { rtt: shown } = &mut self.link {
                    *shown = Some(rtt);
                }
            }
            NetEvent::Disconnected { reason, retry_in } => {
                for room in &mut self.rooms {
                    room.joined = false;
                }
                self.link = match retry_in {
                    Some(delay) => Link::Reconnecting {
                        at_ms: self
                            .now_ms
                            .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX)),
                        reason,
                    },
                    None => Link::Stopped { reason },
                };
            }
            NetEvent::Joined(joined) => self.on_joined(joined),
            NetEvent::Frame(frame) => self.on_frame(frame),
            NetEvent::NotSent { room, text } => {
                let ts = self.now_ms;
                if let Some(index) = self.room_index(&room) {
                    self.push(
                        index,
                        Entry::Notice {
                            ts,
                            text: format!("not sent (offline): {text}"),
                            error: true,
                        },
                    );
                }
            }
        }
        None
    }

    fn on_joined(&mut self, joined: Joined) {
        let Some(index) = self.room_index(&joined.room) else {
            return;
        };
        let ts = self.now_ms;
        let room = &mut self.rooms[index];
        room.joined = true;
        room.members = joined.members;
        let first = !room.ever_joined;
        room.ever_joined = true;
        let count = room.members.len();
        if first {
            let noun = if count == 1 { "member" } else { "members" };
            self.push(
                index,
                Entry::Notice {
                    ts,
                    text: format!("joined {} · {count} {noun}", joined.room),
                    error: false,
                },
            );
        }
        // A full recovery shows nothing: the replayed messages simply appear in order.
        if joined.recovered != Some(false) {
            return;
        }
        match joined.since {
            Some(since) if since.epoch == joined.epoch && joined.replay > 0 => {
                // The first replayed message tells how many are gone.
                self.rooms[index].gap_after = Some(since.seq);
            }
            Some(since) if since.epoch == joined.epoch => {
                let count = joined.seq.saturating_sub(since.seq);
                self.push(
                    index,
                    Entry::Missing {
                        ts,
                        count: Some(count).filter(|n| *n > 0),
                    },
                );
            }
            _ => self.push(index, Entry::Missing { ts, count: None }),
        }
    }

    fn on_frame(&mut self, frame: ServerFrame) {
        let ts = self.now_ms;
        match frame {
            ServerFrame::Message(message) => self.on_message(message),
            ServerFrame::Join { room, user } => {
                if let Some(index) = self.room_index(&room) {
                    self.rooms[index].add_member(user.clone());
                    self.push(
                        index,
                        Entry::Presence {
                            ts,
                            user,
                            left: None,
                        },
                    );
                }
            }
            ServerFrame::Leave { room, user, reason } => {
                if let Some(index) = self.room_index(&room) {
                    self.rooms[index].remove_member(&user);
                    self.push(
                        index,
                        Entry::Presence {
                            ts,
                            user,
                            left: Some(reason),
                        },
                    );
                }
            }
            ServerFrame::Error {
                code,
                message,
                room,
                ..
            } => {
                let text = format!("server refused: {message} ({})", code.as_str());
                match room.and_then(|room| self.room_index(&room)) {
                    Some(index) => self.push(
                        index,
                        Entry::Notice {
                            ts,
                            text,
                            error: true,
                        },
                    ),
                    None => self.notice(text, true),
                }
            }
            ServerFrame::Welcome { .. }
            | ServerFrame::Joined { .. }
            | ServerFrame::Left { .. }
            | ServerFrame::Ack { .. }
            | ServerFrame::Pong { .. } => {}
        }
    }

    fn on_message(&mut self, message: RoomMessage) {
        let Some(index) = self.room_index(&message.room) else {
            return;
        };
        if let Some(since) = self.rooms[index].gap_after.take() {
            let count = message.seq.saturating_sub(since.saturating_add(1));
            let ts = self.now_ms;
            self.push(
                index,
                Entry::Missing {
                    ts,
                    count: Some(count).filter(|n| *n > 0),
                },
            );
        }
        let own = self.me.as_ref() == Some(&message.user);
        let mention = !own
            && self
                .me
                .as_ref()
                .is_some_and(|me| mentions(&message.message, me));
        self.push(
            index,
            Entry::Message {
                ts: message.ts,
                user: message.user,
                text: message.message,
                own,
                mention,
            },
        );
    }

    /// Appends to room `index`, keeping a scrolled-up view still and counting what is new.
    pub(crate) fn push(&mut self, index: usize, entry: Entry) {
        let counts_as_new = matches!(entry, Entry::Message { own: false, .. });
        let mention = matches!(entry, Entry::Message { mention: true, .. });
        let shown = index == self.active;
        let width = self.areas().timeline.width;
        let rows = if shown && self.rooms[index].scroll > 0 {
            timeline::entry_rows(self, &self.rooms[index], &entry, width)
        } else {
            0
        };
        let room = &mut self.rooms[index];
        room.push(entry);
        if shown {
            if room.scroll > 0 {
                room.scroll += rows;
                if counts_as_new {
                    room.new_below += 1;
                }
            }
        } else if counts_as_new {
            room.unread += 1;
            room.mentioned |= mention;
        }
    }
}
