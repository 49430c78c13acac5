//! The multi-node rig of issue 13's tests, on a real Redis (not a mock): a `redis-server` of the
//! test's own on a free loopback port, without persistence, that a test can SIGKILL and start
//! again on the same port (ports are picked below Linux's ephemeral range, 32768.., so no
//! `--port 0` listener or outgoing connection takes it meanwhile), with RESP commands to look
//! inside; `tether serve` nodes sharing it; and token-protocol clients to drive them.
//!
//! Size: a little over 400 lines, because the three parts are one rig every `redis_*` test uses
//! together (a split would be imported by exactly the same files).

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use tether_tokio::{ClientBuilder, Message, Transport, WebSocket};

use super::{http_request, serve_command, HttpAnswer, Served};

/// The server API key every node is started with.
pub const API_KEY: &str = "redis-tests-api-key-0123456789";
/// The HS256 secret every node verifies connection tokens with (see [`token`]).
pub const SECRET: &str = "redis-tests-hmac-secret-of-at-least-32-bytes";

/// A temporary directory for this process and `tag` (Redis's `--dir`, the logs).
fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tether-redis-{}-{tag}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A distinct number per call in this process.
fn serial() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// A loopback port in 20000..32000 free just now, probed from a point that differs per call.
fn free_port() -> u16 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    let start = (std::process::id().wrapping_mul(7919) ^ nanos).wrapping_add(serial() * 613);
    (0..12000u32)
        .map(|i| 20000 + ((start.wrapping_add(i * 37)) % 12000) as u16)
        .find(|&port| TcpListener::bind(("127.0.0.1", port)).is_ok())
        .expect("a free loopback port in 20000..32000")
}

/// A `redis-server` of this test, killed on drop.
pub struct RedisServer {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts one on a free port and waits until it answers PING (retrying on another port if
    /// the one picked was taken meanwhile).
    pub fn start() -> Self {
        let dir = temp_dir(&format!("server-{}", serial()));
        for _ in 0..5 {
            let mut redis = Self { child: None, port: free_port(), dir: dir.clone() };
            if redis.spawn().is_ok() {
                return redis;
            }
        }
        let log = std::fs::read_to_string(dir.join("redis.log")).unwrap_or_default();
        panic!("redis-server did not start; its log:\n{log}")
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = File::options().create(true).append(true).open(self.dir.join("redis.log")).unwrap();
        let port = self.port.to_string();
        #[rustfmt::skip]
        let args = ["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                    "--daemonize", "no", "--dir", self.dir.to_str().unwrap()];
        let child = Command::new("redis-server")
            .args(args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("run redis-server (scripts/test.sh installs Debian's redis-server)");
        self.child = Some(child);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                self.child = None;
                return Err(format!("redis-server exited: {status}"));
            }
            if self.try_command(&["PING"]).is_ok_and(|pong| pong == "PONG") {
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(10) {
                self.kill();
                return Err("redis-server did not answer PING within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL for `tether serve --redis`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// [`RedisServer::try_command`] where Redis must answer.
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args).unwrap_or_else(|e| panic!("redis {args:?}: {e}"))
    }

    /// Runs one command over a fresh connection and renders the reply as text: a simple string,
    /// bulk string or integer as itself, an error as `-ERR ...`, a null as `(nil)`, an array as
    /// its elements (flattened) one per line.
    pub fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], self.port).into(), Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        let mut request = format!("*{}\r\n", args.len()).into_bytes();
        for arg in args {
            request.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
        }
        stream.write_all(&request)?;
        read_reply(&mut BufReader::new(stream))
    }

    /// Kills it with SIGKILL (no shutdown, no save), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: nothing was saved), once it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let started = Instant::now();
        while let Err(error) = self.spawn() {
            // The port may linger a moment after the kill; anything longer is a failure.
            assert!(started.elapsed() < Duration::from_secs(10), "redis-server on port {} again: {error}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn read_reply(reader: &mut impl BufRead) -> std::io::Result<String> {
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Err(std::io::ErrorKind::UnexpectedEof.into());
    }
    let line = line.trim_end_matches("\r\n");
    let (kind, rest) = line.split_at(1);
    let bad = || std::io::Error::other(format!("bad RESP line {line:?}"));
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Ok(line.to_owned()),
        "$" if rest == "-1" => Ok("(nil)".into()),
        "$" => {
            let mut bulk = vec![0; rest.parse::<usize>().map_err(|_| bad())? + 2];
            reader.read_exact(&mut bulk)?;
            bulk.truncate(bulk.len() - 2);
            Ok(String::from_utf8_lossy(&bulk).into_owned())
        }
        "*" if rest == "-1" => Ok("(nil)".into()),
        "*" => {
            let n = rest.parse::<usize>().map_err(|_| bad())?;
            Ok((0..n).map(|_| read_reply(reader)).collect::<Result<Vec<_>, _>>()?.join("\n"))
        }
        _ => Err(bad()),
    }
}

/// A connection token for `user` (HS256 with [`SECRET`], valid for an hour).
pub fn token(user: &str) -> String {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let claims = json!({"sub": user, "iat": now, "exp": now + 3600});
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &EncodingKey::from_secret(SECRET.as_bytes()).unwrap())
        .unwrap()
}

