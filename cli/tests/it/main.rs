//! The `roomcast` binary against a real server running in this process (127.0.0.1:0), through
//! the front door: arguments in, exit code and stdout/stderr out.

mod support;

mod bench;
mod bench_cluster;
mod blackhole;
mod dead_clients;
mod private_rooms;
mod send_listen;
mod silent_server;
mod soak;
mod usage;
