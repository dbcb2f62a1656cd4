//! The one place service state lives: [`StateStore`], the readers' handle
//! (cloned freely: the health endpoint, metrics, the CLI, the healer, `up`
//! read snapshots and follow the event channels; readers never block the
//! writer), and [`Writer`], the one write handle, made with its store and
//! never cloned (kube-rs' reflector `Writer` / `Store` split). Adding a
//! service, changing its status and moving it to another state are
//! `Writer` methods, so the compiler refuses a write from anyone who does
//! not own it.
//!
//! Who owns the Writer (each write is one snapshot swap under the store's
//! lock):
//!
//! - the probe runner (`runner/`), under `up`, `serve` and `up
//!   --watch/--serve`; a plain `up` with no supervisor starts a runner
//!   without probes for it (`runner::StateWrites::own`). It applies the
//!   state machines of the services with muster probes and writes their
//!   probe reports itself; everyone else sends it typed requests
//!   ([`super::runner::Control`] through [`super::runner::StateWrites`]),
//!   applied in the order they arrive:
//!   - `up` (`start/`): registration (pending, level, dependencies), the
//!     states before a container runs (pending and why, blocked, failed on
//!     a missing image or engine error), `starting` when it starts the
//!     containers (`Cause::Adopted` when they already ran unchanged), pull
//!     numbers and container ids, and the transitions of services without
//!     muster probes until `up` returns (`Control::Set`);
//!   - the healer (`heal/`): what the engine did to probed services
//!     (started, restarted, exited, stopped) and that it gave up (`failed`
//!     past the budget); after `up` returned (or under `serve`) the
//!     transitions of services without muster probes (`Set`); and its view
//!     of every service: heal status, degraded marks, container ids,
//!     replicas one by one, the image they run (`Control::Status`, one batch
//!     per look at the store). A replica going down or joining while others
//!     run is not a state change of the service (`heal/replicas.rs`);
//!   - the grace recorder (`learn.rs`): a re-tuned period, and grace
//!     reasons (sent before the runner runs: they wait in its channel,
//!     `runner::inbox`); `supervise.rs`: agent progress and start
//!     deadlines; `cli/stack.rs`: where each service sits in the graph
//!     under `muster serve`;
//! - `supervisor/swarm.rs` under `up --swarm --serve`, the one writer of
//!   its store (there is no probe runner on Swarm).
//!
//! A sender that must see its own writes in the store (the end of `up`)
//! sends `Control::Sync` and waits for the answer.
//!
//! The readers' handle also carries what is not service status, each with
//! its own single writer: the telemetry channel (the resource sampler,
//! `telemetry.rs`), pull pulses (`up`), probe runs and the heartbeat (the
//! runner), and the links (each link's owner, relayed by `follow_link`).
//!
//! `up` and the healer learn what the engine did from the same engine
//! watcher (`engine::watch::Watcher`: one event stream per process,
//! broadcast to both), so they never disagree about which events happened.

use std::sync::{Arc, Mutex};

use tokio::sync::{broadcast, watch};

use super::state::{
    Cause, EngineLink, PullPulse, ServiceState, ServiceStatus, StackSnapshot, StateEvent,
    Transition,
};
use crate::clock::unix_ms;
use crate::probe::ProbeOutcome;

/// One probe run, as seen by metrics.
#[derive(Debug, Clone)]
pub struct ProbeObservation {
    pub service: String,
    pub kind: String,
    pub outcome: ProbeOutcome,
}

/// Kept per service: how many transitions a snapshot carries.
const TRANSITION_HISTORY: usize = 32;

/// The readers' handle: snapshots, events, probe runs, pulls, telemetry
/// and the heartbeat. Cloned freely. It has no way to change a service's
/// status: that is [`Writer`]'s.
#[derive(Clone)]
pub struct StateStore {
    inner: Arc<Inner>,
}

/// The one write handle of a store (kube-rs' reflector `Writer` / `Store`
/// split: one writer, many readers). Made together with its store and
/// never cloned, so whoever owns it is the only one who can add a service,
/// change its status or move it to another state; it reads too (it
/// dereferences to its [`StateStore`]). The probe runner owns it under
/// `up`, `serve` and `up --watch/--serve` (everyone else sends it
/// `runner::Control` requests through `runner::StateWrites`); `up --swarm
/// --serve` owns its store's Writer in `supervisor/swarm.rs`.
pub struct Writer {
    store: StateStore,
}

impl std::ops::Deref for Writer {
    type Target = StateStore;

    fn deref(&self) -> &StateStore {
        &self.store
    }
}

