//! The compose model -> container create options.

use std::collections::HashMap;

use bollard::models::{
    ContainerCreateBody, DeviceMapping, DeviceRequest, EndpointSettings, HealthConfig, HostConfig,
    HostConfigCgroupnsModeEnum, HostConfigLogConfig, Mount, MountBindOptions,
    MountBindOptionsPropagationEnum, MountTmpfsOptions, MountType, MountVolumeOptions,
    NetworkingConfig, PortBinding, ResourcesBlkioWeightDevice, ResourcesUlimits, RestartPolicy,
    RestartPolicyNameEnum, ThrottleDevice,
};

use super::labels;
use super::networks::network_name;
use super::volumes::volume_name;
use crate::compose::{HealthTest, Project, Service, Ulimit, VolumeType};

/// Everything needed to create one container of a service.
#[derive(Debug, Clone)]
pub struct ContainerSpec {
    /// `{project}-{service}-{n}` (or `container_name:` for a single replica).
    pub name: String,
    pub number: u32,
    pub body: ContainerCreateBody,
    /// Networks to connect after create (the first one goes in the create call).
    pub extra_networks: Vec<(String, EndpointSettings)>,
    /// Secrets and configs to write into the container before it starts
    /// ([`Engine::inject_files`](super::client::Engine)).
    pub files: Vec<super::secrets::InjectedFile>,
    /// `platform:`, passed as create's `platform` parameter.
    pub platform: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum TranslateError {
    #[error("service {service}: no image (set `image:` or `build:`)")]
    NoImage { service: String },
    #[error("service {service}: restart policy `{value}` is not one of no, always, unless-stopped, on-failure[:N]")]
    Restart { service: String, value: String },
    #[error("service {service}: env_file {path}: {detail}")]
    EnvFile {
        service: String,
        path: String,
        detail: String,
    },
    #[error(transparent)]
    Files(#[from] super::secrets::FileError),
}

/// The container name Compose uses.
pub fn container_name(project: &Project, service: &Service, number: u32) -> String {
    match &service.container_name {
        Some(name) if service.replicas <= 1 => name.clone(),
        _ => format!("{}-{}-{number}", project.name, service.name),
    }
}

/// The networks (compose keys) a service joins: its own, else `default`.
pub fn service_network_keys(service: &Service) -> Vec<String> {
    if service.network_mode.is_some() {
        return Vec::new();
    }
    if service.networks.is_empty() {
        vec!["default".to_string()]
    } else {
        service.networks.keys().cloned().collect()
    }
}

/// The named volumes (compose keys) a service mounts.
pub fn service_volume_keys(service: &Service) -> Vec<String> {
    service
        .volumes
        .iter()
        .filter(|v| v.kind == VolumeType::Volume)
        .filter_map(|v| v.source.clone())
        .collect()
}

/// Builds the create options of container `number` (1-based) of `service`.
pub fn container_spec(
    project: &Project,
    service: &Service,
    number: u32,
) -> Result<ContainerSpec, TranslateError> {
    let image = service
        .image
        .clone()
        .ok_or_else(|| TranslateError::NoImage {
            service: service.name.clone(),
        })?;
    let name = container_name(project, service, number);

    // Environment: env_file entries first, `environment:` wins.
    let mut env: Vec<(String, String)> = Vec::new();
    for file in &service.env_file {
        let path = if file.path.is_absolute() {
            file.path.clone()
        } else {
            project.working_dir.join(&file.path)
        };
        match std::fs::read_to_string(&path) {
            Ok(text) => env.extend(parse_env_file(&text)),
            Err(e) if !file.required && e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(TranslateError::EnvFile {
                    service: service.name.clone(),
                    path: path.display().to_string(),
                    detail: e.to_string(),
                })
            }
        }
    }
    for (k, v) in &service.environment {
        env.retain(|(ek, _)| ek != k);
        if let Some(v) = v {
            env.push((k.clone(), v.clone()));
        }
    }

    // Ports.
    let mut exposed = Vec::new();
    let mut bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
    for port in &service.ports {
        let key = format!("{}/{}", port.target, port.protocol);
        if !exposed.contains(&key) {
            exposed.push(key.clone());
        }
        bindings
            .entry(key)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding {
                host_ip: port.host_ip.clone(),
                host_port: Some(port.published.clone().unwrap_or_default()),
            });
    }

