//! `x-muster.restart`: the settings for muster's automatic restarts of one
//! service, as written in a compose file or config/muster.yaml, and their
//! validation. Part of the compose schema so that loading a stack needs nothing
//! above `compose/`; the policy that acts on them (backoff arithmetic, the
//! budget) is the supervisor's (`supervisor::heal::policy`).
//!
//! ```yaml
//! x-muster:
//!   restart:
//!     on_unready: true     # restart a running container that stays unready past its failure threshold
//!     on_liveness: true    # restart when a liveness or startup probe gives up
//!     backoff: 1s          # wait before the first restart; doubles with every restart in the window
//!     max_backoff: 60s     # the doubling stops here
//!     budget: 5            # at most this many restarts by muster in `window`, then `failed` + alert
//!     window: 10m
//!     hook: ["sh", "-c", "echo $MUSTER_SERVICE restarted >> /var/log/heal.log"]   # or one string for sh -c
//!     hook_timeout: 30s
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

pub const DEFAULT_BACKOFF: Duration = Duration::from_secs(1);
pub const DEFAULT_MAX_BACKOFF: Duration = Duration::from_secs(60);
pub const DEFAULT_BUDGET: u32 = 5;
pub const DEFAULT_WINDOW: Duration = Duration::from_secs(600);
pub const DEFAULT_HOOK_TIMEOUT: Duration = Duration::from_secs(30);

/// `x-muster.restart` of one service, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct RestartSettings {
    /// Restart a running container whose readiness probes fail past their
    /// failure threshold outside the start window (the service turns `unready`).
    pub on_unready: bool,
    /// Restart when a liveness or startup probe gives up.
    pub on_liveness: bool,
    /// Delay before the first restart in the window; each further restart in
    /// the window doubles it.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// Restarts muster may make within `window`; 0 = muster never restarts
    /// the service (it only reports).
    pub budget: u32,
    pub window: Duration,
    /// Run after every restart muster made.
    pub hook: Option<HookCommand>,
    pub hook_timeout: Duration,
}

impl Default for RestartSettings {
    fn default() -> Self {
        RestartSettings {
            on_unready: true,
            on_liveness: true,
            backoff: DEFAULT_BACKOFF,
            max_backoff: DEFAULT_MAX_BACKOFF,
            budget: DEFAULT_BUDGET,
            window: DEFAULT_WINDOW,
            hook: None,
            hook_timeout: DEFAULT_HOOK_TIMEOUT,
        }
    }
}

/// A post-restart hook: an argv, or one string run by `sh -c`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HookCommand {
    Argv(Vec<String>),
    Shell(String),
}

impl HookCommand {
    /// The argv to run.
    pub fn argv(&self) -> Vec<String> {
        match self {
            HookCommand::Argv(v) => v.clone(),
            HookCommand::Shell(s) => vec!["sh".into(), "-c".into(), s.clone()],
        }
    }
}

/// As written, before validation (values kept loose so that a wrong type is
/// reported with the field's name).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRestart {
    on_unready: Option<serde_json::Value>,
    on_liveness: Option<serde_json::Value>,
    backoff: Option<serde_json::Value>,
    max_backoff: Option<serde_json::Value>,
    budget: Option<serde_json::Value>,
    window: Option<serde_json::Value>,
    hook: Option<serde_json::Value>,
    hook_timeout: Option<serde_json::Value>,
}

/// Keys `x-muster.restart` accepts.
pub const RESTART_KEYS: &[&str] = &[
    "on_unready",
    "on_liveness",
    "backoff",
    "max_backoff",
    "budget",
    "window",
    "hook",
    "hook_timeout",
];

fn duration_field(
    value: Option<serde_json::Value>,
    field: &str,
    default: Duration,
) -> Result<Duration, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(default),
        Some(serde_json::Value::String(text)) => {
            crate::duration::parse(&text).map_err(|e| format!("restart.{field}: {e}"))
        }
        Some(other) => Err(format!(
            "restart.{field}: expected a duration such as \"30s\", found {other}"
        )),
    }
}

