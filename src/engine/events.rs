//! The engine's event stream, narrowed to one project's containers, with the
//! event's action and health word parsed once here into [`Action`] and
//! [`Health`], so that `up`, the healer and rollouts match on variants
//! instead of on the engine's strings.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures_util::{Stream, StreamExt};
use serde::{Serialize, Serializer};

use super::client::{Engine, EngineError};
use super::labels;

/// One container event.
#[derive(Debug, Clone, Serialize)]
pub struct EngineEvent {
    pub container_id: String,
    /// Compose service label.
    pub service: String,
    /// `create`, `start`, `die`, `health_status`, `destroy`, `oom`, …
    pub action: Action,
    /// For `health_status`: `healthy`, `unhealthy`, `starting`.
    pub health: Option<Health>,
    /// For `die`: the exit code.
    pub exit_code: Option<i64>,
    /// For `kill`: the signal sent (9 for `docker kill`; the stop signal,
    /// usually 15, for `docker stop`).
    pub signal: Option<i64>,
    pub time_nano: i64,
}

/// What happened to a container (the engine's `Action` word).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Create,
    Start,
    Kill,
    Die,
    Oom,
    Destroy,
    HealthStatus,
    /// Any other action (`attach`, `exec_start: …`, `rename`, …), as sent.
    Other(String),
}

impl Action {
    pub fn parse(word: &str) -> Action {
        match word {
            "create" => Action::Create,
            "start" => Action::Start,
            "kill" => Action::Kill,
            "die" => Action::Die,
            "oom" => Action::Oom,
            "destroy" => Action::Destroy,
            "health_status" => Action::HealthStatus,
            other => Action::Other(other.to_string()),
        }
    }

    /// The engine's word for it.
    pub fn as_str(&self) -> &str {
        match self {
            Action::Create => "create",
            Action::Start => "start",
            Action::Kill => "kill",
            Action::Die => "die",
            Action::Oom => "oom",
            Action::Destroy => "destroy",
            Action::HealthStatus => "health_status",
            Action::Other(s) => s,
        }
    }
}

/// A container's healthcheck status, from an event or an inspect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Starting,
    Healthy,
    Unhealthy,
    /// A word this version does not know, as sent.
    Other(String),
}

impl Health {
    pub fn parse(word: &str) -> Health {
        match word {
            "starting" => Health::Starting,
            "healthy" => Health::Healthy,
            "unhealthy" => Health::Unhealthy,
            other => Health::Other(other.to_string()),
        }
    }

    /// The engine's word for it.
    pub fn as_str(&self) -> &str {
        match self {
            Health::Starting => "starting",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
            Health::Other(s) => s,
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Display for Health {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Both serialize as the engine's word (as when they were strings).
impl Serialize for Action {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Serialize for Health {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl Engine {
    /// Follows container events of `project` from now on (or replayed from
    /// `since`, unix seconds). The stream ends when the connection does;
    /// errors are yielded, not hidden.
    pub fn project_events(
        &self,
        project: &str,
        since: Option<i64>,
    ) -> impl Stream<Item = Result<EngineEvent, EngineError>> + Send + 'static {
        let filters = HashMap::from([
            ("type".to_string(), vec!["container".to_string()]),
            ("label".to_string(), vec![labels::project_filter(project)]),
        ]);
        let project = project.to_string();
        self.docker()
            .events(Some(EventsOptions {
                filters: Some(filters),
                since: since.map(|s| s.to_string()),
                until: None,
            }))
            .map(move |item| {
                let msg = item.map_err(|e| {
                    EngineError::api(format!("follow events of project {project}"), e)
                })?;
                Ok(from_message(msg))
            })
    }
}

/// Turns the engine's event message into an [`EngineEvent`].
pub fn from_message(msg: bollard::models::EventMessage) -> EngineEvent {
    {
        {
            let action = msg.action.unwrap_or_default();
            let actor = msg.actor.unwrap_or_default();
            let attrs = actor.attributes.unwrap_or_default();
            // Older engines send "health_status: healthy" as the action.
            let (action, health) = match action.split_once(": ") {
                Some(("health_status", h)) => (Action::HealthStatus, Some(Health::parse(h))),
                _ => (Action::parse(&action), None),
            };
            EngineEvent {
                container_id: actor.id.unwrap_or_default(),
                service: attrs.get(labels::SERVICE).cloned().unwrap_or_default(),
                exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                signal: attrs.get("signal").and_then(|c| c.parse().ok()),
                action,
                health,
                time_nano: msg.time_nano.unwrap_or(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_parse_once_and_unknown_ones_are_kept() {
        for w in [
            "create",
            "start",
            "kill",
            "die",
            "oom",
            "destroy",
            "health_status",
        ] {
            assert_eq!(Action::parse(w).as_str(), w);
            assert!(!matches!(Action::parse(w), Action::Other(_)));
        }
        assert_eq!(Action::parse("rename"), Action::Other("rename".into()));
        assert_eq!(Health::parse("healthy"), Health::Healthy);
        assert_eq!(Health::parse("weird"), Health::Other("weird".into()));
        assert_eq!(
            serde_json::to_string(&Health::Unhealthy).unwrap(),
            "\"unhealthy\""
        );
    }

    #[test]
    fn old_engines_health_action_is_split() {
        let msg = bollard::models::EventMessage {
            action: Some("health_status: unhealthy".into()),
            ..Default::default()
        };
        let ev = from_message(msg);
        assert_eq!(ev.action, Action::HealthStatus);
        assert_eq!(ev.health, Some(Health::Unhealthy));
    }
}