    // Mounts.
    let mounts: Vec<Mount> = service.volumes.iter().map(|v| mount(project, v)).collect();
    let placed = super::secrets::placement(project, service)?;
    let mounts: Vec<Mount> = mounts.into_iter().chain(placed.mounts).collect();

    // Networks: aliases = service name (+ declared aliases).
    let keys = service_network_keys(service);
    let mut endpoints: Vec<(String, EndpointSettings)> = keys
        .iter()
        .map(|key| {
            let declared = service.networks.get(key);
            let mut aliases = vec![service.name.clone()];
            if let Some(d) = declared {
                aliases.extend(d.aliases.iter().cloned());
            }
            let endpoint = EndpointSettings {
                aliases: Some(aliases),
                ipam_config: declared
                    .filter(|d| d.ipv4_address.is_some() || d.ipv6_address.is_some())
                    .map(|d| bollard::models::EndpointIpamConfig {
                        ipv4_address: d.ipv4_address.clone(),
                        ipv6_address: d.ipv6_address.clone(),
                        ..Default::default()
                    }),
                mac_address: declared.and_then(|d| d.mac_address.clone()),
                ..Default::default()
            };
            (network_name(project, key), endpoint)
        })
        .collect();
    let mut first = if endpoints.is_empty() {
        None
    } else {
        Some(endpoints.remove(0))
    };
    // `mac_address:` is the first network's, as Compose sets it for API >= 1.44.
    if let (Some((_, e)), Some(mac)) = (first.as_mut(), &service.runtime.mac_address) {
        e.mac_address.get_or_insert_with(|| mac.clone());
    }
    // `expose:` ports, ranges spread (the engine takes one key per port).
    for entry in &service.runtime.expose {
        let (ports, proto) = entry.split_once('/').unwrap_or((entry, "tcp"));
        let (lo, hi) = ports.split_once('-').unwrap_or((ports, ports));
        if let (Ok(lo), Ok(hi)) = (lo.parse::<u16>(), hi.parse::<u16>()) {
            for port in lo..=hi {
                let key = format!("{port}/{proto}");
                if !exposed.contains(&key) {
                    exposed.push(key);
                }
            }
        }
    }
    let network_mode = match &service.network_mode {
        Some(mode) => Some(match mode.strip_prefix("service:") {
            Some(other) => format!("container:{}-{other}-1", project.name),
            None => mode.clone(),
        }),
        None => first.as_ref().map(|(n, _)| n.clone()),
    };

    let restart_policy = match service.restart.as_deref() {
        None => None,
        Some(value) => Some(
            restart_policy(value).ok_or_else(|| TranslateError::Restart {
                service: service.name.clone(),
                value: value.to_string(),
            })?,
        ),
    };

