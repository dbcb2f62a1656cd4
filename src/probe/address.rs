//! How probe addresses are reached.
//!
//! Probe URLs are written the way the stack sees itself: `redis://redis:6379`
//! names the compose service `redis` and its container port. Two modes:
//!
//! - `network`: muster runs as a container on the compose network, so Docker's
//!   DNS resolves `redis` and the container port is reachable. Addresses are
//!   used as written.
//! - `host`: muster runs on the host. A host that names a compose service is
//!   rewritten to `127.0.0.1:<published port>`, using the service's published
//!   port for that container port. A service port that is not published is an
//!   error at build time (it cannot be reached from the host). Hosts that are
//!   not service names (`localhost`, `db.example.com`, IPs) are used as written.
//! - `auto` (default): `network` when muster runs inside a container
//!   (`/.dockerenv` exists), else `host`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::url::split_url;

/// service -> (container port -> published host port on 127.0.0.1).
pub type PublishedPorts = BTreeMap<String, BTreeMap<u16, u16>>;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AddressMode {
    /// `network` inside a container, `host` otherwise.
    #[default]
    Auto,
    /// As a container on the compose network sees them: used as written.
    Network,
    /// From the host: `service:port` becomes `127.0.0.1:<published port>`.
    Host,
}

impl AddressMode {
    /// Resolves `auto` for this process.
    pub fn effective(self) -> AddressMode {
        match self {
            AddressMode::Auto => {
                if std::path::Path::new("/.dockerenv").exists() {
                    AddressMode::Network
                } else {
                    AddressMode::Host
                }
            }
            other => other,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            AddressMode::Auto => "auto",
            AddressMode::Network => "network",
            AddressMode::Host => "host",
        }
    }
}

/// A probe address mode that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown probe address mode {0:?} (expected auto, network or host)")]
pub struct AddressModeError(pub String);

impl std::str::FromStr for AddressMode {
    type Err = AddressModeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(AddressMode::Auto),
            "network" => Ok(AddressMode::Network),
            "host" => Ok(AddressMode::Host),
            other => Err(AddressModeError(other.to_string())),
        }
    }
}

/// A probe that must go through a published port the service does not publish.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "service {host:?} does not publish container port {port}; muster runs on the host \
     (probe address mode `host`) and reaches services through published ports only: \
     publish the port (`ports: [\"{port}\"]`) or run muster on the compose network"
)]
pub struct NotPublished {
    pub host: String,
    pub port: u16,
}

/// Maps `host:port` for the given mode. Returns the host and port to dial.
pub fn map_host_port(
    mode: AddressMode,
    published: &PublishedPorts,
    host: &str,
    port: u16,
) -> Result<(String, u16), NotPublished> {
    if mode.effective() != AddressMode::Host {
        return Ok((host.to_string(), port));
    }
    match published.get(host) {
        None => Ok((host.to_string(), port)),
        Some(ports) => match ports.get(&port) {
            Some(host_port) => Ok(("127.0.0.1".to_string(), *host_port)),
            None => Err(NotPublished {
                host: host.to_string(),
                port,
            }),
        },
    }
}

/// Rewrites the host and port of a URL for the address mode; the default port
/// is used when the URL gives none.
pub(crate) fn map_url(
    mode: AddressMode,
    published: &PublishedPorts,
    url: &str,
    default_port: u16,
) -> Result<String, String> {
    let parts = split_url(url)?;
    let port = parts.port.unwrap_or(default_port);
    let (host, port) =
        map_host_port(mode, published, parts.host, port).map_err(|e| e.to_string())?;
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let userinfo = parts.userinfo.map(|u| format!("{u}@")).unwrap_or_default();
    Ok(format!(
        "{}://{userinfo}{host}:{port}{}",
        parts.scheme, parts.rest
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn published() -> PublishedPorts {
        let mut p = PublishedPorts::new();
        p.insert("redis".into(), [(6379, 16379)].into_iter().collect());
        p
    }

    #[test]
    fn network_mode_keeps_addresses() {
        let url = map_url(
            AddressMode::Network,
            &published(),
            "redis://u:p@redis:6379/2",
            6379,
        )
        .unwrap();
        assert_eq!(url, "redis://u:p@redis:6379/2");
    }

    #[test]
    fn host_mode_rewrites_services_to_published_ports() {
        let url = map_url(AddressMode::Host, &published(), "redis://u:p@redis/2", 6379).unwrap();
        assert_eq!(url, "redis://u:p@127.0.0.1:16379/2");
        let other = map_url(
            AddressMode::Host,
            &published(),
            "http://example.test:8080/x?y",
            80,
        )
        .unwrap();
        assert_eq!(other, "http://example.test:8080/x?y");
        let err = map_host_port(AddressMode::Host, &published(), "redis", 6380)
            .unwrap_err()
            .to_string();
        assert!(err.contains("6380") && err.contains("redis"), "{err}");
    }
}
