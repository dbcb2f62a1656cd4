//! A Bearer token server for the registry tests: Distribution's token
//! authentication, the `WWW-Authenticate: Bearer realm=…` flow that Docker Hub
//! and most hosted registries use. A real `docker-registry` configured with
//! `auth: token` trusts it through a certificate the test makes with the
//! openssl CLI; the server issues JWTs signed with that certificate's key
//! (ES256, ring, header `x5c`), as the registry's token spec describes.
//!
//! It answers what the engine and muster ask: `GET` with HTTP Basic
//! credentials, and `POST` with an OAuth2 form (`grant_type=refresh_token`
//! for a config.json `identitytoken`, or `grant_type=password`). Each request
//! is recorded (method, grant and scopes, never the secret) so a test can
//! tell which flow a client took. Wrong credentials get 401.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::certs::openssl;

/// The `service` (JWT audience) the registry is configured with.
pub const SERVICE: &str = "muster-test-registry";
/// The JWT issuer the registry is configured to trust.
pub const ISSUER: &str = "muster-test-token-issuer";

/// One request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// `GET` or `POST`.
    pub method: String,
    /// `basic`, `refresh_token`, `password` or `anonymous`.
    pub grant: String,
    /// The `scope` parameters, as asked.
    pub scopes: Vec<String>,
    /// Whether a token was issued.
    pub granted: bool,
}

/// A running token server; stops when dropped.
pub struct TokenServer {
    pub port: u16,
    /// The certificate (PEM) the registry's `rootcertbundle` points at.
    pub cert_pem: std::path::PathBuf,
    asked: Arc<Mutex<Vec<Asked>>>,
    stop: Arc<AtomicBool>,
}

struct Secrets {
    user: String,
    password: String,
    refresh_token: String,
}

impl TokenServer {
    /// Makes a key and a self-signed certificate in `dir` and starts serving
    /// tokens to `user` / `password`, or to whoever holds `refresh_token`.
    pub fn start(dir: &Path, user: &str, password: &str, refresh_token: &str) -> TokenServer {
        let key_pem = dir.join("token.key");
        let cert_pem = dir.join("token.pem");
        let key_der = dir.join("token.p8");
        let cert_der = dir.join("token.der");
        openssl(
            dir,
            &[
                "ecparam",
                "-name",
                "prime256v1",
                "-genkey",
                "-noout",
                "-out",
                path(&key_pem),
            ],
        );
        openssl(
            dir,
            &[
                "req",
                "-new",
                "-x509",
                "-key",
                path(&key_pem),
                "-out",
                path(&cert_pem),
                "-days",
                "2",
                "-subj",
                "/CN=muster-test-token",
            ],
        );
        openssl(
            dir,
            &[
                "pkcs8",
                "-topk8",
                "-nocrypt",
                "-in",
                path(&key_pem),
                "-outform",
                "DER",
                "-out",
                path(&key_der),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-in",
                path(&cert_pem),
                "-outform",
                "DER",
                "-out",
                path(&cert_der),
            ],
        );
        let rng = SystemRandom::new();
        let pkcs8 = std::fs::read(&key_der).expect("read the token key");
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8, &rng)
            .expect("an ECDSA P-256 PKCS#8 key");
        let cert = std::fs::read(&cert_der).expect("read the token certificate");
        let header = b64url(
            serde_json::json!({
                "typ": "JWT",
                "alg": "ES256",
                "x5c": [base64::engine::general_purpose::STANDARD.encode(cert)],
            })
            .to_string()
            .as_bytes(),
        );

        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the token server");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local addr").port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let secrets = Secrets {
            user: user.to_string(),
            password: password.to_string(),
            refresh_token: refresh_token.to_string(),
        };
        let signer = Signer { key, rng, header };
        {
            let asked = asked.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((stream, _)) => {
                            let _ = serve(stream, &secrets, &signer, &asked);
                        }
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                            std::thread::sleep(Duration::from_millis(5));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(5)),
                    }
                }
            });
        }
        TokenServer {
            port,
            cert_pem,
            asked,
            stop,
        }
    }

    /// `http://127.0.0.1:PORT/token?origin=muster-test`, the registry's
    /// `realm`: with a query of its own, as some hosted registries have, so
    /// a client must add its parameters to it rather than start a new query.
    pub fn realm(&self) -> String {
        format!("http://127.0.0.1:{}/token?origin=muster-test", self.port)
    }

    /// Every request answered so far.
    pub fn asked(&self) -> Vec<Asked> {
        self.asked.lock().map(|a| a.clone()).unwrap_or_default()
    }
}

