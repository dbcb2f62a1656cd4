//! `GET /status`: the stack snapshot as JSON, plus counts per state. The
//! rendered JSON is cached per snapshot, so a burst of requests between two
//! state changes serialises the stack once.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};

use crate::supervisor::telemetry::{ServiceUsage, Telemetry};
use crate::supervisor::{ServiceState, StackSnapshot};

const ALL_STATES: [ServiceState; 8] = [
    ServiceState::Pending,
    ServiceState::Starting,
    ServiceState::Ready,
    ServiceState::Unready,
    ServiceState::Failed,
    ServiceState::Stopped,
    ServiceState::Completed,
    ServiceState::Blocked,
];

/// The body of `GET /status`: every field of [`StackSnapshot`] (so it
/// deserialises into one) plus the summary a dashboard wants first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusView {
    /// Every required service is ready (what `/readyz` answers).
    pub ready: bool,
    /// Services whose state counts as up (`ready`, `completed`).
    pub ready_count: usize,
    pub unready_count: usize,
    /// Services per state; every state is present, zero included.
    pub counts: BTreeMap<String, usize>,
    /// `service: alert` for services that need a human (restart budget
    /// exhausted, exited and not restarted); each also in `services.*.heal.alert`.
    #[serde(default)]
    pub alerts: Vec<String>,
    /// Services marked degraded (a dependency is not ready).
    #[serde(default)]
    pub degraded: Vec<String>,
    /// The stack this muster supervises (project, namespace, compose files,
    /// pid, address), so a client can tell it is asking the right muster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub muster: Option<super::Identity>,
    /// CPU and memory per service and per running container, from the last
    /// resource sample (`telemetry_interval`); absent before the first one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resources: BTreeMap<String, ServiceUsage>,
    /// Unix ms of that sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_at_ms: Option<u64>,
    #[serde(flatten)]
    pub snapshot: StackSnapshot,
}

impl StatusView {
    pub fn of(snapshot: &StackSnapshot) -> StatusView {
        let counts: BTreeMap<String, usize> = ALL_STATES
            .iter()
            .map(|s| (s.as_str().to_string(), snapshot.count_in(*s)))
            .collect();
        let ready_count = snapshot
            .services
            .values()
            .filter(|s| s.state.is_ready())
            .count();
        StatusView {
            ready: !snapshot.services.is_empty() && snapshot.all_required_ready(),
            ready_count,
            unready_count: snapshot.services.len() - ready_count,
            counts,
            alerts: snapshot.alerts(),
            degraded: snapshot
                .services
                .values()
                .filter(|s| s.degraded)
                .map(|s| s.name.clone())
                .collect(),
            muster: None,
            resources: BTreeMap::new(),
            resources_at_ms: None,
            snapshot: snapshot.clone(),
        }
    }
}

pub(crate) fn all_states() -> &'static [ServiceState] {
    &ALL_STATES
}

/// Caches the JSON of the last snapshot (and resource sample) rendered.
#[derive(Default)]
pub(crate) struct StatusCache {
    last: Mutex<Option<Rendered>>,
}

type Rendered = (Arc<StackSnapshot>, Arc<Telemetry>, Bytes);

impl StatusCache {
    pub(crate) fn json(
        &self,
        snapshot: Arc<StackSnapshot>,
        telemetry: Arc<Telemetry>,
        identity: Option<&super::Identity>,
    ) -> Bytes {
        {
            let last = self.last.lock().unwrap_or_else(|p| p.into_inner());
            if let Some((snap, tele, body)) = last.as_ref() {
                if Arc::ptr_eq(snap, &snapshot) && Arc::ptr_eq(tele, &telemetry) {
                    return body.clone();
                }
            }
        }
        let body = Bytes::from(render(&snapshot, &telemetry, identity));
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        // Keep the newer of two concurrently rendered snapshots.
        let newer = last.as_ref().is_none_or(|(snap, tele, _)| {
            (snap.at_ms, tele.at_ms) <= (snapshot.at_ms, telemetry.at_ms)
        });
        if newer {
            *last = Some((snapshot, telemetry, body.clone()));
        }
        body
    }
}

fn render(
    snapshot: &StackSnapshot,
    telemetry: &Telemetry,
    identity: Option<&super::Identity>,
) -> Vec<u8> {
    let mut view = StatusView::of(snapshot);
    view.muster = identity.cloned();
    view.resources = telemetry.services.clone();
    view.resources_at_ms = (telemetry.at_ms > 0).then_some(telemetry.at_ms);
    // Serialising plain data with string keys cannot fail.
    let mut body = serde_json::to_vec(&view).unwrap_or_else(|_| b"{}".to_vec());
    body.push(b'\n');
    body
}
