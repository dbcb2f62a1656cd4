//! A real HTTP server on loopback that records the JSON bodies POSTed to it
//! (the webhook end of muster's notifications). Stops when dropped.

#![allow(dead_code)]

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;

/// `(method, path, authorization header)` of one request.
pub type RequestLine = (String, String, Option<String>);

pub struct Webhook {
    pub url: String,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    /// `(method, path, authorization header)` of every request.
    requests: Arc<Mutex<Vec<RequestLine>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    /// Listens on 127.0.0.1 (a free port) at path `/hook`; answers 200, or
    /// 503 to the first `fail_first` requests.
    pub async fn start(fail_first: usize) -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let (r, q) = (received.clone(), requests.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, q) = (r.clone(), q.clone());
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let (r, q) = (r.clone(), q.clone());
                        async move {
                            let method = req.method().to_string();
                            let path = req.uri().to_string();
                            let auth = req
                                .headers()
                                .get("authorization")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let seen = {
                                let mut q = q.lock().unwrap();
                                q.push((method, path, auth));
                                q.len()
                            };
                            let status = if seen <= fail_first {
                                503
                            } else {
                                if let Ok(v) = serde_json::from_slice(&body) {
                                    r.lock().unwrap().push(v);
                                }
                                200
                            };
                            let mut resp = Response::new(Full::new(Bytes::from_static(b"ok")));
                            *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Webhook {
            url: format!("http://{addr}/hook"),
            received,
            requests,
            task,
        }
    }

    /// Every notification accepted so far.
    pub fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().clone()
    }

    pub fn requests(&self) -> Vec<RequestLine> {
        self.requests.lock().unwrap().clone()
    }

    /// Notifications for `service` with `event`.
    pub fn of(&self, service: &str, event: &str) -> Vec<serde_json::Value> {
        self.received()
            .into_iter()
            .filter(|v| v["service"] == service && v["event"] == event)
            .collect()
    }

    /// Waits until `pred` holds for the received notifications.
    pub async fn wait_for(
        &self,
        what: &str,
        within: Duration,
        pred: impl Fn(&[serde_json::Value]) -> bool,
    ) {
        let deadline = Instant::now() + within;
        loop {
            let got = self.received();
            if pred(&got) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "webhook never got {what} within {within:?}; got {got:#?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.task.abort();
    }
}
