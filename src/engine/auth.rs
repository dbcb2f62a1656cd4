//! Registry credentials, found the way the docker CLI finds them, so that a
//! `docker login` (or a credential helper set up for docker) works for muster
//! unchanged.
//!
//! The file is `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`. For
//! a registry key (the host, or `https://index.docker.io/v1/` for Docker Hub,
//! see [`super::reference::ImageRef::auth_key`]):
//! 1. `credHelpers[key]` names a helper, else `credsStore` does: run
//!    `docker-credential-<helper> get` with the key on stdin; it answers
//!    `{"Username":…,"Secret":…}`; the user name `<token>` means the secret is
//!    an identity token; "credentials not found" means no credentials.
//! 2. Otherwise `auths[key]`, or the entry whose key names the same host
//!    (`https://host/v1/`, `http://host`, `host`): `auth` (base64 `user:pass`),
//!    `username` / `password`, `identitytoken`.
//!
//! Why our own reader: `docker_credential` (the one maintained crate) also
//! reads Podman's files, drops the reason a helper failed, and runs helpers
//! without a time limit; this is ~200 lines with typed errors. Secrets never
//! reach a `Debug`, `Display`, log line or error: [`Credentials`] redacts them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use serde::Deserialize;

use super::reference::registry_host;

/// How long a credential helper may take.
const HELPER_TIMEOUT: Duration = Duration::from_secs(30);

/// Credentials for one registry. `Debug` shows the user name only.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    pub identity_token: Option<String>,
    /// The registry key they were found under.
    pub server_address: String,
    /// Where they came from (`config.json auths`, `helper docker-credential-x`), for logs.
    pub source: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "identity_token",
                &self.identity_token.as_ref().map(|_| "<redacted>"),
            )
            .field("server_address", &self.server_address)
            .field("source", &self.source)
            .finish()
    }
}

impl Credentials {
    /// The engine's `X-Registry-Auth` value.
    pub fn to_docker(&self) -> bollard::auth::DockerCredentials {
        bollard::auth::DockerCredentials {
            username: self.username.clone(),
            password: self.password.clone(),
            identitytoken: self.identity_token.clone(),
            serveraddress: Some(self.server_address.clone()),
            ..Default::default()
        }
    }
}

/// Why credentials could not be read. Never holds a secret.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot read the docker config {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("docker config {path}, line {line}, column {column}: {message}")]
    Parse {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("docker config {path}: auths[{registry:?}].auth is not base64 of USER:PASSWORD")]
    BadAuth { path: PathBuf, registry: String },
    #[error("credential helper {helper} for registry {registry}: {reason}")]
    Helper {
        helper: String,
        registry: String,
        reason: String,
    },
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConfigFile {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// The docker CLI's config directory: `$DOCKER_CONFIG`, else `~/.docker`.
pub fn config_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".docker"))
}

/// Credentials for `key` (a registry host, or Docker Hub's auth key) from the
/// docker CLI's configuration; `Ok(None)` when there are none (pull anonymously).
pub async fn credentials_for(key: &str) -> Result<Option<Credentials>, AuthError> {
    let Some(dir) = config_dir() else {
        return Ok(None);
    };
    credentials_in(&dir.join("config.json"), key).await
}

