//! Rollout options: what the operator asked for (flags), the service's
//! `deploy.update_config` / `deploy.rollback_config` (Swarm's names),
//! `x-muster-rollout` (muster's own), and the defaults — strongest first —
//! resolved into one [`RolloutOptions`], with the guard rails checked.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::compose::{Service, UpdateConfig};
use crate::duration;

/// The service extension key for muster-only rollout settings.
pub const EXTENSION: &str = "x-muster-rollout";

/// start-first: a new container is up and ready before an old one stops
/// (capacity is kept). stop-first: an old container stops first (needed when
/// two cannot run at once: a fixed host port, `container_name`, a fixed IP).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Order {
    StartFirst,
    StopFirst,
}

impl Order {
    pub fn as_str(self) -> &'static str {
        match self {
            Order::StartFirst => "start-first",
            Order::StopFirst => "stop-first",
        }
    }
}

/// An `--order` value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not start-first or stop-first")]
pub struct OrderError(pub String);

impl std::str::FromStr for Order {
    type Err = OrderError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "start-first" => Ok(Order::StartFirst),
            "stop-first" => Ok(Order::StopFirst),
            other => Err(OrderError(other.to_string())),
        }
    }
}

/// What happens when more containers failed than `max_failure_ratio` allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailureAction {
    /// Return every container to the revision that ran before (automatic rollback).
    Rollback,
    /// Stop where it is: replaced containers stay, the rest keep the old revision.
    Pause,
    /// Keep the old container in each slot whose new one failed, and go on.
    Continue,
}

impl FailureAction {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureAction::Rollback => "rollback",
            FailureAction::Pause => "pause",
            FailureAction::Continue => "continue",
        }
    }
}

/// A `--failure-action` value that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not rollback, pause or continue")]
pub struct FailureActionError(pub String);

impl std::str::FromStr for FailureAction {
    type Err = FailureActionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rollback" => Ok(FailureAction::Rollback),
            "pause" => Ok(FailureAction::Pause),
            "continue" => Ok(FailureAction::Continue),
            other => Err(FailureActionError(other.to_string())),
        }
    }
}

/// A hook run against an old container before it is taken out of the
/// service's DNS name, so a proxy (or the app itself) can drain it.
/// `{container}`, `{id}`, `{ip}`, `{service}` and `{number}` are replaced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PreStop {
    /// An HTTP request muster sends (`GET` unless a method is given).
    Http { method: String, url: String },
    /// A command run inside the old container (`sh -c`), as Kubernetes' preStop exec.
    Exec { command: String },
}

/// Why a `pre_stop` HTTP request could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PreStopError {
    #[error("method {0:?} is not GET, POST, PUT, DELETE or HEAD")]
    Method(String),
    #[error("{0:?} is not an http:// URL (https is not supported)")]
    NotHttp(String),
}

impl PreStop {
    /// `"[METHOD ]http://host:port/path"`.
    pub fn http(text: &str) -> Result<PreStop, PreStopError> {
        let text = text.trim();
        let (method, url) = match text.split_once(char::is_whitespace) {
            Some((m, u)) => (m.to_ascii_uppercase(), u.trim().to_string()),
            None => ("GET".to_string(), text.to_string()),
        };
        if !matches!(method.as_str(), "GET" | "POST" | "PUT" | "DELETE" | "HEAD") {
            return Err(PreStopError::Method(method));
        }
        if !url.starts_with("http://") {
            return Err(PreStopError::NotHttp(url));
        }
        Ok(PreStop::Http { method, url })
    }

    pub fn describe(&self) -> String {
        match self {
            PreStop::Http { method, url } => format!("{method} {url}"),
            PreStop::Exec { command } => format!("exec sh -c {command:?}"),
        }
    }
}

