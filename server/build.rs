//! Embeds `web/` (the browser pages) into the binary, compressed at build time, so the server
//! ships as one file. Debug builds embed too: tests serve exactly what a release serves.

fn main() {
    memory_serve::load_directory_with_embed("web", true);
}