impl Drop for TokenServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

struct Signer {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    header: String,
}

impl Signer {
    fn token(&self, subject: &str, audience: &str, scopes: &[String]) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let access: Vec<serde_json::Value> = scopes
            .iter()
            .flat_map(|s| s.split(' '))
            .filter_map(|scope| {
                // repository:NAME:ACTIONS (NAME may hold a port's colon).
                let (kind, rest) = scope.split_once(':')?;
                let (name, actions) = rest.rsplit_once(':')?;
                Some(serde_json::json!({
                    "type": kind,
                    "name": name,
                    "actions": actions.split(',').collect::<Vec<_>>(),
                }))
            })
            .collect();
        let claims = serde_json::json!({
            "iss": ISSUER,
            "sub": subject,
            "aud": audience,
            "exp": now + 300,
            "nbf": now.saturating_sub(30),
            "iat": now,
            "jti": format!("{now}-{}", std::process::id()),
            "access": access,
        });
        let signing_input = format!("{}.{}", self.header, b64url(claims.to_string().as_bytes()));
        let signature = self
            .key
            .sign(&self.rng, signing_input.as_bytes())
            .expect("sign the token");
        format!("{signing_input}.{}", b64url(signature.as_ref()))
    }
}

/// Answers one HTTP/1.1 request on `stream` and closes it.
fn serve(
    stream: TcpStream,
    secrets: &Secrets,
    signer: &Signer,
    asked: &Mutex<Vec<Asked>>,
) -> std::io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("").to_string();
    let mut authorization = None;
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header.trim().is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim().to_string();
            match name.trim().to_ascii_lowercase().as_str() {
                "authorization" => authorization = Some(value),
                "content-length" => length = value.parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0u8; length.min(1 << 16)];
    reader.read_exact(&mut body)?;
    let query = target.split_once('?').map(|(_, q)| q).unwrap_or("");
    let mut params = form(query);
    if method == "POST" {
        params.extend(form(&String::from_utf8_lossy(&body)));
    }
    let get = |key: &str| {
        params
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    let scopes: Vec<String> = params
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.clone())
        .collect();
    let (grant, subject) = if method == "POST" {
        match get("grant_type").as_deref() {
            Some("refresh_token") => (
                "refresh_token",
                (get("refresh_token").as_deref() == Some(secrets.refresh_token.as_str()))
                    .then(|| secrets.user.clone()),
            ),
            Some("password") => (
                "password",
                (get("username").as_deref() == Some(secrets.user.as_str())
                    && get("password").as_deref() == Some(secrets.password.as_str()))
                .then(|| secrets.user.clone()),
            ),
            _ => ("unknown", None),
        }
    } else {
        match authorization
            .as_deref()
            .and_then(|a| a.strip_prefix("Basic "))
        {
            Some(basic) => {
                let pair = base64::engine::general_purpose::STANDARD
                    .decode(basic.trim())
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .unwrap_or_default();
                let expected = format!("{}:{}", secrets.user, secrets.password);
                ("basic", (pair == expected).then(|| secrets.user.clone()))
            }
            None => ("anonymous", None),
        }
    };
    let audience = get("service").unwrap_or_else(|| SERVICE.to_string());
    let answer = match &subject {
        Some(subject) => {
            let token = signer.token(subject, &audience, &scopes);
            (
                "200 OK",
                serde_json::json!({"token": token, "access_token": token, "expires_in": 300})
                    .to_string(),
            )
        }
        None => (
            "401 Unauthorized",
            serde_json::json!({"errors": [{"code": "UNAUTHORIZED", "message": "bad credentials for the token server"}]})
                .to_string(),
        ),
    };
    if let Ok(mut list) = asked.lock() {
        list.push(Asked {
            method,
            grant: grant.to_string(),
            scopes,
            granted: subject.is_some(),
        });
    }
    let mut stream = stream;
    write!(
        stream,
        "HTTP/1.1 {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.0,
        answer.1.len(),
        answer.1
    )?;
    stream.flush()
}

/// `a=b&c=d` with %-escapes and `+` for space decoded.
fn form(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(text: &str) -> String {
    let text = text.replace('+', " ");
    percent_encoding::percent_decode_str(&text)
        .decode_utf8_lossy()
        .to_string()
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 temp path")
}