/// What the operator gave on the command line; `None` = not given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RolloutFlags {
    pub parallelism: Option<u32>,
    pub order: Option<Order>,
    pub monitor: Option<Duration>,
    pub max_unavailable: Option<u32>,
    pub failure_action: Option<FailureAction>,
    pub max_failure_ratio: Option<f64>,
    pub progress_deadline: Option<Duration>,
    pub history_limit: Option<u32>,
    pub delay: Option<Duration>,
    pub drain: Option<Duration>,
    pub pre_stop: Option<PreStop>,
    /// On failure go back to the last revision that was healthy, not merely the previous one.
    pub auto_revert: bool,
    /// Turn refusals of the guard rails into warnings; roll out even when nothing changed.
    pub force: bool,
}

/// The options a rollout runs with (stored in the in-progress record, so a
/// recovered rollout goes on exactly as it started).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RolloutOptions {
    /// Containers replaced at once (0 = all at once).
    pub parallelism: u32,
    pub order: Order,
    /// How long each new container must stay ready after it joined.
    #[serde(with = "crate::duration::serde_dur")]
    pub monitor: Duration,
    /// stop-first: how many containers may be down at once.
    pub max_unavailable: u32,
    pub failure_action: FailureAction,
    /// Failed containers tolerated, as a fraction of the replicas (0 = none).
    pub max_failure_ratio: f64,
    /// How long one new container may take to become ready.
    #[serde(with = "crate::duration::serde_dur")]
    pub progress_deadline: Duration,
    pub history_limit: u32,
    /// Pause between batches.
    #[serde(with = "crate::duration::serde_dur")]
    pub delay: Duration,
    /// How long an old container keeps serving after it left the service's DNS name.
    #[serde(with = "crate::duration::serde_dur")]
    pub drain: Duration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pre_stop: Option<PreStop>,
    pub auto_revert: bool,
    pub force: bool,
    /// Where each value came from (`flag`, `update_config`, `x-muster-rollout`, `default`).
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
}

/// Defaults (documented in docs/readme/rollout.md).
pub const DEFAULT_MONITOR: Duration = Duration::from_secs(5);
pub const DEFAULT_PROGRESS_DEADLINE: Duration = Duration::from_secs(600);
pub const DEFAULT_HISTORY_LIMIT: u32 = 10;
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(2);

/// `x-muster-rollout:` on a service.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Extension {
    #[serde(default, with = "crate::duration::serde_opt")]
    drain: Option<Duration>,
    #[serde(default, with = "crate::duration::serde_opt")]
    progress_deadline: Option<Duration>,
    max_unavailable: Option<u32>,
    history_limit: Option<u32>,
    auto_revert: Option<bool>,
    pre_stop: Option<ExtPreStop>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
enum ExtPreStop {
    Http(String),
    Exec(String),
}

/// Why a service's rollout settings cannot be used: each names the flag or
/// the compose key, and what to give instead.
#[derive(Debug, thiserror::Error)]
pub enum OptionsError {
    #[error("services.{service}.{EXTENSION}: {source}")]
    Extension {
        service: String,
        #[source]
        source: serde_json::Error,
    },
    /// A compose key with a value that cannot be used (`path` is the whole key).
    #[error("{path}: {message}")]
    Key { path: String, message: String },
    #[error("--max-failure-ratio {0}: must be between 0 and 1 (a fraction of the replicas)")]
    FailureRatio(f64),
    #[error(
        "--order stop-first takes containers down before their replacements are ready, \
         so --max-unavailable must be at least 1 (it is 0); use --order start-first to keep capacity"
    )]
    StopFirstWithoutUnavailable,
    #[error(
        "--history-limit {0}: must be at least 2 (the running revision and the one to go back to)"
    )]
    HistoryLimit(u32),
    #[error("--progress-deadline must be more than 0s")]
    ZeroProgressDeadline,
    /// The monitor window is shorter than the readiness check needs to fail once.
    #[error("{shortfall}; give --monitor {required} or more, or --force")]
    MonitorTooShort { shortfall: String, required: String },
}

fn extension(service: &Service) -> Result<Extension, OptionsError> {
    match service.extensions.get(EXTENSION) {
        None => Ok(Extension::default()),
        Some(value) => {
            serde_json::from_value(value.clone()).map_err(|source| OptionsError::Extension {
                service: service.name.clone(),
                source,
            })
        }
    }
}

