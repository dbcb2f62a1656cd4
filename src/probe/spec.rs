//! The `x-muster:` block of a service: probes and grace settings, as written
//! in a compose file or config/muster.yaml.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything muster reads from a service's `x-muster:` key.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MusterService {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub probes: Vec<ProbeSpec>,
    /// `auto` (default), a duration, or `off`.
    #[serde(default)]
    pub grace: GraceSetting,
    /// A service that is not required does not hold /readyz or `muster status` at not-ready.
    #[serde(default = "default_true")]
    pub required: bool,
}

fn default_true() -> bool {
    true
}

/// `x-muster.grace`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum GraceSetting {
    /// Tune from the declared start_period, image size and learned history.
    #[default]
    Auto,
    /// Exactly this start period.
    Fixed(Duration),
    /// No grace: probe failures count from the first second.
    Off,
}

impl Serialize for GraceSetting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            GraceSetting::Auto => s.serialize_str("auto"),
            GraceSetting::Off => s.serialize_str("off"),
            GraceSetting::Fixed(d) => s.serialize_str(&crate::duration::format(*d)),
        }
    }
}

impl<'de> Deserialize<'de> for GraceSetting {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "auto" => Ok(GraceSetting::Auto),
            "off" => Ok(GraceSetting::Off),
            other => crate::duration::parse(other)
                .map(GraceSetting::Fixed)
                .map_err(|e| {
                    serde::de::Error::custom(format!("grace must be auto, off or a duration: {e}"))
                }),
        }
    }
}

/// What a probe's result is used for, as Kubernetes names them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeRole {
    /// Runs until the first success; failures before that never count as unready.
    Startup,
    /// Decides ready / unready.
    #[default]
    Readiness,
    /// Decides whether the container is restarted.
    Liveness,
}

/// Timing shared by every probe kind.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeTiming {
    #[serde(default = "default_period", with = "crate::duration::serde_dur")]
    pub period: Duration,
    #[serde(default = "default_timeout", with = "crate::duration::serde_dur")]
    pub timeout: Duration,
    #[serde(default = "one")]
    pub success_threshold: u32,
    #[serde(default = "three")]
    pub failure_threshold: u32,
    #[serde(default)]
    pub role: ProbeRole,
}

impl Default for ProbeTiming {
    fn default() -> Self {
        ProbeTiming {
            period: default_period(),
            timeout: default_timeout(),
            success_threshold: 1,
            failure_threshold: 3,
            role: ProbeRole::Readiness,
        }
    }
}

fn default_period() -> Duration {
    Duration::from_secs(1)
}
fn default_timeout() -> Duration {
    Duration::from_secs(1)
}
fn one() -> u32 {
    1
}
fn three() -> u32 {
    3
}

/// One probe: its kind with the kind's fields, and its timing.
///
/// In YAML: `- redis: { url: "redis://redis:6379", require: [ping, not_loading] }`
/// with optional `period`, `timeout`, `success_threshold`, `failure_threshold`,
/// `role` beside the kind key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbeSpec {
    #[serde(flatten)]
    pub kind: ProbeKind,
    #[serde(flatten)]
    pub timing: ProbeTiming,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeKind {
    Redis(RedisProbeSpec),
    Nats(NatsProbeSpec),
    Http(HttpProbeSpec),
    Tcp(TcpProbeSpec),
    Exec(ExecProbeSpec),
    Docker(DockerProbeSpec),
    Agent(AgentProbeSpec),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisProbeSpec {
    /// `redis://[user:pass@]host:port[/db]` or `rediss://…`.
    pub url: String,
    /// Checks beyond connecting: `ping`, `not_loading` (default: both).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub require: Vec<String>,
    /// `master` or `replica`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// A replica's link to its master must be up.
    #[serde(default)]
    pub replication_link_up: bool,
    /// This key must exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_exists: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsProbeSpec {
    /// `nats://[user:pass@|token@]host:port` or `tls://…`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default)]
    pub jetstream: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// Monitoring endpoint (`http://nats:8222`): probe `/healthz?js-enabled-only=true` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpProbeSpec {
    pub url: String,
    /// `GET` (default) or `HEAD`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub method: Option<String>,
    /// Accepted status codes as `"200-399"` (default) or `"200"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body_contains: Option<String>,
    /// `{ pointer: "/status", equals: "ok" }` against a JSON body.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<JsonMatch>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonMatch {
    pub pointer: String,
    pub equals: serde_json::Value,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TcpProbeSpec {
    /// `host:port`.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecProbeSpec {
    /// argv run inside the service's container through the Engine API.
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DockerProbeSpec {}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentProbeSpec {
    /// Agent name in the ready-signal protocol (defaults to the service name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ProbeKind {
    /// The kind's key in YAML: `redis`, `nats`, `http`, `tcp`, `exec`, `docker`, `agent`.
    pub fn name(&self) -> &'static str {
        match self {
            ProbeKind::Redis(_) => "redis",
            ProbeKind::Nats(_) => "nats",
            ProbeKind::Http(_) => "http",
            ProbeKind::Tcp(_) => "tcp",
            ProbeKind::Exec(_) => "exec",
            ProbeKind::Docker(_) => "docker",
            ProbeKind::Agent(_) => "agent",
        }
    }
}
