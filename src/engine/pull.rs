//! Image pulls through the Engine API (`POST /images/create`, bollard's
//! `create_image`), never by running `docker`: the engine streams one JSON
//! message per layer step, and a person wants one line per image. So this
//! file turns the stream into [`PullProgress`] (bytes done / total, rate,
//! ETA, layers done / total; the pure [`Tracker`]) and a failed pull into a
//! [`PullError`] that names the image, the registry and the registry's own
//! reason (manifest unknown, unauthorized, connection refused).
//!
//! Credentials come from [`super::auth`] (the docker CLI's config and helpers)
//! and go to the engine in the `X-Registry-Auth` header only; no error,
//! progress value or log line here holds them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::auth::{self, AuthError, Credentials};
use super::client::Engine;
use super::reference::{ImageRef, ReferenceError};

/// Where one image's pull is.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PullProgress {
    /// The image as the compose file names it.
    pub image: String,
    /// Compressed bytes downloaded so far (layers that already exist count as done).
    pub bytes_done: u64,
    /// Compressed bytes of the layers whose size is known yet.
    pub bytes_total: u64,
    pub layers_done: usize,
    pub layers_total: usize,
    /// Download rate in bytes per second since the first byte.
    pub rate_bps: u64,
    /// Seconds left at that rate, when it can be told.
    pub eta_s: Option<u64>,
    pub elapsed_ms: u64,
}

impl PullProgress {
    /// `120.0 MB / 1.1 GB, 40.2 MB/s, ETA 24 s, layers 3/7`.
    pub fn summary(&self) -> String {
        let mut text = format!(
            "{} / {}",
            human_bytes(self.bytes_done),
            human_bytes(self.bytes_total)
        );
        if self.rate_bps > 0 {
            text.push_str(&format!(", {}/s", human_bytes(self.rate_bps)));
        }
        if let Some(eta) = self.eta_s {
            text.push_str(&format!(", ETA {eta} s"));
        }
        text.push_str(&format!(
            ", layers {}/{}",
            self.layers_done, self.layers_total
        ));
        text
    }
}

/// `1.1 GB`, `40.2 MB`, `512 B` (decimal units, as docker prints).
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit < UNITS.len() - 1 {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[derive(Debug, Clone, Copy, Default)]
struct Layer {
    current: u64,
    total: u64,
    downloaded: bool,
    done: bool,
}

/// Folds the engine's per-layer messages into one [`PullProgress`]. Pure:
/// the caller passes the time, so it is tested without a clock.
#[derive(Debug, Default)]
pub struct Tracker {
    image: String,
    layers: HashMap<String, Layer>,
    /// Order layers were first seen in.
    order: Vec<String>,
    first_byte: Option<Instant>,
    began: Option<Instant>,
}

impl Tracker {
    pub fn new(image: &str) -> Tracker {
        Tracker {
            image: image.to_string(),
            ..Default::default()
        }
    }

    /// One message of the stream: the layer `id`, its `status`
    /// (`Pulling fs layer`, `Downloading`, `Download complete`, `Extracting`,
    /// `Pull complete`, `Already exists`, …) and its progress numbers.
    pub fn feed(
        &mut self,
        id: Option<&str>,
        status: &str,
        current: Option<i64>,
        total: Option<i64>,
        now: Instant,
    ) {
        self.began.get_or_insert(now);
        // Messages without a layer id are about the image (`Pulling from …`,
        // `Digest: …`, `Status: Downloaded newer image …`).
        let Some(id) = id.filter(|id| !id.is_empty() && is_layer_status(status)) else {
            return;
        };
        if !self.layers.contains_key(id) {
            self.order.push(id.to_string());
        }
        let layer = self.layers.entry(id.to_string()).or_default();
        match status {
            "Downloading" => {
                if let Some(t) = total.filter(|t| *t > 0) {
                    layer.total = t as u64;
                }
                if let Some(c) = current.filter(|c| *c >= 0) {
                    layer.current = (c as u64).max(layer.current);
                    if c > 0 {
                        self.first_byte.get_or_insert(now);
                    }
                }
            }
            "Verifying Checksum" | "Download complete" => {
                layer.downloaded = true;
                layer.current = layer.current.max(layer.total);
            }
            "Extracting" => {
                layer.downloaded = true;
                if let Some(t) = total.filter(|t| *t > 0) {
                    layer.total = layer.total.max(t as u64);
                }
                layer.current = layer.current.max(layer.total);
            }
            "Pull complete" | "Already exists" => {
                layer.downloaded = true;
                layer.done = true;
                layer.current = layer.current.max(layer.total);
            }
            _ => {}
        }
    }

    /// The image's progress as of `now`.
    pub fn progress(&self, now: Instant) -> PullProgress {
        let bytes_done: u64 = self.layers.values().map(|l| l.current).sum();
        let bytes_total: u64 = self.layers.values().map(|l| l.total.max(l.current)).sum();
        let layers_done = self.layers.values().filter(|l| l.done).count();
        let elapsed = self
            .began
            .map(|b| now.saturating_duration_since(b))
            .unwrap_or_default();
        let downloading = self
            .first_byte
            .map(|f| now.saturating_duration_since(f))
            .unwrap_or_default();
        let rate_bps = if downloading >= Duration::from_millis(200) {
            (bytes_done as f64 / downloading.as_secs_f64()) as u64
        } else {
            0
        };
        let all_sized = self.layers.values().all(|l| l.total > 0 || l.downloaded);
        let eta_s = (rate_bps > 0 && all_sized && !self.layers.is_empty())
            .then(|| bytes_total.saturating_sub(bytes_done) / rate_bps);
        PullProgress {
            image: self.image.clone(),
            bytes_done,
            bytes_total,
            layers_done,
            layers_total: self.order.len(),
            rate_bps,
            eta_s,
            elapsed_ms: elapsed.as_millis() as u64,
        }
    }
}

fn is_layer_status(status: &str) -> bool {
    matches!(
        status,
        "Pulling fs layer"
            | "Waiting"
            | "Downloading"
            | "Verifying Checksum"
            | "Download complete"
            | "Extracting"
            | "Pull complete"
            | "Already exists"
    )
}

/// What a finished pull left on the engine.
#[derive(Debug, Clone, Serialize)]
pub struct PullDone {
    pub image: String,
    pub id: String,
    /// Bytes on the engine (uncompressed), what the grace model reads.
    pub size: u64,
    /// Compressed bytes that were downloaded.
    pub downloaded: u64,
    pub layers: usize,
    #[serde(with = "crate::duration::serde_dur")]
    pub elapsed: Duration,
}

/// The registry's (or the engine's) reason a pull failed, sorted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PullFailure {
    /// No such repository or tag (`manifest unknown`).
    ManifestUnknown,
    /// 401: no or wrong credentials.
    Unauthorized,
    /// Nothing listens at the registry's address.
    ConnectionRefused,
    /// Anything else the engine reported.
    Other,
}

