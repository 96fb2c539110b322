//! Reading what the server sent, with every wait bounded: the next frame of each kind, the close
//! code and reason, and [`Member`], a tutorial client that keeps reading in the background.

use roomcast_protocol::raw::RawSocket;
use roomcast_protocol::{
    Client, Incoming, Sender, ServerFrame, TutorialClient, TutorialFrame, TutorialSend,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::wait::within;

/// A tutorial client read by a background task; see [`crate::TestServer::member`].
pub struct Member {
    /// Its writing half.
    pub sender: Sender<TutorialSend>,
    frames: mpsc::Receiver<Incoming<TutorialFrame>>,
    reader: JoinHandle<()>,
}

impl Member {
    pub(crate) fn new(
        sender: Sender<TutorialSend>,
        frames: mpsc::Receiver<Incoming<TutorialFrame>>,
        reader: JoinHandle<()>,
    ) -> Self {
        Self {
            sender,
            frames,
            reader,
        }
    }

    /// Sends `{"message": text}`.
    pub async fn say(&mut self, text: &str) {
        let frame = TutorialSend {
            message: text.to_owned(),
        };
        within("a send", self.sender.send(&frame))
            .await
            .expect("send");
    }

    /// The next chat message's text, failing on anything else.
    pub async fn next_text(&mut self) -> String {
        match within("a frame", self.frames.recv()).await {
            Some(Incoming::Frame(TutorialFrame::Message(m))) => m.message,
            other => panic!("expected a chat message, got {other:?}"),
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The next tutorial frame, failing on close or timeout.
pub async fn next_tutorial(client: &mut TutorialClient) -> TutorialFrame {
    match within("a tutorial frame", client.recv())
        .await
        .expect("recv")
    {
        Incoming::Frame(frame) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// The next tutorial chat message's text.
pub async fn next_text(client: &mut TutorialClient) -> String {
    match next_tutorial(client).await {
        TutorialFrame::Message(message) => message.message,
        other => panic!("expected a chat message, got {other:?}"),
    }
}

/// The next typed frame, failing on close or timeout.
pub async fn next_typed(client: &mut Client) -> ServerFrame {
    match within("a typed frame", client.recv()).await.expect("recv") {
        Incoming::Frame(frame) => frame,
        other => panic!("expected a frame, got {other:?}"),
    }
}

/// Skips typed frames until one matches `pick`; fails if the session ends first.
pub async fn wait_for<T>(
    client: &mut Client,
    what: &str,
    mut pick: impl FnMut(&ServerFrame) -> Option<T>,
) -> T {
    within(what, async {
        loop {
            match client.recv().await.expect("recv") {
                Incoming::Frame(frame) => {
                    if let Some(found) = pick(&frame) {
                        return found;
                    }
                }
                other => panic!("session ended while waiting for {what}: {other:?}"),
            }
        }
    })
    .await
}

/// Reads until the session closes; returns the close code (None without a close frame) and
/// the reason.
pub async fn tutorial_close(client: &mut TutorialClient) -> (Option<u16>, String) {
    within("the session to close", async {
        loop {
            if let Incoming::Closed(info) = client.recv().await.expect("recv before close") {
                return (info.code.map(|c| c.as_u16()), info.reason);
            }
        }
    })
    .await
}

/// Reads until the session closes; returns the close code and the reason.
pub async fn typed_close(client: &mut Client) -> (Option<u16>, String) {
    within("the session to close", async {
        loop {
            if let Incoming::Closed(info) = client.recv().await.expect("recv before close") {
                return (info.code.map(|c| c.as_u16()), info.reason);
            }
        }
    })
    .await
}

/// Reads raw frames until a close frame; returns its code and reason. Unbounded on purpose:
/// callers wrap it in [`within`] with the wait they are proving.
pub async fn raw_close(socket: &mut RawSocket) -> (u16, String) {
    loop {
        let frame = socket
            .read_frame()
            .await
            .expect("the server sends frames")
            .expect("a close frame before the end of the stream");
        if let Some(close) = frame.close() {
            return close;
        }
    }
}
