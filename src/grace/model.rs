//! The pure part of grace tuning: no I/O, no clock. Given what is declared,
//! the image's size and the recorded start-up samples, [`decide`] returns the
//! effective start period of a service and why. The supervisor, `muster tune`
//! and the simulation benchmark all call this one function.
//!
//! ```text
//! cold start: max(declared, size model, learned cold)
//! warm start: max(declared, learned warm)            once warm starts are learned,
//!             as a cold start                        until then
//! size model: size_base + size_per_gb × GB           for images of size_min_gb and more
//! learned:    max(p95 × margin − failure window, p95)  once min_samples samples exist
//! ```
//!
//! The failure window is how long the service's fastest check needs to give
//! up after the start period (failure_threshold × period of a muster probe,
//! retries × interval of a Docker healthcheck). Taking it off makes `margin`
//! the whole allowance: a start that takes longer than p95 × margin is called
//! failed, one that takes less never is.

use std::time::Duration;

use serde::{Deserialize, Serialize, Serializer};
use serde_saphyr::Spanned;

use crate::compose::xmuster::GraceSetting;

/// Sizes are in decimal gigabytes, as `docker images` prints them.
pub const BYTES_PER_GB: f64 = 1e9;

/// The coefficients of grace tuning (`grace:` in config/muster.yaml).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraceConfig {
    /// Learned p95 × margin is the time a start may take (at least 1).
    pub margin: f64,
    /// Samples of one kind (cold or warm) needed before they are used.
    pub min_samples: usize,
    /// Samples kept per service and kind (newest first).
    pub samples_kept: usize,
    /// Images smaller than this (GB) get no size-model period.
    pub size_min_gb: f64,
    /// Size model: this much for any image of size_min_gb or more …
    #[serde(with = "crate::duration::serde_dur")]
    pub size_base: Duration,
    /// … plus this much per GB of image.
    #[serde(with = "crate::duration::serde_dur")]
    pub size_per_gb: Duration,
}

impl Default for GraceConfig {
    fn default() -> Self {
        GraceConfig {
            // Detection of a hang lands at margin × the learned p95, so a
            // margin of 1.5 sits exactly on a 1.5 × p95 target and misses it
            // half the time by sampling noise; 1.4 leaves room. Five samples
            // learn a warm p95 too low now and then (a false alarm in ~4 500
            // simulated starts); ten never did (benches/grace_sim.rs).
            margin: 1.4,
            min_samples: 10,
            samples_kept: 50,
            size_min_gb: 1.0,
            size_base: Duration::from_secs(10),
            size_per_gb: Duration::from_secs(16),
        }
    }
}

/// `grace:` in config/muster.yaml as written; every field is optional. Each
/// value is read as text with its position, so a bad one is reported with
/// its field name and line ([`GraceConfig::from_file`]).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GraceFile {
    /// A number of at least 1.
    pub margin: Option<Spanned<ScalarText>>,
    /// A whole number of at least 1.
    pub min_samples: Option<Spanned<ScalarText>>,
    /// A whole number, at least min_samples.
    pub samples_kept: Option<Spanned<ScalarText>>,
    /// A number of GB, 0 or more.
    pub size_min_gb: Option<Spanned<ScalarText>>,
    /// A Go duration (`10s`).
    pub size_base: Option<Spanned<ScalarText>>,
    /// A Go duration (`16s`).
    pub size_per_gb: Option<Spanned<ScalarText>>,
}

/// Any YAML scalar (string, number, bool), kept as its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScalarText(pub String);

impl<'de> Deserialize<'de> for ScalarText {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = ScalarText;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a number, a duration or a word")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<ScalarText, E> {
                Ok(ScalarText(v.to_string()))
            }
        }
        d.deserialize_any(V)
    }
}

/// A `grace:` value muster cannot use: the field, its line in the config
/// file, what it must be and what it is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("grace.{field} (line {line}): {what}, got {got:?}")]
pub struct GraceConfigError {
    pub field: String,
    pub line: u64,
    pub what: String,
    pub got: String,
}

