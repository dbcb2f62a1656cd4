//! A real HTTP (or HTTPS) server on loopback that records the JSON bodies
//! POSTed to it (the webhook end of muster's notifications). Stops when dropped.

#![allow(dead_code)]

use std::convert::Infallible;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// `(method, path, authorization header)` of one request.
pub type RequestLine = (String, String, Option<String>);

pub struct Webhook {
    pub url: String,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    /// `(method, path, authorization header)` of every request.
    requests: Arc<Mutex<Vec<RequestLine>>>,
    /// TLS handshakes that failed (an `https://` webhook only).
    tls_failures: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Webhook {
    /// Listens on 127.0.0.1 (a free port) at path `/hook`; answers 200, or
    /// 503 to the first `fail_first` requests.
    pub async fn start(fail_first: usize) -> Webhook {
        Self::serve(fail_first, None).await
    }

    /// As [`Webhook::start`], over TLS with the PEM certificate chain and
    /// key given: the URL is `https://127.0.0.1:PORT/hook`.
    pub async fn start_tls(fail_first: usize, cert_pem: &Path, key_pem: &Path) -> Webhook {
        let chain = CertificateDer::pem_file_iter(cert_pem)
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(key_pem).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .unwrap();
        Self::serve(fail_first, Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(fail_first: usize, tls: Option<TlsAcceptor>) -> Webhook {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(Mutex::new(Vec::new()));
        let tls_failures = Arc::new(AtomicUsize::new(0));
        let scheme = if tls.is_some() { "https" } else { "http" };
        let (r, q, f) = (received.clone(), requests.clone(), tls_failures.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (r, q, f, tls) = (r.clone(), q.clone(), f.clone(), tls.clone());
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
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let _ = http.serve_connection(TokioIo::new(stream), service).await;
                        }
                        Some(acceptor) => match acceptor.accept(stream).await {
                            Ok(stream) => {
                                let _ = http.serve_connection(TokioIo::new(stream), service).await;
                            }
                            Err(_) => {
                                f.fetch_add(1, Ordering::SeqCst);
                            }
                        },
                    }
                });
            }
        });
        Webhook {
            url: format!("{scheme}://{addr}/hook"),
            received,
            requests,
            tls_failures,
            task,
        }
    }

    /// TLS handshakes that failed so far.
    pub fn tls_failures(&self) -> usize {
        self.tls_failures.load(Ordering::SeqCst)
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
