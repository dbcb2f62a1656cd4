//! `deploy:` and device requests (`gpus:`, `deploy.resources.reservations.devices`)
//! in compose-go's JSON shape (types.DeployConfig, types.Resource,
//! types.DeviceRequest, types.GenericResource), for `muster config` and the
//! config hash. docker/compose's ServiceHash clears only `deploy.replicas`:
//! `mode`, `labels`, `restart_policy`, `placement`, `endpoint_mode` and the
//! resources are hashed as they are (pkg/compose/hash.go).

use super::{go_duration, go_f32, string_map, Json, Obj};
use crate::compose::model::{Deploy, DeviceRequest, GenericResource, ResourceSpec, UpdateConfig};

/// A list of device requests (compose-go DeviceRequest: capabilities, driver,
/// count (omitempty; -1 is `all`), device_ids, options).
pub(super) fn device_requests(list: &[DeviceRequest]) -> Json {
    Json::Arr(
        list.iter()
            .map(|d| {
                let mut o = Obj::new();
                o.list("capabilities", &d.capabilities);
                o.str("driver", d.driver.as_deref());
                if d.count != 0 {
                    o.put("count", Json::Num(d.count.to_string()));
                }
                o.list("device_ids", &d.device_ids);
                if !d.options.is_empty() {
                    o.put("options", string_map(&d.options));
                }
                o.done()
            })
            .collect(),
    )
}

/// compose-go GenericResource; DiscreteGenericResource's `kind` and `value`
/// have no omitempty.
fn generic_resources(list: &[GenericResource]) -> Json {
    Json::Arr(
        list.iter()
            .map(|g| {
                let mut o = Obj::new();
                if let Some(d) = &g.discrete_resource_spec {
                    let spec = Json::Obj(vec![
                        ("kind".into(), Json::Str(d.kind.clone())),
                        ("value".into(), Json::Num(d.value.to_string())),
                    ]);
                    o.put("discrete_resource_spec", spec);
                }
                o.done()
            })
            .collect(),
    )
}

fn resource(r: &ResourceSpec) -> Json {
    let mut o = Obj::new();
    if let Some(c) = r.cpus.filter(|c| *c != 0.0) {
        o.put("cpus", Json::Num(go_f32(c)));
    }
    if let Some(m) = r.memory.filter(|m| *m != 0) {
        o.put("memory", Json::Str(m.to_string()));
    }
    if let Some(p) = r.pids.filter(|p| *p != 0) {
        o.put("pids", Json::Num(p.to_string()));
    }
    if !r.devices.is_empty() {
        o.put("devices", device_requests(&r.devices));
    }
    if !r.generic_resources.is_empty() {
        o.put("generic_resources", generic_resources(&r.generic_resources));
    }
    o.done()
}

fn update_config(u: &UpdateConfig) -> Json {
    let mut o = Obj::new();
    if let Some(p) = u.parallelism {
        o.put("parallelism", Json::Num(p.to_string()));
    }
    o.duration("delay", u.delay);
    o.str("failure_action", u.failure_action.as_deref());
    o.duration("monitor", u.monitor);
    if let Some(r) = u.max_failure_ratio.filter(|r| *r != 0.0) {
        o.put("max_failure_ratio", Json::Num(go_f32(r)));
    }
    o.str("order", u.order.as_deref());
    o.done()
}

/// `deploy` in DeployConfig's field order; `replicas` only when `full`
/// (ServiceHash clears it, and nothing else of `deploy`).
pub(super) fn deploy(d: &Deploy, full: bool) -> Json {
    let mut o = Obj::new();
    o.str("mode", d.mode.as_deref());
    if full {
        if let Some(r) = d.replicas {
            o.put("replicas", Json::Num(r.to_string()));
        }
    }
    if !d.labels.is_empty() {
        o.put("labels", string_map(&d.labels));
    }
    if let Some(u) = &d.update_config {
        o.put("update_config", update_config(u));
    }
    if let Some(u) = &d.rollback_config {
        o.put("rollback_config", update_config(u));
    }
    // Resources and Placement are non-pointer structs: always there.
    let mut res = Obj::new();
    if let Some(r) = &d.resources {
        if let Some(l) = &r.limits {
            res.put("limits", resource(l));
        }
        if let Some(l) = &r.reservations {
            res.put("reservations", resource(l));
        }
    }
    o.put("resources", res.done());
    if let Some(r) = &d.restart_policy {
        let mut ro = Obj::new();
        ro.str("condition", r.condition.as_deref());
        if let Some(delay) = r.delay {
            ro.put("delay", Json::Str(go_duration(delay)));
        }
        if let Some(m) = r.max_attempts {
            ro.put("max_attempts", Json::Num(m.to_string()));
        }
        if let Some(w) = r.window {
            ro.put("window", Json::Str(go_duration(w)));
        }
        o.put("restart_policy", ro.done());
    }
    let mut placement = Obj::new();
    placement.list("constraints", &d.placement_constraints);
    if !d.placement_spread.is_empty() {
        let prefs = d
            .placement_spread
            .iter()
            .map(|s| Json::Obj(vec![("spread".into(), Json::Str(s.clone()))]))
            .collect();
        placement.put("preferences", Json::Arr(prefs));
    }
    if let Some(m) = d.max_replicas_per_node.filter(|m| *m != 0) {
        placement.put("max_replicas_per_node", Json::Num(m.to_string()));
    }
    o.put("placement", placement.done());
    o.str("endpoint_mode", d.endpoint_mode.as_deref());
    o.done()
}
