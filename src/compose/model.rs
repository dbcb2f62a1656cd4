//! The normalised compose model: what every other module reads.
//!
//! Long and short syntaxes are folded into one shape here, durations are
//! parsed, and defaults that Docker applies are made explicit.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use super::blkio::*;
pub use super::devices::*;
pub use super::volume_mount::*;
use super::xmuster::MusterService;

/// A loaded, merged, interpolated compose project.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Project {
    /// Project name (`name:`, `-p`, `COMPOSE_PROJECT_NAME`, or the directory name).
    pub name: String,
    /// Directory that relative paths resolve against.
    pub working_dir: PathBuf,
    /// The files that were merged, in order.
    pub config_files: Vec<PathBuf>,
    /// Services that are active under the selected profiles.
    pub services: BTreeMap<String, Service>,
    /// Services left out because their profiles were not selected.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub disabled_services: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, Network>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub volumes: BTreeMap<String, Volume>,
    /// Top-level `secrets:` (their values are never serialised).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub secrets: BTreeMap<String, super::objects::FileObject>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub configs: BTreeMap<String, super::objects::FileObject>,
    /// Top-level `x-*` extensions, kept as they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, serde_json::Value>,
}

/// A service name the project does not have (given on the command line or
/// asked of a running muster). The one error for it, wherever it is found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no such service: {name} (project {project} has: {known}){hint}")]
pub struct UnknownService {
    pub name: String,
    pub project: String,
    /// The project's services, comma-separated.
    pub known: String,
    /// Why, when the name is a service its profiles leave out.
    pub hint: String,
}

impl Project {
    /// The service called `name`, or an error that lists the ones there are.
    pub fn service(&self, name: &str) -> Result<&Service, UnknownService> {
        self.services.get(name).ok_or_else(|| self.unknown(name))
    }

    /// The error for a name this project has no service for.
    pub fn unknown(&self, name: &str) -> UnknownService {
        let hint = if self.disabled_services.iter().any(|s| s == name) {
            "; it is defined but not enabled by the selected profiles: \
             add its profile with --profile or COMPOSE_PROFILES"
                .to_string()
        } else {
            String::new()
        };
        UnknownService {
            name: name.to_string(),
            project: self.name.clone(),
            known: self.services.keys().cloned().collect::<Vec<_>>().join(", "),
            hint,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Service {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// `build:`; when there is no `image:`, `image` is `<project>-<service>` (Compose's name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<Build>,
    /// `pull_policy:`; `None` when the file does not set one (`up` then pulls
    /// a missing image, `muster pull` pulls always, as Compose does).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pull_policy: Option<PullPolicy>,
    /// `command:` as an argv; a string form is split with shell-word rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// `KEY` -> value; `None` means "KEY" listed without a value and not set in the environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub environment: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_file: Vec<EnvFile>,
    /// `labels:` over the values of `label_file:`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `label_file:` paths, absolute; their labels are already in `labels`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub label_file: Vec<PathBuf>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ports: Vec<Port>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<VolumeMount>,
    /// Networks the service joins; an empty map means the project's `default` network.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub networks: BTreeMap<String, ServiceNetwork>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub depends_on: BTreeMap<String, Dependency>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<Healthcheck>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy: Option<Deploy>,
    /// Replica count: `deploy.replicas`, else `scale`, else 1.
    pub replicas: u32,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub profiles: Vec<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::serde_opt"
    )]
    pub stop_grace_period: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes_from: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_mode: Option<String>,
    /// `secrets:` the service's containers get (files under /run/secrets).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<super::objects::FileRef>,
    /// `configs:` the service's containers get (files at / or their target).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub configs: Vec<super::objects::FileRef>,
    /// muster's own settings from `x-muster:` (probes, grace).
    #[serde(default, rename = "x-muster", skip_serializing_if = "Option::is_none")]
    pub muster: Option<MusterService>,
    /// Other `x-*` keys of the service, kept as they were.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extensions: BTreeMap<String, serde_json::Value>,
    /// How the file wrote what this model folds together, for Compose's
    /// own JSON shape of the service (and so its config hash).
    #[serde(skip)]
    pub written: Written,
    /// Container runtime keys (`cap_add`, `dns`, `sysctls`, `ulimits`,
    /// `logging`, …), in Compose's JSON shape; applied when creating containers.
    #[serde(flatten)]
    pub runtime: Runtime,
}

/// The service keys that shape the container's runtime, as the Compose
/// specification names them. Each is applied by `up` (engine/translate.rs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Runtime {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_add: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cap_drop: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_opt: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dns_search: Vec<String>,
    /// `host=ip` entries, sorted (compose-go HostsList's JSON form).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub group_add: Vec<String>,
    /// `gpus:` (`all` is one request with count -1).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gpus: Vec<DeviceRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logging: Option<Logging>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub privileged: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub security_opt: Vec<String>,
    /// Bytes of /dev/shm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub stdin_open: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub sysctls: BTreeMap<String, String>,
    /// `path[:options]` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tmpfs: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tty: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub ulimits: BTreeMap<String, Ulimit>,
    /// `devices:` as `host[:container[:permissions]]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<Device>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_cgroup_rules: Vec<String>,
    /// `expose:` ports (`"3000"`, `"8000-8010/udp"`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub expose: Vec<String>,
    /// Memory keys in bytes; `mem_swappiness` 0..=100.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_limit: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_reservation: Option<u64>,
    /// `-1` = unlimited swap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memswap_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_swappiness: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_shares: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_quota: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_period: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_rt_runtime: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpuset: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids_limit: Option<i64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub oom_kill_disable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oom_score_adj: Option<i64>,
    /// Namespace and cgroup modes, runtime, names (`pid: host`, `ipc`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<String>,
    /// `platform:` (`os[/arch[/variant]]`), create's `platform` parameter.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uts: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userns_mode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup_parent: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domainname: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub storage_opt: BTreeMap<String, String>,
    /// OCI annotations of the container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blkio_config: Option<BlkioConfig>,
    /// Containers outside the project to link (`name[:alias]`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub external_links: Vec<String>,
}

