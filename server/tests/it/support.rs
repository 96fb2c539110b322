//! A real server on 127.0.0.1:0 and the helpers every test uses to talk to it: the shared
//! `roomcast-testing` crate (`testing/`), which the CLI and TUI suites use too.

pub use roomcast_testing::*;