    let limits = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.limits.clone())
        .unwrap_or_default();
    let reservations = service
        .deploy
        .as_ref()
        .and_then(|d| d.resources.as_ref())
        .and_then(|r| r.reservations.clone())
        .unwrap_or_default();

    let rt = &service.runtime;
    let some_list = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
    let host_config = HostConfig {
        cap_add: some_list(&rt.cap_add),
        cap_drop: some_list(&rt.cap_drop),
        dns: some_list(&rt.dns),
        dns_options: some_list(&rt.dns_opt),
        dns_search: some_list(&rt.dns_search),
        // The engine takes `host:ip`; the model keeps Compose's `host=ip`.
        extra_hosts: (!rt.extra_hosts.is_empty()).then(|| {
            rt.extra_hosts
                .iter()
                .map(|e| match e.split_once('=') {
                    Some((h, ip)) => format!("{h}:{ip}"),
                    None => e.clone(),
                })
                .collect()
        }),
        group_add: some_list(&rt.group_add),
        init: rt.init,
        log_config: rt.logging.as_ref().map(|l| HostConfigLogConfig {
            typ: l.driver.clone(),
            config: (!l.options.is_empty()).then(|| l.options.clone().into_iter().collect()),
        }),
        privileged: rt.privileged.then_some(true),
        readonly_rootfs: rt.read_only.then_some(true),
        security_opt: some_list(&rt.security_opt),
        shm_size: rt.shm_size.map(|b| b.min(i64::MAX as u64) as i64),
        sysctls: (!rt.sysctls.is_empty()).then(|| rt.sysctls.clone().into_iter().collect()),
        tmpfs: (!rt.tmpfs.is_empty()).then(|| {
            rt.tmpfs
                .iter()
                .map(|t| match t.split_once(':') {
                    Some((path, opts)) => (path.to_string(), opts.to_string()),
                    None => (t.clone(), String::new()),
                })
                .collect()
        }),
        ulimits: (!rt.ulimits.is_empty()).then(|| {
            rt.ulimits
                .iter()
                .map(|(name, l)| {
                    let (soft, hard) = match *l {
                        Ulimit::Single(v) => (v, v),
                        Ulimit::Pair { soft, hard } => (soft, hard),
                    };
                    ResourcesUlimits {
                        name: Some(name.clone()),
                        soft: Some(soft),
                        hard: Some(hard),
                    }
                })
                .collect()
        }),
        port_bindings: if bindings.is_empty() {
            None
        } else {
            Some(bindings)
        },
        mounts: if mounts.is_empty() {
            None
        } else {
            Some(mounts)
        },
        network_mode,
        restart_policy,
        // docker/compose getDeployResources: the service keys, then
        // deploy.resources over them.
        nano_cpus: limits.cpus.or(rt.cpus).map(|c| (c * 1e9) as i64),
        memory: limits
            .memory
            .or(rt.mem_limit)
            .map(|m| m.min(i64::MAX as u64) as i64),
        pids_limit: limits.pids.or(rt.pids_limit),
        blkio_weight: rt
            .blkio_config
            .as_ref()
            .map(|b| b.weight)
            .filter(|w| *w != 0),
        blkio_weight_device: blkio(rt, |b| {
            b.weight_device
                .iter()
                .map(|w| ResourcesBlkioWeightDevice {
                    path: Some(w.path.clone()),
                    weight: Some(usize::from(w.weight)),
                })
                .collect()
        }),
        blkio_device_read_bps: blkio(rt, |b| throttles(&b.device_read_bps)),
        blkio_device_read_iops: blkio(rt, |b| throttles(&b.device_read_iops)),
        blkio_device_write_bps: blkio(rt, |b| throttles(&b.device_write_bps)),
        blkio_device_write_iops: blkio(rt, |b| throttles(&b.device_write_iops)),
        memory_reservation: reservations
            .memory
            .or(rt.mem_reservation)
            .map(|m| m.min(i64::MAX as u64) as i64),
        memory_swap: rt.memswap_limit,
        memory_swappiness: rt.mem_swappiness,
        cpu_shares: rt.cpu_shares,
        cpu_quota: rt.cpu_quota,
        cpu_period: rt.cpu_period,
        cpu_realtime_period: rt.cpu_rt_period,
        cpu_realtime_runtime: rt.cpu_rt_runtime,
        cpuset_cpus: rt.cpuset.clone(),
        oom_kill_disable: rt.oom_kill_disable.then_some(true),
        oom_score_adj: rt.oom_score_adj,
        devices: rt.devices.iter().any(|d| !is_cdi(d)).then(|| {
            rt.devices
                .iter()
                .filter(|d| !is_cdi(d))
                .map(|d| DeviceMapping {
                    path_on_host: Some(d.source.clone()),
                    path_in_container: Some(d.target.clone()),
                    cgroup_permissions: Some(d.permissions.clone()),
                })
                .collect()
        }),
        device_requests: device_requests(&reservations.devices, &rt.devices, &rt.gpus),
        device_cgroup_rules: some_list(&rt.device_cgroup_rules),
        pid_mode: rt.pid.clone(),
        ipc_mode: rt.ipc.clone(),
        uts_mode: rt.uts.clone(),
        userns_mode: rt.userns_mode.clone(),
        cgroupns_mode: rt.cgroup.as_deref().map(|c| match c {
            "host" => HostConfigCgroupnsModeEnum::HOST,
            _ => HostConfigCgroupnsModeEnum::PRIVATE,
        }),
        cgroup_parent: rt.cgroup_parent.clone(),
        runtime: rt.runtime.clone(),
        storage_opt: (!rt.storage_opt.is_empty())
            .then(|| rt.storage_opt.clone().into_iter().collect()),
        annotations: (!rt.annotations.is_empty())
            .then(|| rt.annotations.clone().into_iter().collect()),
        // docker/compose: `name:alias`, or `name:name` without an alias.
        links: (!rt.external_links.is_empty()).then(|| {
            rt.external_links
                .iter()
                .map(|l| match l.split_once(':') {
                    Some(_) => l.clone(),
                    None => format!("{l}:{l}"),
                })
                .collect()
        }),
        ..Default::default()
    };

    let body = ContainerCreateBody {
        image: Some(image),
        cmd: service.command.clone(),
        entrypoint: service.entrypoint.clone(),
        env: Some(env.into_iter().map(|(k, v)| format!("{k}={v}")).collect()),
        labels: Some(labels::container_labels(project, service, number)),
        exposed_ports: if exposed.is_empty() {
            None
        } else {
            Some(exposed)
        },
        user: service.user.clone(),
        working_dir: service.working_dir.clone(),
        hostname: service.hostname.clone(),
        domainname: rt.domainname.clone(),
        healthcheck: service.healthcheck.as_ref().map(health_config),
        stop_timeout: service.stop_grace_period.map(|d| d.as_secs() as i64),
        stop_signal: service.stop_signal.clone(),
        tty: rt.tty.then_some(true),
        open_stdin: rt.stdin_open.then_some(true),
        host_config: Some(host_config),
        networking_config: first.map(|(n, e)| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(n, e)])),
        }),
        ..Default::default()
    };
    Ok(ContainerSpec {
        name,
        number,
        body,
        extra_networks: endpoints,
        files: placed.files,
        platform: service.runtime.platform.clone(),
    })
}

