//! The runner as the one writer of service state, for everyone else:
//! [`StatusWrite`], the typed writes of a service's status that are not its
//! state (where it sits in the graph, its containers, its pull, its agent's
//! progress, its grace reasons, the healer's view), and [`StateWrites`], the
//! handle `up`, the healer, the grace recorder and agent progress send
//! through (transitions, status writes, and a barrier).
//!
//! Why: with one writer, every write to a service's status is applied in
//! the order it was sent, whoever sent it, and the state machines' writes
//! and everybody else's never race for the same snapshot. The store's
//! write methods are the runner's alone (`store::Writer`), so the compiler
//! refuses a write from anywhere else.

use std::sync::Arc;

use tokio::sync::{mpsc, oneshot};

use super::{Control, Loop, ProbeRunner, RunnerOptions};
use crate::supervisor::state::{Cause, HealStatus, ReplicaStatus, ServiceState, ServiceStatus};
use crate::supervisor::store::{StateStore, Writer};

/// One write of a service's status that is not a transition.
#[derive(Debug, Clone, PartialEq)]
pub enum StatusWrite {
    /// Where the service sits in the stack. With `waiting` (`up`
    /// registering it) a service the store does not have yet is added as
    /// `pending` with that reason; without (`serve`), only a known service
    /// is changed.
    Placed {
        image: Option<String>,
        depends_on: Vec<String>,
        level: usize,
        waiting: Option<String>,
    },
    /// Only its dependencies (a library `serve` that has no graph levels).
    DependsOn(Vec<String>),
    /// The service's containers (`up` when it starts them, the healer after).
    ContainerIds(Vec<String>),
    /// The numbers of its image's pull while `up` waits for it.
    Pull(Option<crate::engine::PullProgress>),
    /// Its agent's progress text while it starts.
    Progress(Option<String>),
    /// Why its grace period is what it is.
    GraceReasons(Vec<String>),
    /// Restarts seen (services without probes; the runner counts the others').
    Restarts(u32),
    /// The healer's status of it.
    Heal(HealStatus),
    /// The dependencies (or replicas) that degrade it; empty: not degraded.
    Degraded(Vec<String>),
    /// Its replicas one by one.
    Replicas(Vec<ReplicaStatus>),
    /// The image its containers run (after a rollout, not the file's).
    Image(Option<String>),
}

impl StatusWrite {
    fn apply(self, s: &mut ServiceStatus) {
        match self {
            StatusWrite::Placed {
                image,
                depends_on,
                level,
                waiting,
            } => {
                s.image = image;
                s.depends_on = depends_on;
                s.level = level;
                if let Some(reason) = waiting {
                    s.reason = reason;
                }
            }
            StatusWrite::DependsOn(depends_on) => s.depends_on = depends_on,
            StatusWrite::ContainerIds(ids) => s.container_ids = ids,
            StatusWrite::Pull(pull) => s.pull = pull,
            StatusWrite::Progress(progress) => s.progress = progress,
            StatusWrite::GraceReasons(reasons) => s.grace_reasons = reasons,
            StatusWrite::Restarts(n) => s.restarts = n,
            StatusWrite::Heal(heal) => s.heal = heal,
            StatusWrite::Degraded(by) => {
                s.degraded = !by.is_empty();
                s.degraded_by = by;
            }
            StatusWrite::Replicas(replicas) => s.replicas = replicas,
            StatusWrite::Image(image) => s.image = image,
        }
    }

    /// The status of a service the store does not have yet, when this
    /// write adds one (`up` registering it).
    fn new_status(self, name: &str) -> Option<ServiceStatus> {
        let StatusWrite::Placed {
            waiting: Some(_), ..
        } = &self
        else {
            return None;
        };
        let mut status = ServiceStatus::pending(name);
        self.apply(&mut status);
        Some(status)
    }
}

impl Loop {
    /// Applies status writes in one snapshot swap.
    pub(super) fn write_status(&mut self, writes: Vec<(String, StatusWrite)>) {
        self.writer.update_many(|services| {
            for (name, write) in writes {
                match services.get_mut(&name) {
                    Some(status) => write.apply(status),
                    None => {
                        if let Some(status) = write.new_status(&name) {
                            services.insert(name, status);
                        }
                    }
                }
            }
        });
    }
}