/// [`credentials_for`] with an explicit config file.
pub async fn credentials_in(path: &Path, key: &str) -> Result<Option<Credentials>, AuthError> {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(AuthError::Read {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let config: ConfigFile = serde_json::from_str(&text).map_err(|e| AuthError::Parse {
        path: path.to_path_buf(),
        line: e.line(),
        column: e.column(),
        // serde_json's messages name the field and type, never the value.
        message: e.to_string(),
    })?;
    let helper = config
        .cred_helpers
        .get(key)
        .or(config.creds_store.as_ref())
        .filter(|h| !h.is_empty());
    if let Some(helper) = helper {
        return from_helper(helper, key).await;
    }
    from_file(&config, path, key)
}

fn from_file(
    config: &ConfigFile,
    path: &Path,
    key: &str,
) -> Result<Option<Credentials>, AuthError> {
    let host = registry_host(key);
    let found = config
        .auths
        .get_key_value(key)
        .or_else(|| config.auths.iter().find(|(k, _)| registry_host(k) == host));
    let Some((found_key, entry)) = found else {
        return Ok(None);
    };
    let mut creds = Credentials {
        username: entry.username.clone().filter(|u| !u.is_empty()),
        password: entry.password.clone().filter(|p| !p.is_empty()),
        identity_token: entry.identitytoken.clone().filter(|t| !t.is_empty()),
        server_address: key.to_string(),
        source: format!("{} auths", path.display()),
    };
    if let Some(auth) = entry.auth.as_deref().filter(|a| !a.is_empty()) {
        let bad = || AuthError::BadAuth {
            path: path.to_path_buf(),
            registry: found_key.clone(),
        };
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.trim())
            .map_err(|_| bad())?;
        let decoded = String::from_utf8(decoded).map_err(|_| bad())?;
        let (user, pass) = decoded.split_once(':').ok_or_else(bad)?;
        creds.username = Some(user.to_string());
        creds.password = Some(pass.trim_end_matches('\n').to_string());
    }
    if creds.username.is_none() && creds.password.is_none() && creds.identity_token.is_none() {
        return Ok(None);
    }
    Ok(Some(creds))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    #[serde(default)]
    username: String,
    #[serde(default)]
    secret: String,
}

async fn from_helper(helper: &str, key: &str) -> Result<Option<Credentials>, AuthError> {
    use tokio::io::AsyncWriteExt;
    let program = format!("docker-credential-{helper}");
    let fail = |reason: String| AuthError::Helper {
        helper: program.clone(),
        registry: key.to_string(),
        reason,
    };
    let mut child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| fail(format!("cannot run it: {e} (is it on PATH?)")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(key.as_bytes())
            .await
            .map_err(|e| fail(format!("cannot write to it: {e}")))?;
    }
    let output = tokio::time::timeout(HELPER_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| fail(format!("no answer within {HELPER_TIMEOUT:?}")))?
        .map_err(|e| fail(format!("cannot read its answer: {e}")))?;
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stdout);
        let said = said.trim();
        // docker-credential-helpers' "not found" answer: pull anonymously.
        if said.contains("credentials not found") {
            return Ok(None);
        }
        // Only the first line of what it said, and never its stdin.
        let first = said
            .lines()
            .next()
            .unwrap_or("")
            .chars()
            .take(200)
            .collect::<String>();
        return Err(fail(format!("exited with {}: {first}", output.status)));
    }
    let answer: HelperAnswer = serde_json::from_slice(&output.stdout)
        .map_err(|_| fail("its answer is not {\"Username\":…,\"Secret\":…} JSON".into()))?;
    if answer.secret.is_empty() && answer.username.is_empty() {
        return Ok(None);
    }
    let source = format!("helper {program}");
    Ok(Some(if answer.username == "<token>" {
        Credentials {
            identity_token: Some(answer.secret),
            server_address: key.to_string(),
            source,
            ..Default::default()
        }
    } else {
        Credentials {
            username: Some(answer.username),
            password: Some(answer.secret),
            server_address: key.to_string(),
            source,
            ..Default::default()
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) -> PathBuf {
        let path = dir.join("config.json");
        std::fs::write(&path, text).unwrap();
        path
    }

    fn tmp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("muster-auth-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn auths_entries_in_all_forms() {
        let dir = tmp("auths");
        let b64 = base64::engine::general_purpose::STANDARD.encode("alice:s3cret");
        let path = write(
            &dir,
            &format!(
                r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{b64}"}},
                "http://127.0.0.1:5000":{{"username":"bob","password":"pw"}},
                "ghcr.io":{{"identitytoken":"tok"}}}}}}"#
            ),
        );
        let hub = credentials_in(&path, "https://index.docker.io/v1/")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(hub.username.as_deref(), Some("alice"));
        assert_eq!(hub.password.as_deref(), Some("s3cret"));
        assert!(!format!("{hub:?}").contains("s3cret"));
        let local = credentials_in(&path, "127.0.0.1:5000")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(local.username.as_deref(), Some("bob"));
        assert_eq!(local.server_address, "127.0.0.1:5000");
        let gh = credentials_in(&path, "ghcr.io").await.unwrap().unwrap();
        assert_eq!(gh.identity_token.as_deref(), Some("tok"));
        assert!(credentials_in(&path, "quay.io").await.unwrap().is_none());
        assert!(credentials_in(&dir.join("none.json"), "quay.io")
            .await
            .unwrap()
            .is_none());
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn bad_files_name_the_place() {
        let dir = tmp("bad");
        let path = write(&dir, "{\n \"auths\": 3}");
        let e = credentials_in(&path, "x").await.unwrap_err().to_string();
        assert!(e.contains("line 2"), "{e}");
        let path = write(&dir, r#"{"auths":{"x":{"auth":"bm9jb2xvbg=="}}}"#);
        let e = credentials_in(&path, "x").await.unwrap_err().to_string();
        assert!(e.contains("auths[\"x\"].auth"), "{e}");
        let path = write(&dir, r#"{"credsStore":"muster-absent-helper"}"#);
        let e = credentials_in(&path, "x").await.unwrap_err().to_string();
        assert!(e.contains("docker-credential-muster-absent-helper"), "{e}");
        let _ = std::fs::remove_dir_all(dir);
    }
}
