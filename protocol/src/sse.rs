//! Reading a Server-Sent Events stream (`/sse/...`, see docs/PROTOCOL.md "Followers over
//! SSE"): bytes in, events out, as the WHATWG `EventSource` parses them, plus the comments and
//! `retry:` fields a tool may want to see (heartbeats, reconnect advice).
//!
//! Transport-free: feed it whatever chunks arrive (a line may be split anywhere), so the CLI
//! and the test suites read streams the same way, over whichever HTTP client they use.

/// The longest line kept while waiting for its end; a stream that sends more without a line
/// break is not SSE, and [`EventParser::feed`] says so instead of growing without bound.
pub const MAX_LINE_BYTES: usize = 1024 * 1024;

/// What one block of an SSE stream was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    /// An event: its `event:` name (`message` when none), its `id:` if the block set one, and
    /// its `data:` lines joined by `\n`.
    Event {
        /// The event's type.
        name: String,
        /// The id this block set (the stream's position after it), if any.
        id: Option<String>,
        /// The data.
        data: String,
    },
    /// A comment line (`: ping`), without the colon and the one space after it.
    Comment(String),
    /// A `retry:` field: the reconnect delay in milliseconds.
    Retry(u64),
}

/// A stream that is not SSE.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a line of more than {MAX_LINE_BYTES} bytes without a line break: not an SSE stream")]
pub struct LineTooLong;

/// Turns chunks of an SSE stream into [`Item`]s.
#[derive(Debug, Default)]
pub struct EventParser {
    line: Vec<u8>,
    name: String,
    id: Option<String>,
    data: Option<String>,
    /// The previous chunk ended in `\r`: a `\n` that starts the next one is part of it.
    after_cr: bool,
}

impl EventParser {
    /// Reads `chunk`, returning every item it completes.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Item>, LineTooLong> {
        let mut items = Vec::new();
        for &byte in chunk {
            if std::mem::take(&mut self.after_cr) && byte == b'\n' {
                continue;
            }
            match byte {
                b'\n' | b'\r' => {
                    self.after_cr = byte == b'\r';
                    let line = std::mem::take(&mut self.line);
                    self.line_done(&String::from_utf8_lossy(&line), &mut items);
                }
                _ if self.line.len() >= MAX_LINE_BYTES => return Err(LineTooLong),
                _ => self.line.push(byte),
            }
        }
        Ok(items)
    }

    fn line_done(&mut self, line: &str, items: &mut Vec<Item>) {
        if line.is_empty() {
            let id = self.id.take();
            let name = std::mem::take(&mut self.name);
            if let Some(data) = self.data.take() {
                let name = if name.is_empty() {
                    "message".to_owned()
                } else {
                    name
                };
                items.push(Item::Event { name, id, data });
            }
            return;
        }
        if let Some(comment) = line.strip_prefix(':') {
            items.push(Item::Comment(
                comment.strip_prefix(' ').unwrap_or(comment).to_owned(),
            ));
            return;
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "event" => value.clone_into(&mut self.name),
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            "retry" => {
                if let Ok(millis) = value.parse() {
                    items.push(Item::Retry(millis));
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_comments_and_retries_come_out_however_the_bytes_are_split() {
        let stream = b"retry: 2500\n\n: ping\n\nid: lobby:e:1\nevent: message\ndata: {\"a\":1}\n\nevent: gap\r\ndata: x\r\ndata: y\r\n\r\n";
        let expected = vec![
            Item::Retry(2500),
            Item::Comment("ping".into()),
            Item::Event {
                name: "message".into(),
                id: Some("lobby:e:1".into()),
                data: "{\"a\":1}".into(),
            },
            Item::Event {
                name: "gap".into(),
                id: None,
                data: "x\ny".into(),
            },
        ];
        for split in 0..stream.len() {
            let mut parser = EventParser::default();
            let mut items = parser.feed(&stream[..split]).expect("sse");
            items.extend(parser.feed(&stream[split..]).expect("sse"));
            assert_eq!(items, expected, "split at {split}");
        }
    }
}
