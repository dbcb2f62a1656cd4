//! Image references (`[registry[:port]/]repo[:tag][@digest]`) split the way
//! the docker CLI splits them, because the registry host decides which
//! credentials are sent and the engine wants repository and tag apart.
//!
//! Why our own parser: the candidates (`oci-spec`'s `Reference`,
//! `oci-client`) bring a large dependency tree for a ~100-line grammar, and
//! we need Docker's normalisation exactly (Docker Hub is `docker.io`, its
//! official images live under `library/`, its credentials are stored under
//! `https://index.docker.io/v1/`). The rules, from distribution's
//! `reference` package: the first path component is a registry when it
//! contains a `.` or a `:` or is `localhost`; otherwise the image is on Docker
//! Hub. A missing tag (and no digest) means `latest`.

use std::fmt;

/// Docker Hub's registry host, as references name it.
pub const DOCKER_HUB: &str = "docker.io";
/// The key Docker Hub credentials are stored under in `config.json`.
pub const DOCKER_HUB_AUTH_KEY: &str = "https://index.docker.io/v1/";

/// A parsed image reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    /// Registry host with port (`127.0.0.1:5000`, `ghcr.io`, `docker.io`).
    pub registry: String,
    /// Repository path in the registry (`library/redis`, `org/app`).
    pub repository: String,
    /// The tag; `latest` when neither a tag nor a digest was given.
    pub tag: Option<String>,
    /// `sha256:…` when pinned by digest.
    pub digest: Option<String>,
}

/// Why a reference is not valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid image reference {reference:?}: {reason}")]
pub struct ReferenceError {
    pub reference: String,
    pub reason: String,
}

