//! `up`'s side of the one writer of service state: every state `up` decides
//! (pending and why, blocked, failed, starting, and ready / completed /
//! failed of the services without muster probes) goes to the probe runner
//! as a typed request ([`Control::Set`]) instead of into the store.
//!
//! Why a channel and not the store: the runner owns the state machines of
//! the probed services, and the healer writes the other services' states
//! after `up` returns; with one writer, every transition is applied in the
//! order it was sent, whoever sent it. A task that must see its own writes
//! in the store (the end of `up`) waits for [`Writes::sync`].

use tokio::sync::{mpsc, oneshot};

use crate::supervisor::runner::Control;
use crate::supervisor::state::{Cause, ServiceState};

/// Where `up` sends its writes: the probe runner's control channel.
#[derive(Debug, Clone)]
pub(super) struct Writes(mpsc::UnboundedSender<Control>);

impl Writes {
    pub(super) fn new(control: mpsc::UnboundedSender<Control>) -> Writes {
        Writes(control)
    }

    /// Moves `service` to `to` (a move to the state it is in only changes
    /// the reason, as the store does).
    pub(super) fn set(&self, service: &str, to: ServiceState, reason: impl Into<String>) {
        self.set_caused(service, to, reason, None);
    }

    /// [`Self::set`] with the cause followers need to tell it apart.
    pub(super) fn set_caused(
        &self,
        service: &str,
        to: ServiceState,
        reason: impl Into<String>,
        cause: Option<Cause>,
    ) {
        // A runner that is gone ended with the process's supervision:
        // nobody reads the state any more.
        let _ = self.0.send(Control::Set {
            service: service.to_string(),
            to,
            reason: reason.into(),
            cause,
        });
    }

    /// Resolves once everything sent before is in the store.
    pub(super) async fn sync(&self) {
        let (done, applied) = oneshot::channel();
        if self.0.send(Control::Sync(done)).is_ok() {
            let _ = applied.await;
        }
    }
}
