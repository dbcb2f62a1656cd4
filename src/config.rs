//! The sidecar's own settings, and the composition root: the one place that
//! knows every part's options. Strongest first: a flag, an environment
//! variable (both through clap), the config file (`--config`, default
//! `config/muster.yaml` when present), then the default.
//!
//! Each part defines the options it takes ([`HistoryOptions`],
//! [`NotifyOptions`], [`WatcherConfig`], [`PlanOptions`], [`GraceOptions`],
//! [`HealConfig`], [`ReadinessOptions`], [`ServerOptions`], [`PullOptions`]); [`Settings`]
//! builds them. No part imports this module: only the CLI does, so a part
//! can be used (and tested) with options of its own.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::compose::xmuster::MusterService;
use crate::grace::GraceOptions;
use crate::health::{HealthError, ServerOptions};
use crate::history::HistoryOptions;
use crate::notify::NotifyOptions;
use crate::probe::AddressMode;
use crate::rollout::readiness::ReadinessOptions;
use crate::signal::WatcherConfig;
use crate::supervisor::heal::HealConfig;
use crate::supervisor::plan::PlanOptions;
use crate::supervisor::start::images::{PullOptions, DEFAULT_PULL_PARALLEL};
use crate::supervisor::telemetry::TelemetryOptions;

pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";
pub const DEFAULT_NAMESPACE: &str = "muster";
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
    /// Where start-up history, revisions and locks go when Redis is unreachable.
    pub state_file: Option<PathBuf>,
    /// Per-service `x-muster` settings that apply when the compose file has none.
    #[serde(default)]
    pub services: BTreeMap<String, MusterService>,
    /// Grace tuning coefficients (see [`crate::grace::GraceConfig`]).
    pub grace: Option<crate::grace::GraceFile>,
    /// Where restart / failed / recovered notifications are POSTed (http:// or https://).
    pub webhook_url: Option<String>,
    /// For an https:// webhook: PEM CA certificates to trust instead of the system's.
    pub webhook_ca_file: Option<PathBuf>,
    /// How many images are pulled at once (default 4).
    pub pull_parallel: Option<usize>,
    /// How often CPU and memory are sampled per container (Go duration, default 5s, 0 = off).
    pub telemetry_interval: Option<String>,
}

/// Settings after every source was applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub redis_url: String,
    pub nats_url: Option<String>,
    pub namespace: String,
    /// The health endpoint's address as set; `None`: derived from the
    /// project and namespace ([`crate::health::identity`]).
    pub listen: Option<String>,
    /// How probe hostnames are reached (see [`AddressMode`]).
    pub probe_address: AddressMode,
    /// The local fallback of [`crate::history::HistoryStore`] (see [`default_state_file`]).
    pub state_file: PathBuf,
    pub services: BTreeMap<String, MusterService>,
    /// The config file that was read, if any.
    pub config_path: Option<PathBuf>,
    /// Grace tuning: margin, samples, size model (`grace:` in the config file).
    pub grace: crate::grace::GraceConfig,
    /// Webhook for supervision notifications (see [`crate::notify`]).
    pub webhook_url: Option<String>,
    /// CA certificates for an https:// webhook (see [`crate::notify`]).
    pub webhook_ca_file: Option<PathBuf>,
    /// Images pulled at once (see [`PullOptions`]).
    pub pull_parallel: usize,
    /// Resource sampling interval; zero turns it off (see [`TelemetryOptions`]).
    pub telemetry_interval: std::time::Duration,
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
    pub state_file: Option<PathBuf>,
    pub webhook_url: Option<String>,
    pub webhook_ca_file: Option<PathBuf>,
    pub pull_parallel: Option<usize>,
    pub telemetry_interval: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: Box<serde_saphyr::Error>,
    },
    #[error("{path}: {source}")]
    Grace {
        path: PathBuf,
        source: crate::grace::GraceConfigError,
    },
    /// A webhook setting muster cannot use; `from` names where it was set,
    /// the source's field which setting (`webhook_url`, `webhook_ca_file`).
    #[error("{from}: pull_parallel must be at least 1")]
    PullParallel { from: String },
    #[error("{from}: telemetry_interval {value:?}: {message}; 0s turns sampling off")]
    TelemetryInterval {
        from: String,
        value: String,
        message: String,
    },
    #[error("{from}: {}: {}", source.field(), source.detail())]
    Webhook {
        from: String,
        source: crate::notify::NotifyError,
    },
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
        let grace = match &file.grace {
            Some(g) => {
                crate::grace::GraceConfig::from_file(g).map_err(|source| ConfigError::Grace {
                    path: config_path.clone().unwrap_or_default(),
                    source,
                })?
            }
            None => crate::grace::GraceConfig::default(),
        };
        let file_name = config_path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default();
        let webhook_url = with_source(
            &overrides.webhook_url,
            &file.webhook_url,
            "--webhook-url / MUSTER_WEBHOOK_URL",
            &file_name,
        )
        .filter(|(url, _)| !url.trim().is_empty());
        let webhook_ca_file = with_source(
            &overrides.webhook_ca_file,
            &file.webhook_ca_file,
            "--webhook-ca-file / MUSTER_WEBHOOK_CA_FILE",
            &file_name,
        );
        if let Some((url, from)) = &webhook_url {
            let target = crate::notify::WebhookTarget::parse(url).map_err(|source| {
                ConfigError::Webhook {
                    from: from.clone(),
                    source,
                }
            })?;
            target
                .tls(webhook_ca_file.as_ref().map(|(p, _)| p.as_path()))
                .map_err(|source| ConfigError::Webhook {
                    from: match (source.field(), &webhook_ca_file) {
                        ("webhook_ca_file", Some((_, ca_from))) => ca_from.clone(),
                        _ => from.clone(),
                    },
                    source,
                })?;
        }
        let pull_parallel = with_source(
            &overrides.pull_parallel,
            &file.pull_parallel,
            "--pull-parallel / MUSTER_PULL_PARALLEL",
            &file_name,
        );
        if let Some((0, from)) = &pull_parallel {
            return Err(ConfigError::PullParallel { from: from.clone() });
        }
        let pull_parallel = pull_parallel
            .map(|(n, _)| n)
            .unwrap_or(DEFAULT_PULL_PARALLEL);
        let telemetry_interval = match with_source(
            &overrides.telemetry_interval,
            &file.telemetry_interval,
            "--telemetry-interval / MUSTER_TELEMETRY_INTERVAL",
            &file_name,
        ) {
            Some((text, from)) => {
                crate::duration::parse(&text).map_err(|e| ConfigError::TelemetryInterval {
                    from,
                    value: text.clone(),
                    message: e.to_string(),
                })?
            }
            None => crate::supervisor::telemetry::DEFAULT_INTERVAL,
        };
        let webhook_url = webhook_url.map(|(url, _)| url);
        let webhook_ca_file = webhook_ca_file.map(|(path, _)| path);
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
                .filter(|l| !l.trim().is_empty()),
            probe_address: overrides
                .probe_address
                .or(file.probe_address)
                .unwrap_or_default(),
            state_file: overrides
                .state_file
                .clone()
                .or(file.state_file)
                .unwrap_or_else(default_state_file),
            services: file.services,
            config_path,
            grace,
            webhook_url,
            webhook_ca_file,
            pull_parallel,
            telemetry_interval,
        })
    }
}

