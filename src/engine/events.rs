//! The engine's event stream, narrowed to one project's containers.

use std::collections::HashMap;

use bollard::query_parameters::EventsOptions;
use futures_util::{Stream, StreamExt};
use serde::Serialize;

use super::client::{Engine, EngineError};
use super::labels;

/// One container event.
#[derive(Debug, Clone, Serialize)]
pub struct EngineEvent {
    pub container_id: String,
    /// Compose service label.
    pub service: String,
    /// `create`, `start`, `die`, `health_status`, `destroy`, `oom`, …
    pub action: String,
    /// For `health_status`: `healthy`, `unhealthy`, `starting`.
    pub health: Option<String>,
    /// For `die`: the exit code.
    pub exit_code: Option<i64>,
    pub time_nano: i64,
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
                Some((a, h)) if a == "health_status" => (a.to_string(), Some(h.to_string())),
                _ => (action, None),
            };
            EngineEvent {
                container_id: actor.id.unwrap_or_default(),
                service: attrs.get(labels::SERVICE).cloned().unwrap_or_default(),
                exit_code: attrs.get("exitCode").and_then(|c| c.parse().ok()),
                action,
                health,
                time_nano: msg.time_nano.unwrap_or(0),
            }
        }
    }
}
