//! The `x-muster:` block of a service: probes, grace and restart settings, as
//! written in a compose file or config/muster.yaml. It is part of the compose
//! schema (compose ignores `x-` keys, muster reads this one), so loading a stack
//! needs nothing above `compose/`; the probes, grace tuning and healer that act
//! on these settings import them from here.

pub mod probes;
pub mod restart;

pub use probes::*;
pub use restart::{HookCommand, RestartSettings};

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything muster reads from a service's `x-muster:` key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
    /// Automatic restarts (backoff, budget, post-restart hook); defaults when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restart: Option<RestartSettings>,
    /// What muster does when the service turns unhealthy (unready past its
    /// failure threshold, or a liveness/startup probe gave up).
    #[serde(default, skip_serializing_if = "OnUnhealthy::is_restart")]
    pub on_unhealthy: OnUnhealthy,
    /// `up --swarm`: how many of the service's tasks must pass the probes for
    /// the service to be ready (default: all desired replicas).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_tasks: Option<u32>,
}

/// A service with no `x-muster:` (or an empty one): no probes, `grace:
/// auto`, required (as the serde default; a derived `Default` said
/// not required, so `muster status` showed such services as optional).
impl Default for MusterService {
    fn default() -> MusterService {
        MusterService {
            probes: Vec::new(),
            grace: GraceSetting::default(),
            required: true,
            restart: None,
            on_unhealthy: OnUnhealthy::default(),
            ready_tasks: None,
        }
    }
}

/// `x-muster.on_unhealthy`, as Podman's `--health-on-failure`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnUnhealthy {
    /// Restart the containers, with the backoff and budget of `restart:`.
    #[default]
    Restart,
    /// Stop the containers (their stop signal and `stop_grace_period`); the
    /// engine's restart policy does not bring back a stopped container.
    Stop,
    /// SIGKILL the containers; a restart policy (`always`, `on-failure`)
    /// may start them again.
    Kill,
    /// Only report: state, alert and notification, no action.
    None,
}

impl OnUnhealthy {
    pub const ALLOWED: [&'static str; 4] = ["restart", "stop", "kill", "none"];

    pub fn parse(text: &str) -> Option<OnUnhealthy> {
        match text {
            "restart" => Some(OnUnhealthy::Restart),
            "stop" => Some(OnUnhealthy::Stop),
            "kill" => Some(OnUnhealthy::Kill),
            "none" => Some(OnUnhealthy::None),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            OnUnhealthy::Restart => "restart",
            OnUnhealthy::Stop => "stop",
            OnUnhealthy::Kill => "kill",
            OnUnhealthy::None => "none",
        }
    }

    fn is_restart(&self) -> bool {
        *self == OnUnhealthy::Restart
    }
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
