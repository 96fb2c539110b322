//! Headless Chromium driven through chromedriver (WebDriver), and real servers for it to load
//! pages from. The browser must start: a missing or broken Chromium fails the test with what to
//! install, it never skips.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use roomcast_server::{Config, run};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpSocket};
use tokio::process::{Child, Command};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// How long one expected thing (a page state, a browser start) may take. Generous: Chromium
/// starts slowly on a loaded 2-core machine; a hang still fails in seconds.
pub const WAIT: Duration = Duration::from_secs(20);

/// Pause between two looks at the page while waiting for it to show something.
const POLL: Duration = Duration::from_millis(50);

/// Flags every Chromium here needs: headless, root-safe, and quiet on the network (without the
/// background-networking ones, this closed network refuses its connections to Google by the
/// dozen and slows every start).
const CHROMIUM_FLAGS: [&str; 8] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Desktop and phone viewports for screenshots (CSS pixels).
pub const DESKTOP: (u32, u32) = (1280, 800);
pub const PHONE: (u32, u32) = (390, 844);

/// Awaits `future`, failing the test with `what` after [`WAIT`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, future).await {
        Ok(value) => value,
        Err(_) => panic!("timed out after {WAIT:?} waiting for {what}"),
    }
}

/// A roomcast server in this process that can be stopped and started again on the same port.
pub struct Server {
    pub addr: SocketAddr,
    config: Config,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
}

impl Server {
    pub async fn start(config: Config) -> Self {
        let listener = listener("127.0.0.1:0".parse().expect("address"));
        let addr = listener.local_addr().expect("address");
        let mut server = Self {
            addr,
            config,
            stop: None,
            task: None,
        };
        server.serve(listener);
        server
    }

