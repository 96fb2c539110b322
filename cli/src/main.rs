//! `roomcast`: the command line for a roomcast server.

fn main() {
    println!("roomcast {}", env!("CARGO_PKG_VERSION"));
}