/// Why a service's image has no facts (grace then uses the declared values).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ImageError {
    #[error("the service has no `image:`")]
    NoImage,
    /// Re-deciding a decision that had no image facts.
    #[error("not inspected")]
    NotInspected,
    #[error("{reference}: no Docker engine")]
    NoEngine { reference: String },
    #[error("{reference} is not present on the engine")]
    Absent { reference: String },
    /// The engine's answer to the inspection, as text (this core does no I/O
    /// and knows no engine types).
    #[error("{reference}: {message}")]
    Inspect { reference: String, message: String },
}

impl GraceConfig {
    /// The defaults with the file's values over them. The error names the
    /// field and its line (`grace.margin (line 3): …`); the caller adds the file.
    pub fn from_file(file: &GraceFile) -> Result<GraceConfig, GraceConfigError> {
        let mut cfg = GraceConfig::default();
        let err = |field: &str, v: &Spanned<ScalarText>, what: String| GraceConfigError {
            field: field.to_string(),
            line: v.referenced.line(),
            what,
            got: v.value.0.clone(),
        };
        let number = |field: &str, v: &Spanned<ScalarText>, min: f64, what: &str| match v
            .value
            .0
            .trim()
            .parse::<f64>()
        {
            Ok(n) if n.is_finite() && n >= min => Ok(n),
            _ => Err(err(field, v, what.to_string())),
        };
        let whole = |field: &str, v: &Spanned<ScalarText>, min: usize| match v
            .value
            .0
            .trim()
            .parse::<usize>()
        {
            Ok(n) if n >= min => Ok(n),
            _ => Err(err(
                field,
                v,
                format!("must be a whole number of at least {min}"),
            )),
        };
        let duration = |field: &str, v: &Spanned<ScalarText>| {
            crate::duration::parse(v.value.0.trim()).map_err(|e| {
                err(
                    field,
                    v,
                    format!("must be a Go duration such as 16s ({})", e.reason),
                )
            })
        };
        if let Some(v) = &file.margin {
            cfg.margin = number(
                "margin",
                v,
                1.0,
                "must be a number of at least 1 (below 1, a start that takes the usual time would be called failed)",
            )?;
        }
        if let Some(v) = &file.min_samples {
            cfg.min_samples = whole("min_samples", v, 1)?;
        }
        if let Some(v) = &file.samples_kept {
            cfg.samples_kept = whole("samples_kept", v, cfg.min_samples)?;
        } else if cfg.samples_kept < cfg.min_samples {
            cfg.samples_kept = cfg.min_samples;
        }
        if let Some(v) = &file.size_min_gb {
            cfg.size_min_gb = number("size_min_gb", v, 0.0, "must be a number of GB, 0 or more")?;
        }
        if let Some(v) = &file.size_base {
            cfg.size_base = duration("size_base", v)?;
        }
        if let Some(v) = &file.size_per_gb {
            cfg.size_per_gb = duration("size_per_gb", v)?;
        }
        Ok(cfg)
    }
}

/// Cold: the first start of an image (after it was built, pulled or loaded);
/// warm: a later start of the same image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartKind {
    Cold,
    Warm,
}

impl StartKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StartKind::Cold => "cold",
            StartKind::Warm => "warm",
        }
    }
}

impl std::fmt::Display for StartKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// One recorded start-up: container start to first ready.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    /// Milliseconds from container start to first ready.
    pub ms: u64,
    /// The image ID the container ran.
    pub image: String,
    /// Unix milliseconds when the service became ready.
    pub at_ms: u64,
}

impl Sample {
    pub fn duration(&self) -> Duration {
        Duration::from_millis(self.ms)
    }
}

/// The image of the newest sample, over both kinds (the last start when no
/// last-start record exists).
pub fn last_image<'a>(cold: &'a [Sample], warm: &'a [Sample]) -> Option<&'a str> {
    cold.iter()
        .chain(warm)
        .max_by_key(|s| s.at_ms)
        .map(|s| s.image.as_str())
}