impl Writer {
    /// A new, empty store for `project` and its one writer.
    pub fn new(project: impl Into<String>) -> Writer {
        Writer {
            store: StateStore::new(project),
        }
    }

    /// A reader of this store.
    pub fn store(&self) -> StateStore {
        self.store.clone()
    }

    /// Adds or replaces a service's whole status (used when the stack is loaded).
    pub fn insert(&self, status: ServiceStatus) {
        self.store.modify(|snap| {
            snap.services.insert(status.name.clone(), status);
        });
    }

    /// Applies `f` to one service; returns false when the service is unknown.
    pub fn update(&self, service: &str, f: impl FnOnce(&mut ServiceStatus)) -> bool {
        let mut found = false;
        self.store.modify(|snap| {
            if let Some(status) = snap.services.get_mut(service) {
                f(status);
                found = true;
            }
        });
        found
    }

    /// Applies `f` to every service at once: one snapshot swap for a batch of
    /// updates (the probe runner flushes many probe reports this way).
    pub fn update_many(
        &self,
        f: impl FnOnce(&mut std::collections::BTreeMap<String, ServiceStatus>),
    ) {
        self.store.modify(|snap| f(&mut snap.services));
    }

    /// Moves a service to `to`, recording the transition and emitting an event.
    /// A move to the state it is already in only updates the reason.
    pub fn transition(&self, service: &str, to: ServiceState, reason: impl Into<String>) {
        self.transition_caused(service, to, reason, None);
    }

    /// [`Self::transition`] with the cause followers need to tell it apart.
    pub fn transition_caused(
        &self,
        service: &str,
        to: ServiceState,
        reason: impl Into<String>,
        cause: Option<Cause>,
    ) {
        self.store.transition_caused(service, to, reason, cause);
    }
}

struct Inner {
    /// Serialises writers so that read-modify-write of the snapshot is atomic.
    write: Mutex<()>,
    snapshot: watch::Sender<Arc<StackSnapshot>>,
    events: broadcast::Sender<StateEvent>,
    probes: broadcast::Sender<ProbeObservation>,
    pulls: broadcast::Sender<PullPulse>,
    /// Bumped by the supervisor's loops; /healthz checks that it moves.
    heartbeat: watch::Sender<u64>,
    /// CPU and memory per container; written by the telemetry sampler only.
    telemetry: watch::Sender<Arc<super::usage::Telemetry>>,
}

impl StateStore {
    fn new(project: impl Into<String>) -> StateStore {
        let snapshot = StackSnapshot {
            project: project.into(),
            at_ms: unix_ms(std::time::SystemTime::now()),
            services: Default::default(),
            engine: None,
            links: Default::default(),
        };
        let (snapshot, _) = watch::channel(Arc::new(snapshot));
        let (events, _) = broadcast::channel(1024);
        let (probes, _) = broadcast::channel(4096);
        let (pulls, _) = broadcast::channel(256);
        let (heartbeat, _) = watch::channel(0);
        let (telemetry, _) = watch::channel(Arc::default());
        StateStore {
            inner: Arc::new(Inner {
                write: Mutex::new(()),
                snapshot,
                events,
                probes,
                pulls,
                heartbeat,
                telemetry,
            }),
        }
    }

    /// The last resource sample (empty until the sampler ran once).
    pub fn telemetry(&self) -> Arc<super::usage::Telemetry> {
        self.inner.telemetry.borrow().clone()
    }

    /// The telemetry sampler's one write.
    pub fn publish_telemetry(&self, telemetry: Arc<super::usage::Telemetry>) {
        self.inner.telemetry.send_replace(telemetry);
    }

    /// The current state of the whole stack (cheap: an `Arc` clone).
    pub fn snapshot(&self) -> Arc<StackSnapshot> {
        self.inner.snapshot.borrow().clone()
    }

    /// Follows snapshots as they change.
    pub fn watch(&self) -> watch::Receiver<Arc<StackSnapshot>> {
        self.inner.snapshot.subscribe()
    }

    /// Follows state changes (what `muster up --json` and `GET /events` emit).
    pub fn events(&self) -> broadcast::Receiver<StateEvent> {
        self.inner.events.subscribe()
    }

    /// Follows pulls' numbers (what `GET /events` streams as `event: pull`).
    pub fn pull_pulses(&self) -> broadcast::Receiver<PullPulse> {
        self.inner.pulls.subscribe()
    }

    /// Publishes a pull's numbers (already thinned to one a second per image).
    pub fn publish_pull(&self, pulse: PullPulse) {
        let _ = self.inner.pulls.send(pulse);
    }

    /// Follows every probe run (for metrics).
    pub fn probe_runs(&self) -> broadcast::Receiver<ProbeObservation> {
        self.inner.probes.subscribe()
    }

