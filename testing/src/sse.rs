//! An SSE follower for tests: a real HTTP request to `/sse/...` read chunk by chunk through
//! the protocol crate's [`EventParser`], so a test sees every event, comment and `retry:` in
//! the order the server wrote them.

use std::collections::VecDeque;

use roomcast_protocol::sse::{EventParser, Item};
use serde_json::Value;

use crate::server::TestServer;
use crate::wait::within;

/// One event as a test checks it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// `message`, `joined`, `gap`, `join`, `leave`, `evicted`, `shutdown`.
    pub name: String,
    /// The position the event set, if any.
    pub id: Option<String>,
    /// Its JSON.
    pub data: String,
}

impl SseEvent {
    /// The data as JSON (every roomcast event's data is).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.data).expect("SSE data is JSON")
    }
}

/// A follower's stream, open.
pub struct SseFollower {
    response: reqwest::Response,
    parser: EventParser,
    pending: VecDeque<Item>,
    /// The last id seen, as `EventSource` would send it back.
    pub last_id: Option<String>,
}

impl SseFollower {
    /// Opens `path` (`sse/lobby/`, `sse?rooms=a,b`) on `server`, sending `Last-Event-ID`
    /// when given; fails the test unless the answer is a 200 event stream.
    pub async fn open(server: &TestServer, path: &str, last_event_id: Option<&str>) -> Self {
        // `http_url` takes a path only: a query joined to it would be escaped into the path.
        let url = match path.split_once('?') {
            Some((path, query)) => format!("{}?{query}", server.http_url(path)),
            None => server.http_url(path),
        };
        let mut request = server.http().get(url);
        if let Some(id) = last_event_id {
            request = request.header("last-event-id", id);
        }
        let response = within("the SSE response", request.send())
            .await
            .expect("SSE request");
        assert_eq!(response.status(), 200, "GET /{path}");
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert_eq!(content_type, "text/event-stream");
        Self {
            response,
            parser: EventParser::default(),
            pending: VecDeque::new(),
            last_id: None,
        }
    }

    /// The next item, or `None` when the server ended the stream. Fails after [`WAIT`].
    ///
    /// [`WAIT`]: crate::WAIT
    pub async fn next_item(&mut self) -> Option<Item> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                if let Item::Event { id: Some(id), .. } = &item {
                    self.last_id = Some(id.clone());
                }
                return Some(item);
            }
            let chunk = within("the next SSE chunk", self.response.chunk())
                .await
                .expect("SSE body")?;
            self.pending
                .extend(self.parser.feed(&chunk).expect("an SSE stream"));
        }
    }

    /// The next event (comments and retries skipped); fails if the stream ends first.
    pub async fn next_event(&mut self) -> SseEvent {
        loop {
            match self.next_item().await {
                Some(Item::Event { name, id, data }) => return SseEvent { name, id, data },
                Some(_) => {}
                None => panic!("the SSE stream ended while an event was expected"),
            }
        }
    }

    /// The next event named `name`, skipping others.
    pub async fn next_named(&mut self, name: &str) -> SseEvent {
        loop {
            let event = self.next_event().await;
            if event.name == name {
                return event;
            }
        }
    }

    /// The text of the next `message` event, skipping other events.
    pub async fn next_message(&mut self) -> String {
        let event = self.next_named("message").await;
        event.json()["message"]
            .as_str()
            .expect("a message event has a message")
            .to_owned()
    }
}
