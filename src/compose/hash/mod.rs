//! A service in the JSON shape Docker Compose gives it, and
//! `com.docker.compose.config-hash` computed from it as Docker Compose v2+
//! does (docker/compose `pkg/compose/hash.go` ServiceHash): clear `build`,
//! `pull_policy`, `scale`, `deploy.replicas`, `depends_on` and `profiles`,
//! `json.Marshal` the compose-go `types.ServiceConfig`, and take the sha256 of
//! those bytes in lowercase hex. Matching it byte for byte means a container
//! started by muster is not recreated by `docker compose up`, and the reverse.
//!
//! Go's `encoding/json` rules reproduced here: struct fields in declaration
//! order with their `json` tags, `omitempty` dropping zero values (but never
//! a non-pointer struct: `deploy.resources` and `deploy.placement` are always
//! there, `{}` when empty), map keys sorted, `command`/`entrypoint` always
//! present (`null` when unset), `<`, `>`, `&`, U+2028 and U+2029 escaped as
//! `\u003c`…, durations as Go's `time.Duration.String()` (`1m30s`), byte
//! sizes as decimal strings (`UnitBytes`), float32 in shortest form.
//!
//! Pure: no I/O.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::model::{
    Build, Dependency, HealthTest, Healthcheck, Port, Service, Ulimit, VolumeMount, VolumeType,
};
use super::objects::FileRef;

mod deploy;
use deploy::{deploy, device_requests};

