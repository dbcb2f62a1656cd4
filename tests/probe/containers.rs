//! http / tcp / exec / docker probes (and redis / nats in containers) against
//! containers of the locally built muster-test images, through bollard.

use crate::support::{self, DockerProject, BUSYBOX_IMAGE, NATS_IMAGE, REDIS_IMAGE};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HealthConfig, HostConfig, PortBinding};
use bollard::query_parameters::{CreateContainerOptionsBuilder, StartContainerOptions};
use bollard::Docker;
use muster::compose::xmuster::ProbeSpec;
use muster::probe::{
    build, AddressMode, LabelResolver, Probe, ProbeContext, ProbeOutcome, ProbeStatus,
    PublishedPorts,
};
use muster::supervisor::once::run_once;

async fn docker() -> Docker {
    support::ensure_test_images();
    let docker = Docker::connect_with_local_defaults().expect("docker socket");
    docker.negotiate_version().await.expect("docker answers")
}

struct Started {
    id: String,
    /// container port -> host port
    ports: BTreeMap<u16, u16>,
    ip: Option<String>,
}

async fn run(
    docker: &Docker,
    project: &DockerProject,
    service: &str,
    image: &str,
    cmd: Option<&[&str]>,
    ports: &[u16],
    healthcheck: Option<HealthConfig>,
) -> Started {
    let mut labels = HashMap::new();
    labels.insert(
        "com.docker.compose.project".to_string(),
        project.name.clone(),
    );
    labels.insert(
        "com.docker.compose.service".to_string(),
        service.to_string(),
    );
    let mut bindings = HashMap::new();
    for p in ports {
        bindings.insert(
            format!("{p}/tcp"),
            Some(vec![PortBinding {
                host_ip: Some("127.0.0.1".into()),
                host_port: Some(String::new()),
            }]),
        );
    }
    let body = ContainerCreateBody {
        image: Some(image.to_string()),
        cmd: cmd.map(|c| c.iter().map(|s| s.to_string()).collect()),
        labels: Some(labels),
        exposed_ports: Some(ports.iter().map(|p| format!("{p}/tcp")).collect()),
        healthcheck,
        host_config: Some(HostConfig {
            port_bindings: Some(bindings),
            ..Default::default()
        }),
        ..Default::default()
    };
    let name = format!("{}-{service}", project.name);
    let created = docker
        .create_container(
            Some(CreateContainerOptionsBuilder::default().name(&name).build()),
            body,
        )
        .await
        .expect("create container");
    docker
        .start_container(&created.id, None::<StartContainerOptions>)
        .await
        .expect("start container");
    let info = docker.inspect_container(&created.id, None).await.unwrap();
    let net = info.network_settings.unwrap_or_default();
    let mut published = BTreeMap::new();
    for (key, binding) in net.ports.unwrap_or_default() {
        let port: u16 = key.trim_end_matches("/tcp").parse().unwrap();
        if let Some(host) = binding.and_then(|b| b.into_iter().find_map(|b| b.host_port)) {
            published.insert(port, host.parse().unwrap());
        }
    }
    let ip = net
        .networks
        .unwrap_or_default()
        .into_values()
        .find_map(|n| n.ip_address.filter(|ip| !ip.is_empty()));
    Started {
        id: created.id,
        ports: published,
        ip,
    }
}

fn host_ctx(service: &str, published: PublishedPorts) -> ProbeContext {
    ProbeContext {
        service: service.into(),
        address_mode: AddressMode::Host,
        published,
        ..Default::default()
    }
}

fn probe(yaml: &str, ctx: &ProbeContext) -> Box<dyn Probe> {
    let spec: ProbeSpec = serde_saphyr::from_str(yaml).expect("probe spec parses");
    build(&spec, ctx).expect("probe builds")
}