impl ImageRef {
    /// Parses `reference` with Docker's normalisation.
    pub fn parse(reference: &str) -> Result<ImageRef, ReferenceError> {
        let bad = |reason: &str| ReferenceError {
            reference: reference.to_string(),
            reason: reason.to_string(),
        };
        if reference.is_empty() {
            return Err(bad("empty"));
        }
        if reference.chars().any(|c| c.is_whitespace()) {
            return Err(bad("contains whitespace"));
        }
        let (rest, digest) = match reference.split_once('@') {
            Some((name, digest)) => {
                let (algo, hex) = digest
                    .split_once(':')
                    .ok_or_else(|| bad("a digest is ALGORITHM:HEX (sha256:…)"))?;
                let algo_ok = !algo.is_empty()
                    && algo.chars().all(|c| {
                        c.is_ascii_lowercase() || c.is_ascii_digit() || "+._-".contains(c)
                    });
                let hex_ok = hex.len() >= 32 && hex.chars().all(|c| c.is_ascii_hexdigit());
                if !algo_ok || !hex_ok {
                    return Err(bad("a digest is ALGORITHM:HEX (sha256:…)"));
                }
                (name, Some(digest.to_string()))
            }
            None => (reference, None),
        };
        // A tag is after the last ':' that follows the last '/' (a ':' before
        // it belongs to the registry's port).
        let last_slash = rest.rfind('/').map(|i| i + 1).unwrap_or(0);
        let (name, tag) = match rest[last_slash..].rfind(':') {
            Some(i) => {
                let at = last_slash + i;
                (&rest[..at], Some(rest[at + 1..].to_string()))
            }
            None => (rest, None),
        };
        if let Some(tag) = &tag {
            let ok = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
            if !ok {
                return Err(bad("a tag is up to 128 letters, digits, '_', '.' and '-', not starting with '.' or '-'"));
            }
        }
        let (registry, path) = match name.split_once('/') {
            Some((first, path))
                if first.contains('.') || first.contains(':') || first == "localhost" =>
            {
                (first.to_string(), path.to_string())
            }
            _ => (DOCKER_HUB.to_string(), name.to_string()),
        };
        let registry = match registry.as_str() {
            "index.docker.io" | "registry-1.docker.io" => DOCKER_HUB.to_string(),
            _ => registry,
        };
        if registry.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(bad("the registry host must be lowercase"));
        }
        if path.is_empty() {
            return Err(bad("no repository name"));
        }
        for component in path.split('/') {
            let ok = !component.is_empty()
                && component
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._-".contains(c))
                && component.starts_with(|c: char| c.is_ascii_alphanumeric())
                && component.ends_with(|c: char| c.is_ascii_alphanumeric());
            if !ok {
                return Err(bad("a repository name is lowercase letters, digits and separators (., _, -) between '/'"));
            }
        }
        let repository = if registry == DOCKER_HUB && !path.contains('/') {
            format!("library/{path}")
        } else {
            path
        };
        let tag = match (&tag, &digest) {
            (None, None) => Some("latest".to_string()),
            _ => tag,
        };
        Ok(ImageRef {
            registry,
            repository,
            tag,
            digest,
        })
    }

    /// The key `config.json` stores this registry's credentials under (and
    /// that is handed to a credential helper): the host, or Docker Hub's
    /// `https://index.docker.io/v1/`.
    pub fn auth_key(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_AUTH_KEY
        } else {
            &self.registry
        }
    }

    /// `registry/repository` as the engine's `fromImage` wants it.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The tag, or the digest when pinned by one (the engine's `tag` parameter).
    pub fn tag_or_digest(&self) -> &str {
        self.digest
            .as_deref()
            .or(self.tag.as_deref())
            .unwrap_or("latest")
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.name())?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// Normalises a registry name as written in `config.json` (`https://host/v1/`,
/// `http://host`, `host`) to the host, with Docker Hub's aliases folded into
/// `docker.io`; as the docker CLI's `ConvertToHostname`.
pub fn registry_host(key: &str) -> String {
    let host = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let host = host.split('/').next().unwrap_or(host);
    match host {
        "index.docker.io" | "registry-1.docker.io" | "docker.io" => DOCKER_HUB.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> ImageRef {
        ImageRef::parse(s).unwrap()
    }

    #[test]
    fn docker_hub_names_are_normalised() {
        let r = p("redis");
        assert_eq!(
            (r.registry.as_str(), r.repository.as_str(), r.tag.as_deref()),
            ("docker.io", "library/redis", Some("latest"))
        );
        assert_eq!(r.auth_key(), DOCKER_HUB_AUTH_KEY);
        assert_eq!(r.to_string(), "docker.io/library/redis:latest");
        assert_eq!(p("redis:7.2-alpine").tag.as_deref(), Some("7.2-alpine"));
        assert_eq!(p("bitnami/redis").repository, "bitnami/redis");
        assert_eq!(p("docker.io/redis").repository, "library/redis");
        assert_eq!(p("index.docker.io/library/redis").registry, "docker.io");
    }

    #[test]
    fn registries_with_ports_and_paths() {
        let r = p("127.0.0.1:5000/muster/app:v2");
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "muster/app");
        assert_eq!(r.tag.as_deref(), Some("v2"));
        assert_eq!(r.auth_key(), "127.0.0.1:5000");
        assert_eq!(r.name(), "127.0.0.1:5000/muster/app");
        let r = p("localhost:5000/app");
        assert_eq!(
            (r.registry.as_str(), r.tag.as_deref()),
            ("localhost:5000", Some("latest"))
        );
        assert_eq!(p("localhost/app").registry, "localhost");
        assert_eq!(p("ghcr.io/org/team/app:1").repository, "org/team/app");
        // "org" has no dot or colon: a Docker Hub user, not a registry.
        assert_eq!(p("org/app").registry, "docker.io");
    }

    #[test]
    fn digests() {
        let d = format!("sha256:{}", "a".repeat(64));
        let r = p(&format!("127.0.0.1:5000/app@{d}"));
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_deref(), Some(d.as_str()));
        assert_eq!(r.tag_or_digest(), d);
        let r = p(&format!("app:v1@{d}"));
        assert_eq!(r.tag.as_deref(), Some("v1"));
        assert!(ImageRef::parse("app@sha256:xyz").is_err());
        assert!(ImageRef::parse("app@nodigest").is_err());
    }

    #[test]
    fn bad_references_say_why() {
        for bad in [
            "",
            "App",
            "app:",
            "app:-x",
            "a b",
            "host:5000/",
            "/app",
            "app//x",
        ] {
            let e = ImageRef::parse(bad).unwrap_err();
            assert_eq!(e.reference, bad);
            assert!(!e.reason.is_empty());
        }
    }

    #[test]
    fn config_keys_to_hosts() {
        assert_eq!(registry_host("https://index.docker.io/v1/"), "docker.io");
        assert_eq!(registry_host("index.docker.io"), "docker.io");
        assert_eq!(registry_host("docker.io"), "docker.io");
        assert_eq!(registry_host("http://127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("127.0.0.1:5000"), "127.0.0.1:5000");
        assert_eq!(registry_host("https://ghcr.io/v2/"), "ghcr.io");
    }
}