    /// Records muster's link to the engine (shown in `/status`, `/metrics`
    /// and `muster status`).
    pub fn set_engine_link(&self, link: EngineLink) {
        self.modify(|snap| snap.engine = Some(link));
    }

    /// Copies one link's state (see [`crate::link`]) into the snapshot each
    /// time its owner reports a change, until the owner is gone. The store
    /// only relays: the link's owner is the one writer of its state.
    pub fn follow_link(
        &self,
        name: &str,
        mut link: crate::link::LinkWatch,
    ) -> tokio::task::JoinHandle<()> {
        let store = self.clone();
        let name = name.to_string();
        tokio::spawn(async move {
            loop {
                let status = link.current();
                store.modify(|snap| {
                    snap.links.insert(name.clone(), status);
                });
                if !link.changed().await {
                    return;
                }
            }
        })
    }

    /// [`Writer::transition_caused`].
    fn transition_caused(
        &self,
        service: &str,
        to: ServiceState,
        reason: impl Into<String>,
        cause: Option<Cause>,
    ) {
        let reason = reason.into();
        let mut event = None;
        let written = self.modify_held(|snap| {
            let Some(status) = snap.services.get_mut(service) else {
                return;
            };
            if status.state == to {
                status.reason = reason.clone();
                return;
            }
            let transition = Transition {
                from: status.state,
                to,
                at_ms: unix_ms(std::time::SystemTime::now()),
                reason: reason.clone(),
                cause,
            };
            status.state = to;
            status.since_ms = transition.at_ms;
            status.reason = reason.clone();
            status.transitions.push(transition.clone());
            if status.transitions.len() > TRANSITION_HISTORY {
                let excess = status.transitions.len() - TRANSITION_HISTORY;
                status.transitions.drain(..excess);
            }
            event = Some(StateEvent {
                service: service.to_string(),
                transition,
            });
        });
        if let Some(event) = event {
            // Sent before the write lock is released: whoever saw the new
            // snapshot and then calls [`StateStore::sync`] finds the event
            // queued (see there).
            // No receiver is fine: nobody is following right now.
            let _ = self.inner.events.send(event.clone());
            drop(written);
            tracing::info!(service = %event.service, from = %event.transition.from, to = %event.transition.to, reason = %event.transition.reason, "state change");
        }
    }

