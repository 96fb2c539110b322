//! roomcast-chat against a real in-process roomcast server: the network task with the app
//! (join, send, receive, reconnect and recovery, a server that goes silent behind the shared
//! `TcpProxy`), and end-to-end runs in tmux.
//! One test binary, so the helpers are compiled once.

mod e2e;
mod net;
mod support;
