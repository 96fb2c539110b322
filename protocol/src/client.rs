//! The async clients: [`Client`] speaks the typed protocol, [`TutorialClient`] the Django
//! Channels tutorial one. Both are [`Connection`]s: they decode JSON, surface the server's close
//! code, and split into halves so one task can read while another writes.

pub use crate::connection::{
    CONNECT_TIMEOUT, ClientError, CloseInfo, Connection, Incoming, Receiver, Sender,
};
use crate::room::RoomName;
use crate::server_url::ServerUrl;
use crate::tutorial::{TutorialFrame, TutorialSend};
use crate::user::UserName;
use crate::v1::{ClientFrame, Position, Ref, SUBPROTOCOL_V1, ServerFrame, ServerInfo};

/// A tutorial-protocol session on `/ws/chat/<room>/`: exactly what the Django Channels tutorial
/// page speaks.
pub type TutorialClient = Connection<TutorialSend, TutorialFrame>;

impl TutorialClient {
    /// Connects to `room`'s tutorial socket; `user` names the sender in delivered messages.
    pub async fn connect(
        server: &ServerUrl,
        room: &RoomName,
        user: Option<&UserName>,
    ) -> Result<Self, ClientError> {
        let mut url = server.room_socket(room);
        if let Some(user) = user {
            url.query_pairs_mut().append_pair("user", user.as_str());
        }
        Connection::open(&url, None).await
    }

    /// Sends `{"message": text}`.
    pub async fn send_message(&mut self, text: &str) -> Result<(), ClientError> {
        self.send(&TutorialSend {
            message: text.to_owned(),
        })
        .await
    }
}

/// Options for [`Client::connect`].
#[derive(Debug, Clone, Default)]
pub struct ConnectOptions {
    /// The name to speak as; the server generates one when absent.
    pub user: Option<UserName>,
    /// A room to join at connect (uses `/ws/chat/<room>/`); `None` uses the bare `/ws`.
    pub room: Option<RoomName>,
    /// A token (HS256 JWT from `roomcast token` or the backend) for private rooms, sent as
    /// `?token=` (what browsers can send too) and used by later joins that carry none.
    pub token: Option<String>,
}

/// A typed-protocol session ([`SUBPROTOCOL_V1`]), started and past its `welcome`.
#[derive(Debug)]
pub struct Client {
    connection: Connection<ClientFrame, ServerFrame>,
    user: UserName,
    server: ServerInfo,
}

impl Client {
    /// Connects, negotiates `roomcast.v1` and waits for the `welcome` frame.
    pub async fn connect(server: &ServerUrl, options: ConnectOptions) -> Result<Self, ClientError> {
        let mut url = match &options.room {
            Some(room) => server.room_socket(room),
            None => server.ws("ws"),
        };
        if let Some(user) = &options.user {
            url.query_pairs_mut().append_pair("user", user.as_str());
        }
        if let Some(token) = &options.token {
            url.query_pairs_mut().append_pair("token", token);
        }
        let mut connection = Connection::open(&url, Some(SUBPROTOCOL_V1)).await?;
        let first = tokio::time::timeout(CONNECT_TIMEOUT, connection.recv())
            .await
            .map_err(|_| ClientError::Timeout(CONNECT_TIMEOUT, crate::redact::redacted(&url)))??;
        match first {
            Incoming::Frame(ServerFrame::Welcome { user, server }) => Ok(Self {
                connection,
                user,
                server,
            }),
            Incoming::Closed(info) => Err(ClientError::Closed(info)),
            other => Err(ClientError::NoWelcome(format!("{other:?}"))),
        }
    }

    /// The name this session speaks as.
    pub fn user(&self) -> &UserName {
        &self.user
    }

    /// The server's heartbeat settings and limits, from `welcome`.
    pub fn server_info(&self) -> &ServerInfo {
        &self.server
    }

    /// Sends one frame.
    pub async fn send(&mut self, frame: &ClientFrame) -> Result<(), ClientError> {
        self.connection.send(frame).await
    }

    /// Sends `join`.
    pub async fn join(
        &mut self,
        room: &RoomName,
        since: Option<Position>,
        reference: Option<Ref>,
    ) -> Result<(), ClientError> {
        self.send(&ClientFrame::Join {
            room: room.clone(),
            since,
            token: None,
            reference,
        })
        .await
    }

    /// Sends `join` with a token for a private room (see [`ConnectOptions::token`]).
    pub async fn join_with_token(
        &mut self,
        room: &RoomName,
        token: &str,
        reference: Option<Ref>,
    ) -> Result<(), ClientError> {
        self.send(&ClientFrame::Join {
            room: room.clone(),
            since: None,
            token: Some(token.to_owned()),
            reference,
        })
        .await
    }

    /// Sends `publish`.
    pub async fn publish(
        &mut self,
        room: &RoomName,
        message: &str,
        reference: Option<Ref>,
    ) -> Result<(), ClientError> {
        let frame = ClientFrame::Publish {
            room: room.clone(),
            message: message.to_owned(),
            data: None,
            reference,
        };
        self.send(&frame).await
    }

    /// Sends `publish` with structured `data` delivered beside the text (typed members and
    /// SSE followers get it as the message's `data`).
    pub async fn publish_with_data(
        &mut self,
        room: &RoomName,
        message: &str,
        data: serde_json::Map<String, serde_json::Value>,
        reference: Option<Ref>,
    ) -> Result<(), ClientError> {
        let frame = ClientFrame::Publish {
            room: room.clone(),
            message: message.to_owned(),
            data: Some(data),
            reference,
        };
        self.send(&frame).await
    }

    /// Waits for the next frame; see [`Receiver::recv`].
    pub async fn recv(&mut self) -> Result<Incoming<ServerFrame>, ClientError> {
        self.connection.recv().await
    }

    /// Starts a clean close; see [`Sender::close`].
    pub async fn close(&mut self, reason: &str) -> Result<(), ClientError> {
        self.connection.close(reason).await
    }

    /// The two halves, for a reader task and a writer task.
    pub fn split(self) -> (Sender<ClientFrame>, Receiver<ServerFrame>) {
        self.connection.split()
    }
}
