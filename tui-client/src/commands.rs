//! Slash commands: the table (also shown by the help overlay and used by Tab) and the parser.

use roomcast_protocol::{RoomName, UserName};

/// A parsed slash command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `/join ROOM`.
    Join(RoomName),
    /// `/leave [ROOM]` (the shown room by default).
    Leave(Option<RoomName>),
    /// `/nick NAME`: reconnect as NAME and rejoin every room without a gap.
    Nick(UserName),
    /// `/who`: list the room's members.
    Who,
    /// `/quit`.
    Quit,
    /// `/help`.
    Help,
}

/// One row of the command table.
#[derive(Debug, Clone, Copy)]
pub struct CommandHelp {
    /// The command with its arguments, e.g. `/join ROOM`.
    pub usage: &'static str,
    /// What it does.
    pub help: &'static str,
}

impl CommandHelp {
    /// The command word, e.g. `/join`.
    pub fn word(&self) -> &'static str {
        self.usage.split(' ').next().unwrap_or(self.usage)
    }
}

/// Every command, in help order.
pub const COMMANDS: &[CommandHelp] = &[
    CommandHelp {
        usage: "/join ROOM",
        help: "join a room (or switch to it)",
    },
    CommandHelp {
        usage: "/leave [ROOM]",
        help: "leave this room (or ROOM)",
    },
    CommandHelp {
        usage: "/nick NAME",
        help: "speak as NAME (reconnects, rejoins without a gap)",
    },
    CommandHelp {
        usage: "/who",
        help: "list who is in this room",
    },
    CommandHelp {
        usage: "/help",
        help: "show keys and commands",
    },
    CommandHelp {
        usage: "/quit",
        help: "leave the program",
    },
];

/// What the input line means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// A chat message (`//text` sends `/text`).
    Message(String),
    /// A command.
    Command(Command),
    /// A command that cannot run; the text says why and what to type.
    Invalid(String),
}

/// Reads an input line.
pub fn parse(line: &str) -> Parsed {
    if let Some(escaped) = line.strip_prefix("//") {
        return Parsed::Message(format!("/{escaped}"));
    }
    let Some(rest) = line.strip_prefix('/') else {
        return Parsed::Message(line.to_owned());
    };
    let mut words = rest.split_whitespace();
    let word = words.next().unwrap_or_default();
    let args: Vec<&str> = words.collect();
    let arg = args.join(" ");
    let command = match (word, args.len()) {
        ("join" | "j", 1) => RoomName::new(&arg)
            .map(Command::Join)
            .map_err(|e| e.to_string()),
        ("join" | "j", _) => Err("usage: /join ROOM".to_owned()),
        ("leave" | "part", 0) => Ok(Command::Leave(None)),
        ("leave" | "part", 1) => RoomName::new(&arg)
            .map(|room| Command::Leave(Some(room)))
            .map_err(|e| e.to_string()),
        ("leave" | "part", _) => Err("usage: /leave [ROOM]".to_owned()),
        ("nick", 0) => Err("usage: /nick NAME".to_owned()),
        // A user name may hold single spaces ("Ana Lima"), so the rest of the line is the name.
        ("nick", _) => UserName::new(&arg)
            .map(Command::Nick)
            .map_err(|e| e.to_string()),
        ("who" | "names", _) => Ok(Command::Who),
        ("quit" | "exit" | "q", _) => Ok(Command::Quit),
        ("help" | "h", _) => Ok(Command::Help),
        _ => Err(format!(
            "unknown command /{word}; /help lists them (start with // to send a slash)"
        )),
    };
    match command {
        Ok(command) => Parsed::Command(command),
        Err(why) => Parsed::Invalid(why),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse_with_their_arguments() {
        assert_eq!(
            parse("/join dev"),
            Parsed::Command(Command::Join(RoomName::new("dev").expect("valid")))
        );
        assert_eq!(
            parse("/nick Ana Lima"),
            Parsed::Command(Command::Nick(UserName::new("Ana Lima").expect("valid")))
        );
        assert_eq!(parse("/leave"), Parsed::Command(Command::Leave(None)));
        assert_eq!(parse("hello"), Parsed::Message("hello".into()));
        assert_eq!(parse("//shrug"), Parsed::Message("/shrug".into()));
    }

    #[test]
    fn bad_commands_explain_themselves_instead_of_being_sent() {
        let Parsed::Invalid(why) = parse("/join bad room") else {
            panic!("a two-word room must not parse");
        };
        assert!(why.contains("usage"));
        let Parsed::Invalid(why) = parse("/frobnicate") else {
            panic!("unknown commands must not be sent");
        };
        assert!(why.contains("/help"));
        assert!(matches!(parse("/join a/b"), Parsed::Invalid(_)));
    }
}