/// Resolves flags over the compose file over defaults. `rollback` reads
/// `deploy.rollback_config` first (then `update_config`), as Swarm does.
pub fn resolve(
    flags: &RolloutFlags,
    service: &Service,
    rollback: bool,
) -> Result<RolloutOptions, OptionsError> {
    let deploy = service.deploy.clone().unwrap_or_default();
    let (config, config_name) = match (rollback, &deploy.rollback_config) {
        (true, Some(c)) => (c.clone(), "rollback_config"),
        _ => (
            deploy.update_config.clone().unwrap_or_default(),
            "update_config",
        ),
    };
    let ext = extension(service)?;
    let mut sources = BTreeMap::new();
    let mut pick = |name: &str, flag: bool, file: bool, ext: bool| {
        let from = if flag {
            "flag"
        } else if file {
            config_name
        } else if ext {
            EXTENSION
        } else {
            "default"
        };
        sources.insert(name.to_string(), from.to_string());
    };
    let UpdateConfig {
        parallelism,
        delay,
        failure_action,
        monitor,
        max_failure_ratio,
        order,
    } = config;
    pick(
        "parallelism",
        flags.parallelism.is_some(),
        parallelism.is_some(),
        false,
    );
    pick("order", flags.order.is_some(), order.is_some(), false);
    pick("monitor", flags.monitor.is_some(), monitor.is_some(), false);
    pick(
        "failure_action",
        flags.failure_action.is_some(),
        failure_action.is_some(),
        false,
    );
    pick(
        "max_failure_ratio",
        flags.max_failure_ratio.is_some(),
        max_failure_ratio.is_some(),
        false,
    );
    pick("delay", flags.delay.is_some(), delay.is_some(), false);
    pick(
        "max_unavailable",
        flags.max_unavailable.is_some(),
        false,
        ext.max_unavailable.is_some(),
    );
    pick(
        "progress_deadline",
        flags.progress_deadline.is_some(),
        false,
        ext.progress_deadline.is_some(),
    );
    pick(
        "history_limit",
        flags.history_limit.is_some(),
        false,
        ext.history_limit.is_some(),
    );
    pick("drain", flags.drain.is_some(), false, ext.drain.is_some());
    pick(
        "pre_stop",
        flags.pre_stop.is_some(),
        false,
        ext.pre_stop.is_some(),
    );

    let order = match flags.order {
        Some(o) => o,
        None => match order.as_deref() {
            Some(text) => text.parse::<Order>().map_err(|e| OptionsError::Key {
                path: format!("services.{}.deploy.{config_name}.order", service.name),
                message: e.to_string(),
            })?,
            None => Order::StartFirst,
        },
    };
    let failure_action = match flags.failure_action {
        Some(a) => a,
        None => match failure_action.as_deref() {
            Some(text) => text
                .parse()
                .map_err(|e: FailureActionError| OptionsError::Key {
                    path: format!(
                        "services.{}.deploy.{config_name}.failure_action",
                        service.name
                    ),
                    message: e.to_string(),
                })?,
            None => FailureAction::Rollback,
        },
    };
    let parallelism = flags.parallelism.or(parallelism).unwrap_or(1);
    let max_failure_ratio = flags.max_failure_ratio.or(max_failure_ratio).unwrap_or(0.0);
    if !(0.0..=1.0).contains(&max_failure_ratio) || max_failure_ratio.is_nan() {
        return Err(OptionsError::FailureRatio(max_failure_ratio));
    }
    let max_unavailable = flags
        .max_unavailable
        .or(ext.max_unavailable)
        .unwrap_or(match order {
            Order::StartFirst => 0,
            Order::StopFirst => parallelism.max(1),
        });
    if order == Order::StopFirst && max_unavailable == 0 {
        return Err(OptionsError::StopFirstWithoutUnavailable);
    }
    let history_limit = flags
        .history_limit
        .or(ext.history_limit)
        .unwrap_or(DEFAULT_HISTORY_LIMIT);
    if history_limit < 2 {
        return Err(OptionsError::HistoryLimit(history_limit));
    }
    let progress_deadline = flags
        .progress_deadline
        .or(ext.progress_deadline)
        .unwrap_or(DEFAULT_PROGRESS_DEADLINE);
    if progress_deadline.is_zero() {
        return Err(OptionsError::ZeroProgressDeadline);
    }
    let pre_stop = match (&flags.pre_stop, &ext.pre_stop) {
        (Some(p), _) => Some(p.clone()),
        (None, Some(ExtPreStop::Http(text))) => {
            Some(PreStop::http(text).map_err(|e| OptionsError::Key {
                path: format!("services.{}.{EXTENSION}.pre_stop.http", service.name),
                message: e.to_string(),
            })?)
        }
        (None, Some(ExtPreStop::Exec(command))) => Some(PreStop::Exec {
            command: command.clone(),
        }),
        (None, None) => None,
    };
    Ok(RolloutOptions {
        parallelism,
        order,
        // The default is settled against the readiness timing (see `check_monitor`).
        monitor: flags.monitor.or(monitor).unwrap_or(Duration::ZERO),
        max_unavailable,
        failure_action,
        max_failure_ratio,
        progress_deadline,
        history_limit,
        delay: flags.delay.or(delay).unwrap_or(Duration::ZERO),
        drain: flags.drain.or(ext.drain).unwrap_or(DEFAULT_DRAIN),
        pre_stop,
        auto_revert: flags.auto_revert || ext.auto_revert.unwrap_or(false),
        force: flags.force,
        sources,
    })
}

