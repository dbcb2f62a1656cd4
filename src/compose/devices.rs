//! Device requests and generic resources, as compose-go models them
//! (`types.DeviceRequest`, `types.GenericResource`): the service's `gpus:`
//! and `deploy.resources.reservations.devices` become the engine's
//! HostConfig `DeviceRequests` when `up` creates a container (docker/compose
//! `pkg/compose/create.go`); `generic_resources` is a Swarm reservation
//! (`up --swarm` sets TaskSpec `Resources.Reservations.GenericResources`).
//! Their own file so model.rs stays one concept per type family.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One `gpus:` entry or one `deploy.resources.reservations.devices` entry.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeviceRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub capabilities: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub driver: Option<String>,
    /// How many devices: `-1` is `all` (compose-go DeviceCount), `0` unset.
    /// compose-go's defaults: an entry with neither `count` nor `device_ids`
    /// asks for all (transform/devices.go).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub count: i64,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub device_ids: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub options: BTreeMap<String, String>,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

/// One `generic_resources:` entry (only its discrete form exists in Compose).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct GenericResource {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discrete_resource_spec: Option<DiscreteResource>,
}

/// `discrete_resource_spec: {kind, value}` (`kind: gpu`, `value: 2`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DiscreteResource {
    pub kind: String,
    pub value: i64,
}
