//! Grace periods for huge images: the effective start period of each
//! service, from what is declared, the image's size and learned start-up
//! history (see [`model`] for the rule and [`recorder`] for the learning).
//!
//! - [`model`]: the pure decision ([`decide`]), shared by the supervisor,
//!   `muster tune` and the simulation benchmark.
//! - [`history`]: samples in the durable [`HistoryStore`] (Redis, or the
//!   state file when Redis is unreachable).
//! - [`recorder`]: records a sample each time a service goes starting -> ready.
//! - [`tune`]: the healthcheck values `muster tune` prints and writes.

pub mod history;
pub mod model;
pub mod tune;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

pub use history::{
    last_image_key, load_samples, note_start, record_sample, record_start, samples_key, Samples,
};
pub use model::*;

use crate::compose::xmuster::{GraceSetting, MusterService};
use crate::compose::{HealthTest, Healthcheck, Project, Service};
use crate::engine::Engine;
use crate::history::{HistoryOptions, HistoryStore};

/// What grace tuning needs of muster's settings (built by the settings from
/// flags, environment, the config file and defaults).
#[derive(Debug, Clone, PartialEq)]
pub struct GraceOptions {
    /// The coefficients (`grace:` in the config file).
    pub config: GraceConfig,
    /// config/muster.yaml's per-service `x-muster`, for services whose
    /// compose file sets none.
    pub services: BTreeMap<String, MusterService>,
    /// Where start-up samples live.
    pub history: HistoryOptions,
}

/// `x-muster.grace` of a service: its compose `x-muster`, else
/// config/muster.yaml's entry for it (`config_services`), else `auto`.
pub fn grace_setting(
    service: &Service,
    config_services: &BTreeMap<String, MusterService>,
) -> GraceSetting {
    match service.muster.as_ref().map(|m| m.grace) {
        Some(g) if g != GraceSetting::Auto => g,
        _ => service
            .muster_settings(config_services)
            .map(|m| m.grace)
            .unwrap_or_default(),
    }
}

/// The compose healthcheck's start_period (zero without one, or when disabled).
pub fn declared_start_period(service: &Service) -> Duration {
    service
        .healthcheck
        .as_ref()
        .filter(|h| !h.disable)
        .map(|h| h.start_period)
        .unwrap_or_default()
}

/// Whether the Docker healthcheck of a service has a test to run.
pub fn healthcheck_runs(healthcheck: Option<&Healthcheck>, image_has_healthcheck: bool) -> bool {
    match healthcheck {
        Some(h) if h.disable => false,
        Some(h) => match &h.test {
            Some(HealthTest::None) => false,
            Some(_) => true,
            None => image_has_healthcheck,
        },
        None => image_has_healthcheck,
    }
}

/// How long the fastest of the service's checks takes to give up once the
/// start period is over: failure_threshold × period of each muster probe,
/// retries × interval of a Docker healthcheck that runs. Zero without checks.
pub fn failure_window(
    muster: Option<&MusterService>,
    healthcheck: Option<&Healthcheck>,
    image_has_healthcheck: bool,
) -> Duration {
    let probes = muster.into_iter().flat_map(|m| &m.probes).map(|p| {
        p.timing
            .period
            .saturating_mul(p.timing.failure_threshold.max(1))
    });
    let docker = healthcheck_runs(healthcheck, image_has_healthcheck).then(|| {
        let h = healthcheck.cloned().unwrap_or_default();
        h.interval.saturating_mul(h.retries.max(1))
    });
    probes.chain(docker).min().unwrap_or_default()
}

/// Inspects a service's image: its facts, or why there are none.
pub async fn image_facts(
    engine: Option<&Engine>,
    service: &Service,
) -> Result<ImageFacts, ImageError> {
    let Some(reference) = service.image.as_deref() else {
        return Err(ImageError::NoImage);
    };
    let Some(engine) = engine else {
        return Err(ImageError::NoEngine {
            reference: reference.to_string(),
        });
    };
    image_facts_of(engine, reference).await
}

/// Inspects the image `reference` on the engine: its facts, or why there are none.
pub async fn image_facts_of(engine: &Engine, reference: &str) -> Result<ImageFacts, ImageError> {
    let reference_owned = || reference.to_string();
    match engine.image_info(reference).await {
        Ok(Some(info)) => Ok(ImageFacts {
            reference: reference_owned(),
            id: info.id,
            size: info.size,
            has_healthcheck: info.healthcheck.is_some(),
            compressed: false,
        }),
        Ok(None) => Err(ImageError::Absent {
            reference: reference_owned(),
        }),
        Err(e) => Err(ImageError::Inspect {
            reference: reference_owned(),
            message: e.to_string(),
        }),
    }
}

/// [`image_facts`], and for an image that is not on the engine (or with no
/// engine) its compressed size from the registry's manifest (`muster tune`
/// before the first pull). Its HEALTHCHECK is not known then.
pub async fn image_facts_or_registry(
    engine: Option<&Engine>,
    service: &Service,
) -> Result<ImageFacts, ImageError> {
    match image_facts(engine, service).await {
        Err(ImageError::Absent { reference } | ImageError::NoEngine { reference }) => {
            match crate::engine::registry::image_size(&reference).await {
                Ok(size) => Ok(ImageFacts {
                    reference,
                    id: size.config_digest.unwrap_or_default(),
                    size: size.compressed,
                    has_healthcheck: false,
                    compressed: true,
                }),
                Err(e) => Err(ImageError::Inspect {
                    message: format!(
                        "not on the engine, and its registry cannot tell its size: {}",
                        crate::error_text::error_chain(&e)
                    ),
                    reference,
                }),
            }
        }
        other => other,
    }
}