impl RolloutOptions {
    /// Settles the monitor window against the shortest window in which the
    /// container's readiness check can fail at all (`required`, with the
    /// reason). A monitor that was given and is shorter is refused, or with
    /// `--force` kept with a warning (returned). Unset, it becomes
    /// `max(5s, required)`.
    pub fn check_monitor(
        &mut self,
        required: Option<(Duration, String)>,
    ) -> Result<Option<String>, OptionsError> {
        let given = self.sources.get("monitor").map(String::as_str) != Some("default");
        let Some((required, why)) = required else {
            if !given {
                self.monitor = DEFAULT_MONITOR;
            }
            return Ok(None);
        };
        if !given {
            self.monitor = DEFAULT_MONITOR.max(required);
            return Ok(None);
        }
        if self.monitor >= required {
            return Ok(None);
        }
        let message = format!(
            "monitor {} is shorter than {} ({why}): a new container would be declared good before its check could fail once",
            duration::format(self.monitor),
            duration::format(required),
        );
        if self.force {
            Ok(Some(format!("{message} (kept because of --force)")))
        } else {
            Err(OptionsError::MonitorTooShort {
                shortfall: message,
                required: duration::format(required),
            })
        }
    }

    /// The failures tolerated before the failure action, out of `total` replacements.
    pub fn allowed_failures(&self, total: u32) -> u32 {
        (self.max_failure_ratio * total as f64 + 1e-9).floor() as u32
    }