impl PullFailure {
    /// Sorts the engine's message (the registry's reason is inside it).
    pub fn classify(message: &str) -> PullFailure {
        let m = message.to_lowercase();
        if m.contains("manifest unknown")
            || m.contains("not found: manifest")
            || m.contains("name unknown")
            || (m.contains("manifest for") && m.contains("not found"))
        {
            PullFailure::ManifestUnknown
        } else if m.contains("unauthorized")
            || m.contains("authentication required")
            || m.contains("no basic auth credentials")
            || m.contains("401")
        {
            PullFailure::Unauthorized
        } else if m.contains("connection refused") {
            PullFailure::ConnectionRefused
        } else {
            PullFailure::Other
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            PullFailure::ManifestUnknown => "manifest unknown",
            PullFailure::Unauthorized => "401 unauthorized",
            PullFailure::ConnectionRefused => "connection refused",
            PullFailure::Other => "pull failed",
        }
    }
}

/// A pull that did not finish.
#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error(transparent)]
    Reference(#[from] ReferenceError),
    #[error("credentials for registry {registry} (image {image})")]
    Credentials {
        image: String,
        registry: String,
        #[source]
        source: AuthError,
    },
    #[error("pull {image} from registry {registry}: {} — {message}", .kind.as_str())]
    Registry {
        image: String,
        registry: String,
        kind: PullFailure,
        /// The engine's message, with the registry's own reason.
        message: String,
    },
    #[error("pull {image}: the engine's stream ended before the pull finished")]
    Interrupted { image: String },
}

impl PullError {
    /// The failure's sort, for `--json` and tests.
    pub fn kind(&self) -> PullFailure {
        match self {
            PullError::Registry { kind, .. } => *kind,
            PullError::Credentials { .. } => PullFailure::Unauthorized,
            _ => PullFailure::Other,
        }
    }
}

fn engine_message(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        bollard::errors::Error::DockerStreamError { error } => error.clone(),
        other => crate::error_text::error_chain(other),
    }
}

impl Engine {
    /// Pulls `image` with the docker CLI's credentials for its registry,
    /// calling `on_progress` after each message of the engine's stream.
    pub async fn pull_image(
        &self,
        image: &str,
        mut on_progress: impl FnMut(&PullProgress) + Send,
    ) -> Result<PullDone, PullError> {
        let reference = ImageRef::parse(image)?;
        let creds = auth::credentials_for(reference.auth_key())
            .await
            .map_err(|source| PullError::Credentials {
                image: image.to_string(),
                registry: reference.registry.clone(),
                source,
            })?;
        self.pull_with(image, &reference, creds.as_ref(), &mut on_progress)
            .await
    }