/// One `devices:` entry (compose-go DeviceMapping).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Device {
    pub source: String,
    pub target: String,
    pub permissions: String,
}

/// `logging:` (driver and its options).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Logging {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One `ulimits:` entry: a single value (soft = hard) or soft and hard.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum Ulimit {
    Single(i64),
    Pair { soft: i64, hard: i64 },
}

/// What the normalised model does not keep but Compose's JSON shows:
/// compose-go gives a short-syntax volume an empty `bind`/`volume` object
/// (format/volume.go populateType) and a long one none; it keeps only the
/// healthcheck fields the file set (muster fills in Docker's defaults); and a
/// network listed by name (or with no settings) is `null`, not `{}`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Written {
    /// Per entry of `volumes`: written in the short `src:dst[:mode]` syntax.
    pub short_volumes: Vec<bool>,
    /// The `healthcheck:` keys the file set (`test`, `interval`, …).
    pub healthcheck_fields: Vec<String>,
    /// Networks written as a list item or as a key with no value.
    pub null_networks: Vec<String>,
}

/// A service's `build:` as the Compose specification has it. muster builds
/// through the Engine's classic build API (`muster build`, `up --build`);
/// keys that API cannot apply are kept in `unapplied` and warned about.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Build {
    /// The context directory, absolute (a URL is kept as written and refused when building).
    pub context: String,
    /// The Dockerfile, relative to the context (or absolute); `None` = `Dockerfile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile: Option<String>,
    /// A Dockerfile given in the compose file itself (wins over `dockerfile`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dockerfile_inline: Option<String>,
    /// Build arguments; `None` = listed without a value and not set in the environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub args: BTreeMap<String, Option<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra names for the built image (besides the service's image name).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cache_from: Vec<String>,
    /// Network mode of the `RUN` steps (`host`, `none`, `default`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<String>,
    /// `host:ip` entries added to the `RUN` steps' /etc/hosts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_hosts: Vec<String>,
    /// Bytes of /dev/shm for the `RUN` steps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shm_size: Option<u64>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_cache: bool,
    /// Always pull the `FROM` images.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pull: bool,
    /// `ssh:` as compose-go prints it: `id` or `id=path` (BuildKit only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ssh: Vec<String>,
    /// `additional_contexts:` name -> absolute path or URL (BuildKit only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub additional_contexts: BTreeMap<String, String>,
    /// `secrets:` granted to the build (BuildKit only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<super::objects::FileRef>,
    /// `platforms:`; the first one is passed to the engine.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    /// True when the service has no `image:` and its image is named
    /// `<project>-<service>` by muster (as Compose does): there is nothing to pull.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub local_image: bool,
    /// Compose-spec build keys set in the file that the engine's build API
    /// cannot apply (`ssh`, `secrets`, …); warned about when loading.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unapplied: Vec<String>,
    /// Where `build.context` (or `build:`) is written, `file:line:col`, for errors
    /// found when building (a missing directory, a git URL).
    #[serde(skip)]
    pub origin: String,
}

/// `pull_policy:` as Compose reads it. `if_not_present` is `missing`;
/// `daily`, `weekly` and `every_<duration>` are [`PullPolicy::Refresh`]:
/// pull when the image is missing or was last pulled (tagged) longer ago than
/// the period, as docker compose's `mustPull` compares the image's
/// `LastTagTime`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
    Build,
    Refresh(Duration),
}

