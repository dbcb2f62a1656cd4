//! `x-muster.probes`: one entry per probe, its kind with the kind's fields and
//! the timing every kind shares. The deserializer is hand-written so that a
//! misspelt key or a missing kind is an error that names the key.

use std::time::Duration;

use serde::{Deserialize, Serialize};

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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// For `rediss://`: a PEM file of the CA certificates to trust instead
    /// of the system's (as `redis-cli --cacert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// With `key_file`: a PEM client certificate (chain) for a server that
    /// requires one (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The PEM private key of `cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
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
    /// For `tls://` (and an `https://` monitor_url): a PEM file of the CA
    /// certificates to trust instead of the system's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// With `key_file`: a PEM client certificate (chain) for a server that
    /// requires one (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The PEM private key of `cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
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
    /// For `https://`: a PEM file of the CA certificates to trust instead of
    /// the system's (a stack's own CA; as `curl --cacert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<String>,
    /// With `key_file`: a PEM client certificate (chain) for a server that
    /// requires one (mutual TLS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cert_file: Option<String>,
    /// The PEM private key of `cert_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_file: Option<String>,
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

/// Keys a probe entry may have beside its kind.
const TIMING_KEYS: &[&str] = &[
    "period",
    "timeout",
    "success_threshold",
    "failure_threshold",
    "role",
];
const KIND_KEYS: &[&str] = &["redis", "nats", "http", "tcp", "exec", "docker", "agent"];

/// Hand-written so that an unknown kind, a misspelt timing key, two kinds in
/// one entry or no kind at all are errors that name the key (serde's
/// `flatten` would silently ignore `timeot:` and say only "no variant").
impl<'de> Deserialize<'de> for ProbeSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = ProbeSpec;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a probe: one of redis, nats, http, tcp, exec, docker, agent with its fields, plus optional period, timeout, success_threshold, failure_threshold, role")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ProbeSpec, A::Error> {
                use serde::de::Error;
                let mut kind: Option<ProbeKind> = None;
                let mut timing = ProbeTiming::default();
                while let Some(key) = map.next_key::<String>()? {
                    let parsed = match key.as_str() {
                        "redis" => Some(ProbeKind::Redis(map.next_value()?)),
                        "nats" => Some(ProbeKind::Nats(map.next_value()?)),
                        "http" => Some(ProbeKind::Http(map.next_value()?)),
                        "tcp" => Some(ProbeKind::Tcp(map.next_value()?)),
                        "exec" => Some(ProbeKind::Exec(map.next_value()?)),
                        "docker" => Some(ProbeKind::Docker(
                            map.next_value::<Option<DockerProbeSpec>>()?.unwrap_or_default(),
                        )),
                        "agent" => Some(ProbeKind::Agent(
                            map.next_value::<Option<AgentProbeSpec>>()?
                                .unwrap_or(AgentProbeSpec { name: None }),
                        )),
                        "period" => {
                            timing.period = map.next_value::<DurationText>()?.0;
                            None
                        }
                        "timeout" => {
                            timing.timeout = map.next_value::<DurationText>()?.0;
                            None
                        }
                        "success_threshold" => {
                            timing.success_threshold = map.next_value()?;
                            None
                        }
                        "failure_threshold" => {
                            timing.failure_threshold = map.next_value()?;
                            None
                        }
                        "role" => {
                            timing.role = map.next_value()?;
                            None
                        }
                        other => {
                            return Err(A::Error::custom(format!(
                                "unknown probe key `{other}`: a probe kind is one of {} and the other keys are {}",
                                KIND_KEYS.join(", "),
                                TIMING_KEYS.join(", ")
                            )))
                        }
                    };
                    if let Some(k) = parsed {
                        if let Some(first) = &kind {
                            return Err(A::Error::custom(format!(
                                "one probe entry has two kinds (`{}` and `{key}`): write them as two list items",
                                first.name()
                            )));
                        }
                        kind = Some(k);
                    }
                }
                let kind = kind.ok_or_else(|| {
                    A::Error::custom(format!(
                        "probe has no kind: add one of {}",
                        KIND_KEYS.join(", ")
                    ))
                })?;
                Ok(ProbeSpec { kind, timing })
            }
        }
        d.deserialize_map(V)
    }
}

/// A Go duration string, for the hand-written probe deserializer.
struct DurationText(Duration);

impl<'de> Deserialize<'de> for DurationText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::duration::serde_dur::deserialize(d).map(DurationText)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_yaml_shape() {
        let spec: ProbeSpec = serde_saphyr::from_str(
            "redis: { url: \"redis://redis:6379\", require: [ping, not_loading] }\nperiod: 2s\ntimeout: 500ms\nfailure_threshold: 5\nrole: liveness\n",
        )
        .unwrap();
        assert_eq!(spec.kind.name(), "redis");
        assert_eq!(spec.timing.period, Duration::from_secs(2));
        assert_eq!(spec.timing.timeout, Duration::from_millis(500));
        assert_eq!(spec.timing.failure_threshold, 5);
        assert_eq!(spec.timing.success_threshold, 1);
        assert_eq!(spec.timing.role, ProbeRole::Liveness);
        let docker: ProbeSpec = serde_saphyr::from_str("docker: {}\n").unwrap();
        assert_eq!(docker.kind, ProbeKind::Docker(DockerProbeSpec {}));
        // Round trip through JSON (the snapshot / config printers use Serialize).
        let json = serde_json::to_string(&spec).unwrap();
        assert!(
            json.contains("\"redis\"") && json.contains("\"period\":\"2s\""),
            "{json}"
        );
    }

    #[test]
    fn probe_yaml_errors_name_the_key() {
        let err = |y: &str| {
            serde_saphyr::from_str::<ProbeSpec>(y)
                .unwrap_err()
                .to_string()
        };
        let e = err("rediss: { url: x }\n");
        assert!(e.contains("unknown probe key `rediss`"), "{e}");
        let e = err("redis: { url: x }\ntimeot: 1s\n");
        assert!(e.contains("`timeot`"), "{e}");
        let e = err("redis: { url: x }\ntcp: { address: \"a:1\" }\n");
        assert!(e.contains("two kinds"), "{e}");
        let e = err("timeout: 1s\n");
        assert!(e.contains("no kind"), "{e}");
        let e = err("tcp: { adress: \"a:1\" }\n");
        assert!(e.contains("adress"), "{e}");
        let e = err("http: { url: x }\nrole: warmup\n");
        assert!(e.contains("warmup"), "{e}");
    }
}
