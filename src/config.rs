//! The sidecar's own settings. Strongest first: a flag, an environment
//! variable (both through clap), the config file (`--config`, default
//! `config/muster.yaml` when present), then the default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::probe::spec::MusterService;
use crate::probe::AddressMode;

pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_NAMESPACE: &str = "muster";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8686";
pub const DEFAULT_CONFIG_PATH: &str = "config/muster.yaml";

/// `config/muster.yaml` as written.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub redis_url: Option<String>,
    pub nats_url: Option<String>,
    pub namespace: Option<String>,
    pub listen: Option<String>,
    /// How probe hostnames are reached: `auto` (default), `network` or `host`.
    pub probe_address: Option<AddressMode>,
    /// Per-service `x-muster` settings that apply when the compose file has none.
    #[serde(default)]
    pub services: BTreeMap<String, MusterService>,
}

/// Settings after every source was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub redis_url: String,
    pub nats_url: Option<String>,
    pub namespace: String,
    pub listen: String,
    /// How probe hostnames are reached (see [`AddressMode`]).
    pub probe_address: AddressMode,
    pub services: BTreeMap<String, MusterService>,
    /// The config file that was read, if any.
    pub config_path: Option<PathBuf>,
}

/// Values given by flags or environment (already merged by clap).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub config: Option<PathBuf>,
    pub redis_url: Option<String>,
    pub nats_url: Option<String>,
    pub namespace: Option<String>,
    pub listen: Option<String>,
    pub probe_address: Option<AddressMode>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
}

impl Settings {
    /// Applies overrides over the config file over defaults. An explicitly named
    /// config file must exist; the default one is read only when present.
    pub fn resolve(overrides: &Overrides) -> Result<Settings, ConfigError> {
        let (file, config_path) = match &overrides.config {
            Some(path) => (Some(read_config_file(path)?), Some(path.clone())),
            None => {
                let default = Path::new(DEFAULT_CONFIG_PATH);
                if default.is_file() {
                    (
                        Some(read_config_file(default)?),
                        Some(default.to_path_buf()),
                    )
                } else {
                    (None, None)
                }
            }
        };
        let file = file.unwrap_or_default();
        Ok(Settings {
            redis_url: overrides
                .redis_url
                .clone()
                .or(file.redis_url)
                .unwrap_or_else(|| DEFAULT_REDIS_URL.to_string()),
            nats_url: overrides.nats_url.clone().or(file.nats_url),
            namespace: overrides
                .namespace
                .clone()
                .or(file.namespace)
                .unwrap_or_else(|| DEFAULT_NAMESPACE.to_string()),
            listen: overrides
                .listen
                .clone()
                .or(file.listen)
                .unwrap_or_else(|| DEFAULT_LISTEN.to_string()),
            probe_address: overrides
                .probe_address
                .or(file.probe_address)
                .unwrap_or_default(),
            services: file.services,
            config_path,
        })
    }
}

fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// A URL with its password replaced by `***`, for logs and output.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some((userinfo, host)) = rest.rsplit_once('@') else {
        return url.to_string();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None if !userinfo.is_empty() => format!("{scheme}://***@{host}"),
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redacts_passwords() {
        assert_eq!(
            redact_url("redis://u:secret@h:6379/0"),
            "redis://u:***@h:6379/0"
        );
        assert_eq!(redact_url("redis://:secret@h:6379"), "redis://:***@h:6379");
        assert_eq!(redact_url("nats://token@h:4222"), "nats://***@h:4222");
        assert_eq!(redact_url("redis://h:6379"), "redis://h:6379");
    }

    #[test]
    fn flags_beat_file_beat_defaults() {
        let dir = std::env::temp_dir().join(format!("muster-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("muster.yaml");
        std::fs::write(&path, "redis_url: redis://file:1\nnamespace: filens\n").unwrap();
        let settings = Settings::resolve(&Overrides {
            config: Some(path.clone()),
            namespace: Some("flagns".into()),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(settings.redis_url, "redis://file:1");
        assert_eq!(settings.namespace, "flagns");
        assert_eq!(settings.listen, DEFAULT_LISTEN);
        std::fs::write(&path, "redis_urll: x\n").unwrap();
        let err = Settings::resolve(&Overrides {
            config: Some(path.clone()),
            ..Default::default()
        })
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("muster.yaml") && err.contains("redis_urll"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