/// One `volumes:` entry as an Engine API mount, with its long-syntax
/// bind/volume/tmpfs options. `bind.selinux` has no Mounts field (Compose
/// falls back to a `Binds` string for it); loading warns that it is not applied.
fn mount(project: &Project, v: &crate::compose::VolumeMount) -> Mount {
    let consistency = v.consistency.clone();
    match v.kind {
        VolumeType::Bind => Mount {
            typ: Some(MountType::BIND),
            source: v.source.clone(),
            target: Some(v.target.clone()),
            read_only: Some(v.read_only),
            consistency,
            bind_options: v.bind.as_ref().map(|b| MountBindOptions {
                propagation: b.propagation.as_deref().and_then(propagation),
                // Engine API 1.42+; older engines never create the path.
                create_mountpoint: b.create_host_path.then_some(true),
                ..Default::default()
            }),
            ..Default::default()
        },
        VolumeType::Volume => {
            let labels = v
                .source
                .as_ref()
                .map(|s| labels::volume_labels(&project.name, s));
            let options = v.volume.as_ref();
            Mount {
                typ: Some(MountType::VOLUME),
                source: v.source.as_ref().map(|s| volume_name(project, s)),
                target: Some(v.target.clone()),
                read_only: Some(v.read_only),
                consistency,
                volume_options: (labels.is_some() || options.is_some()).then(|| {
                    MountVolumeOptions {
                        labels,
                        no_copy: options.and_then(|o| o.nocopy.then_some(true)),
                        subpath: options.and_then(|o| o.subpath.clone()),
                        ..Default::default()
                    }
                }),
                ..Default::default()
            }
        }
        VolumeType::Tmpfs => Mount {
            typ: Some(MountType::TMPFS),
            target: Some(v.target.clone()),
            read_only: v.read_only.then_some(true),
            consistency,
            tmpfs_options: v.tmpfs.as_ref().map(|t| MountTmpfsOptions {
                size_bytes: t.size.and_then(|s| i64::try_from(s).ok()),
                mode: t.mode.map(i64::from),
                ..Default::default()
            }),
            ..Default::default()
        },
    }
}