    /// One line for humans: `start-first, 1 at a time, monitor 5s, on failure rollback`.
    pub fn describe(&self) -> String {
        let batch = if self.parallelism == 0 {
            "all at once".to_string()
        } else {
            format!("{} at a time", self.parallelism)
        };
        let mut out = format!(
            "{}, {batch}, monitor {}, on failure {}",
            self.order.as_str(),
            duration::format(self.monitor),
            self.failure_action.as_str()
        );
        if self.max_failure_ratio > 0.0 {
            out.push_str(&format!(
                " (tolerating {:.0}% failures)",
                self.max_failure_ratio * 100.0
            ));
        }
        if self.order == Order::StopFirst {
            out.push_str(&format!(", max unavailable {}", self.max_unavailable));
        }
        if !self.drain.is_zero() {
            out.push_str(&format!(", drain {}", duration::format(self.drain)));
        }
        if let Some(hook) = &self.pre_stop {
            out.push_str(&format!(", pre-stop {}", hook.describe()));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::Deploy;

    fn service() -> Service {
        Service {
            name: "web".into(),
            image: Some("web:1".into()),
            replicas: 3,
            ..Default::default()
        }
    }

    #[test]
    fn flags_beat_update_config_beat_defaults() {
        let mut s = service();
        s.deploy = Some(Deploy {
            update_config: Some(UpdateConfig {
                parallelism: Some(2),
                order: Some("stop-first".into()),
                monitor: Some(Duration::from_secs(9)),
                ..Default::default()
            }),
            rollback_config: Some(UpdateConfig {
                parallelism: Some(3),
                ..Default::default()
            }),
            ..Default::default()
        });
        let o = resolve(&RolloutFlags::default(), &s, false).unwrap();
        assert_eq!(o.parallelism, 2);
        assert_eq!(o.order, Order::StopFirst);
        assert_eq!(o.max_unavailable, 2);
        assert_eq!(o.failure_action, FailureAction::Rollback);
        assert_eq!(o.sources["order"], "update_config");
        let flags = RolloutFlags {
            order: Some(Order::StartFirst),
            ..Default::default()
        };
        let o = resolve(&flags, &s, false).unwrap();
        assert_eq!((o.order, o.max_unavailable), (Order::StartFirst, 0));
        assert_eq!(o.sources["order"], "flag");
        let o = resolve(&RolloutFlags::default(), &s, true).unwrap();
        assert_eq!(o.parallelism, 3);
        assert_eq!(o.sources["parallelism"], "rollback_config");
    }

    #[test]
    fn guard_rails() {
        let s = service();
        let flags = RolloutFlags {
            order: Some(Order::StopFirst),
            max_unavailable: Some(0),
            ..Default::default()
        };
        assert!(resolve(&flags, &s, false)
            .unwrap_err()
            .to_string()
            .contains("--max-unavailable"));
        let flags = RolloutFlags {
            max_failure_ratio: Some(1.5),
            ..Default::default()
        };
        assert!(resolve(&flags, &s, false).is_err());

        let need = Some((
            Duration::from_secs(30),
            "interval 10s × retries 3".to_string(),
        ));
        let mut o = resolve(
            &RolloutFlags {
                monitor: Some(Duration::from_secs(5)),
                ..Default::default()
            },
            &s,
            false,
        )
        .unwrap();
        let e = o.check_monitor(need.clone()).unwrap_err().to_string();
        assert!(
            e.contains("--monitor 30s") && e.contains("retries 3"),
            "{e}"
        );
        o.force = true;
        assert!(o.check_monitor(need.clone()).unwrap().is_some());
        let mut o = resolve(&RolloutFlags::default(), &s, false).unwrap();
        o.check_monitor(need).unwrap();
        assert_eq!(o.monitor, Duration::from_secs(30));
        let mut o = resolve(&RolloutFlags::default(), &s, false).unwrap();
        o.check_monitor(None).unwrap();
        assert_eq!(o.monitor, DEFAULT_MONITOR);
        assert_eq!(o.allowed_failures(3), 0);
        o.max_failure_ratio = 0.34;
        assert_eq!(o.allowed_failures(3), 1);
    }

    #[test]
    fn extension_and_pre_stop() {
        let mut s = service();
        s.extensions.insert(
            EXTENSION.into(),
            serde_json::json!({"drain": "3s", "pre_stop": {"http": "POST http://proxy:9000/drain/{container}"}}),
        );
        let o = resolve(&RolloutFlags::default(), &s, false).unwrap();
        assert_eq!(o.drain, Duration::from_secs(3));
        assert_eq!(
            o.pre_stop,
            Some(PreStop::Http {
                method: "POST".into(),
                url: "http://proxy:9000/drain/{container}".into()
            })
        );
        s.extensions
            .insert(EXTENSION.into(), serde_json::json!({"drian": "3s"}));
        let e = resolve(&RolloutFlags::default(), &s, false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("x-muster-rollout") && e.contains("drian"), "{e}");
        assert!(PreStop::http("FETCH http://x").is_err());
        assert!(PreStop::http("https://x").is_err());
    }
}