/// The values `pull_policy:` accepts, for error messages.
pub const PULL_POLICIES: &str =
    "always, missing, never, build, if_not_present, daily, weekly, every_<duration> (every_12h)";

/// A `pull_policy:` value (or `up --pull`'s) that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PullPolicyError {
    /// The `every_<duration>` period does not parse (said in the text, so
    /// it is no separate cause).
    #[error("invalid pull_policy {value:?}: {error}")]
    Period {
        value: String,
        error: crate::duration::DurationError,
    },
    #[error("invalid pull_policy {value:?}: the period must be above 0")]
    ZeroPeriod { value: String },
    #[error("invalid pull_policy {value:?} (expected one of {PULL_POLICIES})")]
    Unknown { value: String },
}

impl PullPolicy {
    /// Parses a `pull_policy:` value (or `up --pull`'s).
    pub fn parse(text: &str) -> Result<PullPolicy, PullPolicyError> {
        const DAY: u64 = 24 * 3600;
        Ok(match text {
            "always" => PullPolicy::Always,
            "missing" | "if_not_present" => PullPolicy::Missing,
            "never" => PullPolicy::Never,
            "build" => PullPolicy::Build,
            "daily" => PullPolicy::Refresh(Duration::from_secs(DAY)),
            "weekly" => PullPolicy::Refresh(Duration::from_secs(7 * DAY)),
            other => match other.strip_prefix("every_") {
                Some(period) => {
                    let every = crate::duration::parse(period).map_err(|error| {
                        PullPolicyError::Period {
                            value: other.to_string(),
                            error,
                        }
                    })?;
                    if every.is_zero() {
                        return Err(PullPolicyError::ZeroPeriod {
                            value: other.to_string(),
                        });
                    }
                    PullPolicy::Refresh(every)
                }
                None => {
                    return Err(PullPolicyError::Unknown {
                        value: other.to_string(),
                    })
                }
            },
        })
    }
}

impl std::fmt::Display for PullPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PullPolicy::Always => f.write_str("always"),
            PullPolicy::Missing => f.write_str("missing"),
            PullPolicy::Never => f.write_str("never"),
            PullPolicy::Build => f.write_str("build"),
            PullPolicy::Refresh(d) if d.as_secs() == 24 * 3600 => f.write_str("daily"),
            PullPolicy::Refresh(d) if d.as_secs() == 7 * 24 * 3600 => f.write_str("weekly"),
            PullPolicy::Refresh(d) => write!(f, "every_{}", crate::duration::format(*d)),
        }
    }
}

impl From<PullPolicy> for String {
    fn from(p: PullPolicy) -> String {
        p.to_string()
    }
}

impl TryFrom<String> for PullPolicy {
    type Error = PullPolicyError;
    fn try_from(s: String) -> Result<PullPolicy, PullPolicyError> {
        PullPolicy::parse(&s)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvFile {
    pub path: PathBuf,
    pub required: bool,
}

/// A published port (short `"127.0.0.1:8080:80/tcp"` or long syntax).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Port {
    /// Container port.
    pub target: u16,
    /// Host port or range (`"8080"`, `"8080-8081"`); `None` = ephemeral.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<String>,
    /// `tcp` or `udp`.
    pub protocol: String,
}

impl Service {
    /// The service's compose `x-muster`, when it has probes: then it wins
    /// over config/muster.yaml (see [`Service::muster_settings`]).
    pub fn compose_probes(&self) -> Option<&MusterService> {
        self.muster.as_ref().filter(|m| !m.probes.is_empty())
    }

    /// muster settings of the service: its compose `x-muster` when it has
    /// probes, else config/muster.yaml's entry (`config_services`).
    pub fn muster_settings<'a>(
        &'a self,
        config_services: &'a BTreeMap<String, MusterService>,
    ) -> Option<&'a MusterService> {
        self.compose_probes()
            .or_else(|| config_services.get(&self.name))
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ServiceNetwork {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv4_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipv6_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mac_address: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash, Default)]
#[serde(rename_all = "snake_case")]
pub enum Condition {
    #[default]
    ServiceStarted,
    ServiceHealthy,
    ServiceCompletedSuccessfully,
}

/// One `depends_on` edge in long form.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Dependency {
    pub condition: Condition,
    /// `required: false` lets the service start when the dependency is absent.
    pub required: bool,
    /// `restart: true` restarts this service after its dependency is restarted.
    pub restart: bool,
    /// True when the edge comes from `links`, `volumes_from` or `network_mode: service:x`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub implicit: bool,
}

