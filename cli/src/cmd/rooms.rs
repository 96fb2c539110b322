//! `roomcast rooms [ROOM]`: rooms, their members and last seq, from the HTTP API.

use std::io::Write;

use anyhow::{Result, bail};
use clap::Args;
use roomcast_protocol::RoomName;

use super::{Ctx, json_line};
use crate::exit::Code;
use roomcast_protocol::RoomSummary;

/// Flags of `rooms`.
#[derive(Debug, Args)]
pub struct RoomsArgs {
    /// Show this room's members instead of the list of rooms.
    pub room: Option<RoomName>,
}

/// Prints the rooms (or one room) as a table, or one JSON object per room.
pub async fn run(ctx: &Ctx, args: RoomsArgs) -> Result<Code> {
    let mut stdout = std::io::stdout().lock();
    match args.room {
        None => {
            let rooms = ctx.api.rooms().await?;
            print_rooms(&mut stdout, &rooms, ctx.json)?;
        }
        Some(name) => {
            let Some(room) = ctx.api.room(&name).await? else {
                bail!(
                    "there is no room {name} on {} (`roomcast rooms` lists them)",
                    ctx.server
                );
            };
            print_room(&mut stdout, &room, ctx.json)?;
        }
    }
    Ok(Code::Ok)
}

fn print_rooms<W: Write>(out: &mut W, rooms: &[RoomSummary], json: bool) -> Result<()> {
    if json {
        for room in rooms {
            json_line(out, room)?;
        }
        return Ok(());
    }
    let width = rooms
        .iter()
        .map(|r| r.room.as_str().len())
        .max()
        .unwrap_or(0)
        .max(4);
    writeln!(
        out,
        "{:<width$}  {:>7}  {:>8}  {:>8}  EPOCH",
        "ROOM", "MEMBERS", "SESSIONS", "SEQ"
    )?;
    for room in rooms {
        writeln!(
            out,
            "{:<width$}  {:>7}  {:>8}  {:>8}  {}",
            room.room.as_str(),
            room.members.len(),
            room.sessions,
            room.seq,
            room.epoch
        )?;
    }
    Ok(())
}

fn print_room<W: Write>(out: &mut W, room: &RoomSummary, json: bool) -> Result<()> {
    if json {
        json_line(out, room)?;
        return Ok(());
    }
    writeln!(
        out,
        "{}: seq {}, epoch {}, {} session{}",
        room.room,
        room.seq,
        room.epoch,
        room.sessions,
        if room.sessions == 1 { "" } else { "s" }
    )?;
    for member in &room.members {
        writeln!(out, "  {member}")?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use roomcast_protocol::UserName;

    use super::*;

    #[test]
    fn the_room_table_lines_up() {
        let rooms = vec![RoomSummary {
            room: RoomName::new("lobby").expect("valid room"),
            members: vec![UserName::new("ana").expect("valid user")],
            sessions: 2,
            followers: 0,
            seq: 41,
            epoch: "00ff".into(),
        }];
        let mut out = Vec::new();
        print_rooms(&mut out, &rooms, false).expect("write");
        let text = String::from_utf8_lossy(&out);
        assert_eq!(
            text,
            "ROOM   MEMBERS  SESSIONS       SEQ  EPOCH\nlobby        1         2        41  00ff\n"
        );
    }
}
