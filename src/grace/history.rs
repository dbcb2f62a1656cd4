//! Start-up history in the durable [`HistoryStore`]:
//! - `startup:{service}:cold` and `startup:{service}:warm`: the samples, one
//!   list per kind, newest first, capped at `grace.samples_kept`;
//! - `startup:{service}:image`: the image ID of the last start, ready or not,
//!   which tells the next start cold (another image) or warm (the same).

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::model::{last_image, next_kind, Sample, StartKind};
use crate::history::{HistoryError, HistoryStore};

/// The list name of one service's samples of one kind.
pub fn samples_key(service: &str, kind: StartKind) -> String {
    format!("startup:{service}:{kind}")
}

/// The value name of a service's last started image.
pub fn last_image_key(service: &str) -> String {
    format!("startup:{service}:image")
}

/// A service's history: samples newest first, and the last started image.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Samples {
    pub cold: Vec<Sample>,
    pub warm: Vec<Sample>,
    /// The image ID of the last start (else of the newest sample).
    pub last_image: Option<String>,
}

/// `startup:{service}:image`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct LastStart {
    image: String,
    at_ms: u64,
}

/// Reads up to `keep` samples of each kind and the last started image. An
/// entry that is not a sample (written by hand, or by another version) is
/// skipped with a warning.
pub async fn load_samples(
    history: &HistoryStore,
    service: &str,
    keep: usize,
) -> Result<Samples, HistoryError> {
    let mut out = Samples::default();
    for kind in [StartKind::Cold, StartKind::Warm] {
        let key = samples_key(service, kind);
        let list = history.list(&key, keep).await?;
        let parsed = parse_samples(&history.key(&key), list);
        match kind {
            StartKind::Cold => out.cold = parsed,
            StartKind::Warm => out.warm = parsed,
        }
    }
    out.last_image = match last_start(history, service).await? {
        Some(last) => Some(last.image),
        None => last_image(&out.cold, &out.warm).map(str::to_string),
    };
    Ok(out)
}

async fn last_start(
    history: &HistoryStore,
    service: &str,
) -> Result<Option<LastStart>, HistoryError> {
    let key = last_image_key(service);
    Ok(match history.get(&key).await? {
        Some(v) => match serde_json::from_value::<LastStart>(v) {
            Ok(last) => Some(last),
            Err(e) => {
                tracing::warn!(key = %history.key(&key), error = %e, "grace: ignoring a last-start entry that does not parse");
                None
            }
        },
        None => None,
    })
}

fn parse_samples(place: &str, list: Vec<Value>) -> Vec<Sample> {
    list.into_iter()
        .enumerate()
        .filter_map(|(i, v)| match serde_json::from_value::<Sample>(v) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!(key = %place, index = i, error = %e, "grace: skipping an entry that is not a start-up sample");
                None
            }
        })
        .collect()
}

/// A start of `service` running `image_id` begins: returns whether it is
/// cold (the last start ran another image, or none is recorded) or warm, and
/// records `image_id` as the last started image.
pub async fn note_start(
    history: &HistoryStore,
    service: &str,
    image_id: &str,
    at_ms: u64,
) -> Result<StartKind, HistoryError> {
    let last = match last_start(history, service).await? {
        Some(last) => Some(last.image),
        None => {
            // History from before the last-start key: the newest sample's image.
            let mut newest = Vec::new();
            for kind in [StartKind::Cold, StartKind::Warm] {
                let key = samples_key(service, kind);
                newest.extend(parse_samples(
                    &history.key(&key),
                    history.list(&key, 1).await?,
                ));
            }
            last_image(&newest, &[]).map(str::to_string)
        }
    };
    let kind = next_kind(last.as_deref(), image_id);
    let value = serde_json::json!(LastStart {
        image: image_id.to_string(),
        at_ms,
    });
    history.set(&last_image_key(service), &value).await?;
    Ok(kind)
}

/// Records one start-up sample of `kind` (as [`note_start`] said when the
/// start began): `ms` from container start to ready, ready at `at_ms`.
pub async fn record_sample(
    history: &HistoryStore,
    service: &str,
    kind: StartKind,
    image_id: &str,
    ms: u64,
    at_ms: u64,
    keep: usize,
) -> Result<(), HistoryError> {
    let sample = Sample {
        ms,
        image: image_id.to_string(),
        at_ms,
    };
    history
        .push(
            &samples_key(service, kind),
            &serde_json::json!(sample),
            keep,
        )
        .await
}

/// A whole start-up at once ([`note_start`], then [`record_sample`]): for
/// importing start-up times measured elsewhere, and for tests.
pub async fn record_start(
    history: &HistoryStore,
    service: &str,
    image_id: &str,
    ms: u64,
    at_ms: u64,
    keep: usize,
) -> Result<StartKind, HistoryError> {
    let kind = note_start(history, service, image_id, at_ms.saturating_sub(ms)).await?;
    record_sample(history, service, kind, image_id, ms, at_ms, keep).await?;
    Ok(kind)
}
