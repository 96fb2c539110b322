//! `--mode blackhole`: dead clients whose sockets live in a network namespace joined to this
//! host by a veth pair, then lost by cutting the link (see the `roomcast-netns` crate).
//!
//! They dial the host end of the link (198.18.x.1) on the server URL's port, so the server must
//! listen there too: start it with `--host 0.0.0.0`. The namespace and its link are removed when
//! the run ends, fails, or is interrupted (Ctrl-C); one left by a killed run is removed by the
//! next.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{Context, Result};
use roomcast_netns::Netns;
use roomcast_protocol::UserName;
use tokio::net::TcpStream;
use url::Url;

use crate::load::ghost::{Ghost, GhostPlan};
use crate::load::wire;

/// The namespace the blackhole ghosts live in.
pub struct Blackhole {
    netns: Netns,
}

impl Blackhole {
    /// Creates the namespace and its link; fails (exit 1) saying what is missing, usually root.
    pub async fn open() -> Result<Self> {
        let netns = Netns::create().await.context(
            "--mode blackhole runs its dead clients in a network namespace and could not make one",
        )?;
        Ok(Self { netns })
    }

    /// The namespace, its address, the host link and its address, for the status line.
    pub fn describe(&self) -> String {
        format!(
            "namespace {} ({}), linked by {} to host {}",
            self.netns.name(),
            self.netns.ns_addr(),
            self.netns.host_link(),
            self.netns.host_addr()
        )
    }

    /// A ghost dialling `socket_url`'s port on the host end of the link, from the namespace.
    pub async fn ghost(
        &self,
        socket_url: &Url,
        user: UserName,
        plan: GhostPlan,
        timeout: Duration,
    ) -> Result<Ghost> {
        let (stream, url) = self.dial(socket_url, timeout).await?;
        Ghost::upgrade(stream, &url, user, plan, timeout)
            .await
            .map_err(|e| wire::into_cli(e, "opening a blackhole client"))
    }

    /// A TCP connection made from the namespace to `socket_url`'s port on the host end of the
    /// link, and the URL rewritten to that address (for the upgrade's `Host`).
    pub async fn dial(&self, socket_url: &Url, timeout: Duration) -> Result<(TcpStream, Url)> {
        let port = socket_url.port_or_known_default().unwrap_or(80);
        let host = IpAddr::V4(self.netns.host_addr());
        let mut url = socket_url.clone();
        url.set_ip_host(host)
            .map_err(|()| anyhow::anyhow!("{socket_url} cannot take an IP host"))?;
        let stream = self
            .netns
            .connect(SocketAddr::new(host, port), timeout)
            .await
            .with_context(|| {
                format!(
                    "a blackhole client could not reach the server at {host}:{port} from the \
                     namespace: is it listening on all addresses (--host 0.0.0.0)?"
                )
            })?;
        Ok((stream, url))
    }

    /// Cuts the link: from now on nothing reaches the ghosts and nothing they send arrives.
    pub async fn cut(&self) -> Result<()> {
        self.netns.cut().await.context("cutting the namespace link")
    }

    /// Removes the namespace and its link.
    pub async fn remove(self) {
        self.netns.remove().await;
    }
}
