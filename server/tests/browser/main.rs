//! Browser end-to-end tests: the pages the server embeds, loaded by headless Chromium (Debian's
//! `chromium` and `chromium-driver`) and driven over WebDriver, against the real server on
//! 127.0.0.1. A tier of its own in `scripts/check`; it fails, never skips, when the browser
//! cannot start. Screenshots land in `target/screenshots/`.

mod no_websocket;
mod proxy;
mod support;

mod chat;
mod screenshots;
mod status;
mod tutorial;
