//! Progress of a rollout: one [`Event`] per step. The CLI prints each as a
//! line for people or as one JSON object per line (`--json`); the runner also
//! keeps the last lines in the in-progress record, so `muster rollout status`
//! in another terminal can follow.

use serde::Serialize;

use crate::duration;

/// One step of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub service: String,
    /// Unix ms.
    pub at_ms: u64,
    #[serde(flatten)]
    pub kind: EventKind,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum EventKind {
    /// The running containers had no revision yet: recorded as revision `revision`.
    Baseline {
        revision: u64,
        image: String,
    },
    /// A rollout (or rollback) starts.
    Plan {
        revision: u64,
        from: u64,
        image: String,
        replicas: u32,
        options: String,
        rollback: bool,
    },
    /// A batch starts.
    Batch {
        batch: u32,
        replaced: u32,
        replicas: u32,
        containers: u32,
    },
    Created {
        container: String,
        number: u32,
    },
    Ready {
        container: String,
        after_ms: u64,
        detail: String,
    },
    /// Joined the service's DNS name (its network aliases) on every network.
    Joined {
        container: String,
        address: String,
    },
    /// Stayed ready through the monitor window.
    Monitored {
        container: String,
        monitor_ms: u64,
    },
    ContainerFailed {
        container: String,
        reason: String,
    },
    PreStop {
        container: String,
        result: String,
    },
    /// Left the service's DNS name; keeps serving what it has for the drain period.
    Unpublished {
        container: String,
        drain_ms: u64,
    },
    Stopped {
        container: String,
    },
    Removed {
        container: String,
        why: String,
    },
    /// More containers failed than allowed: what happens now.
    FailureAction {
        action: String,
        failures: u32,
        allowed: u32,
    },
    /// Going back to an earlier revision.
    Reverting {
        to: u64,
        image: String,
        reason: String,
    },
    /// An unfinished rollout (owner gone, or paused) is picked up.
    Recovering {
        revision: u64,
        phase: String,
        owner: String,
        action: String,
    },
    Warning {
        message: String,
    },
    /// A container of a service in `network_mode: service:X` was recreated to
    /// join X's new container (a restart would rejoin the old, gone namespace).
    Rejoined {
        container: String,
        namespace: String,
    },
    /// The new image is being pulled (at most one event a second).
    Pulling {
        image: String,
        progress: crate::engine::PullProgress,
    },
    /// The new image was pulled, before anything was stopped.
    Pulled {
        image: String,
        downloaded: u64,
        elapsed_ms: u64,
    },
    /// A line of a rollout another muster drives (`muster rollout status` follows it).
    Remote {
        owner: String,
        line: String,
    },
    Done {
        revision: u64,
        outcome: String,
        replaced: u32,
        failures: u32,
        elapsed_ms: u64,
        message: String,
    },
}

impl EventKind {
    /// The line people read.
    pub fn human(&self) -> String {
        let ms = |m: u64| duration::format(std::time::Duration::from_millis(m));
        match self {
            EventKind::Baseline { revision, image } => {
                format!("recorded the running containers as revision {revision} ({image})")
            }
            EventKind::Plan {
                revision,
                from,
                image,
                replicas,
                options,
                rollback,
            } => {
                let verb = if *rollback { "rollback" } else { "rollout" };
                format!(
                    "{verb} to revision {revision} ({image}) from revision {from}: {replicas} replica(s), {options}"
                )
            }
            EventKind::Batch {
                batch,
                replaced,
                replicas,
                containers,
            } => format!(
                "batch {batch}: {containers} container(s); {replaced}/{replicas} replaced so far"
            ),
            EventKind::Created { container, .. } => format!("created {container}"),
            EventKind::Ready {
                container,
                after_ms,
                detail,
            } => format!("{container} ready after {} ({detail})", ms(*after_ms)),
            EventKind::Joined { container, address } => {
                format!("{container} joined the service name ({address})")
            }
            EventKind::Monitored {
                container,
                monitor_ms,
            } => format!("{container} stayed ready for {}", ms(*monitor_ms)),
            EventKind::ContainerFailed { container, reason } => {
                format!("{container} failed: {reason}")
            }
            EventKind::PreStop { container, result } => {
                format!("pre-stop hook for {container}: {result}")
            }
            EventKind::Unpublished {
                container,
                drain_ms,
            } => format!(
                "{container} left the service name; draining {}",
                ms(*drain_ms)
            ),
            EventKind::Stopped { container } => format!("stopped {container}"),
            EventKind::Removed { container, why } => format!("removed {container} ({why})"),
            EventKind::FailureAction {
                action,
                failures,
                allowed,
            } => format!("{failures} container(s) failed, {allowed} allowed: {action}"),
            EventKind::Reverting { to, image, reason } => {
                format!("returning to revision {to} ({image}): {reason}")
            }
            EventKind::Recovering {
                revision,
                phase,
                owner,
                action,
            } => {
                format!("unfinished rollout to revision {revision} ({phase}, by {owner}): {action}")
            }
            EventKind::Warning { message } => format!("warning: {message}"),
            EventKind::Rejoined {
                container,
                namespace,
            } => format!("recreated {container} to join the network namespace of {namespace}"),
            EventKind::Pulling { image, progress } => {
                format!("pulling {image}: {}", progress.summary())
            }
            EventKind::Pulled {
                image,
                downloaded,
                elapsed_ms,
            } => format!(
                "pulled {image} ({} in {})",
                crate::engine::pull::human_bytes(*downloaded),
                ms(*elapsed_ms)
            ),
            EventKind::Remote { owner, line } => format!("[{owner}] {line}"),
            EventKind::Done {
                revision,
                outcome,
                replaced,
                failures,
                elapsed_ms,
                message,
            } => {
                let mut line = format!(
                    "revision {revision} {outcome}: {replaced} replaced, {failures} failed, {}",
                    ms(*elapsed_ms)
                );
                if !message.is_empty() {
                    line.push_str(&format!(" ({message})"));
                }
                line
            }
        }
    }
}

/// Where events go.
pub trait Progress: Send + Sync {
    fn emit(&self, event: &Event);
}

/// Discards events (library callers that only want the result).
pub struct Quiet;

impl Progress for Quiet {
    fn emit(&self, _event: &Event) {}
}

/// Collects events (tests, or callers that print them later).
#[derive(Default)]
pub struct Collect(pub std::sync::Mutex<Vec<Event>>);

impl Progress for Collect {
    fn emit(&self, event: &Event) {
        if let Ok(mut v) = self.0.lock() {
            v.push(event.clone());
        }
    }
}