/// How the healthcheck runs its test.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", content = "args", rename_all = "SCREAMING-KEBAB-CASE")]
pub enum HealthTest {
    /// `NONE`: disable the image's healthcheck.
    None,
    /// `["CMD", args…]`: exec form.
    Cmd(Vec<String>),
    /// `["CMD-SHELL", "cmd"]` or a plain string: run by `/bin/sh -c`.
    CmdShell(String),
}

/// A healthcheck with Docker's defaults filled in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Healthcheck {
    /// `None` when the file sets timings but no test (the image's test is kept).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test: Option<HealthTest>,
    #[serde(with = "crate::duration::serde_dur")]
    pub interval: Duration,
    #[serde(with = "crate::duration::serde_dur")]
    pub timeout: Duration,
    pub retries: u32,
    #[serde(with = "crate::duration::serde_dur")]
    pub start_period: Duration,
    #[serde(with = "crate::duration::serde_dur")]
    pub start_interval: Duration,
    pub disable: bool,
}

impl Default for Healthcheck {
    /// Docker's defaults: interval 30s, timeout 30s, retries 3, start_period 0s, start_interval 5s.
    fn default() -> Self {
        Healthcheck {
            test: None,
            interval: Duration::from_secs(30),
            timeout: Duration::from_secs(30),
            retries: 3,
            start_period: Duration::ZERO,
            start_interval: Duration::from_secs(5),
            disable: false,
        }
    }
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Deploy {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replicas: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_config: Option<UpdateConfig>,
    /// `deploy.rollback_config` (same fields); read by `muster rollback` and automatic rollbacks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_config: Option<UpdateConfig>,
    /// `deploy.mode`: `replicated` (default) or `global`; read by `up --swarm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<String>,
    /// `deploy.placement.constraints` (`node.role == worker`, …); read by `up --swarm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_constraints: Vec<String>,
    /// `deploy.placement.preferences[].spread`; read by `up --swarm`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub placement_spread: Vec<String>,
    /// `deploy.restart_policy`; read by `up --swarm`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart_policy: Option<RestartPolicy>,
    /// `deploy.labels` (Swarm service labels; Compose ignores them without Swarm).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `deploy.endpoint_mode` (`vip` or `dnsrr`, Swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_mode: Option<String>,
    /// `deploy.placement.max_replicas_per_node` (Swarm).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_replicas_per_node: Option<u64>,
}

/// `deploy.restart_policy` as Swarm reads it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RestartPolicy {
    /// `none`, `on-failure` or `any`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::serde_opt"
    )]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_attempts: Option<u64>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::serde_opt"
    )]
    pub window: Option<Duration>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Resources {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<ResourceSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reservations: Option<ResourceSpec>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ResourceSpec {
    /// CPUs as a fraction (`"0.5"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Memory in bytes (parsed from `"512M"`, `"1g"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Device reservations (`capabilities` required), as `gpus:` entries.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceRequest>,
    /// Swarm's generic resources (`up --swarm` only).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub generic_resources: Vec<GenericResource>,
}

/// `deploy.update_config` (and `deploy.rollback_config`), as Swarm names it; read by `muster rollout`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct UpdateConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parallelism: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::serde_opt"
    )]
    pub delay: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure_action: Option<String>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "crate::duration::serde_opt"
    )]
    pub monitor: Option<Duration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_failure_ratio: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Network {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default)]
    pub external: bool,
    #[serde(default)]
    pub internal: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `driver_opts:`, passed to the network driver.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
    /// `ipam:` (driver, address pools, options).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ipam: Option<Ipam>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub attachable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enable_ipv6: Option<bool>,
}

/// A network's `ipam:` as the Compose specification has it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Ipam {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config: Vec<IpamPool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

/// One `ipam.config` entry: an address pool.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct IpamPool {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ip_range: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aux_addresses: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Volume {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    #[serde(default)]
    pub external: bool,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// `driver_opts:`, passed to the volume driver.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub driver_opts: BTreeMap<String, String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_service_lists_the_known_ones_and_says_when_a_profile_leaves_it_out() {
        let mut p = Project {
            name: "shop".into(),
            disabled_services: vec!["debug".into()],
            ..Default::default()
        };
        for n in ["api", "db"] {
            p.services.insert(
                n.into(),
                Service {
                    name: n.into(),
                    ..Default::default()
                },
            );
        }
        assert_eq!(p.service("api").map(|s| s.name.as_str()), Ok("api"));
        let e = p.service("nope").unwrap_err().to_string();
        assert_eq!(e, "no such service: nope (project shop has: api, db)");
        let e = p.service("debug").unwrap_err().to_string();
        assert!(
            e.starts_with(
                "no such service: debug (project shop has: api, db); it is defined but not enabled"
            ) && e.contains("--profile"),
            "{e}"
        );
    }
}