    /// [`Engine::pull_image`] with the credentials already found.
    pub async fn pull_with(
        &self,
        image: &str,
        reference: &ImageRef,
        creds: Option<&Credentials>,
        on_progress: &mut (dyn FnMut(&PullProgress) + Send),
    ) -> Result<PullDone, PullError> {
        let began = Instant::now();
        if let Some(c) = creds {
            tracing::debug!(%image, registry = %reference.registry, source = %c.source, "pulling with credentials");
        } else {
            tracing::debug!(%image, registry = %reference.registry, "pulling anonymously");
        }
        let options = bollard::query_parameters::CreateImageOptions {
            from_image: Some(reference.name()),
            tag: Some(reference.tag_or_digest().to_string()),
            ..Default::default()
        };
        let fail = |message: String| PullError::Registry {
            image: image.to_string(),
            registry: reference.registry.clone(),
            kind: PullFailure::classify(&message),
            message,
        };
        let mut stream =
            self.docker()
                .create_image(Some(options), None, creds.map(Credentials::to_docker));
        let mut tracker = Tracker::new(image);
        let mut finished = false;
        while let Some(item) = stream.next().await {
            let info = item.map_err(|e| fail(engine_message(&e)))?;
            let status = info.status.as_deref().unwrap_or("");
            if status.starts_with("Status:") || status.starts_with("Digest:") {
                finished = true;
            }
            let (current, total) = info
                .progress_detail
                .as_ref()
                .map(|d| (d.current, d.total))
                .unwrap_or((None, None));
            tracker.feed(info.id.as_deref(), status, current, total, Instant::now());
            on_progress(&tracker.progress(Instant::now()));
        }
        let progress = tracker.progress(Instant::now());
        let info = self
            .image_info(image)
            .await
            .map_err(|e| fail(crate::error_text::error_chain(&e)))?;
        let Some(info) = info else {
            return Err(if finished {
                fail("the engine reported the pull done but has no such image".into())
            } else {
                PullError::Interrupted {
                    image: image.to_string(),
                }
            });
        };
        Ok(PullDone {
            image: image.to_string(),
            id: info.id,
            size: info.size,
            downloaded: progress.bytes_done,
            layers: progress.layers_total,
            elapsed: began.elapsed(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_fold_into_one_line() {
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut t = Tracker::new("app:1");
        t.feed(None, "Pulling from muster/app", None, None, at(0));
        t.feed(Some("a"), "Pulling fs layer", None, None, at(0));
        t.feed(Some("b"), "Pulling fs layer", None, None, at(0));
        t.feed(Some("c"), "Already exists", None, None, at(0));
        t.feed(Some("a"), "Downloading", Some(500), Some(1000), at(0));
        t.feed(Some("b"), "Downloading", Some(1000), Some(3000), at(1000));
        let p = t.progress(at(1000));
        assert_eq!((p.bytes_done, p.bytes_total), (1500, 4000));
        assert_eq!((p.layers_done, p.layers_total), (1, 3));
        assert_eq!(p.rate_bps, 1500);
        assert_eq!(p.eta_s, Some(1));
        t.feed(Some("a"), "Download complete", None, None, at(1100));
        t.feed(Some("a"), "Extracting", Some(10), Some(1000), at(1200));
        t.feed(Some("a"), "Pull complete", None, None, at(1300));
        let p = t.progress(at(1300));
        assert_eq!(p.bytes_done, 2000);
        assert_eq!(p.layers_done, 2);
        assert!(p.summary().contains("layers 2/3"), "{}", p.summary());
        // A layer whose size is not known yet: no ETA.
        t.feed(Some("d"), "Waiting", None, None, at(1400));
        assert_eq!(t.progress(at(1400)).eta_s, None);
    }

    #[test]
    fn failures_are_sorted_by_the_registrys_reason() {
        use PullFailure::*;
        for (m, k) in [
            ("manifest for 127.0.0.1:5000/app:nope not found: manifest unknown: manifest unknown", ManifestUnknown),
            ("Head \"http://127.0.0.1:5000/v2/app/manifests/1\": no basic auth credentials", Unauthorized),
            ("unauthorized: authentication required", Unauthorized),
            ("Get \"http://127.0.0.1:5000/v2/\": dial tcp 127.0.0.1:5000: connect: connection refused", ConnectionRefused),
            ("toomanyrequests", Other),
        ] {
            assert_eq!(PullFailure::classify(m), k, "{m}");
        }
        assert_eq!(human_bytes(999), "999 B");
        assert_eq!(human_bytes(1_100_000_000), "1.1 GB");
    }
}
