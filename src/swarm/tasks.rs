//! A service's tasks as muster needs them: node, task id, state, Swarm's
//! reason, and the task's address on the stack's overlay network, which is
//! what muster probes (a task on another node is reachable only there).
//!
//! bollard's `Task` model has no `NetworksAttachments` (the Engine API
//! returns it, the model leaves it out), so the task list is read as JSON
//! (`raw.rs`, one plain HTTP/1.0 GET: [`list_tasks`]);
//! [`parse_tasks`], which turns that JSON into [`TaskView`]s, is pure and
//! unit-tested.

use std::collections::HashMap;

use serde::Serialize;
use serde_json::Value;

/// One task of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TaskView {
    pub task_id: String,
    /// Replica slot (none for global services).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<i64>,
    /// The node's hostname (its id when the node is unknown).
    pub node: String,
    /// The node's id (part of a global task's name, `{{.Task.Name}}`).
    #[serde(skip)]
    pub node_id: String,
    /// Swarm's state: `running`, `preparing`, `rejected`, `failed`, …
    pub state: String,
    /// The state Swarm wants (`running`, `shutdown`).
    pub desired: String,
    /// Swarm's message and error for the task (`No such image: …`).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    /// Its address on the probed overlay network, without the prefix length.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// The image the task runs (without a pinned `@digest`).
    pub image: String,
}

impl TaskView {
    /// Running and meant to run: the tasks that count and are probed.
    pub fn is_running(&self) -> bool {
        self.state == "running" && self.desired == "running"
    }

    /// Swarm gave up on this task (rejected by the node, or failed).
    pub fn is_rejected(&self) -> bool {
        matches!(self.state.as_str(), "rejected" | "failed")
    }
}

/// Tasks from the Engine's `/tasks` JSON. `network` is the overlay network
/// (its name) whose address is probed; `nodes` maps node ids to hostnames.
pub fn parse_tasks(json: &Value, network: &str, nodes: &HashMap<String, String>) -> Vec<TaskView> {
    let Some(items) = json.as_array() else {
        return Vec::new();
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let mut out: Vec<TaskView> = items
        .iter()
        .map(|t| {
            let node_id = text(&t["NodeID"]);
            let status = &t["Status"];
            let mut reason = text(&status["Err"]);
            if reason.is_empty() && status["State"] != "running" {
                reason = text(&status["Message"]);
            }
            let address = t["NetworksAttachments"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|a| a["Network"]["Spec"]["Name"] == network)
                .and_then(|a| a["Addresses"].as_array()?.first()?.as_str())
                .map(|cidr| cidr.split('/').next().unwrap_or(cidr).to_string());
            TaskView {
                task_id: text(&t["ID"]),
                slot: t["Slot"].as_i64().filter(|s| *s > 0),
                node: nodes
                    .get(&node_id)
                    .cloned()
                    .unwrap_or_else(|| node_id.clone()),
                node_id,
                state: text(&status["State"]),
                desired: text(&t["DesiredState"]),
                reason,
                address,
                image: text(&t["Spec"]["ContainerSpec"]["Image"])
                    .split('@')
                    .next()
                    .unwrap_or_default()
                    .to_string(),
            }
        })
        .collect();
    out.sort_by(|a, b| (a.slot, &a.task_id).cmp(&(b.slot, &b.task_id)));
    out
}

/// Why the task list could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TaskListError {
    #[error("reading the tasks of {service} from {host}: {detail}")]
    Read {
        service: String,
        host: String,
        detail: String,
    },
}

/// `GET /v<api>/tasks?filters={"service":[<name>]}` on `host` (`unix://` or
/// `tcp://`/`http://`), as JSON.
pub async fn list_tasks(host: &str, api: &str, service: &str) -> Result<Value, TaskListError> {
    let filters = serde_json::json!({ "service": [service] }).to_string();
    let query = super::raw::encode(&filters);
    super::raw::get_json(host, &format!("/v{api}/tasks?filters={query}"))
        .await
        .map_err(|detail| TaskListError::Read {
            service: service.to_string(),
            host: host.to_string(),
            detail,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_carry_node_names_states_reasons_and_overlay_addresses() {
        let json = serde_json::json!([
            {
                "ID": "t2", "Slot": 2, "NodeID": "n2", "DesiredState": "running",
                "Status": {"State": "rejected", "Message": "preparing", "Err": "No such image: acme/x:1"},
            },
            {
                "ID": "t1", "Slot": 1, "NodeID": "n1", "DesiredState": "running",
                "Spec": {"ContainerSpec": {"Image": "acme/x:2@sha256:abc"}},
                "Status": {"State": "running", "Message": "started"},
                "NetworksAttachments": [
                    {"Network": {"Spec": {"Name": "ingress"}}, "Addresses": ["10.0.0.5/24"]},
                    {"Network": {"Spec": {"Name": "shop_default"}}, "Addresses": ["10.212.1.3/24"]}
                ]
            }
        ]);
        let nodes: HashMap<String, String> = [("n1".to_string(), "node-a".to_string())].into();
        let tasks = parse_tasks(&json, "shop_default", &nodes);
        assert_eq!(tasks.len(), 2);
        assert_eq!(tasks[0].task_id, "t1");
        assert_eq!(tasks[0].node, "node-a");
        assert_eq!(tasks[0].address.as_deref(), Some("10.212.1.3"));
        assert!(tasks[0].is_running() && !tasks[0].is_rejected());
        assert_eq!(tasks[0].reason, "");
        assert_eq!(tasks[0].image, "acme/x:2");
        assert_eq!(tasks[1].node, "n2", "an unknown node keeps its id");
        assert_eq!(tasks[1].reason, "No such image: acme/x:1");
        assert!(tasks[1].is_rejected() && tasks[1].address.is_none());
    }
}