/// A key prefix unique to `test` and this process (1..=64 of `[A-Za-z0-9_.:-]`).
pub fn prefix(test: &str) -> String {
    let test: String = test.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(40).collect();
    format!("t.{test}.{}", std::process::id())
}

/// One `tether serve` node on a Redis: its process, and how to call it.
pub struct Node {
    pub served: Served,
    pub name: String,
    args: Vec<String>,
    log: PathBuf,
}

impl Node {
    /// Starts `tether serve --port 0 --redis URL --redis-prefix PREFIX --node-name NAME` with the
    /// server API ([`API_KEY`]), HS256 tokens ([`SECRET`]) and anonymous clients allowed, then
    /// `extra`. Its stderr (warnings) goes to a log file, shown when it does not start.
    pub fn start(redis_url: &str, prefix: &str, name: &str, extra: &[&str]) -> Self {
        #[rustfmt::skip]
        let mut args: Vec<String> = ["--redis", redis_url, "--redis-prefix", prefix, "--node-name", name,
            "--api-key", API_KEY, "--token-hmac-secret", SECRET, "--allow-anonymous"]
            .iter().map(|s| (*s).to_owned()).collect();
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let log = temp_dir(&format!("node-{}", serial())).join(format!("{name}.log"));
        let served = Self::spawn(&args, &log);
        Self { served, name: name.to_owned(), args, log }
    }

    fn spawn(args: &[String], log: &PathBuf) -> Served {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = File::options().create(true).append(true).open(log).unwrap();
        let mut child = serve_command(&args).stdout(Stdio::piped()).stderr(stderr).spawn().expect("start tether");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let Some((_, addr)) = line.trim().rsplit_once("://") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("tether serve {args:?} did not start; it said:\n{line}{}", std::fs::read_to_string(log).unwrap());
        };
        Served { child, addr: addr.to_owned() }
    }

    /// Kills it with SIGKILL: no goodbye to Redis, as a crash.
    pub fn kill(&mut self) {
        let _ = self.served.child.kill();
        let _ = self.served.child.wait();
    }

    /// Kills it and starts it again with the same settings (on a new port).
    pub fn restart(&mut self) {
        self.kill();
        self.served = Self::spawn(&self.args, &self.log);
    }

    /// What it logged (warnings and up) so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn addr(&self) -> &str {
        &self.served.addr
    }

    /// The token protocol's URL on this node.
    pub fn url(&self) -> String {
        format!("ws://{}/tether", self.served.addr)
    }

    /// One server API call.
    pub fn api(&self, method: &str, body: Value) -> HttpAnswer {
        api(&self.served.addr, method, body)
    }

    /// The `result` of a server API call that must succeed.
    pub fn ok(&self, method: &str, body: Value) -> Value {
        api_ok(&self.served.addr, method, body)
    }
}