    /// Waits for a write in progress to finish. A snapshot becomes visible a
    /// moment before its state event is sent; after `sync` returns, the event
    /// of every change in any snapshot the caller has seen is in the event
    /// channel. A follower that is told to stop (the grace recorder at the
    /// end of `up`) calls this before draining its receiver, so the last
    /// `ready` is not lost to that moment.
    pub fn sync(&self) {
        drop(self.lock());
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // A poisoned lock only means another writer panicked mid-update; the
        // snapshot itself is replaced atomically, so carrying on is safe.
        self.inner
            .write
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Publishes one probe run to metrics followers.
    pub fn observe_probe(&self, observation: ProbeObservation) {
        let _ = self.inner.probes.send(observation);
    }

    /// Whether anybody follows probe runs (so a writer can skip building
    /// observations nobody reads).
    pub fn probe_runs_followed(&self) -> bool {
        self.inner.probes.receiver_count() > 0
    }

    /// Marks the supervisor's loops as alive.
    pub fn beat(&self) {
        self.inner.heartbeat.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Follows the liveness counter.
    pub fn heartbeats(&self) -> watch::Receiver<u64> {
        self.inner.heartbeat.subscribe()
    }

    fn modify(&self, f: impl FnOnce(&mut StackSnapshot)) {
        drop(self.modify_held(f));
    }

    /// [`Self::modify`], returning the write lock still held.
    fn modify_held(&self, f: impl FnOnce(&mut StackSnapshot)) -> std::sync::MutexGuard<'_, ()> {
        let guard = self.lock();
        let now = unix_ms(std::time::SystemTime::now());
        let mut f = Some(f);
        // When no reader holds the current snapshot, change it in place: no
        // copy of the whole stack. Readers take their `Arc` under the
        // channel's read lock, which this write lock excludes, so nobody can
        // see the change half-done, and a snapshot someone holds never changes.
        self.inner
            .snapshot
            .send_if_modified(|current| match (Arc::get_mut(current), f.take()) {
                (Some(snap), Some(f)) => {
                    f(snap);
                    snap.at_ms = now;
                    true
                }
                (_, back) => {
                    f = back;
                    false
                }
            });
        if let Some(f) = f {
            // Someone holds it: the change goes into a copy.
            let mut next = StackSnapshot::clone(&self.inner.snapshot.borrow());
            f(&mut next);
            next.at_ms = now;
            self.inner.snapshot.send_replace(Arc::new(next));
        }
        guard
    }
}

impl ServiceStatus {
    /// A fresh `pending` status for a service.
    pub fn pending(name: impl Into<String>) -> ServiceStatus {
        ServiceStatus {
            name: name.into(),
            state: ServiceState::Pending,
            since_ms: unix_ms(std::time::SystemTime::now()),
            reason: String::new(),
            required: true,
            degraded: false,
            image: None,
            container_ids: Vec::new(),
            grace_ms: 0,
            restarts: 0,
            progress: None,
            probes: Vec::new(),
            level: 0,
            depends_on: Vec::new(),
            transitions: Vec::new(),
            grace_reasons: Vec::new(),
            degraded_by: Vec::new(),
            heal: Default::default(),
            pull: None,
            replicas: Vec::new(),
            tasks: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The contract the grace recorder relies on at the end of `up`: seen
    /// in a snapshot, then `sync`, means the event is in the channel. A
    /// writer thread changes state as fast as it can while this thread
    /// checks, thousands of times, that the newest change it saw arrived.
    #[test]
    fn after_sync_the_event_of_every_seen_change_is_queued() {
        let writer = Writer::new("p");
        writer.insert(ServiceStatus::pending("s"));
        let store = writer.store();
        let mut events = store.events();
        let writes = 5_000u32;
        let writer = {
            let store = writer;
            std::thread::spawn(move || {
                for i in 1..=writes {
                    let to = if i % 2 == 1 {
                        ServiceState::Starting
                    } else {
                        ServiceState::Ready
                    };
                    store.transition("s", to, i.to_string());
                }
            })
        };
        let mut newest_received = 0u32;
        loop {
            let seen: u32 = store.snapshot().services["s"].reason.parse().unwrap_or(0);
            store.sync();
            loop {
                match events.try_recv() {
                    Ok(event) => newest_received = event.transition.reason.parse().unwrap(),
                    // Behind by more than the channel holds: read on.
                    Err(broadcast::error::TryRecvError::Lagged(_)) => continue,
                    Err(_) => break,
                }
            }
            assert!(
                newest_received >= seen,
                "change {seen} was in a snapshot but its event had not arrived after sync (newest {newest_received})"
            );
            if seen == writes {
                break;
            }
        }
        writer.join().unwrap();
    }

    #[tokio::test]
    async fn transitions_are_recorded_and_streamed() {
        let store = Writer::new("p");
        store.insert(ServiceStatus::pending("redis"));
        let mut events = store.events();
        store.transition("redis", ServiceState::Starting, "container started");
        store.transition("redis", ServiceState::Ready, "PONG");
        store.transition("redis", ServiceState::Ready, "PONG again");
        let first = events.recv().await.unwrap();
        assert_eq!(first.transition.to, ServiceState::Starting);
        let second = events.recv().await.unwrap();
        assert_eq!(second.transition.from, ServiceState::Starting);
        assert_eq!(second.transition.to, ServiceState::Ready);
        assert!(events.try_recv().is_err(), "same-state move emits nothing");
        let snap = store.snapshot();
        let redis = &snap.services["redis"];
        assert_eq!(redis.state, ServiceState::Ready);
        assert_eq!(redis.reason, "PONG again");
        assert_eq!(redis.transitions.len(), 2);
        assert!(snap.all_required_ready());
        assert!(!store.update("nope", |_| {}));
    }

    #[tokio::test]
    async fn a_snapshot_someone_holds_never_changes() {
        let store = Writer::new("p");
        store.insert(ServiceStatus::pending("redis"));
        let mut rx = store.watch();
        rx.borrow_and_update();
        // Nobody holds it: changed in place, and followers are told.
        store.update("redis", |s| s.reason = "one".into());
        assert!(rx.has_changed().unwrap());
        let held = store.snapshot();
        assert_eq!(held.services["redis"].reason, "one");
        // Held: the change goes into a new snapshot; the held one stays as it was.
        store.update("redis", |s| s.reason = "two".into());
        assert_eq!(held.services["redis"].reason, "one");
        let now = store.snapshot();
        assert_eq!(now.services["redis"].reason, "two");
        assert!(!Arc::ptr_eq(&held, &now));
        drop(held);
        drop(now);
        store.transition("redis", ServiceState::Ready, "three");
        let snap = store.snapshot();
        assert_eq!(snap.services["redis"].state, ServiceState::Ready);
        assert_eq!(snap.services["redis"].reason, "three");
    }
}