/// Cold when the last start ran another image (or none is known), warm otherwise.
pub fn next_kind(last_image: Option<&str>, image_id: &str) -> StartKind {
    match last_image {
        Some(last) if last == image_id => StartKind::Warm,
        _ => StartKind::Cold,
    }
}

/// The 95th percentile by nearest rank (never below a sample that was seen
/// in the top 5%); `None` for no samples.
pub fn p95(samples: &[Duration]) -> Option<Duration> {
    if samples.is_empty() {
        return None;
    }
    let mut sorted = samples.to_vec();
    sorted.sort();
    let rank = (samples.len() * 95).div_ceil(100).max(1);
    sorted.get(rank - 1).copied()
}

/// Rounded up to whole seconds.
pub fn ceil_secs(d: Duration) -> Duration {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    Duration::from_secs(secs)
}

/// The size model: `None` under `size_min_gb`, else base + per_gb × GB, rounded up.
pub fn size_model(cfg: &GraceConfig, size_bytes: u64) -> Option<Duration> {
    let gb = size_bytes as f64 / BYTES_PER_GB;
    if gb < cfg.size_min_gb {
        return None;
    }
    Some(ceil_secs(cfg.size_base + cfg.size_per_gb.mul_f64(gb)))
}

/// The learned period: p95 × margin (to the millisecond) less the failure
/// window, never under the p95 itself.
pub fn learned_period(cfg: &GraceConfig, p95: Duration, failure_window: Duration) -> Duration {
    let allowed = Duration::from_millis((p95.as_millis() as f64 * cfg.margin).round() as u64);
    allowed.saturating_sub(failure_window).max(p95)
}

/// What was learned from one kind of start.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Learned {
    pub kind: StartKind,
    pub samples: usize,
    #[serde(rename = "p95_ms", serialize_with = "as_ms")]
    pub p95: Duration,
    #[serde(rename = "period_ms", serialize_with = "as_ms")]
    pub period: Duration,
}

/// Learned from `samples` once there are `min_samples` of them.
pub fn learn(
    cfg: &GraceConfig,
    kind: StartKind,
    samples: &[Sample],
    failure_window: Duration,
) -> Option<Learned> {
    if samples.len() < cfg.min_samples {
        return None;
    }
    let durations: Vec<Duration> = samples.iter().map(Sample::duration).collect();
    let p95 = p95(&durations)?;
    Some(Learned {
        kind,
        samples: samples.len(),
        p95,
        period: learned_period(cfg, p95, failure_window),
    })
}

/// The image as the engine reported it (or, before its first pull, as its
/// registry's manifest does: then `compressed`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ImageFacts {
    pub reference: String,
    pub id: String,
    /// Bytes.
    pub size: u64,
    /// The image declares a HEALTHCHECK.
    pub has_healthcheck: bool,
    /// `size` is the compressed size from the registry's manifest (the
    /// image is not on the engine yet); on the engine it will be larger.
    pub compressed: bool,
}

/// Which term gave the effective period.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GraceSource {
    /// The declared start_period (also when nothing else applies).
    Declared,
    /// The image-size model.
    ImageSize,
    /// Learned start-up history.
    Learned,
    /// `x-muster.grace: <duration>`.
    Fixed,
    /// `x-muster.grace: off`.
    Off,
}

impl GraceSource {
    pub fn as_str(self) -> &'static str {
        match self {
            GraceSource::Declared => "declared",
            GraceSource::ImageSize => "image size",
            GraceSource::Learned => "learned",
            GraceSource::Fixed => "fixed",
            GraceSource::Off => "off",
        }
    }
}

/// Everything one decision depends on.
#[derive(Debug, Clone)]
pub struct GraceInputs<'a> {
    pub setting: GraceSetting,
    /// The compose healthcheck's start_period (zero when none).
    pub declared: Duration,
    /// The image, or why it could not be inspected.
    pub image: Result<ImageFacts, ImageError>,
    /// Recorded samples, newest first.
    pub cold: &'a [Sample],
    pub warm: &'a [Sample],
    /// The image ID of the last start (ready or not), if any was recorded.
    pub last_image: Option<&'a str>,
    /// See the module docs.
    pub failure_window: Duration,
}