/// Checks until ok (a container needs a moment to start serving) or gives up.
async fn until_ok(p: &mut Box<dyn Probe>, within: Duration) -> ProbeOutcome {
    let deadline = std::time::Instant::now() + within;
    loop {
        let outcome = run_once(p.as_mut(), Duration::from_secs(2)).await;
        if outcome.is_ok() || std::time::Instant::now() > deadline {
            return outcome;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One run. The bound is generous: an exec through the engine takes a few
/// hundred ms on a quiet machine and more on a loaded CI one.
async fn once(p: &mut Box<dyn Probe>) -> ProbeOutcome {
    run_once(p.as_mut(), Duration::from_secs(10)).await
}

const WEB: &[&str] = &[
    "sh",
    "-c",
    "mkdir -p /www && echo hello-muster > /www/index.html && echo '{\"status\":\"ok\",\"n\":3}' > /www/health.json && exec httpd -f -p 80 -h /www",
];

#[tokio::test]
async fn http_and_tcp_probes_against_a_container() {
    let docker = docker().await;
    let project = DockerProject::new("probe_http");
    let web = run(
        &docker,
        &project,
        "web",
        BUSYBOX_IMAGE,
        Some(WEB),
        &[80],
        None,
    )
    .await;
    let mut published = PublishedPorts::new();
    published.insert("web".into(), web.ports.clone());
    let ctx = host_ctx("web", published);

    // Host mode: `web:80` is reached through the published port.
    let mut tcp = probe("tcp: { address: \"web:80\" }\n", &ctx);
    assert_eq!(tcp.target(), format!("127.0.0.1:{}", web.ports[&80]));
    let outcome = until_ok(&mut tcp, Duration::from_secs(10)).await;
    assert!(outcome.is_ok(), "{outcome:?}");

    let mut body = probe(
        "http: { url: \"http://web:80/\", body_contains: hello-muster }\n",
        &ctx,
    );
    let outcome = until_ok(&mut body, Duration::from_secs(10)).await;
    assert!(
        outcome.is_ok() && outcome.reason == "HTTP 200",
        "{outcome:?}"
    );
    let mut json = probe(
        "http: { url: \"http://web/health.json\", json: { pointer: /status, equals: ok } }\n",
        &ctx,
    );
    assert!(once(&mut json).await.is_ok());
    let mut wrong = probe(
        "http: { url: \"http://web/health.json\", json: { pointer: /n, equals: 4 } }\n",
        &ctx,
    );
    let outcome = once(&mut wrong).await;
    assert!(
        outcome.reason.contains("JSON /n is 3, want 4"),
        "{}",
        outcome.reason
    );
    let mut missing = probe(
        "http: { url: \"http://web/nope\", status: \"200-299\" }\n",
        &ctx,
    );
    let outcome = once(&mut missing).await;
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert!(
        outcome.reason.starts_with("HTTP 404, want 200-299"),
        "{}",
        outcome.reason
    );
    let mut head = probe(
        "http: { url: \"http://web/\", method: HEAD, headers: { X-Probe: muster } }\n",
        &ctx,
    );
    assert!(once(&mut head).await.is_ok());

    // A container port that is not published cannot be reached from the host.
    let spec: ProbeSpec = serde_saphyr::from_str("tcp: { address: \"web:81\" }\n").unwrap();
    let err = build(&spec, &ctx).err().unwrap().to_string();
    assert!(err.contains("does not publish container port 81"), "{err}");

    // Network mode uses addresses as written (here the container's IP on its network).
    if let Some(ip) = &web.ip {
        let net = ProbeContext::for_service("web");
        let mut direct = probe(&format!("http: {{ url: \"http://{ip}:80/\" }}\n"), &net);
        assert!(once(&mut direct).await.is_ok());
    }

    // The container goes away: refused, with the reason.
    docker
        .stop_container(
            &web.id,
            None::<bollard::query_parameters::StopContainerOptions>,
        )
        .await
        .unwrap();
    let outcome = once(&mut tcp).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(outcome.reason.contains("refused"), "{}", outcome.reason);
    let outcome = once(&mut body).await;
    assert_ne!(outcome.status, ProbeStatus::Ok, "{outcome:?}");
}

#[tokio::test]
async fn exec_and_docker_probes_against_a_container() {
    let docker = docker().await;
    let project = DockerProject::new("probe_exec");
    let health = HealthConfig {
        test: Some(vec![
            "CMD".into(),
            "sh".into(),
            "-c".into(),
            "test -f /tmp/ok".into(),
        ]),
        interval: Some(200_000_000),
        timeout: Some(1_000_000_000),
        retries: Some(1),
        ..Default::default()
    };
    run(
        &docker,
        &project,
        "app",
        BUSYBOX_IMAGE,
        Some(&["sleep", "300"]),
        &[],
        Some(health),
    )
    .await;
    run(
        &docker,
        &project,
        "plain",
        BUSYBOX_IMAGE,
        Some(&["sleep", "300"]),
        &[],
        None,
    )
    .await;
    let ctx = ProbeContext {
        service: "app".into(),
        docker: Some(docker.clone()),
        resolver: Some(Arc::new(LabelResolver {
            docker: docker.clone(),
            project: project.name.clone(),
        })),
        ..Default::default()
    };

    let mut ok = probe(
        "exec: { command: [sh, -c, \"echo fine\"] }\ntimeout: 10s\n",
        &ctx,
    );
    let outcome = once(&mut ok).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("fine"),
        "{outcome:?}"
    );
    let mut bad = probe(
        "exec: { command: [sh, -c, \"echo not-yet >&2; exit 3\"] }\ntimeout: 10s\n",
        &ctx,
    );
    let outcome = once(&mut bad).await;
    assert_eq!(outcome.status, ProbeStatus::Fail);
    assert!(
        outcome.reason.contains("exited 3") && outcome.reason.contains("not-yet"),
        "{}",
        outcome.reason
    );
    // A command far longer than the hang guard: ending before it means the
    // probe ended at its timeout instead of waiting for the command.
    let mut slow = probe(
        "exec: { command: [sleep, \"600\"] }\ntimeout: 500ms\n",
        &ctx,
    );
    let start = std::time::Instant::now();
    let outcome = run_once(slow.as_mut(), Duration::from_millis(500)).await;
    assert_eq!(outcome.status, ProbeStatus::Timeout, "{outcome:?}");
    assert!(start.elapsed() < support::HANG_GUARD);

    // Docker's own health: not healthy until /tmp/ok exists.
    let mut health = probe("docker: {}\n", &ctx);
    let outcome = once(&mut health).await;
    assert_eq!(outcome.status, ProbeStatus::Fail, "{outcome:?}");
    assert!(
        outcome.reason.starts_with("docker health is"),
        "{}",
        outcome.reason
    );
    let mut touch = probe("exec: { command: [touch, /tmp/ok] }\ntimeout: 10s\n", &ctx);
    assert!(once(&mut touch).await.is_ok());
    let outcome = until_ok(&mut health, Duration::from_secs(15)).await;
    assert!(
        outcome.is_ok() && outcome.reason == "healthy",
        "{outcome:?}"
    );

    let plain_ctx = ProbeContext {
        service: "plain".into(),
        ..ctx.clone()
    };
    let mut plain = probe("docker: {}\n", &plain_ctx);
    let outcome = once(&mut plain).await;
    assert!(
        outcome.is_ok() && outcome.reason.contains("no healthcheck"),
        "{outcome:?}"
    );

    let gone_ctx = ProbeContext {
        service: "gone".into(),
        ..ctx.clone()
    };
    let mut gone = probe("exec: { command: [\"true\"] }\n", &gone_ctx);
    let outcome = once(&mut gone).await;
    assert!(
        outcome
            .reason
            .contains("no running container for service \"gone\""),
        "{}",
        outcome.reason
    );

    // exec and docker probes need Docker.
    let spec: ProbeSpec = serde_saphyr::from_str("exec: { command: [\"true\"] }\n").unwrap();
    let err = build(&spec, &ProbeContext::for_service("x"))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("exec probe") && err.contains("Docker"),
        "{err}"
    );
}

#[tokio::test]
async fn redis_and_nats_probes_against_containers_through_published_ports() {
    let docker = docker().await;
    let project = DockerProject::new("probe_rn");
    let redis = run(&docker, &project, "redis", REDIS_IMAGE, None, &[6379], None).await;
    let nats = run(
        &docker,
        &project,
        "nats",
        NATS_IMAGE,
        None,
        &[4222, 8222],
        None,
    )
    .await;
    let mut published = PublishedPorts::new();
    published.insert("redis".into(), redis.ports.clone());
    published.insert("nats".into(), nats.ports.clone());
    let ctx = host_ctx("redis", published);
    let mut r = probe(
        "redis: { url: \"redis://redis:6379\", require: [ping, not_loading] }\n",
        &ctx,
    );
    let outcome = until_ok(&mut r, Duration::from_secs(10)).await;
    assert!(outcome.is_ok(), "{outcome:?}");
    let mut n = probe("nats: { url: \"nats://nats:4222\", jetstream: true, monitor_url: \"http://nats:8222\" }\ntimeout: 2s\n", &ctx);
    let outcome = until_ok(&mut n, Duration::from_secs(10)).await;
    assert!(
        outcome.is_ok()
            && outcome.reason.contains("healthz ok")
            && outcome.reason.contains("JetStream ok"),
        "{outcome:?}"
    );
}