/// The options of each part, from the resolved settings.
impl Settings {
    /// The durable store: Redis, else the state file.
    pub fn history(&self) -> HistoryOptions {
        HistoryOptions {
            redis_url: self.redis_url.clone(),
            namespace: self.namespace.clone(),
            state_file: self.state_file.clone(),
        }
    }

    /// The webhook (checked by [`Settings::resolve`]).
    pub fn notify(&self) -> NotifyOptions {
        NotifyOptions {
            webhook_url: self.webhook_url.clone(),
            webhook_ca_file: self.webhook_ca_file.clone(),
        }
    }

    /// The agent watcher: Redis, NATS (when set), the namespace.
    pub fn watcher(&self) -> WatcherConfig {
        let mut c = WatcherConfig::new(self.redis_url.clone(), self.namespace.clone());
        c.nats_url = self.nats_url.clone();
        c
    }

    /// The probe plan.
    pub fn plan(&self) -> PlanOptions {
        PlanOptions {
            services: self.services.clone(),
            probe_address: self.probe_address,
            config_path: self.config_path.clone(),
            watcher: self.watcher(),
        }
    }

    /// Grace tuning.
    pub fn grace_options(&self) -> GraceOptions {
        GraceOptions {
            config: self.grace.clone(),
            services: self.services.clone(),
            history: self.history(),
        }
    }

    /// The healer.
    pub fn heal(&self) -> HealConfig {
        HealConfig {
            services: self.services.clone(),
            history: self.history(),
            notify: self.notify(),
            telemetry: TelemetryOptions {
                interval: self.telemetry_interval,
                ..TelemetryOptions::default()
            },
        }
    }

    /// A rollout's readiness checks.
    pub fn readiness(&self) -> ReadinessOptions {
        ReadinessOptions {
            services: self.services.clone(),
            redis_url: self.redis_url.clone(),
            namespace: self.namespace.clone(),
        }
    }

    /// Image pulls (`up`, `muster pull`, `rollout --image`).
    pub fn pull(&self) -> PullOptions {
        PullOptions {
            parallel: self.pull_parallel,
        }
    }