    fn serve(&mut self, listener: TcpListener) {
        let (stop, stopped) = oneshot::channel::<()>();
        self.stop = Some(stop);
        self.task = Some(tokio::spawn(run(
            listener,
            self.config
                .clone()
                .validate()
                .expect("test configs are valid"),
            async move {
                // Either a stop or a dropped sender ends the server.
                let _stopped = stopped.await;
            },
        )));
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Shuts the server down (sessions hear 1001) and waits for `run` to return.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _sent = stop.send(());
        }
        if let Some(task) = self.task.take() {
            within("the server to stop", task)
                .await
                .expect("server task");
        }
    }

    /// Starts a new server on the same port (with new rooms and epochs, like a restart).
    pub fn start_again(&mut self) {
        let listener = listener(self.addr);
        self.serve(listener);
    }

    /// Publishes over the POC's send-test route, as a backend would.
    pub async fn send_test(&self, room: &str, message: &str) {
        let url = reqwest::Url::parse_with_params(
            &self.url(&format!("/chat/{room}/send-test/")),
            [("message", message), ("user", "backend")],
        )
        .expect("send-test URL");
        let response = within("send-test", reqwest::get(url))
            .await
            .expect("send-test request");
        assert_eq!(response.status(), 200, "send-test answered");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// A listener that a restarted server can bind again at once (SO_REUSEADDR).
fn listener(addr: SocketAddr) -> TcpListener {
    let socket = TcpSocket::new_v4().expect("socket");
    socket.set_reuseaddr(true).expect("SO_REUSEADDR");
    socket.bind(addr).expect("bind the test address");
    socket.listen(1024).expect("listen")
}

/// chromedriver on a port it picked, one Chromium session with a fresh profile, and the
/// WebDriver client that drives it. Dropping it ends both processes and removes the profile.
pub struct Browser {
    pub client: Client,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    pub async fn start() -> Self {
        static STARTED: AtomicU32 = AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "roomcast-chromium-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, Ordering::Relaxed)
        ));
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, so Chromium and its helpers can be ended with it.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "could not start chromedriver ({e}): install Debian's chromium and \
                     chromium-driver (scripts/check does)"
                )
            });
        let stdout = driver.stdout.take().expect("chromedriver stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let port = within("chromedriver to say its port", async {
            while let Some(line) = lines.next_line().await.expect("chromedriver output") {
                if let Some(port) = line
                    .split("started successfully on port ")
                    .nth(1)
                    .and_then(|rest| rest.trim_end_matches('.').parse::<u16>().ok())
                {
                    return port;
                }
            }
            panic!("chromedriver exited before it listened");
        })
        .await;
        // Keep reading, so chromedriver never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });

        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| (*f).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={},{}", DESKTOP.0, DESKTOP.1));
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        let client = within(
            "Chromium to start",
            ClientBuilder::new(HttpConnector::new())
                .capabilities(capabilities)
                .connect(&format!("http://127.0.0.1:{port}")),
        )
        .await
        .unwrap_or_else(|e| {
            panic!(
                "Chromium did not start under chromedriver: {e}; is /usr/bin/chromium installed?"
            )
        });
        Self {
            client,
            driver,
            profile,
        }
    }

    pub async fn goto(&self, url: &str) {
        within("a page to load", self.client.goto(url))
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the current page.
    pub async fn eval(&self, script: &str, args: Vec<Value>) -> Value {
        self.client
            .execute(script, args)
            .await
            .unwrap_or_else(|e| panic!("running {script:?}: {e}"))
    }

    /// The texts of every element matching `selector`.
    pub async fn texts(&self, selector: &str) -> Vec<String> {
        let script =
            "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);";
        let value = self.eval(script, vec![json!(selector)]).await;
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Waits until `check` holds for what `script` returns; returns that value. The page is
    /// looked at every [`POLL`]: WebDriver has no "tell me when the DOM says X".
    pub async fn wait_js(&self, what: &str, script: &str, check: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        let waited = tokio::time::timeout(WAIT, async {
            loop {
                last = self.eval(script, vec![]).await;
                if check(&last) {
                    return last.clone();
                }
                tokio::time::sleep(POLL).await;
            }
        })
        .await;
        waited.unwrap_or_else(|_| {
            panic!("timed out after {WAIT:?} waiting for {what}; the page shows {last}")
        })
    }

    /// Waits until the texts of the elements matching `selector` satisfy `check`.
    pub async fn wait_texts(
        &self,
        what: &str,
        selector: &str,
        check: impl Fn(&[String]) -> bool,
    ) -> Vec<String> {
        let script = format!(
            "return [...document.querySelectorAll({})].map((e) => e.textContent);",
            json!(selector)
        );
        let value = self
            .wait_js(what, &script, |value| {
                let texts: Vec<String> = serde_json::from_value(value.clone()).unwrap_or_default();
                check(&texts)
            })
            .await;
        serde_json::from_value(value).unwrap_or_default()
    }

    /// Waits until some element matching `selector` has exactly `text`.
    pub async fn wait_for_line(&self, what: &str, selector: &str, text: &str) {
        self.wait_texts(what, selector, |texts| texts.iter().any(|t| t == text))
            .await;
    }

    /// Waits until the connection state badge (`#state`) starts with `prefix`; returns it.
    pub async fn wait_state(&self, prefix: &str) -> String {
        let texts = self
            .wait_texts(&format!("the state {prefix:?}"), "#state", |texts| {
                texts.first().is_some_and(|t| t.starts_with(prefix))
            })
            .await;
        texts.into_iter().next().unwrap_or_default()
    }

    /// Types `text` into the element matching `selector` and presses Enter.
    pub async fn type_and_enter(&self, selector: &str, text: &str) {
        let input = within(
            "the input to be there",
            self.client
                .wait()
                .for_element(fantoccini::Locator::Css(selector)),
        )
        .await
        .expect("input element");
        input
            .send_keys(&format!("{text}\u{E007}"))
            .await
            .expect("typing");
    }

    /// Resizes the viewport to `size` and writes a screenshot to
    /// `target/screenshots/<name>.png`.
    pub async fn screenshot(&self, name: &str, size: (u32, u32)) {
        self.set_viewport(size).await;
        let png = self.client.screenshot().await.expect("screenshot");
        let directory = screenshot_dir();
        std::fs::create_dir_all(&directory).expect("create target/screenshots");
        let path = directory.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
    }

    /// Makes the page's viewport exactly `size`: the window is resized, then corrected by
    /// what the page reports (window decorations differ between Chromium versions).
    async fn set_viewport(&self, (width, height): (u32, u32)) {
        self.client
            .set_window_size(width, height)
            .await
            .expect("resize");
        let inner = self
            .eval("return [window.innerWidth, window.innerHeight];", vec![])
            .await;
        let inner: (u32, u32) = serde_json::from_value(inner).unwrap_or((width, height));
        let corrected = (
            width + width.saturating_sub(inner.0),
            height + height.saturating_sub(inner.1),
        );
        if corrected != (width, height) {
            self.client
                .set_window_size(corrected.0, corrected.1)
                .await
                .expect("resize");
        }
    }
}

impl Browser {
    /// Ends the WebDriver session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let client = self.client.clone();
        within("Chromium to quit", client.close())
            .await
            .expect("end the WebDriver session");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // After `close` this only ends chromedriver; after a failed test it also ends the
        // Chromium it started, which would otherwise outlive the test. The group is the one
        // chromedriver leads (`process_group(0)` above), so nothing else is touched. A
        // synchronous `kill` is a millisecond, and Drop cannot await.
        if let Some(pid) = self.driver.id() {
            let _status = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
        let _reaped = self.driver.try_wait();
        let _removed = std::fs::remove_dir_all(&self.profile);
    }
}

/// Where screenshots go: `target/screenshots/` of this workspace.
pub fn screenshot_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("screenshots")
}
