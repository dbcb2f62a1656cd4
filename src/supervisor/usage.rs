//! The resource sample as the store keeps it and `/status` shows it:
//! per service, per container. Plain data, apart from the sampler
//! (`telemetry.rs`), so the store can hold it without depending on the actor.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::engine::stats::StatsSource;

/// The last sample of every running container, by service.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// Unix ms of the sample.
    pub at_ms: u64,
    pub services: BTreeMap<String, ServiceUsage>,
    /// The last sample of every container seen in the last minute, by id,
    /// also of those gone since (an OOM kill's reason reads it).
    #[serde(skip)]
    pub last: HashMap<String, ContainerUsage>,
}

/// A service's containers added up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServiceUsage {
    /// CPU time per wall time, summed over the containers (1.0 = one core).
    pub cpu_ratio: f64,
    pub memory_bytes: u64,
    /// The sum of the containers' limits, when every one has a limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    pub replicas: Vec<ContainerUsage>,
}

/// One container's sample.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerUsage {
    pub name: String,
    pub id: String,
    /// CPU time per wall time since the previous sample (1.0 = one core);
    /// absent on a container's first sample.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_ratio: Option<f64>,
    pub memory_bytes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_limit_bytes: Option<u64>,
    pub source: StatsSource,
}

impl ContainerUsage {
    /// `OOM-killed at 1.9 GiB of 2 GiB`: the highest usage seen (the kernel's
    /// peak when it keeps one) against the limit.
    pub fn oom_text(&self) -> String {
        let peak = self.memory_peak_bytes.unwrap_or(0).max(self.memory_bytes);
        match self.memory_limit_bytes {
            Some(limit) => format!("OOM-killed at {} of {}", bytes(peak), bytes(limit)),
            None => format!("OOM-killed at {}", bytes(peak)),
        }
    }
}

/// `512 KiB`, `61.2 MiB`, `1.9 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 || value >= 100.0 || value.fract() < 0.05 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
