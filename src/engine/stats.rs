//! One container's CPU time and memory, for the resource telemetry
//! (`supervisor/telemetry.rs`).
//!
//! Read from the container's cgroup when muster sees the engine host's
//! `/sys/fs/cgroup` (v1: the `memory` and `cpuacct` controllers; v2: the
//! unified tree; both cgroup drivers' layouts): a few small file reads, no
//! engine call. Otherwise (muster in a container without the host's cgroup
//! tree, or a remote `DOCKER_HOST`) from the engine's one-shot stats
//! (`stream=false, one-shot=true`), which costs the engine the same reads plus
//! an HTTP round trip and JSON. Memory is counted as `docker stats` counts it:
//! usage minus inactive file cache.

use std::path::{Path, PathBuf};

use bollard::query_parameters::StatsOptions;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::client::{Engine, EngineError};

/// Limits at or above this are "no limit" (cgroup v1 writes a page-rounded
/// `i64::MAX`).
const NO_LIMIT: u64 = 1 << 60;

/// Where a sample came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatsSource {
    CgroupV1,
    CgroupV2,
    Engine,
}

/// One reading of a container.
#[derive(Debug, Clone, PartialEq)]
pub struct RawUsage {
    /// CPU time used since the container started, in nanoseconds.
    pub cpu_ns: u64,
    pub memory_bytes: u64,
    /// The highest usage the kernel recorded (v1, v2 with `memory.peak`, engine).
    pub memory_peak_bytes: Option<u64>,
    pub memory_limit_bytes: Option<u64>,
    pub source: StatsSource,
}

/// The host's cgroup tree, as far as muster can see it.
#[derive(Debug, Clone)]
pub enum Cgroups {
    V1 {
        root: PathBuf,
    },
    V2 {
        root: PathBuf,
    },
    /// Not mounted, or not the engine's: every sample asks the engine.
    None,
}

impl Cgroups {
    /// v2 when `root/cgroup.controllers` exists, v1 when `root/memory` does.
    pub fn detect(root: &Path) -> Cgroups {
        if root.join("cgroup.controllers").is_file() {
            Cgroups::V2 {
                root: root.to_path_buf(),
            }
        } else if root.join("memory").is_dir() {
            Cgroups::V1 {
                root: root.to_path_buf(),
            }
        } else {
            Cgroups::None
        }
    }

    /// Reads container `id` from its cgroup; `None` when it has none here
    /// (not on this host, stopped, or another layout): ask the engine.
    pub fn read(&self, id: &str) -> Option<RawUsage> {
        match self {
            Cgroups::V1 { root } => {
                let mem = find(&root.join("memory"), id)?;
                let cpu = find(&root.join("cpuacct"), id)
                    .or_else(|| find(&root.join("cpu,cpuacct"), id))?;
                let usage = read_u64(&mem.join("memory.usage_in_bytes"))?;
                let stat = std::fs::read_to_string(mem.join("memory.stat")).ok()?;
                let inactive = stat_value(&stat, "total_inactive_file").unwrap_or(0);
                Some(RawUsage {
                    cpu_ns: read_u64(&cpu.join("cpuacct.usage"))?,
                    memory_bytes: usage.saturating_sub(inactive),
                    memory_peak_bytes: read_u64(&mem.join("memory.max_usage_in_bytes")),
                    memory_limit_bytes: read_u64(&mem.join("memory.limit_in_bytes"))
                        .filter(|l| *l < NO_LIMIT),
                    source: StatsSource::CgroupV1,
                })
            }
            Cgroups::V2 { root } => {
                let dir = find(root, id)?;
                let usage = read_u64(&dir.join("memory.current"))?;
                let stat = std::fs::read_to_string(dir.join("memory.stat")).ok()?;
                let inactive = stat_value(&stat, "inactive_file").unwrap_or(0);
                let cpu = std::fs::read_to_string(dir.join("cpu.stat")).ok()?;
                Some(RawUsage {
                    cpu_ns: stat_value(&cpu, "usage_usec")?.saturating_mul(1000),
                    memory_bytes: usage.saturating_sub(inactive),
                    memory_peak_bytes: read_u64(&dir.join("memory.peak")),
                    // `max` (no limit) does not parse.
                    memory_limit_bytes: read_u64(&dir.join("memory.max")),
                    source: StatsSource::CgroupV2,
                })
            }
            Cgroups::None => None,
        }
    }
}

/// The container's directory under one controller: the cgroupfs driver's
/// `docker/<id>`, or the systemd driver's `system.slice/docker-<id>.scope`.
fn find(controller: &Path, id: &str) -> Option<PathBuf> {
    [
        controller.join("docker").join(id),
        controller
            .join("system.slice")
            .join(format!("docker-{id}.scope")),
    ]
    .into_iter()
    .find(|p| p.is_dir())
}

fn read_u64(path: &Path) -> Option<u64> {
    std::fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// `key value` lines (memory.stat, cpu.stat).
pub fn stat_value(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let (k, v) = line.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

impl Engine {
    /// The engine's one-shot stats of container `id` (no one-second
    /// pre-sample: the caller computes CPU from its own previous reading).
    pub async fn one_shot_stats(&self, id: &str) -> Result<RawUsage, EngineError> {
        let mut stream = self.docker().stats(
            id,
            Some(StatsOptions {
                stream: false,
                one_shot: true,
            }),
        );
        let stats = match stream.next().await {
            Some(Ok(s)) => s,
            Some(Err(e)) => return Err(EngineError::api(format!("stats of container {id}"), e)),
            None => {
                return Err(EngineError::NotFound {
                    what: format!("stats of container {id}"),
                })
            }
        };
        // A container that is not running answers with empty numbers: no sample.
        let memory = match stats.memory_stats {
            Some(m) if m.usage.is_some() => m,
            _ => {
                return Err(EngineError::NotFound {
                    what: format!("stats of container {id} (not running)"),
                })
            }
        };
        let inactive = memory.stats.as_ref().and_then(|s| {
            s.get("total_inactive_file")
                .or_else(|| s.get("inactive_file"))
                .copied()
        });
        Ok(RawUsage {
            cpu_ns: stats
                .cpu_stats
                .and_then(|c| c.cpu_usage)
                .and_then(|u| u.total_usage)
                .unwrap_or(0),
            memory_bytes: memory
                .usage
                .unwrap_or(0)
                .saturating_sub(inactive.unwrap_or(0)),
            memory_peak_bytes: memory.max_usage.filter(|m| *m > 0),
            memory_limit_bytes: memory.limit.filter(|l| *l > 0 && *l < NO_LIMIT),
            source: StatsSource::Engine,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_files_are_read_by_key() {
        let stat = "cache 10\ninactive_file 4096\ntotal_inactive_file 8192\n";
        assert_eq!(stat_value(stat, "inactive_file"), Some(4096));
        assert_eq!(stat_value(stat, "total_inactive_file"), Some(8192));
        assert_eq!(stat_value(stat, "missing"), None);
        assert_eq!(
            stat_value("usage_usec 1234\nuser_usec 1000", "usage_usec"),
            Some(1234)
        );
    }

    #[test]
    fn a_tree_without_controllers_is_none() {
        let dir = std::env::temp_dir().join(format!("muster-cg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        assert!(matches!(Cgroups::detect(&dir), Cgroups::None));
        assert!(Cgroups::detect(&dir).read("abc").is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
