//! A network namespace joined to the host by a veth pair, whose link can be cut so that nothing
//! more arrives in either direction: no FIN, no RST, no ICMP. The loss a phone leaving Wi-Fi or
//! a NAT forgetting a flow causes, made on one machine.
//!
//! Linux only, as root (`ip netns add` needs CAP_SYS_ADMIN and CAP_NET_ADMIN). Where that is
//! missing, [`Netns::create`] fails with [`NetnsError::NotPermitted`] saying so; nothing skips.
//!
//! # Layout
//! - [`Netns`]: the guard (create, [`Netns::cut`], [`Netns::restore`], sockets inside, remove).
//! - `block`: the /30 it takes, from 198.18.0.0/15 (RFC 2544) and checked free first.
//! - `inside`: sockets made inside the namespace from a thread that entered it.
//! - `ip`: every change goes through iproute2's `ip`.
//!
//! # How the cut works, and why that way
//! Both ends get a permanent neighbour entry for the other end's address pointing at a MAC
//! address nobody owns (`02:00:00:00:00:00`). Frames still leave each end, and the peer drops
//! them as addressed to another host. The links stay up and keep their addresses, so the
//! connected /30 route stays on the veth: nothing can leak out by the host's default route
//! (which a `link down` would allow: with the route gone, 198.18.x.x goes to the default
//! gateway). A netem qdisc (`loss 100%`) would do the same, but this machine's kernel has no
//! netem and no tc classifiers; neighbour entries need nothing beyond the veth driver.
//!
//! # Lifetimes
//! The namespace and both veth ends are removed by [`Netns::remove`] or, failing that, by
//! `Drop` (also while a panic unwinds). A process killed before either (SIGKILL, a test
//! runner's timeout) leaves `roomcast-<pid>-<n>` behind; the next [`Netns::create`] on the
//! machine removes every such namespace whose process is gone.

mod block;
mod inside;
mod ip;

use std::io;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use self::block::Block;
use self::ip::{ip, ip_quiet};

/// The MAC address a cut points both ends at: locally administered, unicast, owned by nobody.
const NOWHERE_MAC: &str = "02:00:00:00:00:00";

/// Prefix of every namespace this crate creates (followed by `<pid>-<serial>`).
const NAME_PREFIX: &str = "roomcast-";

/// Guards made by this process so far: part of every name and address choice.
static SERIAL: AtomicU32 = AtomicU32::new(0);

/// Why a namespace could not be made or changed.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// Not allowed to create namespaces (not root).
    #[error(
        "creating a network namespace needs root (CAP_SYS_ADMIN and CAP_NET_ADMIN); run as root \
         (for example with sudo) on Linux with iproute2. `ip netns add` said: {stderr}"
    )]
    NotPermitted {
        /// What `ip` printed.
        stderr: String,
    },
    /// `ip` could not be started (iproute2 missing).
    #[error("could not run `{command}` (is iproute2 installed?): {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// Why it did not start.
        #[source]
        source: io::Error,
    },
    /// `ip` ran and failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// Every /30 tried in 198.18.0.0/15 was in use.
    #[error("no free /30 in 198.18.0.0/15 after {tries} tries")]
    NoFreeBlock {
        /// Blocks tried.
        tries: u32,
    },
    /// The cut would not keep the route on the veth (checked with `ip route get`).
    #[error("after the cut, {address} no longer routes by {link}: {route}")]
    RouteMoved {
        /// The peer address checked.
        address: Ipv4Addr,
        /// The host veth it should route by.
        link: String,
        /// What `ip route get` said.
        route: String,
    },
    /// A blocking step could not be run off the async runtime.
    #[error("the namespace task failed: {0}")]
    Task(String),
}

/// Names and addresses of one namespace and its link; cheap to clone into blocking tasks.
#[derive(Debug, Clone)]
struct Link {
    name: String,
    host_if: String,
    ns_if: String,
    block: Block,
}

/// A namespace `roomcast-<pid>-<n>` with one veth pair: the host end has
/// [`Netns::host_addr`], the namespace end [`Netns::ns_addr`], both in one /30 of
/// 198.18.0.0/15, both up. Removed on [`Netns::remove`] or drop.
#[derive(Debug)]
pub struct Netns {
    link: Link,
    removed: bool,
}

impl Netns {
    /// Creates the namespace and its link (a dozen `ip` calls, run off the async runtime).
    pub async fn create() -> Result<Self, NetnsError> {
        tokio::task::spawn_blocking(Self::create_blocking)
            .await
            .map_err(|e| NetnsError::Task(e.to_string()))?
    }

    /// [`Netns::create`] for synchronous callers.
    pub fn create_blocking() -> Result<Self, NetnsError> {
        remove_orphans();
        let pid = std::process::id();
        let serial = SERIAL.fetch_add(1, Ordering::Relaxed);
        let name = format!("{NAME_PREFIX}{pid}-{serial}");
        if let Err(e) = ip(&["netns", "add", &name]) {
            return Err(match e {
                NetnsError::Command { stderr, .. }
                    if stderr.contains("not permitted") || stderr.contains("denied") =>
                {
                    NetnsError::NotPermitted { stderr }
                }
                other => other,
            });
        }
        let link = Link {
            host_if: format!("rc{pid}h{serial}"),
            ns_if: format!("rc{pid}n{serial}"),
            name,
            block: Block::pick(pid, serial)?,
        };
        // From here on the guard owns what exists, so a failed step still cleans up.
        let netns = Self {
            link,
            removed: false,
        };
        netns.link.build()?;
        Ok(netns)
    }