/// A `blkio_config` list as the engine takes it; `None` when empty.
/// A `devices:` entry that names a CDI device (`vendor.com/class=name`, the
/// same as source and target), which docker/compose passes as a device
/// request of driver `cdi` instead of a device mapping.
fn is_cdi(d: &crate::compose::Device) -> bool {
    let Some((vendor_class, name)) = d.source.split_once('=') else {
        return false;
    };
    let Some((vendor, class)) = vendor_class.split_once('/') else {
        return false;
    };
    // CDI's parser: vendor and class start with a letter, the name with a
    // letter or digit; all end with a letter or digit.
    let word = |s: &str, first_alpha: bool, inner: &str| {
        let ok = |c: char| c.is_ascii_alphanumeric() || inner.contains(c);
        s.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || (!first_alpha && c.is_ascii_digit()))
            && s.chars().last().is_some_and(|c| c.is_ascii_alphanumeric())
            && s.chars().all(ok)
    };
    d.source == d.target
        && word(vendor, true, ".-_")
        && word(class, true, "-_")
        && word(name, false, "-_.:")
}

/// HostConfig `DeviceRequests` as docker/compose's create.go builds them:
/// first `deploy.resources.reservations.devices` (setReservations, the
/// capabilities as one AND list), then the CDI names of `devices:` as one
/// request of driver `cdi`, then `gpus:` (with `gpu` added to the
/// capabilities). A count of `all` is -1, as the engine takes it.
fn device_requests(
    reserved: &[crate::compose::DeviceRequest],
    devices: &[crate::compose::Device],
    gpus: &[crate::compose::DeviceRequest],
) -> Option<Vec<DeviceRequest>> {
    let one = |d: &crate::compose::DeviceRequest, caps: Vec<String>| DeviceRequest {
        driver: d.driver.clone(),
        count: Some(d.count),
        device_ids: (!d.device_ids.is_empty()).then(|| d.device_ids.clone()),
        capabilities: Some(vec![caps]),
        options: (!d.options.is_empty()).then(|| d.options.clone().into_iter().collect()),
    };
    let cdi: Vec<String> = devices
        .iter()
        .filter(|d| is_cdi(d))
        .map(|d| d.source.clone())
        .collect();
    let cdi = (!cdi.is_empty()).then(|| DeviceRequest {
        driver: Some("cdi".into()),
        device_ids: Some(cdi),
        ..Default::default()
    });
    let out: Vec<DeviceRequest> = reserved
        .iter()
        .map(|d| one(d, d.capabilities.clone()))
        .chain(cdi)
        .chain(gpus.iter().map(|g| {
            let mut caps = g.capabilities.clone();
            caps.push("gpu".into());
            one(g, caps)
        }))
        .collect();
    (!out.is_empty()).then_some(out)
}

fn blkio<T>(
    rt: &crate::compose::Runtime,
    f: impl Fn(&crate::compose::BlkioConfig) -> Vec<T>,
) -> Option<Vec<T>> {
    rt.blkio_config.as_ref().map(f).filter(|v| !v.is_empty())
}

fn throttles(list: &[crate::compose::ThrottleDevice]) -> Vec<ThrottleDevice> {
    list.iter()
        .map(|t| ThrottleDevice {
            path: Some(t.path.clone()),
            rate: Some(i64::try_from(t.rate).unwrap_or(i64::MAX)),
        })
        .collect()
}

