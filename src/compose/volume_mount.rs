//! A service's volume mounts (short `SRC:DST[:MODE]` and long syntax with its
//! `bind`/`volume`/`tmpfs` options), kept apart from model.rs so each file
//! stays one concept: what a mount is, as compose-go's ServiceVolumeConfig.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    Bind,
    Volume,
    Tmpfs,
}

/// A volume mount (short `"data:/var/lib/redis:ro"` or long syntax).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct VolumeMount {
    #[serde(rename = "type")]
    pub kind: VolumeType,
    /// Host path (bind, made absolute) or volume name; `None` for tmpfs/anonymous.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub target: String,
    #[serde(default)]
    pub read_only: bool,
    /// `consistency` (Docker Desktop's `cached`/`delegated`; Linux ignores it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consistency: Option<String>,
    /// Long syntax `bind:` options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bind: Option<BindOptions>,
    /// Long syntax `volume:` options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<VolumeOptions>,
    /// Long syntax `tmpfs:` options.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tmpfs: Option<TmpfsOptions>,
}

/// A long-syntax volume's `bind:` (compose-go ServiceVolumeBind).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BindOptions {
    /// `z` or `Z`: SELinux relabelling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selinux: Option<String>,
    /// `rprivate`, `private`, `rshared`, `shared`, `rslave`, `slave`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub propagation: Option<String>,
    /// Create the host path when missing (Compose's default: true).
    #[serde(default = "yes")]
    pub create_host_path: bool,
}

fn yes() -> bool {
    true
}

/// A long-syntax volume's `volume:` (compose-go ServiceVolumeVolume).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct VolumeOptions {
    #[serde(default)]
    pub nocopy: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subpath: Option<String>,
}

/// A long-syntax volume's `tmpfs:` (compose-go ServiceVolumeTmpfs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct TmpfsOptions {
    /// Bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// File mode of the mount point.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<u32>,
}
