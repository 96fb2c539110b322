//! The browser pages, embedded in the binary by `build.rs` (memory-serve): `/` picks a room and
//! a name, `/chat/{room}/` is the room page, `/status/{room}/` the payment-status page, and
//! `/static/*` their script and style. Every response carries its content type, a strong ETag
//! (answered with 304 on `If-None-Match`) and `Cache-Control: no-cache`, and is brotli or gzip
//! compressed when the browser accepts it.
//!
//! The room and status pages are one file each whatever the room: their script reads the room
//! from the path, so no template runs on the server and peer text never passes through one.

use std::convert::Infallible;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Request;
use axum::response::Response;
use memory_serve::CacheControl;
use tower::ServiceExt;

use crate::state::AppState;

/// The paths the pages answer on; each is handed to [`PAGES`] unchanged.
const PAGE_PATHS: [&str; 6] = [
    "/",
    "/chat/{room}/",
    "/chat/{room}",
    "/status/{room}/",
    "/status/{room}",
    "/static/{*file}",
];

/// The pages themselves, built on the first page request rather than at start: memory-serve
/// unpacks and compresses every file when it builds its router (and leaks those copies on
/// purpose, they live as long as the process), which a server that never serves a page, such as
/// each test server, should not pay for.
static PAGES: LazyLock<Router> = LazyLock::new(|| {
    memory_serve::load!()
        .index_file(Some("/index.html"))
        .add_alias("/chat/{room}/", "/chat.html")
        .add_alias("/chat/{room}", "/chat.html")
        .add_alias("/status/{room}/", "/status.html")
        .add_alias("/status/{room}", "/status.html")
        // Revalidate every time (a 304 without a body while the ETag matches): after a deploy
        // a page and its script never come from two different builds.
        .html_cache_control(CacheControl::NoCache)
        .cache_control(CacheControl::NoCache)
        .enable_brotli(true)
        .enable_gzip(true)
        .into_router()
});

/// The routes of the browser pages, to merge into the server's router.
pub(crate) fn pages() -> Router<Arc<AppState>> {
    let serve = tower::service_fn(|request: Request| async move {
        Ok::<Response, Infallible>(
            PAGES
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {}),
        )
    });
    PAGE_PATHS.iter().fold(Router::new(), |router, path| {
        router.route_service(path, serve)
    })
}

#[cfg(test)]
mod tests {
    use axum::body::{Body, to_bytes};
    use axum::http::{Request, StatusCode, header};

    use super::*;

    async fn get(path: &str, headers: &[(&str, &str)]) -> axum::response::Response {
        let mut request = Request::get(path);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let app = pages().with_state(AppState::new(
            crate::Config::default()
                .validate()
                .expect("the defaults are valid"),
        ));
        app.oneshot(request.body(Body::empty()).expect("request"))
            .await
            .expect("response")
    }

    fn header_of(response: &axum::response::Response, name: header::HeaderName) -> String {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }

    #[tokio::test]
    async fn every_page_is_served_with_its_content_type() {
        for (path, kind) in [
            ("/", "text/html"),
            ("/chat/lobby/", "text/html"),
            ("/chat/lobby", "text/html"),
            ("/status/pagamento_42/", "text/html"),
            ("/static/roomcast.js", "text/javascript"),
            ("/static/chat.js", "text/javascript"),
            ("/static/roomcast.css", "text/css"),
        ] {
            let response = get(path, &[]).await;
            assert_eq!(response.status(), StatusCode::OK, "{path}");
            assert!(
                header_of(&response, header::CONTENT_TYPE).starts_with(kind),
                "{path}"
            );
            assert_eq!(header_of(&response, header::CACHE_CONTROL), "no-cache");
        }
    }

    #[tokio::test]
    async fn the_room_page_is_the_same_file_whatever_the_room() {
        let lobby = get("/chat/lobby/", &[]).await;
        let other = get("/chat/pagamento_7/", &[]).await;
        assert_eq!(
            header_of(&lobby, header::ETAG),
            header_of(&other, header::ETAG)
        );
        let body = to_bytes(lobby.into_body(), 1 << 20).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("/static/chat.js"));
    }

    #[tokio::test]
    async fn a_known_etag_answers_304_without_a_body() {
        let first = get("/static/roomcast.js", &[]).await;
        let etag = header_of(&first, header::ETAG);
        assert!(etag.starts_with('"'), "a strong, quoted ETag: {etag}");
        let again = get("/static/roomcast.js", &[("if-none-match", &etag)]).await;
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let body = to_bytes(again.into_body(), 1 << 20).await.expect("body");
        assert!(body.is_empty());
    }

    #[tokio::test]
    async fn brotli_or_gzip_when_the_browser_accepts_it() {
        let plain = get("/static/roomcast.js", &[]).await;
        assert_eq!(header_of(&plain, header::CONTENT_ENCODING), "");
        let plain_len = to_bytes(plain.into_body(), 1 << 20)
            .await
            .expect("body")
            .len();
        for (accept, encoding) in [("gzip, deflate, br", "br"), ("gzip", "gzip")] {
            let response = get("/static/roomcast.js", &[("accept-encoding", accept)]).await;
            assert_eq!(header_of(&response, header::CONTENT_ENCODING), encoding);
            assert_eq!(header_of(&response, header::VARY), "accept-encoding");
            let len = to_bytes(response.into_body(), 1 << 20)
                .await
                .expect("body")
                .len();
            assert!(
                len < plain_len / 2,
                "{encoding}: {len} of {plain_len} bytes"
            );
        }
    }
}
