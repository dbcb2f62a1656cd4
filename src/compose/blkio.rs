//! A service's `blkio_config` (block I/O weight and per-device throttles), as
//! compose-go's BlkioConfig: its own file so model.rs stays one concept per
//! type family. Applied as the engine's HostConfig `Blkio*` fields.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct BlkioConfig {
    /// 10..=1000; 0 = unset.
    #[serde(default)]
    pub weight: u16,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub weight_device: Vec<WeightDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_bps: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_read_iops: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_bps: Vec<ThrottleDevice>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_write_iops: Vec<ThrottleDevice>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct WeightDevice {
    pub path: String,
    pub weight: u16,
}

/// A device path and a rate: bytes per second (`*_bps`, sizes such as `12mb`
/// allowed) or operations per second (`*_iops`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThrottleDevice {
    pub path: String,
    pub rate: u64,
}
