# roomcast-server as a container: build with the Rust toolchain, run from a small Debian image
# as a non-root user, on 0.0.0.0:$PORT (Render sets PORT; 10000 otherwise).
#
#   docker build -t roomcast .
#   docker run --rm -p 10000:10000 -e ROOMCAST_API_KEY=change-me roomcast
#
# Stages: chef (toolchain + cargo-chef), planner (the dependency recipe), builder (dependencies
# in their own cached layer, then our code), runtime (the binary alone).

ARG RUST_VERSION=1.95
ARG DEBIAN_RELEASE=bookworm

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS chef
# cargo-chef turns the workspace's manifests into a recipe, so dependencies build in a layer that
# only changes when Cargo.toml or Cargo.lock do.
RUN cargo install cargo-chef --locked --version 0.1.78
WORKDIR /src

FROM chef AS planner
COPY . .
RUN cargo chef prepare --recipe-path recipe.json

FROM chef AS builder
COPY --from=planner /src/recipe.json recipe.json
RUN cargo chef cook --release --locked --package roomcast-server --recipe-path recipe.json
COPY . .
RUN cargo build --release --locked --package roomcast-server --bin roomcast-server \
    && cp target/release/roomcast-server /usr/local/bin/roomcast-server

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
LABEL org.opencontainers.image.title="roomcast-server" \
      org.opencontainers.image.description="WebSocket rooms with heartbeat eviction, bounded queues, an HTTP publish API and a browser chat" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.source="https://example.invalid/roomcast" \
      org.opencontainers.image.documentation="https://example.invalid/roomcast/docs/OPERATIONS.md" \
      org.opencontainers.image.vendor="roomcast"
# A fixed, unprivileged uid/gid: the process cannot write the image, and volume permissions
# are predictable.
RUN groupadd --system --gid 10001 roomcast \
    && useradd --system --uid 10001 --gid roomcast --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin roomcast
COPY --from=builder /usr/local/bin/roomcast-server /usr/local/bin/roomcast-server
USER 10001:10001
WORKDIR /
ENV ROOMCAST_HOST=0.0.0.0 \
    PORT=10000 \
    RUST_LOG=info
EXPOSE 10000
# bash's /dev/tcp asks /readyz without curl in the image; readiness fails as soon as a drain
# starts, so a draining container reports unhealthy instead of taking new sessions.
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["bash", "-c", "exec 3<>/dev/tcp/127.0.0.1/${PORT} && printf 'GET /readyz HTTP/1.0\\r\\n\\r\\n' >&3 && head -n 1 <&3 | grep -q ' 200 '"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/roomcast-server"]