    /// The namespace's name (for `ip netns exec`, `ip -n`).
    pub fn name(&self) -> &str {
        &self.link.name
    }

    /// The host end's interface name.
    pub fn host_link(&self) -> &str {
        &self.link.host_if
    }

    /// The host end's address: what the namespace reaches the host at.
    pub fn host_addr(&self) -> Ipv4Addr {
        self.link.block.host
    }

    /// The namespace end's address: what the host reaches the namespace at.
    pub fn ns_addr(&self) -> Ipv4Addr {
        self.link.block.ns
    }

    /// Makes the link silent both ways: from now on nothing sent either way arrives, and
    /// nobody is told (see the crate docs for how). Connections stay open on both sides.
    pub async fn cut(&self) -> Result<(), NetnsError> {
        let link = self.link.clone();
        blocking(move || link.cut()).await
    }

    /// Undoes [`Netns::cut`]: the ends find each other again (ARP) and retransmissions get
    /// through, so connections that outlived the cut carry on.
    pub async fn restore(&self) -> Result<(), NetnsError> {
        let link = self.link.clone();
        blocking(move || link.restore()).await
    }

    /// A TCP connection to `addr` made from inside the namespace, within `timeout`.
    pub async fn connect(
        &self,
        addr: SocketAddr,
        timeout: Duration,
    ) -> io::Result<tokio::net::TcpStream> {
        inside::connect(self.link.path(), addr, timeout).await
    }

    /// A TCP listener bound inside the namespace (`addr` usually [`Netns::ns_addr`] and port 0).
    pub async fn bind(&self, addr: SocketAddr) -> io::Result<tokio::net::TcpListener> {
        inside::bind(self.link.path(), addr).await
    }

    /// `ip netns exec <name> <program>`: a process that lives in the namespace.
    pub fn command(&self, program: &str) -> tokio::process::Command {
        let mut command = tokio::process::Command::new("ip");
        command.args(["netns", "exec", &self.link.name, program]);
        command
    }

    /// Removes the namespace and both veth ends, off the async runtime.
    pub async fn remove(mut self) {
        let link = self.link.clone();
        self.removed = true;
        let _removed = tokio::task::spawn_blocking(move || link.remove()).await;
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if !self.removed {
            // Blocking, but short (two `ip` calls); the async path is `remove`.
            self.link.remove();
        }
    }
}

impl Link {
    fn path(&self) -> String {
        format!("/run/netns/{}", self.name)
    }

    fn build(&self) -> Result<(), NetnsError> {
        let (ns, host_if, ns_if) = (self.name.as_str(), self.host_if.as_str(), &self.ns_if);
        let host_cidr = format!("{}/30", self.block.host);
        let ns_cidr = format!("{}/30", self.block.ns);
        ip(&[
            "link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", ns,
        ])?;
        ip(&["addr", "add", &host_cidr, "dev", host_if])?;
        ip(&["-n", ns, "addr", "add", &ns_cidr, "dev", ns_if])?;
        ip(&["link", "set", host_if, "up"])?;
        ip(&["-n", ns, "link", "set", ns_if, "up"])?;
        ip(&["-n", ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn cut(&self) -> Result<(), NetnsError> {
        let (ns, host_addr, ns_addr) = (
            self.name.as_str(),
            self.block.host.to_string(),
            self.block.ns.to_string(),
        );
        ip(&[
            "neigh",
            "replace",
            &ns_addr,
            "lladdr",
            NOWHERE_MAC,
            "dev",
            &self.host_if,
            "nud",
            "permanent",
        ])?;
        ip(&[
            "-n",
            ns,
            "neigh",
            "replace",
            &host_addr,
            "lladdr",
            NOWHERE_MAC,
            "dev",
            &self.ns_if,
            "nud",
            "permanent",
        ])?;
        let route = ip(&["route", "get", &ns_addr])?;
        if !route.contains(&format!("dev {} ", self.host_if)) {
            return Err(NetnsError::RouteMoved {
                address: self.block.ns,
                link: self.host_if.clone(),
                route: route.trim().to_owned(),
            });
        }
        Ok(())
    }

    fn restore(&self) -> Result<(), NetnsError> {
        let (ns, host_addr, ns_addr) = (
            self.name.as_str(),
            self.block.host.to_string(),
            self.block.ns.to_string(),
        );
        ip(&["neigh", "del", &ns_addr, "dev", &self.host_if])?;
        ip(&["-n", ns, "neigh", "del", &host_addr, "dev", &self.ns_if])?;
        Ok(())
    }

    /// Deleting one veth end deletes its peer, even while sockets keep the namespace alive.
    fn remove(&self) {
        ip_quiet(&["link", "del", &self.host_if]);
        ip_quiet(&["netns", "del", &self.name]);
    }
}

async fn blocking(
    step: impl FnOnce() -> Result<(), NetnsError> + Send + 'static,
) -> Result<(), NetnsError> {
    tokio::task::spawn_blocking(step)
        .await
        .map_err(|e| NetnsError::Task(e.to_string()))?
}

/// Removes namespaces (and their host veth) left by processes that no longer run.
fn remove_orphans() {
    let Ok(list) = ip(&["netns", "list"]) else {
        return;
    };
    for line in list.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some((pid, serial)) = name
            .strip_prefix(NAME_PREFIX)
            .and_then(|rest| rest.split_once('-'))
        else {
            continue;
        };
        let alive = std::path::Path::new(&format!("/proc/{pid}")).exists();
        if !alive && pid.parse::<u32>().is_ok() {
            ip_quiet(&["link", "del", &format!("rc{pid}h{serial}")]);
            ip_quiet(&["netns", "del", name]);
        }
    }
}
