//! `muster tune`: the healthcheck values muster would use for each service,
//! why, and the compose override file that carries them.
//!
//! Only `start_period` is tuned (the effective grace, rounded up to whole
//! seconds); `interval`, `timeout` and `retries` are the
//! compose healthcheck's (Docker's defaults where it sets none), so writing
//! the file changes nothing but the start period. `start_interval` is shown
//! but written only as a comment: docker-compose 1.x refuses the key, and
//! Docker Engine before 25 (API 1.44) ignores it.

use std::time::Duration;

use serde::Serialize;

use super::model::GraceDecision;
use crate::compose::{Healthcheck, Project, Service};

/// The values of one service's healthcheck.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthcheckValues {
    #[serde(with = "crate::duration::serde_dur")]
    pub start_period: Duration,
    #[serde(with = "crate::duration::serde_dur")]
    pub interval: Duration,
    #[serde(with = "crate::duration::serde_dur")]
    pub start_interval: Duration,
    #[serde(with = "crate::duration::serde_dur")]
    pub timeout: Duration,
    pub retries: u32,
}

/// Where each value comes from.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ValueSources {
    pub start_period: String,
    pub interval: String,
    pub start_interval: String,
    pub timeout: String,
    pub retries: String,
}

/// One service as `muster tune` reports it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TunedService {
    pub service: String,
    pub healthcheck: HealthcheckValues,
    pub why: ValueSources,
    /// A healthcheck test runs (the compose file's or the image's); without
    /// one Docker ignores these timings.
    pub has_test: bool,
    pub grace: GraceDecision,
}

/// The values muster would use for `service`, given its grace decision.
pub fn tune_service(service: &Service, decision: GraceDecision) -> TunedService {
    let image_hc = decision.image.as_ref().is_some_and(|i| i.has_healthcheck);
    let has_test = super::healthcheck_runs(service.healthcheck.as_ref(), image_hc);
    let (hc, origin) = match &service.healthcheck {
        Some(h) => (
            h.clone(),
            "compose healthcheck (Docker's default where unset)",
        ),
        None => (Healthcheck::default(), "Docker default"),
    };
    // Whole seconds, rounded up, for a readable file.
    let start_period = super::model::ceil_secs(decision.period);
    let why_start = match decision.reasons.first() {
        Some(first) => format!("{}: {first}", decision.source.as_str()),
        None => decision.source.as_str().to_string(),
    };
    TunedService {
        service: service.name.clone(),
        healthcheck: HealthcheckValues {
            start_period,
            interval: hc.interval,
            start_interval: hc.start_interval,
            timeout: hc.timeout,
            retries: hc.retries,
        },
        why: ValueSources {
            start_period: why_start,
            interval: origin.into(),
            start_interval: format!(
                "{origin}; not written: docker-compose 1.x and Docker Engine < 25 reject it"
            ),
            timeout: origin.into(),
            retries: origin.into(),
        },
        has_test,
        grace: decision,
    }
}

/// A compose override file that sets each service's healthcheck timings.
/// `docker compose -f compose.yaml -f FILE` (and docker-compose 1.x) accept it;
/// `muster -f compose.yaml -f FILE config` loads the same values back.
pub fn override_file(project: &Project, tuned: &[TunedService]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "# Written by `muster tune` for project {}: the healthcheck timings muster would use.\n",
        project.name
    ));
    out.push_str(
        "# Use it after the project's own files: docker compose -f compose.yaml -f THIS_FILE up\n",
    );
    out.push_str(
        "# start_interval is given in comments only: docker-compose 1.x rejects the key and\n",
    );
    out.push_str("# Docker Engine before 25 (API 1.44) ignores it.\n");
    out.push_str("services:\n");
    for t in tuned {
        let h = &t.healthcheck;
        out.push_str(&format!("  {}:\n", yaml_key(&t.service)));
        for reason in &t.grace.reasons {
            out.push_str(&format!("    # {}\n", one_line(reason)));
        }
        if !t.has_test {
            out.push_str(
                "    # no healthcheck test (compose or image): Docker ignores these timings\n",
            );
        }
        out.push_str("    healthcheck:\n");
        let fmt = crate::duration::format;
        out.push_str(&format!("      start_period: {}\n", fmt(h.start_period)));
        out.push_str(&format!("      interval: {}\n", fmt(h.interval)));
        out.push_str(&format!("      timeout: {}\n", fmt(h.timeout)));
        out.push_str(&format!("      retries: {}\n", h.retries));
        out.push_str(&format!(
            "      # start_interval: {}\n",
            fmt(h.start_interval)
        ));
    }
    out
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A service name as a YAML key: plain when it is a simple word, else quoted.
fn yaml_key(name: &str) -> String {
    const WORDS: &[&str] = &["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    let plain = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !WORDS.contains(&name.to_ascii_lowercase().as_str());
    if plain {
        name.to_string()
    } else {
        serde_json::to_string(name).unwrap_or_else(|_| format!("{name:?}"))
    }
}
