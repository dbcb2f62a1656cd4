//! Paused services (`muster pause SERVICE`): the healer neither restarts nor
//! notifies for them until they are resumed; the pause shows in their heal
//! status (`/status`, `muster status`, `/readyz?verbose`, metrics, the page).

use super::*;

impl Healer {
    /// Applies the paused set read from the history store.
    pub(super) fn set_paused(&mut self, paused: &BTreeMap<String, PauseNote>) {
        for (name, svc) in self.services.iter_mut() {
            let now = paused.get(name).cloned();
            if svc.status.paused == now {
                continue;
            }
            match &now {
                Some(note) => {
                    tracing::info!(service = %name, by = %note.by, "paused: no restarts or notifications until resumed");
                    // A restart waiting for its backoff is dropped.
                    svc.pending = None;
                    svc.status.next_restart_ms = None;
                    svc.status.next_delay_ms = None;
                }
                None => {
                    tracing::info!(service = %name, "resumed: supervised again");
                    // An unready state seen while paused is judged afresh.
                    svc.acted_unready_since = None;
                }
            }
            svc.status.paused = now;
        }
    }

    /// True while `service` is paused.
    pub(super) fn is_paused(&self, service: &str) -> bool {
        self.services
            .get(service)
            .is_some_and(|s| s.status.paused.is_some())
    }
}

/// Reads the paused services every [`crate::supervisor::pause::POLL`] and
/// sends them on when they change; ends when the healer is gone.
pub(in crate::supervisor) async fn poll(
    history: HistoryStore,
    tx: tokio_watch::Sender<BTreeMap<String, PauseNote>>,
) {
    // The same failure every second is logged once.
    let mut last_error: Option<String> = None;
    loop {
        match crate::supervisor::pause::load(&history).await {
            Ok(paused) => {
                last_error = None;
                tx.send_if_modified(|current| {
                    let changed = *current != paused;
                    if changed {
                        *current = paused;
                    }
                    changed
                });
            }
            Err(e) => {
                let text = e.to_string();
                if last_error.as_ref() != Some(&text) {
                    tracing::warn!(error = %text, "cannot read the paused services");
                    last_error = Some(text);
                }
            }
        }
        if tx.is_closed() {
            return;
        }
        tokio::time::sleep(crate::supervisor::pause::POLL).await;
    }
}
