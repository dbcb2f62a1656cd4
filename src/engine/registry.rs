//! What a registry says about an image that is not on the engine yet: the sum
//! of its compressed layer sizes, read from the manifest (Distribution API v2).
//!
//! Why it exists: `muster tune` sizes a service's grace period by its image,
//! and before the first pull the engine does not have the image. The Engine
//! API's distribution inspect gives the manifest's digest and platforms but
//! not its layers, so this asks the registry itself — with the same
//! credentials a pull uses ([`super::auth`]), answering a `401` challenge with
//! Basic auth or a Bearer token as the engine does (the token asked of the
//! challenge's realm with the password, or traded for a config.json
//! `identitytoken` by an OAuth2 refresh-token POST). A manifest list (or
//! OCI index) is resolved to the host's platform (`linux/amd64` here).
//! Registries on `localhost` / `127.0.0.0/8` are spoken to over plain HTTP, as
//! the engine does without any daemon setting; all others over HTTPS.

use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST, USER_AGENT, WWW_AUTHENTICATE,
};
use hyper::{Method, Request};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};

use super::auth::{credentials_for, AuthError, Credentials};
use super::reference::{ImageRef, ReferenceError, DOCKER_HUB};

/// How long one request to the registry may take (`tune` asks one service
/// after another, so an unreachable registry must not hold it up long).
const TIMEOUT: Duration = Duration::from_secs(10);

/// The manifest types asked for, single-platform and lists.
const ACCEPT_MANIFESTS: &str = "application/vnd.docker.distribution.manifest.v2+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json";

/// An image's size as its registry's manifest tells it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RegistrySize {
    /// The image as the compose file names it.
    pub reference: String,
    /// Sum of the compressed layer sizes (what a pull downloads; the size on
    /// the engine after the pull is larger).
    pub compressed: u64,
    pub layers: usize,
    /// The config digest (the image ID the engine will have), when given.
    pub config_digest: Option<String>,
    /// `os/architecture` picked from a manifest list, if it was one.
    pub platform: Option<String>,
}

/// Why the registry could not tell an image's size.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("credentials for registry {registry}")]
    Credentials {
        registry: String,
        #[source]
        source: AuthError,
    },
    #[error("registry {registry}: {message}")]
    Request { registry: String, message: String },
    #[error("registry {registry} answered {status} for {what}: {reason}")]
    Status {
        registry: String,
        status: u16,
        what: String,
        reason: String,
    },
    #[error("registry {registry}: manifest of {image}: {message}")]
    Manifest {
        registry: String,
        image: String,
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    media_type: Option<String>,
    #[serde(default)]
    layers: Vec<Descriptor>,
    config: Option<Descriptor>,
    #[serde(default)]
    manifests: Vec<Descriptor>,
}

#[derive(Deserialize)]
struct Descriptor {
    digest: String,
    #[serde(default)]
    size: u64,
    platform: Option<Platform>,
}

#[derive(Deserialize)]
struct Platform {
    architecture: String,
    os: String,
}

/// The host's platform as registries name it (`linux/amd64`).
pub fn host_platform() -> (&'static str, &'static str) {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "x86" => "386",
        "powerpc64" => "ppc64le",
        other => other,
    };
    ("linux", arch)
}

/// The compressed size of `reference` from its registry's manifest.
pub async fn image_size(reference: &str) -> Result<RegistrySize, RegistryError> {
    let image = ImageRef::parse(reference)?;
    let credentials =
        credentials_for(image.auth_key())
            .await
            .map_err(|source| RegistryError::Credentials {
                registry: image.registry.clone(),
                source,
            })?;
    let mut client = Client::new(&image, credentials)?;
    let manifest = client.manifest(image.tag_or_digest()).await?;
    let bad = |message: String| RegistryError::Manifest {
        registry: image.registry.clone(),
        image: reference.to_string(),
        message,
    };
    let (manifest, platform) = if manifest.manifests.is_empty() {
        (manifest, None)
    } else {
        let (os, arch) = host_platform();
        let entry = manifest
            .manifests
            .iter()
            .find(|m| {
                m.platform
                    .as_ref()
                    .is_some_and(|p| p.os == os && p.architecture == arch)
            })
            .ok_or_else(|| bad(format!("the manifest list has no {os}/{arch} entry")))?;
        let digest = entry.digest.clone();
        (
            client.manifest(&digest).await?,
            Some(format!("{os}/{arch}")),
        )
    };
    if manifest.layers.is_empty() {
        return Err(bad(format!(
            "no layers (media type {})",
            manifest.media_type.as_deref().unwrap_or("not given")
        )));
    }
    Ok(RegistrySize {
        reference: reference.to_string(),
        compressed: manifest.layers.iter().map(|l| l.size).sum(),
        layers: manifest.layers.len(),
        config_digest: manifest.config.map(|c| c.digest),
        platform,
    })
}

