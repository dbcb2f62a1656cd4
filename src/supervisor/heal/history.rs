//! Restart records in the durable history store: what is kept per service
//! (`restarts:{service}`, `restart-totals:{service}`), how the healer loads
//! them at start (so the budget and counts survive a muster restart) and the
//! writer task that stores new ones in order, off the healer's task.

use super::*;

impl Healer {
    /// Loads restart records and totals from the history store.
    pub(super) async fn load_history(&mut self, history: &HistoryStore) {
        let now = now_ms();
        for svc in self.services.values_mut() {
            let key = format!("restarts:{}", svc.name);
            match history.list(&key, HISTORY_CAP).await {
                Ok(values) => {
                    let records: Vec<RestartRecord> = values
                        .into_iter()
                        .filter_map(|v| serde_json::from_value(v).ok())
                        .collect();
                    let muster: Vec<u64> = records
                        .iter()
                        .filter(|r| r.by == RestartBy::Muster)
                        .map(|r| r.at_ms)
                        .collect();
                    svc.budget = Budget::from_records(muster);
                    svc.status.budget_used = svc.budget.used(&svc.settings, now);
                    svc.status.last_restart = records.first().map(|r| RestartNote {
                        at_ms: r.at_ms,
                        by: r.by.as_str().to_string(),
                        reason: r.reason.clone(),
                        backoff_ms: None,
                    });
                }
                Err(e) => {
                    tracing::warn!(service = %svc.name, error = %e, "cannot read restart history; the budget starts empty")
                }
            }
            match history.get(&format!("restart-totals:{}", svc.name)).await {
                Ok(Some(v)) => {
                    if let Ok(t) = serde_json::from_value::<RestartTotals>(v) {
                        svc.status.muster_restarts = t.muster;
                        svc.status.external_restarts = t.external;
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(service = %svc.name, error = %e, "cannot read restart totals")
                }
            }
        }
        tracing::debug!(history = %history.describe(), "restart history loaded");
    }

    pub(super) fn record(&mut self, service: &str, record: RestartRecord) {
        let Some(svc) = self.services.get(service) else {
            return;
        };
        let totals = RestartTotals {
            muster: svc.status.muster_restarts,
            external: svc.status.external_restarts,
        };
        let _ = self.history_tx.send(HistoryWrite::Record {
            service: service.to_string(),
            record,
            totals,
        });
    }
}

/// One restart as kept in the history store (`restarts:{service}`, newest first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartRecord {
    pub at_ms: u64,
    pub by: RestartBy,
    pub reason: String,
    pub containers: Vec<String>,
}

/// Totals kept in the history store (`restart-totals:{service}`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RestartTotals {
    #[serde(default)]
    pub muster: u32,
    #[serde(default)]
    pub external: u32,
}

pub(super) enum HistoryWrite {
    Record {
        service: String,
        record: RestartRecord,
        totals: RestartTotals,
    },
}

/// Writes restart records in order, off the healer's task.
pub(super) async fn write_history(
    history: Option<HistoryStore>,
    mut rx: mpsc::UnboundedReceiver<HistoryWrite>,
) {
    while let Some(HistoryWrite::Record {
        service,
        record,
        totals,
    }) = rx.recv().await
    {
        let Some(h) = &history else { continue };
        let value = serde_json::to_value(&record).unwrap_or_default();
        if let Err(e) = h
            .push(&format!("restarts:{service}"), &value, HISTORY_CAP)
            .await
        {
            tracing::warn!(service = %service, error = %e, "cannot record the restart in the history store");
        }
        let value = serde_json::to_value(&totals).unwrap_or_default();
        if let Err(e) = h.set(&format!("restart-totals:{service}"), &value).await {
            tracing::warn!(service = %service, error = %e, "cannot record restart totals in the history store");
        }
    }
}