    /// The health server of `project` (read from `compose_files`), and the
    /// addresses to bind, in order: `listen` as set, else the project's
    /// derived ports ([`crate::health::identity`]). `listen` in the options
    /// is the first of them until the CLI binds one.
    pub fn server(
        &self,
        project: &str,
        compose_files: &[PathBuf],
    ) -> Result<(ServerOptions, Vec<std::net::SocketAddr>), HealthError> {
        let addrs = match &self.listen {
            Some(listen) => vec![crate::health::parse_listen(listen)?],
            None => crate::health::identity::derived_addresses(project, &self.namespace),
        };
        let identity = crate::health::Identity {
            project: project.to_string(),
            namespace: self.namespace.clone(),
            compose_files: compose_files
                .iter()
                .map(|f| f.display().to_string())
                .collect(),
            pid: std::process::id(),
            listen: String::new(),
        };
        let options = ServerOptions {
            listen: addrs[0],
            identity: Some(identity),
            ..ServerOptions::default()
        };
        Ok((options, addrs))
    }
}

/// A setting and where it was set (for errors): the flag or its environment
/// variable, else the config file.
fn with_source<T: Clone>(
    flag: &Option<T>,
    in_file: &Option<T>,
    flag_name: &str,
    file_name: &str,
) -> Option<(T, String)> {
    match (flag, in_file) {
        (Some(v), _) => Some((v.clone(), flag_name.to_string())),
        (None, Some(v)) => Some((v.clone(), file_name.to_string())),
        (None, None) => None,
    }
}

/// `$XDG_STATE_HOME/muster/state.json`, else `~/.local/state/muster/state.json`,
/// else `.muster/state.json` in the working directory (no home, e.g. in a container).
pub fn default_state_file() -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var_os("HOME")
                .filter(|v| !v.is_empty())
                .map(|home| PathBuf::from(home).join(".local/state"))
        });
    match base {
        Some(base) => base.join("muster").join("state.json"),
        None => PathBuf::from(".muster").join("state.json"),
    }
}

fn read_config_file(path: &Path) -> Result<ConfigFile, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    serde_saphyr::from_str(&text).map_err(|source| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(source),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(settings.listen, None);
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

    /// The example the repository ships (config/muster.example.yaml) is a
    /// config file muster accepts as written.
    #[test]
    fn shipped_example_settings_load() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/muster.example.yaml");
        let settings = Settings::resolve(&Overrides {
            config: Some(path),
            ..Default::default()
        })
        .unwrap();
        assert_eq!(settings.namespace, "muster");
        assert!(settings.services["api"].probes.len() == 1);
    }

    #[test]
    fn pull_parallel_from_file_and_flag() {
        let dir = std::env::temp_dir().join(format!("muster-cfg-pull-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("muster.yaml");
        std::fs::write(&path, "pull_parallel: 2\n").unwrap();
        let with = |flag: Option<usize>| {
            Settings::resolve(&Overrides {
                config: Some(path.clone()),
                pull_parallel: flag,
                ..Default::default()
            })
        };
        assert_eq!(with(None).unwrap().pull().parallel, 2);
        assert_eq!(with(Some(8)).unwrap().pull().parallel, 8);
        let err = with(Some(0)).unwrap_err().to_string();
        assert!(
            err.contains("MUSTER_PULL_PARALLEL") && err.contains("at least 1"),
            "{err}"
        );
        std::fs::write(&path, "pull_parallel: 0\n").unwrap();
        let err = with(None).unwrap_err().to_string();
        assert!(
            err.contains("muster.yaml") && err.contains("pull_parallel"),
            "{err}"
        );
        let none = Settings::resolve(&Overrides::default()).unwrap();
        assert_eq!(none.pull().parallel, DEFAULT_PULL_PARALLEL);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn server_options_from_settings() {
        let mut settings = Settings {
            redis_url: DEFAULT_REDIS_URL.into(),
            nats_url: None,
            namespace: "muster".into(),
            listen: Some("0.0.0.0:8687".into()),
            services: Default::default(),
            config_path: None,
            probe_address: Default::default(),
            state_file: default_state_file(),
            grace: Default::default(),
            webhook_url: None,
            webhook_ca_file: None,
            pull_parallel: DEFAULT_PULL_PARALLEL,
            telemetry_interval: crate::supervisor::telemetry::DEFAULT_INTERVAL,
        };
        let (options, addrs) = settings.server("shop", &[]).unwrap();
        assert_eq!(options.listen, "0.0.0.0:8687".parse().unwrap());
        assert_eq!(addrs, vec![options.listen]);
        let id = options.identity.as_ref().unwrap();
        assert!(id.is_stack("shop", "muster"));
        assert_eq!(
            options.liveness_window,
            Some(crate::health::DEFAULT_LIVENESS_WINDOW)
        );
        settings.listen = None;
        let (options, addrs) = settings.server("shop", &[]).unwrap();
        assert_eq!(
            addrs,
            crate::health::identity::derived_addresses("shop", "muster")
        );
        assert_eq!(options.listen, addrs[0]);
        settings.listen = Some("nonsense".into());
        let e = settings.server("shop", &[]).unwrap_err().to_string();
        assert!(e.contains("\"nonsense\"") && e.contains("listen"), "{e}");
    }
}
