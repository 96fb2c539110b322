//! Integration tests: the real server on 127.0.0.1:0, real sockets, the crate's own clients.
//! One binary, so the server links once and helpers are shared.

mod redis_support;
mod support;

mod access;
mod access_proxy;
mod api;
mod binary;
mod broadcast;
mod channels_bridge;
mod closing;
mod cluster;
mod config;
mod deploy;
mod docs;
mod drain;
mod fuzz_http;
mod heartbeat;
mod lifecycle;
mod limits;
mod message_data;
mod presence;
mod recovery;
mod rooms;
mod send_test;
mod shutdown;
mod silent_loss;
mod slow;
mod sse;
mod typed;
mod wire;