/// Where a request goes: scheme, host, port, path and query.
struct Target {
    tls: bool,
    host: String,
    port: u16,
    path: String,
}

impl Target {
    /// `https://auth.example/token?x=y` (a Bearer challenge's realm).
    fn parse(url: &str) -> Option<Target> {
        let (scheme, rest) = url.split_once("://")?;
        let tls = match scheme {
            "https" => true,
            "http" => false,
            _ => return None,
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].to_string()),
            None => (rest, "/".to_string()),
        };
        let (host, port) = split_port(authority, if tls { 443 } else { 80 })?;
        Some(Target {
            tls,
            host,
            port,
            path,
        })
    }

    fn authority(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

fn split_port(authority: &str, default: u16) -> Option<(String, u16)> {
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            Some((host.to_string(), port.parse().ok()?))
        }
        _ => Some((authority.to_string(), default)),
    }
}

/// Plain HTTP for loopback registries, as the engine allows without a setting.
fn is_loopback(host: &str) -> bool {
    host == "localhost"
        || host == "[::1]"
        || host
            .parse::<std::net::Ipv4Addr>()
            .is_ok_and(|ip| ip.is_loopback())
}

struct Client {
    registry: String,
    base: Target,
    repository: String,
    credentials: Option<Credentials>,
    /// `Authorization` once a challenge was answered.
    authorization: Option<String>,
}

impl Client {
    fn new(image: &ImageRef, credentials: Option<Credentials>) -> Result<Client, RegistryError> {
        let host = match image.registry.as_str() {
            DOCKER_HUB => "registry-1.docker.io",
            other => other,
        };
        let request = |message: String| RegistryError::Request {
            registry: image.registry.clone(),
            message,
        };
        let (name, _) = split_port(host, 0).ok_or_else(|| request("bad port".into()))?;
        let tls = !is_loopback(&name);
        let (name, port) = split_port(host, if tls { 443 } else { 80 })
            .ok_or_else(|| request("bad port".into()))?;
        Ok(Client {
            registry: image.registry.clone(),
            base: Target {
                tls,
                host: name,
                port,
                path: String::new(),
            },
            repository: image.repository.clone(),
            credentials,
            authorization: None,
        })
    }

    fn error(&self, message: String) -> RegistryError {
        RegistryError::Request {
            registry: self.registry.clone(),
            message,
        }
    }

    /// One manifest by tag or digest, answering one auth challenge.
    async fn manifest(&mut self, reference: &str) -> Result<Manifest, RegistryError> {
        let target = Target {
            path: format!("/v2/{}/manifests/{reference}", self.repository),
            host: self.base.host.clone(),
            ..self.base
        };
        let what = format!("manifest {}:{reference}", self.repository);
        let mut answer = self.get(&target, self.authorization.clone()).await?;
        if answer.status == 401 {
            if let Some(challenge) = answer.challenge.take() {
                self.authorization = Some(self.answer(&challenge).await?);
                answer = self.get(&target, self.authorization.clone()).await?;
            }
        }
        if answer.status != 200 {
            return Err(RegistryError::Status {
                registry: self.registry.clone(),
                status: answer.status,
                what,
                reason: registry_reason(&answer.body),
            });
        }
        serde_json::from_slice(&answer.body).map_err(|e| RegistryError::Manifest {
            registry: self.registry.clone(),
            image: format!("{}:{reference}", self.repository),
            message: format!("not a manifest: {e}"),
        })
    }