/// Where [`decide_services`] gets a service's image facts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageSource {
    /// The engine only (`up`, `serve`: the pull tells the size later).
    Engine,
    /// The engine, else the registry's manifest (`muster tune`).
    EngineOrRegistry,
}

/// The grace decision of every service in `names` (all when empty). An image
/// that cannot be inspected, or history that cannot be read, is warned about
/// and the decision falls back (to the declared values, to no samples).
pub async fn decide_services(
    project: &Project,
    options: &GraceOptions,
    engine: Option<&Engine>,
    history: Option<&HistoryStore>,
    names: &[String],
    source: ImageSource,
) -> BTreeMap<String, GraceDecision> {
    let cfg = &options.config;
    let mut out = BTreeMap::new();
    // One warning per image, naming its services (ten services of one image
    // that is not there are one problem, not ten).
    let mut unseen: BTreeMap<String, (ImageError, Vec<String>)> = BTreeMap::new();
    for (name, service) in &project.services {
        if !names.is_empty() && !names.contains(name) {
            continue;
        }
        let setting = grace_setting(service, &options.services);
        let image = match source {
            ImageSource::Engine => image_facts(engine, service).await,
            ImageSource::EngineOrRegistry => image_facts_or_registry(engine, service).await,
        };
        if let (GraceSetting::Auto, Err(why)) = (setting, &image) {
            let key = service.image.clone().unwrap_or_default();
            unseen
                .entry(key)
                .or_insert_with(|| (why.clone(), Vec::new()))
                .1
                .push(name.clone());
        }
        let mut history_note = None;
        let samples = match history {
            Some(h) if setting == GraceSetting::Auto => {
                match load_samples(h, name, cfg.samples_kept).await {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::warn!(service = %name, error = %e, "grace: start-up history cannot be read; tuning without it");
                        history_note = Some(format!("history cannot be read ({e})"));
                        Samples::default()
                    }
                }
            }
            _ => Samples::default(),
        };
        let muster = service.muster_settings(&options.services);
        let image_hc = image.as_ref().is_ok_and(|i| i.has_healthcheck);
        let inputs = GraceInputs {
            setting,
            declared: declared_start_period(service),
            image,
            cold: &samples.cold,
            warm: &samples.warm,
            last_image: samples.last_image.as_deref(),
            failure_window: failure_window(muster, service.healthcheck.as_ref(), image_hc),
        };
        let mut decision = decide(cfg, name, &inputs);
        decision.reasons.extend(history_note);
        out.insert(name.clone(), decision);
    }
    for (why, services) in unseen.into_values() {
        let services = services.join(", ");
        match (&why, source) {
            // `up` pulls it next; the supervisor decides again once it starts.
            (ImageError::Absent { .. }, ImageSource::Engine) => tracing::info!(
                %services,
                reason = %why,
                "grace: image not pulled yet; the declared start period holds until it is there"
            ),
            // Built by `up` (no `image:`), or nothing to inspect with.
            (ImageError::NoImage, _) => {
                tracing::debug!(%services, reason = %why, "grace: no image to inspect; using the declared start period")
            }
            _ => tracing::warn!(
                %services,
                reason = %why,
                "grace: image cannot be inspected; using the declared start period"
            ),
        }
    }
    out
}

/// Grace for a supervising muster (`up`, `serve`): the decisions the probe
/// plan uses, and the history the recorder writes to.
pub struct GraceRun {
    pub decisions: BTreeMap<String, GraceDecision>,
    pub history: HistoryStore,
    pub keep: usize,
    /// The coefficients, to decide again as samples come in.
    pub config: GraceConfig,
    /// service -> image reference, to inspect an image that was not there
    /// when the decisions were made (pulled later).
    pub references: HashMap<String, String>,
}

impl GraceRun {
    /// Opens the history (Redis, else the state file) and decides every service.
    pub async fn prepare(project: &Project, options: &GraceOptions, engine: &Engine) -> GraceRun {
        let history = HistoryStore::open(&options.history, &project.name).await;
        let decisions = decide_services(
            project,
            options,
            Some(engine),
            Some(&history),
            &[],
            ImageSource::Engine,
        )
        .await;
        let references = project
            .services
            .iter()
            .filter_map(|(name, s)| s.image.clone().map(|i| (name.clone(), i)))
            .collect();
        GraceRun {
            decisions,
            history,
            keep: options.config.samples_kept,
            config: options.config.clone(),
            references,
        }
    }

    /// service -> image ID, for the services whose image was inspected.
    pub fn image_ids(&self) -> HashMap<String, String> {
        self.decisions
            .iter()
            .filter_map(|(name, d)| d.image.as_ref().map(|i| (name.clone(), i.id.clone())))
            .collect()
    }
}
