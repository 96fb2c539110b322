//! `roomcast-chat`: a terminal chat client for roomcast rooms.

fn main() {
    println!("roomcast-chat {}", env!("CARGO_PKG_VERSION"));
}