fn propagation(p: &str) -> Option<MountBindOptionsPropagationEnum> {
    use MountBindOptionsPropagationEnum as P;
    Some(match p {
        "private" => P::PRIVATE,
        "rprivate" => P::RPRIVATE,
        "shared" => P::SHARED,
        "rshared" => P::RSHARED,
        "slave" => P::SLAVE,
        "rslave" => P::RSLAVE,
        _ => return None,
    })
}

fn restart_policy(value: &str) -> Option<RestartPolicy> {
    let (name, count) = match value.split_once(':') {
        Some((n, c)) => (n, Some(c.parse::<i64>().ok()?)),
        None => (value, None),
    };
    let name = match name {
        "no" | "" => RestartPolicyNameEnum::NO,
        "always" => RestartPolicyNameEnum::ALWAYS,
        "unless-stopped" => RestartPolicyNameEnum::UNLESS_STOPPED,
        "on-failure" => RestartPolicyNameEnum::ON_FAILURE,
        _ => return None,
    };
    Some(RestartPolicy {
        name: Some(name),
        maximum_retry_count: count,
    })
}

fn nanos(d: std::time::Duration) -> i64 {
    d.as_nanos().min(i64::MAX as u128) as i64
}

/// The engine's healthcheck config (durations in nanoseconds).
pub fn health_config(h: &crate::compose::Healthcheck) -> HealthConfig {
    let test = if h.disable {
        Some(vec!["NONE".to_string()])
    } else {
        h.test.as_ref().map(|t| match t {
            HealthTest::None => vec!["NONE".to_string()],
            HealthTest::Cmd(args) => {
                let mut v = vec!["CMD".to_string()];
                v.extend(args.iter().cloned());
                v
            }
            HealthTest::CmdShell(cmd) => vec!["CMD-SHELL".to_string(), cmd.clone()],
        })
    };
    let defaults = crate::compose::Healthcheck::default();
    HealthConfig {
        test,
        interval: Some(nanos(h.interval)),
        timeout: Some(nanos(h.timeout)),
        retries: Some(h.retries as i64),
        start_period: Some(nanos(h.start_period)),
        // API 1.44+; older engines ignore it.
        start_interval: if h.start_interval != defaults.start_interval {
            Some(nanos(h.start_interval))
        } else {
            None
        },
    }
}

/// Whether the service's own definition disables or declares a healthcheck:
/// `Some(true)` declares one, `Some(false)` disables it, `None` leaves the image's.
pub fn declares_healthcheck(service: &Service) -> Option<bool> {
    let h = service.healthcheck.as_ref()?;
    if h.disable || matches!(h.test, Some(HealthTest::None)) {
        return Some(false);
    }
    h.test.as_ref().map(|_| true)
}