    /// The `Authorization` value for a `WWW-Authenticate` challenge.
    async fn answer(&self, challenge: &str) -> Result<String, RegistryError> {
        let basic = self.credentials.as_ref().and_then(|c| {
            let user = c.username.as_deref()?;
            let password = c.password.as_deref().unwrap_or("");
            let pair = format!("{user}:{password}");
            Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            ))
        });
        let (scheme, params) = challenge.split_once(' ').unwrap_or((challenge, ""));
        if scheme.eq_ignore_ascii_case("basic") {
            return basic.ok_or_else(|| RegistryError::Status {
                registry: self.registry.clone(),
                status: 401,
                what: "the manifest".into(),
                reason: "credentials required and none found in the docker config".into(),
            });
        }
        let param = |key: &str| challenge_param(params, key);
        let realm =
            param("realm").ok_or_else(|| self.error("a Bearer challenge without realm".into()))?;
        let encode = |text: &str| {
            percent_encoding::utf8_percent_encode(text, percent_encoding::NON_ALPHANUMERIC)
                .to_string()
        };
        let scope = format!("repository:{}:pull", self.repository);
        let mut fields = vec![format!("scope={}", encode(&scope))];
        if let Some(service) = param("service") {
            fields.push(format!("service={}", encode(&service)));
        }
        let identity_token = self
            .credentials
            .as_ref()
            .and_then(|c| c.identity_token.as_deref());
        let answer = match identity_token {
            // An `identitytoken` is an OAuth2 refresh token: the engine
            // trades it at the realm with a form POST, and so does this.
            Some(refresh) => {
                let target = Target::parse(&realm)
                    .ok_or_else(|| self.error(format!("bad token realm {realm:?}")))?;
                fields.push("grant_type=refresh_token".into());
                fields.push(format!("refresh_token={}", encode(refresh)));
                fields.push("client_id=muster".into());
                self.send(&target, None, Some(fields.join("&"))).await?
            }
            None => {
                // The realm may carry a query of its own.
                let join = if realm.contains('?') { '&' } else { '?' };
                let url = format!("{realm}{join}{}", fields.join("&"));
                let target = Target::parse(&url)
                    .ok_or_else(|| self.error(format!("bad token realm {realm:?}")))?;
                self.get(&target, basic).await?
            }
        };
        if answer.status != 200 {
            return Err(RegistryError::Status {
                registry: self.registry.clone(),
                status: answer.status,
                what: "a token".into(),
                reason: registry_reason(&answer.body),
            });
        }
        #[derive(Deserialize)]
        struct Token {
            token: Option<String>,
            access_token: Option<String>,
        }
        let token: Token = serde_json::from_slice(&answer.body)
            .map_err(|e| self.error(format!("the token answer is not JSON: {e}")))?;
        token
            .token
            .or(token.access_token)
            .map(|t| format!("Bearer {t}"))
            .ok_or_else(|| self.error("the token answer holds no token".into()))
    }

    /// One GET on a fresh connection.
    async fn get(
        &self,
        target: &Target,
        authorization: Option<String>,
    ) -> Result<Answer, RegistryError> {
        self.send(target, authorization, None).await
    }

    /// One GET, or a POST of `form` (`application/x-www-form-urlencoded`),
    /// on a fresh connection.
    async fn send(
        &self,
        target: &Target,
        authorization: Option<String>,
        form: Option<String>,
    ) -> Result<Answer, RegistryError> {
        tokio::time::timeout(TIMEOUT, self.send_inner(target, authorization, form))
            .await
            .map_err(|_| {
                self.error(format!(
                    "no answer from {} within {} s",
                    target.authority(),
                    TIMEOUT.as_secs()
                ))
            })?
    }

    async fn send_inner(
        &self,
        target: &Target,
        authorization: Option<String>,
        form: Option<String>,
    ) -> Result<Answer, RegistryError> {
        let authority = target.authority();
        let stream = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| self.error(format!("connect to {authority}: {e}")))?;
        let mut request = Request::builder()
            .method(if form.is_some() {
                Method::POST
            } else {
                Method::GET
            })
            .uri(target.path.as_str())
            .header(HOST, authority.as_str())
            .header(ACCEPT, ACCEPT_MANIFESTS)
            .header(USER_AGENT, concat!("muster/", env!("CARGO_PKG_VERSION")));
        if let Some(value) = authorization {
            let mut value = HeaderValue::from_str(&value)
                .map_err(|_| self.error("credentials are not a valid header".into()))?;
            value.set_sensitive(true);
            request = request.header(AUTHORIZATION, value);
        }
        if form.is_some() {
            request = request.header(CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        let request = request
            .body(Full::new(Bytes::from(form.unwrap_or_default())))
            .map_err(|e| self.error(format!("request: {e}")))?;
        if !target.tls {
            return self.exchange(stream, request, &authority).await;
        }
        let config = crate::tls::client_config(None, None)
            .map_err(|(_, e)| self.error(format!("TLS settings: {e}")))?;
        let stream = crate::tls::handshake(&config, &target.host, &authority, stream)
            .await
            .map_err(|e| self.error(e.text))?;
        self.exchange(stream, request, &authority).await
    }

    async fn exchange<S>(
        &self,
        stream: S,
        request: Request<Full<Bytes>>,
        authority: &str,
    ) -> Result<Answer, RegistryError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.error(format!("HTTP handshake with {authority}: {e}")))?;
        let conn = tokio::spawn(conn);
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| self.error(format!("request to {authority}: {e}")))?;
        let status = response.status().as_u16();
        let challenge = response
            .headers()
            .get(WWW_AUTHENTICATE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| self.error(format!("reading the answer of {authority}: {e}")))?
            .to_bytes();
        conn.abort();
        Ok(Answer {
            status,
            challenge,
            body,
        })
    }
}

