//! Notifications from the healer: the text and fields of a restart, failure
//! or recovery notice, handed to the [`Notifier`].

use super::*;

impl Healer {
    pub(super) fn notify_restart(&self, service: &str, reason: &str, extra: Extra) {
        self.notify(service, NotifyEvent::Restart, reason, extra);
    }

    pub(super) fn notify(&self, service: &str, event: NotifyEvent, reason: &str, extra: Extra) {
        let Extra {
            by,
            attempt,
            backoff,
            error,
        } = extra;
        let Some(svc) = self.services.get(service) else {
            return;
        };
        if svc.status.paused.is_some() {
            tracing::info!(service = %service, event = ?event, reason = %reason, "paused: not notified");
            return;
        }
        let restarts =
            svc.status.muster_restarts + svc.status.engine_restarts + svc.status.external_restarts;
        let budget = (svc.settings.budget > 0).then(|| BudgetNote {
            used: svc.budget.used(&svc.settings, now_ms()),
            limit: svc.settings.budget,
            window_s: svc.settings.window.as_secs(),
        });
        let who = format!("{}/{service}", self.project);
        let text = match (event, by) {
            (NotifyEvent::Restart, Some(by)) => {
                let how = match (by, attempt) {
                    (RestartBy::Muster, Some(n)) => format!(
                        "restarted by muster (restart {n} of {} in {})",
                        svc.settings.budget,
                        fmt(svc.settings.window)
                    ),
                    (RestartBy::Muster, None) => "restarted by muster".to_string(),
                    (RestartBy::Dependency, _) => "restarted by muster".to_string(),
                    (RestartBy::Engine, _) => "restarted by the engine".to_string(),
                    (RestartBy::External, _) => "restarted outside muster".to_string(),
                };
                match &error {
                    Some(e) => format!("{who}: restart failed: {e} ({reason})"),
                    None => format!("{who} {how}: {reason}"),
                }
            }
            (NotifyEvent::Restart, None) => format!("{who} restarted: {reason}"),
            (NotifyEvent::Failed, _) => format!("{who} failed: {reason}"),
            (NotifyEvent::Recovered, _) => format!("{who} recovered: {reason}"),
            (NotifyEvent::Degraded, _) => format!("{who} degraded: {reason}"),
        };
        self.notifier.notify(Notification {
            event,
            project: self.project.clone(),
            service: service.to_string(),
            reason: reason.to_string(),
            at_ms: now_ms(),
            containers: self.container_names(service),
            by,
            attempt,
            backoff_ms: backoff.map(|d| d.as_millis() as u64),
            restarts,
            budget,
            error,
            text,
            muster: env!("CARGO_PKG_VERSION").to_string(),
        });
    }
}

/// Optional parts of a notification.
#[derive(Debug, Default)]
pub(super) struct Extra {
    pub(super) by: Option<RestartBy>,
    pub(super) attempt: Option<u32>,
    pub(super) backoff: Option<Duration>,
    pub(super) error: Option<String>,
}