fn bool_field(value: Option<serde_json::Value>, field: &str) -> Result<bool, String> {
    match value {
        None | Some(serde_json::Value::Null) => Ok(true),
        Some(serde_json::Value::Bool(b)) => Ok(b),
        Some(serde_json::Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
        Some(other) => Err(format!(
            "restart.{field}: expected true or false, found {other}"
        )),
    }
}

impl RawRestart {
    fn validate(self) -> Result<RestartSettings, String> {
        let backoff = duration_field(self.backoff, "backoff", DEFAULT_BACKOFF)?;
        let max_backoff = duration_field(self.max_backoff, "max_backoff", DEFAULT_MAX_BACKOFF)?;
        let window = duration_field(self.window, "window", DEFAULT_WINDOW)?;
        let hook_timeout = duration_field(self.hook_timeout, "hook_timeout", DEFAULT_HOOK_TIMEOUT)?;
        let fmt = crate::duration::format;
        if backoff.is_zero() {
            return Err("restart.backoff must be above 0 (e.g. 1s)".into());
        }
        if max_backoff < backoff {
            return Err(format!(
                "restart.max_backoff ({}) must not be below restart.backoff ({})",
                fmt(max_backoff),
                fmt(backoff)
            ));
        }
        let budget = match self.budget {
            None | Some(serde_json::Value::Null) => DEFAULT_BUDGET,
            Some(serde_json::Value::Number(n)) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .ok_or_else(|| format!("restart.budget: expected a whole number of restarts (0 or more), found {n}"))?,
            Some(other) => {
                return Err(format!(
                    "restart.budget: expected a whole number of restarts (0 or more), found {other}"
                ))
            }
        };
        if window.is_zero() && budget > 0 {
            return Err("restart.window must be above 0 (e.g. 10m)".into());
        }
        if hook_timeout.is_zero() {
            return Err("restart.hook_timeout must be above 0 (e.g. 30s)".into());
        }
        let hook = match self.hook {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(s)) if !s.trim().is_empty() => {
                Some(HookCommand::Shell(s))
            }
            Some(serde_json::Value::Array(items)) if !items.is_empty() => {
                let argv: Option<Vec<String>> = items
                    .iter()
                    .map(|v| match v {
                        serde_json::Value::String(s) => Some(s.clone()),
                        serde_json::Value::Number(n) => Some(n.to_string()),
                        _ => None,
                    })
                    .collect();
                match argv {
                    Some(argv) if !argv[0].trim().is_empty() => Some(HookCommand::Argv(argv)),
                    _ => {
                        return Err(
                            "restart.hook: expected a command (a string for sh -c, or a list of strings)"
                                .into(),
                        )
                    }
                }
            }
            Some(_) => {
                return Err(
                    "restart.hook: the command is empty (expected a string for sh -c, or a list of strings)"
                        .into(),
                )
            }
        };
        Ok(RestartSettings {
            on_unready: bool_field(self.on_unready, "on_unready")?,
            on_liveness: bool_field(self.on_liveness, "on_liveness")?,
            backoff,
            max_backoff,
            budget,
            window,
            hook,
            hook_timeout,
        })
    }
}

impl<'de> Deserialize<'de> for RestartSettings {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        RawRestart::deserialize(d)?
            .validate()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for RestartSettings {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let fmt = crate::duration::format;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("on_unready", &self.on_unready)?;
        m.serialize_entry("on_liveness", &self.on_liveness)?;
        m.serialize_entry("backoff", &fmt(self.backoff))?;
        m.serialize_entry("max_backoff", &fmt(self.max_backoff))?;
        m.serialize_entry("budget", &self.budget)?;
        m.serialize_entry("window", &fmt(self.window))?;
        if let Some(hook) = &self.hook {
            m.serialize_entry("hook", hook)?;
        }
        m.serialize_entry("hook_timeout", &fmt(self.hook_timeout))?;
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(yaml: &str) -> Result<RestartSettings, String> {
        serde_saphyr::from_str::<RestartSettings>(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_and_knobs() {
        let d = parse("{}\n").unwrap();
        assert_eq!(d, RestartSettings::default());
        assert_eq!(
            (d.backoff, d.max_backoff, d.budget, d.window),
            (
                Duration::from_secs(1),
                Duration::from_secs(60),
                5,
                Duration::from_secs(600)
            )
        );
        let s = parse(
            "on_unready: false\nbackoff: 200ms\nmax_backoff: 1s\nbudget: 3\nwindow: 1m\nhook: echo hi\nhook_timeout: 5s\n",
        )
        .unwrap();
        assert!(!s.on_unready && s.on_liveness);
        assert_eq!(s.backoff, Duration::from_millis(200));
        assert_eq!(s.hook.as_ref().unwrap().argv(), vec!["sh", "-c", "echo hi"]);
        let s = parse("hook: [\"/bin/notify\", \"x\"]\n").unwrap();
        assert_eq!(s.hook.unwrap().argv(), vec!["/bin/notify", "x"]);
        // Serialises back to the same settings.
        let json = serde_json::to_value(parse("budget: 2\nhook: [a]\n").unwrap()).unwrap();
        let back: RestartSettings = serde_json::from_value(json).unwrap();
        assert_eq!(back.budget, 2);
    }

    #[test]
    fn bad_values_name_the_field() {
        let e = parse("backof: 1s\n").unwrap_err();
        assert!(e.contains("backof"), "{e}");
        let e = parse("backoff: soon\n").unwrap_err();
        assert!(e.contains("restart.backoff") && e.contains("soon"), "{e}");
        let e = parse("backoff: 10s\nmax_backoff: 1s\n").unwrap_err();
        assert!(e.contains("restart.max_backoff (1s)"), "{e}");
        let e = parse("backoff: 0s\n").unwrap_err();
        assert!(e.contains("restart.backoff"), "{e}");
        let e = parse("budget: -1\n").unwrap_err();
        assert!(e.contains("budget") || e.contains("-1"), "{e}");
        let e = parse("hook: []\n").unwrap_err();
        assert!(e.contains("restart.hook"), "{e}");
        let e = parse("window: 0s\n").unwrap_err();
        assert!(e.contains("restart.window"), "{e}");
    }
}
