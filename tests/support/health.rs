//! Shared by the health endpoint tests: a server on a free loopback port
//! over a real `StateStore`, and a small raw HTTP/1.1 client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use muster::health::{self, ServerOptions};
use muster::supervisor::{ServiceStatus, StateStore, Writer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub struct Server {
    pub addr: SocketAddr,
    backing: Backing,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), health::HealthError>>>,
}

/// What a test server serves: a store the test writes (it holds the
/// store's one `Writer`), or one something else writes (`up`'s runner).
pub enum Backing {
    Writer(Writer),
    Reader(StateStore),
}

impl From<Writer> for Backing {
    fn from(writer: Writer) -> Backing {
        Backing::Writer(writer)
    }
}

impl From<StateStore> for Backing {
    fn from(store: StateStore) -> Backing {
        Backing::Reader(store)
    }
}

impl Server {
    /// The store's writer, for a test that writes the store it serves.
    pub fn store(&self) -> &Writer {
        match &self.backing {
            Backing::Writer(writer) => writer,
            Backing::Reader(_) => {
                panic!("this server was started on a store the test does not write")
            }
        }
    }

    pub async fn start(backing: impl Into<Backing>, options: ServerOptions) -> Server {
        let backing = backing.into();
        let store = match &backing {
            Backing::Writer(writer) => writer.store(),
            Backing::Reader(store) => store.clone(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(health::serve(
            listener,
            store.clone(),
            options,
            async move {
                let _ = stopped.await;
            },
        ));
        Server {
            addr,
            backing,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Triggers shutdown and waits for `serve` to return.
    pub async fn shutdown(&mut self) -> Result<(), health::HealthError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("already shut down");
        tokio::time::timeout(Duration::from_secs(20), task)
            .await
            .expect("serve returns after shutdown")
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> Resp {
        request(self.addr, "GET", path, &[], b"").await
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Options for tests: heartbeat check off unless a test turns it on.
pub fn options() -> ServerOptions {
    ServerOptions {
        liveness_window: None,
        ..ServerOptions::default()
    }
}

/// A store with `redis` (level 0) and `memory-agent` (level 1, depends on redis).
pub fn two_service_store() -> Writer {
    let store = Writer::new("healthtest");
    let mut redis = ServiceStatus::pending("redis");
    redis.image = Some("muster-test/redis:1".into());
    redis.container_ids = vec!["abc123".into()];
    store.insert(redis);
    let mut agent = ServiceStatus::pending("memory-agent");
    agent.level = 1;
    agent.depends_on = vec!["redis".into()];
    agent.grace_ms = 30_000;
    store.insert(agent);
    store
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.text()))
    }
}

/// One request on a fresh connection (`Connection: close`), read to EOF.
pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Resp {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in extra_headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), stream.read_to_end(&mut raw))
        .await
        .expect("response within 20s")
        .unwrap();
    parse_response(&raw, method == "HEAD").0
}

/// Parses one response from the front of `raw`; returns it and the bytes used.
pub fn parse_response(raw: &[u8], head_request: bool) -> (Resp, usize) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = std::str::from_utf8(&raw[..end]).unwrap();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .map(|l| {
            let (k, v) = l.split_once(':').unwrap();
            (k.trim().to_string(), v.trim().to_string())
        })
        .collect();
    let mut resp = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    let rest = &raw[end + 4..];
    if head_request || status == 204 || status == 304 {
        return (resp, end + 4);
    }
    if let Some(len) = resp.header("content-length") {
        let len: usize = len.parse().unwrap();
        resp.body = rest[..len].to_vec();
        return (resp, end + 4 + len);
    }
    if resp
        .header("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        let mut pos = 0;
        loop {
            let line_end = rest[pos..].windows(2).position(|w| w == b"\r\n").unwrap() + pos;
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[pos..line_end]).unwrap(), 16)
                    .unwrap();
            pos = line_end + 2;
            if size == 0 {
                pos += 2;
                break;
            }
            resp.body.extend_from_slice(&rest[pos..pos + size]);
            pos += size + 2;
        }
        return (resp, end + 4 + pos);
    }
    resp.body = rest.to_vec();
    (resp, raw.len())
}

/// Polls `f` until it returns true or 10 s pass.
pub async fn eventually<F, Fut>(what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if f().await {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
