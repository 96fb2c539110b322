//! roomcast-chat against a real in-process roomcast server: the network task with the app
//! (join, send, receive, reconnect and recovery), and one end-to-end run in tmux.
//! One test binary, so the helpers are compiled once.

mod e2e;
mod net;
mod proxy;
mod support;