/// `KEY=VALUE` lines; `#` comments and blank lines skipped, `export ` and quotes stripped.
pub fn parse_env_file(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let l = l.strip_prefix("export ").unwrap_or(l);
            let (k, v) = l.split_once('=')?;
            let v = v.trim();
            let v = v
                .strip_prefix('"')
                .and_then(|v| v.strip_suffix('"'))
                .or_else(|| v.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')))
                .unwrap_or(v);
            Some((k.trim().to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::{Healthcheck, Port, VolumeMount};
    use std::time::Duration;

    #[test]
    fn translates_ports_volumes_health_and_names() {
        let project = Project {
            name: "p".into(),
            ..Default::default()
        };
        let service = Service {
            name: "web".into(),
            image: Some("img:1".into()),
            replicas: 2,
            environment: [
                ("A".to_string(), Some("1".to_string())),
                ("B".to_string(), None),
            ]
            .into_iter()
            .collect(),
            ports: vec![Port {
                target: 80,
                published: Some("8080".into()),
                host_ip: Some("127.0.0.1".into()),
                protocol: "tcp".into(),
            }],
            volumes: vec![
                VolumeMount {
                    kind: VolumeType::Volume,
                    source: Some("data".into()),
                    target: "/data".into(),
                    read_only: false,
                    consistency: None,
                    bind: None,
                    volume: None,
                    tmpfs: None,
                },
                VolumeMount {
                    kind: VolumeType::Tmpfs,
                    source: None,
                    target: "/tmp".into(),
                    read_only: false,
                    consistency: None,
                    bind: None,
                    volume: None,
                    tmpfs: None,
                },
            ],
            healthcheck: Some(Healthcheck {
                test: Some(HealthTest::CmdShell("true".into())),
                interval: Duration::from_millis(500),
                ..Default::default()
            }),
            restart: Some("on-failure:3".into()),
            stop_grace_period: Some(Duration::from_secs(20)),
            ..Default::default()
        };
        let spec = container_spec(&project, &service, 2).unwrap();
        assert_eq!(spec.name, "p-web-2");
        let body = spec.body;
        assert_eq!(body.env.unwrap(), vec!["A=1"]);
        assert_eq!(body.exposed_ports.unwrap(), vec!["80/tcp"]);
        let host = body.host_config.unwrap();
        let b = &host.port_bindings.unwrap()["80/tcp"];
        assert_eq!(b.as_ref().unwrap()[0].host_ip.as_deref(), Some("127.0.0.1"));
        let mounts = host.mounts.unwrap();
        assert_eq!(mounts[0].source.as_deref(), Some("p_data"));
        assert_eq!(mounts[1].typ, Some(MountType::TMPFS));
        assert_eq!(host.network_mode.as_deref(), Some("p_default"));
        assert_eq!(host.restart_policy.unwrap().maximum_retry_count, Some(3));
        let hc = body.healthcheck.unwrap();
        assert_eq!(hc.test.unwrap(), vec!["CMD-SHELL", "true"]);
        assert_eq!(hc.interval, Some(500_000_000));
        assert_eq!(body.stop_timeout, Some(20));
        let labels = body.labels.unwrap();
        assert_eq!(labels[labels::CONTAINER_NUMBER], "2");
        assert_eq!(labels[labels::ONEOFF], "False");
        let eps = body.networking_config.unwrap().endpoints_config.unwrap();
        assert_eq!(
            eps["p_default"].aliases.as_ref().unwrap(),
            &vec!["web".to_string()]
        );
    }

    #[test]
    fn rejects_unknown_restart_and_missing_image() {
        let project = Project::default();
        let mut s = Service {
            name: "x".into(),
            ..Default::default()
        };
        assert!(matches!(
            container_spec(&project, &s, 1),
            Err(TranslateError::NoImage { .. })
        ));
        s.image = Some("i".into());
        s.restart = Some("sometimes".into());
        let err = container_spec(&project, &s, 1).unwrap_err().to_string();
        assert!(err.contains("sometimes"), "{err}");
    }

    #[test]
    fn cdi_device_names_are_told_from_device_paths() {
        let dev = |s: &str, t: &str| crate::compose::Device {
            source: s.into(),
            target: t.into(),
            permissions: "rwm".into(),
        };
        assert!(is_cdi(&dev("nvidia.com/gpu=all", "nvidia.com/gpu=all")));
        assert!(is_cdi(&dev(
            "vendor.example.com/fpga=card0",
            "vendor.example.com/fpga=card0"
        )));
        assert!(!is_cdi(&dev("/dev/ttyUSB0", "/dev/ttyUSB0")));
        assert!(!is_cdi(&dev("nvidia.com/gpu=all", "/dev/gpu")));
        assert!(!is_cdi(&dev("nvidia.com/=all", "nvidia.com/=all")));
        assert!(!is_cdi(&dev("-bad.com/gpu=0", "-bad.com/gpu=0")));
    }

    #[test]
    fn env_file_lines() {
        let v = parse_env_file("# c\nA=1\nexport B=\"two\"\n\nC='3'\n");
        assert_eq!(
            v,
            vec![
                ("A".into(), "1".into()),
                ("B".into(), "two".into()),
                ("C".into(), "3".into())
            ]
        );
    }
}
