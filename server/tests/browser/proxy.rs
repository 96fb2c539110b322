//! A TCP proxy whose link a test can cut, like a pulled cable (the same one the terminal
//! client's tests use): pages load through it, so their sockets go through it too.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub struct Proxy {
    pub addr: SocketAddr,
    state: watch::Sender<(bool, u64)>,
    task: JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        // (open, generation): a cut bumps the generation, which ends every piped connection.
        let (state, _) = watch::channel((true, 0_u64));
        let watcher = state.subscribe();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let (open, generation) = *watcher.borrow();
                if !open {
                    continue;
                }
                let mut cut = watcher.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.wait_for(|(_, g)| *g != generation) => {}
                    }
                });
            }
        });
        Self { addr, state, task }
    }

    /// `http://PROXY` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Drops every connection and refuses new ones.
    pub fn cut(&self) {
        self.state.send_modify(|(open, generation)| {
            *open = false;
            *generation += 1;
        });
    }

    /// Accepts connections again.
    pub fn reopen(&self) {
        self.state.send_modify(|(open, _)| *open = true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