struct Answer {
    status: u16,
    challenge: Option<String>,
    body: Bytes,
}

/// `key="value"` out of a challenge's parameters.
fn challenge_param(params: &str, key: &str) -> Option<String> {
    let mut rest = params;
    while !rest.is_empty() {
        let (k, after) = rest.split_once('=')?;
        let k = k.trim().trim_start_matches(',').trim();
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => {
                let end = quoted.find('"')?;
                (&quoted[..end], &quoted[end + 1..])
            }
            None => match after.find(',') {
                Some(i) => (&after[..i], &after[i..]),
                None => (after, ""),
            },
        };
        if k.eq_ignore_ascii_case(key) {
            return Some(value.to_string());
        }
        rest = after.trim_start_matches(',');
    }
    None
}

/// The registry's own reason (`errors[0].code: message`), else the body's start.
fn registry_reason(body: &[u8]) -> String {
    #[derive(Deserialize)]
    struct Errors {
        errors: Vec<Error>,
    }
    #[derive(Deserialize)]
    struct Error {
        code: String,
        message: Option<String>,
    }
    match serde_json::from_slice::<Errors>(body) {
        Ok(e) if !e.errors.is_empty() => e
            .errors
            .iter()
            .map(|e| match &e.message {
                Some(m) => format!("{}: {m}", e.code),
                None => e.code.clone(),
            })
            .collect::<Vec<_>>()
            .join("; "),
        _ => String::from_utf8_lossy(&body[..body.len().min(200)])
            .trim()
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_challenge_parameters() {
        let c = r#"realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/redis:pull""#;
        assert_eq!(
            challenge_param(c, "realm").as_deref(),
            Some("https://auth.docker.io/token")
        );
        assert_eq!(
            challenge_param(c, "service").as_deref(),
            Some("registry.docker.io")
        );
        assert_eq!(challenge_param(c, "nope"), None);
    }

    #[test]
    fn targets_and_loopback() {
        let t = Target::parse("https://auth.example:8443/token?x=1").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "auth.example", 8443, "/token?x=1")
        );
        assert!(is_loopback("127.0.0.1") && is_loopback("localhost"));
        assert!(!is_loopback("ghcr.io"));
        assert_eq!(
            registry_reason(
                br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#
            ),
            "MANIFEST_UNKNOWN: manifest unknown"
        );
    }
}