/// The effective start period of a service, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GraceDecision {
    pub service: String,
    #[serde(rename = "period_ms", serialize_with = "as_ms")]
    pub period: Duration,
    pub source: GraceSource,
    /// `x-muster.grace`: `auto`, `off` or a duration.
    pub setting: GraceSetting,
    /// The kind of start the period is for (`None` when not tuned).
    pub next_start: Option<StartKind>,
    #[serde(rename = "declared_ms", serialize_with = "as_ms")]
    pub declared: Duration,
    #[serde(rename = "size_model_ms", serialize_with = "opt_ms")]
    pub size_model: Option<Duration>,
    /// The learned term that applied to the next start, if any.
    pub learned: Option<Learned>,
    #[serde(rename = "failure_window_ms", serialize_with = "as_ms")]
    pub failure_window: Duration,
    pub image: Option<ImageFacts>,
    pub cold_samples: usize,
    pub warm_samples: usize,
    /// Human-readable reasons, most important first.
    pub reasons: Vec<String>,
}

fn as_ms<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_millis() as u64)
}

fn opt_ms<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_u64(d.as_millis() as u64),
        None => s.serialize_none(),
    }
}

/// `212 s`, `1.5 s`.
pub fn show(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

/// `14.2 GB`, `19.5 MB` (decimal units, as `docker images` prints them).
pub fn show_size(bytes: u64) -> String {
    let gb = bytes as f64 / BYTES_PER_GB;
    if gb >= 1.0 {
        format!("{gb:.1} GB")
    } else {
        format!("{:.1} MB", bytes as f64 / 1e6)
    }
}

/// `sha256:0123456789abcdef…` -> `0123456789ab`.
pub fn short_id(id: &str) -> &str {
    let id = id.strip_prefix("sha256:").unwrap_or(id);
    id.get(..12).unwrap_or(id)
}

fn show_margin(m: f64) -> String {
    let text = format!("{m:.2}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

fn learned_reason(cfg: &GraceConfig, l: &Learned, window: Duration) -> String {
    let less = if window.is_zero() {
        String::new()
    } else {
        format!(" − {} failure window", show(window))
    };
    format!(
        "{} {} samples, p95 {} × {}{less} → {}",
        l.samples,
        l.kind,
        show(l.p95),
        show_margin(cfg.margin),
        show(l.period)
    )
}

/// The effective start period of `service` (see the module docs).
pub fn decide(cfg: &GraceConfig, service: &str, inputs: &GraceInputs<'_>) -> GraceDecision {
    let mut d = GraceDecision {
        service: service.to_string(),
        period: inputs.declared,
        source: GraceSource::Declared,
        setting: inputs.setting,
        next_start: None,
        declared: inputs.declared,
        size_model: None,
        learned: None,
        failure_window: inputs.failure_window,
        image: inputs.image.as_ref().ok().cloned(),
        cold_samples: inputs.cold.len(),
        warm_samples: inputs.warm.len(),
        reasons: Vec::new(),
    };
    match inputs.setting {
        GraceSetting::Fixed(fixed) => {
            d.period = fixed;
            d.source = GraceSource::Fixed;
            d.reasons.push(format!(
                "x-muster.grace: {} (fixed: not tuned)",
                crate::duration::format(fixed)
            ));
            return d;
        }
        GraceSetting::Off => {
            d.period = Duration::ZERO;
            d.source = GraceSource::Off;
            d.reasons
                .push("x-muster.grace: off (no start period: failures count at once)".into());
            return d;
        }
        GraceSetting::Auto => {}
    }
    let declared_reason = if inputs.declared.is_zero() {
        "no start_period declared".to_string()
    } else {
        format!("declared start_period {}", show(inputs.declared))
    };
    let image = match &inputs.image {
        Ok(image) => image,
        Err(why) => {
            d.reasons.push(format!(
                "image cannot be inspected ({why}): declared values used"
            ));
            d.reasons.push(declared_reason);
            return d;
        }
    };

    let kind = next_kind(inputs.last_image, &image.id);
    d.next_start = Some(kind);
    let mut reasons = Vec::new();
    reasons.push(match (kind, inputs.last_image) {
        (StartKind::Warm, _) => format!(
            "next start is warm: image {} started before",
            short_id(&image.id)
        ),
        (StartKind::Cold, None) => format!(
            "next start is cold: no start recorded yet (image {})",
            short_id(&image.id)
        ),
        (StartKind::Cold, Some(last)) => format!(
            "next start is cold: image {} is new (the last start ran {})",
            short_id(&image.id),
            short_id(last)
        ),
    });

    let size = size_model(cfg, image.size);
    d.size_model = size;
    let shown_size = match image.compressed {
        true => format!(
            "{} (compressed size from the registry manifest: not pulled yet)",
            show_size(image.size)
        ),
        false => show_size(image.size),
    };
    let size_reason = match size {
        Some(p) => format!(
            "image {} {} → {} ({} + {} per GB)",
            image.reference,
            shown_size,
            show(p),
            show(cfg.size_base),
            show(cfg.size_per_gb)
        ),
        None => format!(
            "image {} {}: under the {} GB size-model threshold",
            image.reference,
            shown_size,
            show_margin(cfg.size_min_gb)
        ),
    };
    let window = inputs.failure_window;
    let cold = learn(cfg, StartKind::Cold, inputs.cold, window);
    let warm = learn(cfg, StartKind::Warm, inputs.warm, window);
    let not_yet = |kind: StartKind, n: usize| {
        format!(
            "{n} {kind} samples ({} needed to learn {kind} starts)",
            cfg.min_samples
        )
    };

    // Candidates: (period, source, learned).
    let mut candidates: Vec<(Duration, GraceSource, Option<Learned>)> =
        vec![(inputs.declared, GraceSource::Declared, None)];
    let cold_terms = |candidates: &mut Vec<(Duration, GraceSource, Option<Learned>)>,
                      reasons: &mut Vec<String>| {
        if let Some(p) = size {
            candidates.push((p, GraceSource::ImageSize, None));
        }
        reasons.push(size_reason.clone());
        match &cold {
            Some(l) => {
                candidates.push((l.period, GraceSource::Learned, Some(l.clone())));
                reasons.push(learned_reason(cfg, l, window));
            }
            None => reasons.push(not_yet(StartKind::Cold, inputs.cold.len())),
        }
    };
    match (kind, &warm) {
        (StartKind::Warm, Some(l)) => {
            candidates.push((l.period, GraceSource::Learned, Some(l.clone())));
            reasons.push(learned_reason(cfg, l, window));
            reasons.push(format!(
                "warm starts are learned: the image size ({}) is not used",
                show_size(image.size)
            ));
        }
        (StartKind::Warm, None) => {
            reasons.push(format!(
                "{}: taken as a cold start until then",
                not_yet(StartKind::Warm, inputs.warm.len())
            ));
            cold_terms(&mut candidates, &mut reasons);
        }
        (StartKind::Cold, _) => cold_terms(&mut candidates, &mut reasons),
    }
    reasons.push(declared_reason);
    // The largest wins; on a tie the earlier (declared, then size) is named.
    let mut best = candidates[0].clone();
    for c in candidates.into_iter().skip(1) {
        if c.0 > best.0 {
            best = c;
        }
    }
    d.period = best.0;
    d.source = best.1;
    d.learned = best.2.or(match kind {
        StartKind::Warm => warm.clone().or(cold.clone()),
        StartKind::Cold => cold.clone(),
    });
    // The term that won goes first.
    let lead = match d.source {
        GraceSource::ImageSize => reasons.iter().position(|r| r.starts_with("image ")),
        GraceSource::Learned => reasons.iter().position(|r| r.contains(" samples, p95 ")),
        GraceSource::Declared => reasons.iter().position(|r| r.contains("start_period")),
        _ => None,
    };
    if let Some(i) = lead {
        let r = reasons.remove(i);
        reasons.insert(0, r);
    }
    d.reasons = reasons;
    d
}

#[cfg(test)]
mod tests;