impl Drop for Node {
    /// Kills the node; its log is removed, unless the test is failing (then its path is printed).
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("{}'s log: {}", self.name, self.log.display());
        } else if let Some(dir) = self.log.parent() {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// One server API call to the node at `addr` (for threads that cannot borrow the [`Node`]).
pub fn api(addr: &str, method: &str, body: Value) -> HttpAnswer {
    let headers = [("X-API-Key", API_KEY), ("Content-Type", "application/json")];
    http_request(addr, "POST", &format!("/api/{method}"), &headers, body.to_string().as_bytes())
}

/// The `result` of a server API call to the node at `addr` that must succeed.
pub fn api_ok(addr: &str, method: &str, body: Value) -> Value {
    let answer = api(addr, method, body.clone());
    assert_eq!(answer.status, 200, "{addr} {method} {body} -> {answer:?}");
    answer.json()["result"].clone()
}

/// A Redis of the test's own and `n` nodes on it, named `node1`..`nodeN`.
pub struct Cluster {
    pub nodes: Vec<Node>,
    pub redis: RedisServer,
    pub prefix: String,
}

impl Cluster {
    pub fn start(test: &str, n: usize, extra: &[&str]) -> Self {
        let redis = RedisServer::start();
        let prefix = prefix(test);
        let nodes = (1..=n).map(|i| Node::start(&redis.url(), &prefix, &format!("node{i}"), extra)).collect();
        Self { nodes, redis, prefix }
    }
}

/// A token-protocol client: requests with their answers, and the other frames kept in order.
pub struct TokenClient {
    pub ws: WebSocket<Transport>,
    pub id: String,
    next_id: u64,
    events: VecDeque<Value>,
}

impl TokenClient {
    /// An anonymous client of `node`.
    pub async fn connect(node: &Node) -> Self {
        Self::connect_url(&node.url()).await
    }

    /// A client of `node` signed in as `user`.
    pub async fn connect_as(node: &Node, user: &str) -> Self {
        Self::connect_url(&format!("{}?token={}", node.url(), token(user))).await
    }

    /// A client of the token protocol at `url`, once its welcome is read.
    pub async fn connect_url(url: &str) -> Self {
        let (mut ws, _) = ClientBuilder::new(url).protocol("tether.json").connect().await.unwrap();
        let welcome = read_json(&mut ws, Duration::from_secs(10)).await.expect("a welcome in time");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        let id = welcome["connectionId"].as_str().unwrap().to_owned();
        Self { ws, id, next_id: 1, events: VecDeque::new() }
    }

    /// Sends a request (with the next `id`) and returns the frame answering it, ack or error.
    pub async fn request(&mut self, mut request: Value) -> Value {
        let id = self.next_id;
        self.next_id += 1;
        request["id"] = json!(id);
        self.ws.send(&Message::Text(request.to_string().into())).await.unwrap();
        loop {
            let frame = read_json(&mut self.ws, Duration::from_secs(10))
                .await
                .unwrap_or_else(|| panic!("no answer to {request}"));
            if frame["id"] == json!(id) {
                return frame;
            }
            self.events.push_back(frame);
        }
    }

    /// The ack of a request that must succeed.
    pub async fn ack(&mut self, request: Value) -> Value {
        let answer = self.request(request.clone()).await;
        assert_eq!(answer["type"], "ack", "{request} -> {answer}");
        answer
    }

    pub async fn subscribe(&mut self, channel: &str) -> Value {
        self.ack(json!({"type": "subscribe", "channel": channel})).await
    }

    /// The next frame that is not an answer, within `wait`.
    pub async fn event_within(&mut self, wait: Duration) -> Option<Value> {
        match self.events.pop_front() {
            Some(event) => Some(event),
            None => read_json(&mut self.ws, wait).await,
        }
    }

    /// The next frame that is not an answer (within 10 s).
    pub async fn event(&mut self) -> Value {
        self.event_within(Duration::from_secs(10)).await.expect("an event within 10 s")
    }

    /// The next event other than presence's `join` and `leave` (within 10 s).
    pub async fn next(&mut self) -> Value {
        loop {
            let event = self.event().await;
            if event["type"] != "join" && event["type"] != "leave" {
                return event;
            }
        }
    }

    /// How the server closed the connection: (code, reason), within 10 s.
    pub async fn closed(mut self) -> (u16, String) {
        while let Some(frame) =
            tokio::time::timeout(Duration::from_secs(10), self.ws.recv()).await.expect("closed in time")
        {
            frame.unwrap();
        }
        let closed = self.ws.closed().expect("closed");
        (closed.code.0, closed.reason.to_string())
    }

    /// Closes the connection normally and waits for the server's Close.
    pub async fn close(mut self) {
        self.ws.close(tether_tokio::CloseCode(1000), "").await.unwrap();
        while let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(10), self.ws.recv()).await {}
    }
}

/// The next text frame as JSON, or `None` when none came within `wait`.
async fn read_json(ws: &mut WebSocket<Transport>, wait: Duration) -> Option<Value> {
    match tokio::time::timeout(wait, ws.recv()).await.ok()? {
        Some(Ok(Message::Text(text))) => Some(serde_json::from_str(&text).unwrap()),
        other => panic!("expected a text frame, got {other:?}"),
    }
}

/// The offsets of a list of publications (`publications` of an ack, or messages).
pub fn offsets(publications: &Value) -> Vec<u64> {
    publications.as_array().expect("a list").iter().map(|p| p["offset"].as_u64().expect("an offset")).collect()
}

/// Polls `done` every 50 ms for up to `limit` (else panics with `what`); returns how long it took.
pub fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out after {limit:?} waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
    started.elapsed()
}