/// A JSON value whose objects keep the order they are built in (Go's struct order).
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    /// A number as Go prints it.
    Num(String),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl Json {
    /// The bytes `encoding/json` would write.
    pub fn to_go_string(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Json::Null => out.push_str("null"),
            Json::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Json::Num(n) => out.push_str(n),
            Json::Str(s) => go_string(s, out),
            Json::Arr(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    item.write(out);
                }
                out.push(']');
            }
            Json::Obj(fields) => {
                out.push('{');
                for (i, (k, v)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    go_string(k, out);
                    out.push(':');
                    v.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// A string as Go's `encoding/json` escapes it (HTML-safe by default).
fn go_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Go's `time.Duration.String()`.
pub fn go_duration(d: Duration) -> String {
    let text = crate::duration::format(d);
    match text.strip_suffix("us") {
        Some(n) => format!("{n}µs"),
        None => text,
    }
}

/// A float32 field as Go prints it (shortest form that reads back).
pub(super) fn go_f32(v: f64) -> String {
    let f = v as f32;
    if f.fract() == 0.0 && f.abs() < 1e21 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// Builds an object, leaving out what Go's `omitempty` leaves out.
pub(super) struct Obj(Vec<(String, Json)>);

impl Obj {
    pub(super) fn new() -> Obj {
        Obj(Vec::new())
    }
    pub(super) fn put(&mut self, key: &str, value: Json) {
        self.0.push((key.to_string(), value));
    }
    pub(super) fn str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value.filter(|v| !v.is_empty()) {
            self.put(key, Json::Str(v.to_string()));
        }
    }
    pub(super) fn list(&mut self, key: &str, items: &[String]) {
        if !items.is_empty() {
            self.put(key, strings(items));
        }
    }
    fn duration(&mut self, key: &str, d: Option<Duration>) {
        if let Some(d) = d.filter(|d| !d.is_zero()) {
            self.put(key, Json::Str(go_duration(d)));
        }
    }
    pub(super) fn done(self) -> Json {
        Json::Obj(self.0)
    }
}

pub(super) fn string_map(m: &std::collections::BTreeMap<String, String>) -> Json {
    Json::Obj(
        m.iter()
            .map(|(k, v)| (k.clone(), Json::Str(v.clone())))
            .collect(),
    )
}

pub(super) fn strings(items: &[String]) -> Json {
    Json::Arr(items.iter().map(|s| Json::Str(s.clone())).collect())
}

fn command(c: &Option<Vec<String>>) -> Json {
    match c {
        None => Json::Null,
        Some(v) => strings(v),
    }
}

fn healthcheck(h: &Healthcheck, fields: &[String]) -> Json {
    let set = |k: &str| fields.iter().any(|f| f == k);
    let mut o = Obj::new();
    if let Some(test) = h.test.as_ref().filter(|_| set("test")) {
        let items = match test {
            HealthTest::None => vec!["NONE".to_string()],
            HealthTest::Cmd(args) => std::iter::once("CMD".to_string())
                .chain(args.iter().cloned())
                .collect(),
            HealthTest::CmdShell(cmd) => vec!["CMD-SHELL".to_string(), cmd.clone()],
        };
        o.put("test", strings(&items));
    }
    // Pointers in compose-go: present (even when zero) exactly when written.
    for (key, value) in [("timeout", h.timeout), ("interval", h.interval)] {
        if set(key) {
            o.put(key, Json::Str(go_duration(value)));
        }
    }
    if set("retries") {
        o.put("retries", Json::Num(h.retries.to_string()));
    }
    for (key, value) in [
        ("start_period", h.start_period),
        ("start_interval", h.start_interval),
    ] {
        if set(key) {
            o.put(key, Json::Str(go_duration(value)));
        }
    }
    if h.disable {
        o.put("disable", Json::Bool(true));
    }
    o.done()
}

fn port(p: &Port) -> Json {
    let mut o = Obj::new();
    // transform/ports.go portDefaults: mode "ingress", protocol "tcp".
    o.put("mode", Json::Str("ingress".into()));
    o.str("host_ip", p.host_ip.as_deref());
    if p.target != 0 {
        o.put("target", Json::Num(p.target.to_string()));
    }
    o.str("published", p.published.as_deref());
    let protocol = if p.protocol.is_empty() {
        "tcp"
    } else {
        &p.protocol
    };
    o.put("protocol", Json::Str(protocol.into()));
    o.done()
}

fn volume(v: &VolumeMount, short: bool) -> Json {
    let mut o = Obj::new();
    let kind = match v.kind {
        VolumeType::Bind => "bind",
        VolumeType::Volume => "volume",
        VolumeType::Tmpfs => "tmpfs",
    };
    o.put("type", Json::Str(kind.into()));
    o.str("source", v.source.as_deref());
    o.str("target", Some(&v.target));
    if v.read_only {
        o.put("read_only", Json::Bool(true));
    }
    o.str("consistency", v.consistency.as_deref());
    // format/volume.go populateType: the short syntax always carries an
    // (empty) bind or volume object; create_host_path true is omitzero
    // (types.OptOut). ServiceVolumeConfig's order: bind, volume, tmpfs.
    if let Some(b) = &v.bind {
        let mut bo = Obj::new();
        bo.str("selinux", b.selinux.as_deref());
        bo.str("propagation", b.propagation.as_deref());
        if !b.create_host_path {
            bo.put("create_host_path", Json::Bool(false));
        }
        o.put("bind", bo.done());
    } else if short && v.kind == VolumeType::Bind {
        o.put("bind", Json::Obj(vec![]));
    }
    if let Some(vo) = &v.volume {
        let mut oo = Obj::new();
        if vo.nocopy {
            oo.put("nocopy", Json::Bool(true));
        }
        oo.str("subpath", vo.subpath.as_deref());
        o.put("volume", oo.done());
    } else if short && v.kind == VolumeType::Volume {
        o.put("volume", Json::Obj(vec![]));
    }
    if let Some(t) = &v.tmpfs {
        let mut to = Obj::new();
        bytes(&mut to, "size", t.size.map(|s| s as i64));
        int(&mut to, "mode", t.mode.map(i64::from));
        o.put("tmpfs", to.done());
    }
    o.done()
}

/// The service as compose-go's `types.ServiceConfig` marshals it, with the
/// fields ServiceHash clears left out (`build`, `pull_policy`, `scale`,
/// `deploy.replicas`, `depends_on`, `profiles`). `docker compose up` loads
/// the project with env files resolved into `environment` and kept in
/// `env_file` (docker/compose pkg/compose/loader.go has no WithDiscardEnvFile).
pub fn hash_shape(s: &Service) -> Json {
    service_shape(s, false)
}

fn int(o: &mut Obj, key: &str, v: Option<i64>) {
    if let Some(v) = v.filter(|v| *v != 0) {
        o.put(key, Json::Num(v.to_string()));
    }
}

fn bytes(o: &mut Obj, key: &str, v: Option<i64>) {
    if let Some(v) = v.filter(|v| *v != 0) {
        o.put(key, Json::Str(v.to_string()));
    }
}

/// A service's `secrets:` / `configs:` (compose-go ServiceSecretConfig).
fn file_refs(refs: &[FileRef]) -> Json {
    Json::Arr(
        refs.iter()
            .map(|r| {
                let mut o = Obj::new();
                o.str("source", Some(&r.source));
                o.str("target", r.target.as_deref());
                o.str("uid", r.uid.as_deref());
                o.str("gid", r.gid.as_deref());
                // FileMode.MarshalJSON: an octal string, "0440".
                if let Some(m) = r.mode {
                    o.put("mode", Json::Str(format!("0{m:o}")));
                }
                o.done()
            })
            .collect(),
    )
}

/// `build:` in compose-go's BuildConfig order.
fn build(b: &Build) -> Json {
    let mut o = Obj::new();
    o.str("context", Some(&b.context));
    o.str("dockerfile", b.dockerfile.as_deref());
    o.str("dockerfile_inline", b.dockerfile_inline.as_deref());
    if !b.args.is_empty() {
        let args = b
            .args
            .iter()
            .map(|(k, v)| {
                let v = v.as_ref().map_or(Json::Null, |v| Json::Str(v.clone()));
                (k.clone(), v)
            })
            .collect();
        o.put("args", Json::Obj(args));
    }
    o.list("ssh", &b.ssh);
    if !b.labels.is_empty() {
        o.put("labels", string_map(&b.labels));
    }
    o.list("cache_from", &b.cache_from);
    if b.no_cache {
        o.put("no_cache", Json::Bool(true));
    }
    if !b.additional_contexts.is_empty() {
        o.put("additional_contexts", string_map(&b.additional_contexts));
    }
    if b.pull {
        o.put("pull", Json::Bool(true));
    }
    o.list("extra_hosts", &b.extra_hosts);
    o.str("network", b.network.as_deref());
    o.str("target", b.target.as_deref());
    if !b.secrets.is_empty() {
        o.put("secrets", file_refs(&b.secrets));
    }
    if let Some(size) = b.shm_size.filter(|s| *s != 0) {
        o.put("shm_size", Json::Str(size.to_string()));
    }
    o.list("tags", &b.tags);
    o.list("platforms", &b.platforms);
    o.done()
}

/// compose-go BlkioConfig: rates are `UnitBytes` (decimal strings).
fn blkio(b: &super::model::BlkioConfig) -> Json {
    let throttles = |o: &mut Obj, key: &str, list: &[super::model::ThrottleDevice]| {
        if !list.is_empty() {
            let items = list
                .iter()
                .map(|t| {
                    let mut d = Obj::new();
                    d.str("path", Some(&t.path));
                    bytes(&mut d, "rate", Some(t.rate as i64));
                    d.done()
                })
                .collect();
            o.put(key, Json::Arr(items));
        }
    };
    let mut o = Obj::new();
    int(&mut o, "weight", Some(i64::from(b.weight)));
    if !b.weight_device.is_empty() {
        let items = b
            .weight_device
            .iter()
            .map(|w| {
                let mut d = Obj::new();
                d.str("path", Some(&w.path));
                int(&mut d, "weight", Some(i64::from(w.weight)));
                d.done()
            })
            .collect();
        o.put("weight_device", Json::Arr(items));
    }
    throttles(&mut o, "device_read_bps", &b.device_read_bps);
    throttles(&mut o, "device_read_iops", &b.device_read_iops);
    throttles(&mut o, "device_write_bps", &b.device_write_bps);
    throttles(&mut o, "device_write_iops", &b.device_write_iops);
    o.done()
}

/// `depends_on:` in compose-go's ServiceDependency shape (implicit edges
/// from links, volumes_from and network_mode included, as compose-go adds them).
fn depends_on(deps: &BTreeMap<String, Dependency>) -> Json {
    let condition = |d: &Dependency| {
        serde_json::to_value(d.condition)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    Json::Obj(
        deps.iter()
            .map(|(name, d)| {
                let mut o = Obj::new();
                o.put("condition", Json::Str(condition(d)));
                if d.restart {
                    o.put("restart", Json::Bool(true));
                }
                o.put("required", Json::Bool(d.required));
                (name.clone(), o.done())
            })
            .collect(),
    )
}

/// The service in compose-go's `ServiceConfig` field order. `full` adds what
/// ServiceHash clears (`profiles`, `build`, `depends_on`, `deploy.replicas`,
/// `pull_policy`, `scale`) and the service's `x-*` keys, for `muster config`.
pub fn service_shape(s: &Service, full: bool) -> Json {
    let rt = &s.runtime;
    let mut o = Obj::new();
    if full {
        o.list("profiles", &s.profiles);
    }
    if !rt.annotations.is_empty() {
        o.put("annotations", string_map(&rt.annotations));
    }
    if full {
        if let Some(b) = &s.build {
            o.put("build", build(b));
        }
    }
    if let Some(b) = &rt.blkio_config {
        o.put("blkio_config", blkio(b));
    }
    o.list("cap_add", &rt.cap_add);
    o.list("cap_drop", &rt.cap_drop);
    o.str("cgroup_parent", rt.cgroup_parent.as_deref());
    o.str("cgroup", rt.cgroup.as_deref());
    int(&mut o, "cpu_period", rt.cpu_period);
    int(&mut o, "cpu_quota", rt.cpu_quota);
    int(&mut o, "cpu_rt_period", rt.cpu_rt_period);
    int(&mut o, "cpu_rt_runtime", rt.cpu_rt_runtime);
    if let Some(c) = rt.cpus.filter(|c| *c != 0.0) {
        o.put("cpus", Json::Num(go_f32(c)));
    }
    o.str("cpuset", rt.cpuset.as_deref());
    int(&mut o, "cpu_shares", rt.cpu_shares);
    o.put("command", command(&s.command));
    if !s.configs.is_empty() {
        o.put("configs", file_refs(&s.configs));
    }
    o.str("container_name", s.container_name.as_deref());
    if full && !s.depends_on.is_empty() {
        o.put("depends_on", depends_on(&s.depends_on));
    }
    if let Some(d) = &s.deploy {
        o.put("deploy", deploy(d, full));
    }
    o.list("device_cgroup_rules", &rt.device_cgroup_rules);
    if !rt.devices.is_empty() {
        let devices = rt
            .devices
            .iter()
            .map(|d| {
                let mut dobj = Obj::new();
                dobj.str("source", Some(&d.source));
                dobj.str("target", Some(&d.target));
                dobj.str("permissions", Some(&d.permissions));
                dobj.done()
            })
            .collect();
        o.put("devices", Json::Arr(devices));
    }
    o.list("dns", &rt.dns);
    o.list("dns_opt", &rt.dns_opt);
    o.list("dns_search", &rt.dns_search);
    o.str("domainname", rt.domainname.as_deref());
    o.put("entrypoint", command(&s.entrypoint));
    if !s.environment.is_empty() {
        o.put(
            "environment",
            Json::Obj(
                s.environment
                    .iter()
                    .map(|(k, v)| {
                        let v = v.as_ref().map_or(Json::Null, |v| Json::Str(v.clone()));
                        (k.clone(), v)
                    })
                    .collect(),
            ),
        );
    }
    if !s.env_file.is_empty() {
        // types.EnvFile: path, then `required` only when false (OptOut, omitzero).
        let files = s
            .env_file
            .iter()
            .map(|f| {
                let mut fo = Obj::new();
                fo.str("path", Some(&f.path.to_string_lossy()));
                if !f.required {
                    fo.put("required", Json::Bool(false));
                }
                fo.done()
            })
            .collect();
        o.put("env_file", Json::Arr(files));
    }
    o.list("expose", &rt.expose);
    o.list("external_links", &rt.external_links);
    o.list("extra_hosts", &rt.extra_hosts);
    o.list("group_add", &rt.group_add);
    if !rt.gpus.is_empty() {
        o.put("gpus", device_requests(&rt.gpus));
    }
    o.str("hostname", s.hostname.as_deref());
    if let Some(h) = &s.healthcheck {
        o.put("healthcheck", healthcheck(h, &s.written.healthcheck_fields));
    }
    o.str("image", s.image.as_deref());
    if let Some(init) = rt.init {
        o.put("init", Json::Bool(init));
    }
    o.str("ipc", rt.ipc.as_deref());
    if !s.labels.is_empty() {
        o.put("labels", string_map(&s.labels));
    }
    if !s.label_file.is_empty() {
        let files: Vec<String> = s
            .label_file
            .iter()
            .map(|f| f.to_string_lossy().into_owned())
            .collect();
        o.list("label_file", &files);
    }
    o.list("links", &s.links);
    if let Some(l) = &rt.logging {
        let mut lo = Obj::new();
        lo.str("driver", l.driver.as_deref());
        if !l.options.is_empty() {
            lo.put("options", string_map(&l.options));
        }
        o.put("logging", lo.done());
    }
    let signed = |v: Option<u64>| v.map(|b| b.min(i64::MAX as u64) as i64);
    bytes(&mut o, "mem_limit", signed(rt.mem_limit));
    bytes(&mut o, "mem_reservation", signed(rt.mem_reservation));
    bytes(&mut o, "memswap_limit", rt.memswap_limit);
    bytes(&mut o, "mem_swappiness", rt.mem_swappiness);
    o.str("mac_address", rt.mac_address.as_deref());
    o.str("network_mode", s.network_mode.as_deref());
    if s.networks.is_empty() {
        // loader/normalize.go normalizeNetworks: no networks, no network_mode
        // -> the project's default network, with no settings.
        if s.network_mode.is_none() {
            o.put("networks", Json::Obj(vec![("default".into(), Json::Null)]));
        }
    } else {
        let nets = s
            .networks
            .iter()
            .map(|(name, n)| {
                let value = if s.written.null_networks.contains(name) {
                    Json::Null
                } else {
                    let mut no = Obj::new();
                    no.list("aliases", &n.aliases);
                    no.str("ipv4_address", n.ipv4_address.as_deref());
                    no.str("ipv6_address", n.ipv6_address.as_deref());
                    no.str("mac_address", n.mac_address.as_deref());
                    no.done()
                };
                (name.clone(), value)
            })
            .collect();
        o.put("networks", Json::Obj(nets));
    }
    if rt.oom_kill_disable {
        o.put("oom_kill_disable", Json::Bool(true));
    }
    int(&mut o, "oom_score_adj", rt.oom_score_adj);
    o.str("pid", rt.pid.as_deref());
    int(&mut o, "pids_limit", rt.pids_limit);
    o.str("platform", rt.platform.as_deref());
    if !s.ports.is_empty() {
        o.put("ports", Json::Arr(s.ports.iter().map(port).collect()));
    }
    if rt.privileged {
        o.put("privileged", Json::Bool(true));
    }
    if full {
        if let Some(p) = &s.pull_policy {
            o.put("pull_policy", Json::Str(p.to_string()));
        }
    }
    if rt.read_only {
        o.put("read_only", Json::Bool(true));
    }
    o.str("restart", s.restart.as_deref());
    o.str("runtime", rt.runtime.as_deref());
    let replicas_in_deploy = s.deploy.as_ref().and_then(|d| d.replicas).is_some();
    if full && !replicas_in_deploy && s.replicas != 1 {
        o.put("scale", Json::Num(s.replicas.to_string()));
    }
    if !s.secrets.is_empty() {
        o.put("secrets", file_refs(&s.secrets));
    }
    o.list("security_opt", &rt.security_opt);
    if let Some(b) = rt.shm_size.filter(|b| *b != 0) {
        o.put("shm_size", Json::Str(b.to_string()));
    }
    if rt.stdin_open {
        o.put("stdin_open", Json::Bool(true));
    }
    o.duration("stop_grace_period", s.stop_grace_period);
    o.str("stop_signal", s.stop_signal.as_deref());
    if !rt.storage_opt.is_empty() {
        o.put("storage_opt", string_map(&rt.storage_opt));
    }
    if !rt.sysctls.is_empty() {
        o.put("sysctls", string_map(&rt.sysctls));
    }
    o.list("tmpfs", &rt.tmpfs);
    if rt.tty {
        o.put("tty", Json::Bool(true));
    }
    if !rt.ulimits.is_empty() {
        let limits = rt
            .ulimits
            .iter()
            .map(|(name, l)| {
                // UlimitsConfig.MarshalJSON: a single value is a bare number.
                let v = match *l {
                    Ulimit::Single(v) => Json::Num(v.to_string()),
                    Ulimit::Pair { soft, hard } => Json::Obj(vec![
                        ("soft".into(), Json::Num(soft.to_string())),
                        ("hard".into(), Json::Num(hard.to_string())),
                    ]),
                };
                (name.clone(), v)
            })
            .collect();
        o.put("ulimits", Json::Obj(limits));
    }
    o.str("user", s.user.as_deref());
    o.str("userns_mode", rt.userns_mode.as_deref());
    o.str("uts", rt.uts.as_deref());
    if !s.volumes.is_empty() {
        let vols = s
            .volumes
            .iter()
            .enumerate()
            .map(|(i, v)| volume(v, s.written.short_volumes.get(i).copied().unwrap_or(false)))
            .collect();
        o.put("volumes", Json::Arr(vols));
    }
    o.list("volumes_from", &s.volumes_from);
    o.str("working_dir", s.working_dir.as_deref());
    if full {
        if let Some(m) = &s.muster {
            let v = serde_json::to_value(m).unwrap_or(serde_json::Value::Null);
            o.put("x-muster", Json::from_value(&v));
        }
        for (k, v) in &s.extensions {
            o.put(k, Json::from_value(v));
        }
    }
    o.done()
}

/// `com.docker.compose.config-hash` of a service, as Docker Compose computes it.
pub fn config_hash(s: &Service) -> String {
    let json = hash_shape(s).to_go_string();
    let digest = Sha256::digest(json.as_bytes());
    let mut out = String::with_capacity(64);
    for b in digest {
        let _ = write!(out, "{b:02x}");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_escaping_and_durations() {
        let j = Json::Str("a<b>&\"c\"\n\u{2028}".into());
        assert_eq!(j.to_go_string(), r#""a\u003cb\u003e\u0026\"c\"\n\u2028""#);
        assert_eq!(go_duration(Duration::from_secs(90)), "1m30s");
        assert_eq!(go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(go_duration(Duration::from_micros(3)), "3µs");
        assert_eq!(go_f32(0.5), "0.5");
        assert_eq!(go_f32(2.0), "2");
    }
}