/// The runner's end of the channel [`StateWrites`] send on, before the
/// runner runs: writes sent before it starts (the grace recorder's, which
/// starts first to see the first `starting`) wait there for it.
pub struct Inbox {
    pub(super) writer: Writer,
    pub(super) tx: mpsc::UnboundedSender<Control>,
    pub(super) rx: mpsc::UnboundedReceiver<Control>,
}

impl Inbox {
    /// The store the runner will write.
    pub fn store(&self) -> &StateStore {
        &self.writer
    }
}

/// A channel to the runner that will be the one writer of the store
/// (`writer`'s): the senders' handle and the runner's end
/// ([`ProbeRunner::spawn_on`]), which holds the [`Writer`] until then.
pub fn inbox(writer: Writer) -> (StateWrites, Inbox) {
    let (tx, rx) = mpsc::unbounded_channel();
    let writes = StateWrites::new(writer.store(), tx.clone());
    (writes, Inbox { writer, tx, rx })
}

/// Where writes of service state go: the runner's channel, with the store
/// to read what was written. Cloned freely; every clone reaches the same
/// one writer.
#[derive(Clone)]
pub struct StateWrites {
    store: StateStore,
    control: mpsc::UnboundedSender<Control>,
    /// A runner without probes started for these writes alone (a plain
    /// `up` with no supervisor); it stops with the last clone.
    _own: Option<Arc<ProbeRunner>>,
}

impl std::fmt::Debug for StateWrites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateWrites")
            .field("project", &self.store.snapshot().project)
            .finish_non_exhaustive()
    }
}

impl StateWrites {
    /// Writes through `runner`.
    pub(super) fn new(store: StateStore, control: mpsc::UnboundedSender<Control>) -> StateWrites {
        StateWrites {
            store,
            control,
            _own: None,
        }
    }

    /// Starts a runner without probes to be the one writer of `writer`'s
    /// store (a plain `up`, with no supervisor running probes).
    pub fn own(writer: Writer) -> StateWrites {
        let store = writer.store();
        let mut runner = ProbeRunner::spawn(writer, Vec::new(), RunnerOptions::default());
        // No probes, so no decisions.
        drop(runner.take_decisions());
        StateWrites {
            store,
            control: runner.controller(),
            _own: Some(Arc::new(runner)),
        }
    }

    /// The store, to read.
    pub fn store(&self) -> &StateStore {
        &self.store
    }

    /// The runner's control channel (lifecycle events of probed services).
    pub fn control(&self) -> mpsc::UnboundedSender<Control> {
        self.control.clone()
    }

    /// Moves `service` to `to` (a move to the state it is in only changes
    /// the reason, as the store does).
    pub fn set(&self, service: &str, to: ServiceState, reason: impl Into<String>) {
        self.set_caused(service, to, reason, None);
    }

    /// [`Self::set`] with the cause followers need to tell it apart.
    pub fn set_caused(
        &self,
        service: &str,
        to: ServiceState,
        reason: impl Into<String>,
        cause: Option<Cause>,
    ) {
        self.send(Control::Set {
            service: service.to_string(),
            to,
            reason: reason.into(),
            cause,
        });
    }

    /// One status write.
    pub fn status(&self, service: &str, write: StatusWrite) {
        self.send(Control::Status(vec![(service.to_string(), write)]));
    }

    /// Status writes of many services, applied in one snapshot swap.
    pub fn statuses(&self, writes: Vec<(String, StatusWrite)>) {
        if !writes.is_empty() {
            self.send(Control::Status(writes));
        }
    }

    /// Resolves once everything sent before is in the store.
    pub async fn sync(&self) {
        let (done, applied) = oneshot::channel();
        if self.control.send(Control::Sync(done)).is_ok() {
            let _ = applied.await;
        }
    }

    fn send(&self, control: Control) {
        // A runner that is gone ended with the process's supervision:
        // nobody reads the state any more.
        let _ = self.control.send(control);
    }
}
