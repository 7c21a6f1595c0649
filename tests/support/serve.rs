//! A real `flywheel serve` process on a free port, and HTTP clients for it:
//! an impatient one, a slow one (`trickle`), the `/health` gauges.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::backends::TestDb;
use super::processes::eventually;

/// A running `flywheel serve`.
pub struct Server {
    child: Child,
    pub base: String,
    pub log: PathBuf,
}

impl Server {
    /// Start serve on a free port with `args` and `env`, and wait until it listens.
    /// Tests choose their own models, so this passes `--no-bootstrap`.
    pub fn start(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(db, args, env, false)
    }

    /// Start serve as an operator would, bootstrapping a fresh installation.
    pub fn start_bootstrapping(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Self {
        Self::spawn(db, args, env, true)
    }

    fn spawn(db: &TestDb, args: &[&str], env: &[(&str, &str)], bootstrap: bool) -> Self {
        static STARTS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = STARTS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let log = db.data_path().join(format!("serve-{n}.stderr"));
        let mut cmd = db.command();
        cmd.args(["-vv", "serve", "--addr", "127.0.0.1:0"])
            .args(args);
        if !bootstrap {
            cmd.arg("--no-bootstrap");
        }
        cmd.envs(env.iter().copied());
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn flywheel serve");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("flywheel serve listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = rx
            .recv_timeout(Duration::from_secs(60))
            .unwrap_or_else(|_| {
                panic!(
                    "serve did not start:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                )
            });
        Self { child, base, log }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Wait for the process to end (deadline 30 s).
    pub fn wait(&mut self) -> ExitStatus {
        self.wait_within(Duration::from_secs(30))
    }

    /// Wait for the process to end; panic if it is still running after `limit`.
    pub fn wait_within(&mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "serve did not exit within {limit:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// `host:port` of the listener.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `GET /health` as JSON.
pub async fn health(http: &reqwest::Client, server: &Server) -> serde_json::Value {
    json_answer(http.get(server.url("/health"))).await
}

/// Send `request`; the JSON answered, whatever the status.
pub async fn json_answer(request: reqwest::RequestBuilder) -> serde_json::Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Wait until the `/health` queue gauge `gauge` (`depth`, `in_flight_rows`) is `value`.
pub async fn queue_reaches(http: &reqwest::Client, server: &Server, gauge: &str, value: u64) {
    eventually(
        &format!("the queue's {gauge} to reach {value}"),
        Duration::from_secs(5),
        || async { (health(http, server).await["queue"][gauge] == value).then_some(()) },
    )
    .await;
}

/// A client with a short timeout: a hung server fails the test instead of blocking it.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .pool_max_idle_per_host(64)
        .build()
        .unwrap()
}

/// What a [`trickle`] client saw.
#[derive(Debug)]
pub struct Trickled {
    /// Everything the server sent back (a status line and JSON, or nothing).
    pub answer: String,
    /// The server answered or closed the connection before the client gave up.
    pub ended_by_server: bool,
}

/// A slow client: sends `head` at once, then `tail` one byte every 100 ms
/// while reading what the server sends, until the server answers or closes
/// the connection, or `give_up` passes. `sent` counts the tail bytes written.
pub async fn trickle(
    addr: String,
    head: Vec<u8>,
    tail: Vec<u8>,
    give_up: Duration,
    sent: std::sync::Arc<std::sync::atomic::AtomicUsize>,
) -> Trickled {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&head).await.unwrap();
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        for byte in tail {
            // The pace of a slow client is the behaviour under test, not synchronisation.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if write.write_all(&[byte]).await.is_err() {
                return write;
            }
            sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
        write
    });
    let mut answer = Vec::new();
    let ended = tokio::time::timeout(give_up, read.read_to_end(&mut answer)).await;
    writer.abort();
    Trickled {
        answer: String::from_utf8_lossy(&answer).into_owned(),
        ended_by_server: ended.is_ok(),
    }
}

/// `GET /metrics` as text.
pub async fn metrics(http: &reqwest::Client, server: &Server) -> String {
    http.get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

/// POST `body` as JSON to `path`; the JSON answered, whatever the status.
pub async fn post_json(
    http: &reqwest::Client,
    server: &Server,
    path: &str,
    body: &serde_json::Value,
) -> serde_json::Value {
    json_answer(http.post(server.url(path)).json(body)).await
}
