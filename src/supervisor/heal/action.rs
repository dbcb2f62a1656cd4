//! `x-muster.on_unhealthy` other than `restart`: what the healer does instead
//! of a restart when a service turns unhealthy (Podman's
//! `--health-on-failure`). `stop` and `kill` act at once on the running
//! containers (no backoff, no budget: they do not loop); `none` only
//! reports. Each sets the service's alert and sends a `failed` notification.

use super::notify::Extra;
use super::*;

impl Healer {
    /// Handles an unhealthy `service` whose `on_unhealthy` is not
    /// `restart`; false when it is `restart` (the caller restarts).
    pub(super) fn act_unhealthy(&mut self, service: &str, reason: &str) -> bool {
        let Some(action) = self.services.get(service).map(|s| s.on_unhealthy) else {
            return false;
        };
        let ids = self.running_ids(service);
        let text = match action {
            OnUnhealthy::Restart => return false,
            OnUnhealthy::None => {
                format!("unhealthy ({reason}); on_unhealthy: none, muster only reports")
            }
            OnUnhealthy::Stop | OnUnhealthy::Kill if ids.is_empty() => {
                tracing::debug!(
                    service,
                    "unhealthy with no running container; nothing to {}",
                    action.as_str()
                );
                return true;
            }
            OnUnhealthy::Stop => format!("stopped by muster (on_unhealthy: stop): {reason}"),
            OnUnhealthy::Kill => format!("killed by muster (on_unhealthy: kill): {reason}"),
        };
        tracing::error!(
            service,
            action = action.as_str(),
            reason,
            "service unhealthy"
        );
        if let Some(svc) = self.services.get_mut(service) {
            svc.status.alert = Some(text.clone());
            svc.troubled = true;
        }
        if matches!(action, OnUnhealthy::Stop | OnUnhealthy::Kill) {
            let grace = self.services.get(service).and_then(|s| s.stop_grace);
            for id in &ids {
                if let Some(c) = self.containers.get_mut(id) {
                    c.stop_requested = true;
                }
            }
            let engine = self.engine.clone();
            let service_name = service.to_string();
            tokio::spawn(async move {
                for id in ids {
                    let result = match action {
                        OnUnhealthy::Kill => engine.kill_container(&id).await,
                        _ => engine.stop_container(&id, grace).await,
                    };
                    if let Err(e) = result {
                        tracing::error!(service = %service_name, error = %e, "on_unhealthy action failed");
                    }
                }
            });
        }
        self.notify(service, NotifyEvent::Failed, &text, Extra::default());
        true
    }
}
