//! `muster up` / `down` / `ps` against the real Docker engine, with the
//! locally built muster-test images. Every test runs under a DockerProject
//! guard so its containers, networks and volumes go away even on failure.

use crate::support::{self, DockerProject};
use std::collections::HashMap;
use std::time::Duration;

use crate::support::stack::*;
use muster::compose::{Condition, Project};
use muster::engine::{labels, Engine};
use muster::supervisor::stack::{down, ps};
use muster::supervisor::start::{up, UpOptions, UpOutcome, UpReport};
use muster::supervisor::{ServiceState, StateStore};

async fn engine() -> Engine {
    support::ensure_test_images();
    Engine::connect().await.expect("docker engine")
}

async fn run_up(engine: &Engine, project: &Project) -> (UpReport, StateStore) {
    let (store, report) = super::up_within(engine, project, Duration::from_secs(60)).await;
    (report.expect("up"), store)
}

fn state(store: &StateStore, service: &str) -> (ServiceState, String) {
    let snap = store.snapshot();
    let s = &snap.services[service];
    (s.state, s.reason.clone())
}

/// StartedAt of container 1 of `service`, in ns.
async fn started_ns(engine: &Engine, project: &str, service: &str) -> i128 {
    let d = engine
        .inspect_container(&format!("{project}-{service}-1"))
        .await
        .expect("inspect");
    d.started_at_ns().expect("started")
}

async fn ids(engine: &Engine, project: &str) -> HashMap<String, String> {
    engine
        .list_project_containers(project, None)
        .await
        .expect("list")
        .into_iter()
        .map(|c| (c.service, c.id))
        .collect()
}

const MS: i128 = 1_000_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diamond_starts_in_dependency_order_with_b_and_c_in_parallel() {
    let engine = engine().await;
    let guard = DockerProject::new("diamond");
    // b and c become healthy 1.5 s after they start; were they started one
    // after the other (waiting for health), c would start >= 1.5 s after b.
    let p = project(
        &guard.name,
        vec![
            healthy_after("a", 1000, 200),
            dep(
                healthy_after("b", 1500, 200),
                "a",
                Condition::ServiceHealthy,
            ),
            dep(
                healthy_after("c", 1500, 200),
                "a",
                Condition::ServiceHealthy,
            ),
            dep(
                dep(sh("d", "exec sleep 100000"), "b", Condition::ServiceHealthy),
                "c",
                Condition::ServiceHealthy,
            ),
        ],
    );
    let (report, store) = run_up(&engine, &p).await;
    assert_eq!(report.outcome, UpOutcome::Ready, "{:?}", store.snapshot());
    for s in ["a", "b", "c"] {
        let (st, reason) = state(&store, s);
        assert_eq!(st, ServiceState::Ready);
        assert!(reason.starts_with("healthy in"), "{s}: {reason}");
    }
    let a = started_ns(&engine, &guard.name, "a").await;
    let b = started_ns(&engine, &guard.name, "b").await;
    let c = started_ns(&engine, &guard.name, "c").await;
    let d = started_ns(&engine, &guard.name, "d").await;
    assert!(b > a + 900 * MS, "b started {} ms after a", (b - a) / MS);
    assert!(c > a + 900 * MS, "c started {} ms after a", (c - a) / MS);
    assert!(
        (b - c).abs() < 1000 * MS,
        "b and c {} ms apart",
        (b - c).abs() / MS
    );
    assert!(
        d > b.max(c) + 1400 * MS,
        "d started {} ms after the later of b, c",
        (d - b.max(c)) / MS
    );
    assert_eq!(report.services.first().map(String::as_str), Some("a"));
    assert_eq!(report.services.last().map(String::as_str), Some("d"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_healthy_waits_for_a_healthcheck_that_turns_healthy_later() {
    let engine = engine().await;
    let guard = DockerProject::new("healthy");
    let p = project(
        &guard.name,
        vec![
            healthy_after("db", 2000, 500),
            dep(
                sh("app", "exec sleep 100000"),
                "db",
                Condition::ServiceHealthy,
            ),
        ],
    );
    let writes =
        muster::supervisor::runner::StateWrites::own(muster::supervisor::Writer::new(&guard.name));
    let store = writes.store().clone();
    let mut events = store.events();
    let report = up(
        &engine,
        &p,
        &UpOptions {
            wait_timeout: Some(Duration::from_secs(60)),
            ..Default::default()
        },
        &writes,
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, UpOutcome::Ready);
    let db = started_ns(&engine, &guard.name, "db").await;
    let app = started_ns(&engine, &guard.name, "app").await;
    assert!(
        app >= db + 2000 * MS,
        "app started only {} ms after db",
        (app - db) / MS
    );
    // The event stream saw db go ready before app started.
    let mut order = Vec::new();
    while let Ok(e) = events.try_recv() {
        order.push((e.service.clone(), e.transition.to));
    }
    let db_ready = order
        .iter()
        .position(|e| *e == ("db".to_string(), ServiceState::Ready))
        .expect("db ready event");
    let app_starting = order
        .iter()
        .position(|e| *e == ("app".to_string(), ServiceState::Starting))
        .expect("app starting event");
    assert!(db_ready < app_starting, "{order:?}");
    let (_, reason) = state(&store, "app");
    assert!(reason.starts_with("running in"), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_completed_successfully_waits_for_a_one_shot_migration() {
    let engine = engine().await;
    let guard = DockerProject::new("migrate");
    let p = project(
        &guard.name,
        vec![
            sh("migrate", "sleep 1.5; exit 0"),
            dep(
                sh("app", "exec sleep 100000"),
                "migrate",
                Condition::ServiceCompletedSuccessfully,
            ),
        ],
    );
    let (report, store) = run_up(&engine, &p).await;
    assert_eq!(report.outcome, UpOutcome::Ready, "{:?}", store.snapshot());
    assert_eq!(state(&store, "migrate").0, ServiceState::Completed);
    assert_eq!(state(&store, "app").0, ServiceState::Ready);
    let migrate = engine
        .inspect_container(&format!("{}-migrate-1", guard.name))
        .await
        .unwrap();
    assert_eq!(migrate.exit_code, Some(0));
    let finished = migrate
        .finished_at
        .as_deref()
        .and_then(muster::engine::parse_rfc3339_ns)
        .unwrap();
    let app = started_ns(&engine, &guard.name, "app").await;
    assert!(app >= finished, "app started before the migration finished");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_dependency_blocks_its_dependents_with_the_reason() {
    let engine = engine().await;
    let guard = DockerProject::new("failing");
    let mut ghost = sh("ghost", "true");
    ghost.image = Some("muster-test/does-not-exist:1".into());
    // Missing and not to be pulled: refused at once (pulls are tests/image/).
    ghost.pull_policy = Some(muster::compose::PullPolicy::Never);
    let p = project(
        &guard.name,
        vec![
            sh("migrate", "exit 3"),
            dep(
                sh("app", "exec sleep 100000"),
                "migrate",
                Condition::ServiceCompletedSuccessfully,
            ),
            dep(
                sh("web", "exec sleep 100000"),
                "app",
                Condition::ServiceStarted,
            ),
            ghost,
            dep(
                sh("uses-ghost", "exec sleep 100000"),
                "ghost",
                Condition::ServiceStarted,
            ),
            sh("fine", "exec sleep 100000"),
        ],
    );
    let (report, store) = run_up(&engine, &p).await;
    assert_eq!(report.outcome, UpOutcome::Failed);

    let (st, reason) = state(&store, "migrate");
    assert_eq!(st, ServiceState::Failed);
    assert_eq!(reason, "exited with code 3");
    let (st, reason) = state(&store, "app");
    assert_eq!(st, ServiceState::Blocked);
    assert!(
        reason.contains("migrate") && reason.contains("code 3"),
        "{reason}"
    );
    let (st, reason) = state(&store, "web");
    assert_eq!(st, ServiceState::Blocked);
    assert!(reason.contains("app failed"), "{reason}");

    let (st, reason) = state(&store, "ghost");
    assert_eq!(st, ServiceState::Failed);
    assert!(
        reason.contains("muster-test/does-not-exist:1") && reason.contains("pull_policy is never"),
        "{reason}"
    );
    let (st, reason) = state(&store, "uses-ghost");
    assert_eq!(st, ServiceState::Blocked);
    assert!(reason.contains("ghost"), "{reason}");
    assert_eq!(state(&store, "fine").0, ServiceState::Ready);

    let running = ids(&engine, &guard.name).await;
    for blocked in ["app", "web", "ghost", "uses-ghost"] {
        assert!(!running.contains_key(blocked), "{blocked} has a container");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_up_is_a_no_op_and_a_change_recreates_only_that_service() {
    let engine = engine().await;
    let guard = DockerProject::new("idem");
    let mut c = dep(sh("c", "exec sleep 100000"), "a", Condition::ServiceStarted);
    c.depends_on.get_mut("a").unwrap().restart = true;
    let mut p = project(
        &guard.name,
        vec![
            sh("a", "exec sleep 100000"),
            dep(sh("b", "exec sleep 100000"), "a", Condition::ServiceStarted),
            c,
        ],
    );
    let (first, _) = run_up(&engine, &p).await;
    assert_eq!(first.outcome, UpOutcome::Ready);
    assert_eq!(first.recreated.len(), 3);
    let before = ids(&engine, &guard.name).await;

    let (second, store) = run_up(&engine, &p).await;
    assert_eq!(second.outcome, UpOutcome::Ready);
    assert!(second.recreated.is_empty(), "{:?}", second.recreated);
    assert_eq!(ids(&engine, &guard.name).await, before);
    assert!(store.snapshot().services["a"]
        .transitions
        .iter()
        .any(|t| t.reason == "running (unchanged)"));

    // Change b only: only b is recreated.
    p.services
        .get_mut("b")
        .unwrap()
        .environment
        .insert("CHANGED".into(), Some("1".into()));
    let (third, _) = run_up(&engine, &p).await;
    assert_eq!(third.recreated, vec!["b".to_string()]);
    let after = ids(&engine, &guard.name).await;
    assert_eq!(after["a"], before["a"]);
    assert_eq!(after["c"], before["c"]);
    assert_ne!(after["b"], before["b"]);

    // Change a: a is recreated, and c (depends_on a with restart: true) too; b is not.
    p.services.get_mut("a").unwrap().user = Some("65534".into());
    let (fourth, _) = run_up(&engine, &p).await;
    let mut recreated = fourth.recreated.clone();
    recreated.sort();
    assert_eq!(recreated, vec!["a".to_string(), "c".to_string()]);
    let last = ids(&engine, &guard.name).await;
    assert_eq!(last["b"], after["b"]);
    assert_ne!(last["a"], after["a"]);
    assert_ne!(last["c"], after["c"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_networks_and_volumes_carry_compose_labels() {
    let engine = engine().await;
    let guard = DockerProject::new("labels");
    let mut web = dep(
        sh("web", "exec sleep 100000"),
        "db",
        Condition::ServiceStarted,
    );
    web.replicas = 2;
    let mut db = sh("db", "exec sleep 100000");
    db.volumes.push(named_volume("data", "/data"));
    let p = project(&guard.name, vec![db, web]);
    let (report, _) = run_up(&engine, &p).await;
    assert_eq!(report.outcome, UpOutcome::Ready);

    let containers = engine
        .list_project_containers(&guard.name, None)
        .await
        .unwrap();
    let names: Vec<&str> = containers.iter().map(|c| c.name.as_str()).collect();
    let expect = |s: &str| format!("{}-{s}", guard.name);
    assert_eq!(names, [expect("db-1"), expect("web-1"), expect("web-2")]);
    let web1 = &containers[1];
    let l = &web1.labels;
    assert_eq!(l[labels::PROJECT], guard.name);
    assert_eq!(l[labels::SERVICE], "web");
    assert_eq!(l[labels::CONTAINER_NUMBER], "1");
    assert_eq!(l[labels::ONEOFF], "False");
    assert_eq!(l[labels::DEPENDS_ON], "db:service_started:false");
    assert_eq!(
        l[labels::CONFIG_HASH],
        labels::config_hash(&p.services["web"])
    );
    assert!(l[labels::CONFIG_FILES].ends_with("compose.yaml"));
    assert!(!l[labels::WORKING_DIR].is_empty());
    assert!(!l[labels::VERSION].is_empty());

    // DNS alias = service name on the project network: db resolves "web".
    let out = std::process::Command::new("docker")
        .args([
            "exec",
            &expect("db-1"),
            "sh",
            "-c",
            "ping -c1 -W2 web >/dev/null && echo ok || nslookup web",
        ])
        .output()
        .unwrap();
    let networks = engine.list_project_networks(&guard.name).await.unwrap();
    assert_eq!(networks, vec![format!("{}_default", guard.name)]);
    let net = engine
        .docker()
        .inspect_network(
            &networks[0],
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .unwrap();
    let nl = net.labels.unwrap();
    assert_eq!(nl[labels::PROJECT], guard.name);
    assert_eq!(nl[labels::NETWORK], "default");
    let aliases = super::inspect_full(&engine, &expect("web-2"))
        .await
        .unwrap()
        .network_settings
        .unwrap()
        .networks
        .unwrap()[&networks[0]]
        .aliases
        .clone()
        .unwrap_or_default();
    assert!(
        aliases.contains(&"web".to_string()),
        "{aliases:?} / {out:?}"
    );

    let volumes = engine.list_project_volumes(&guard.name).await.unwrap();
    assert_eq!(volumes, vec![format!("{}_data", guard.name)]);
    let v = engine.docker().inspect_volume(&volumes[0]).await.unwrap();
    assert_eq!(v.labels[labels::VOLUME], "data");

    // docker-compose (v1) sees the project's containers through the labels.
    if std::path::Path::new("/usr/bin/docker-compose").exists() {
        let dir = support::TempDir::new("muster-compose-ps");
        std::fs::write(
            dir.path().join("docker-compose.yml"),
            format!(
                "version: '2.4'\nservices:\n  db:\n    image: {BUSYBOX}\n  web:\n    image: {BUSYBOX}\n"
            ),
        )
        .unwrap();
        let out = std::process::Command::new("docker-compose")
            .current_dir(dir.path())
            .args(["-p", &guard.name, "ps", "-q"])
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            listed.lines().filter(|l| !l.trim().is_empty()).count(),
            3,
            "docker-compose ps: {listed} {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_removes_everything_dependents_first() {
    let engine = engine().await;
    let guard = DockerProject::new("down");
    let mut db = sh("db", "exec sleep 100000");
    db.volumes.push(named_volume("data", "/data"));
    let p = project(
        &guard.name,
        vec![
            db,
            dep(
                sh("api", "exec sleep 100000"),
                "db",
                Condition::ServiceStarted,
            ),
            dep(
                sh("web", "exec sleep 100000"),
                "api",
                Condition::ServiceStarted,
            ),
        ],
    );
    let (report, _) = run_up(&engine, &p).await;
    assert_eq!(report.outcome, UpOutcome::Ready);
    let rows = ps(&engine, &guard.name).await.unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows
        .iter()
        .all(|r| r.state == "running" && r.uptime_s.is_some()));

    let removed = down(&engine, &guard.name, true).await.unwrap();
    let pos = |s: &str| {
        removed
            .containers
            .iter()
            .position(|c| c == &format!("{}-{s}-1", guard.name))
            .unwrap()
    };
    assert!(
        pos("web") < pos("api") && pos("api") < pos("db"),
        "{:?}",
        removed.containers
    );
    assert_eq!(removed.networks.len(), 1);
    assert_eq!(removed.volumes.len(), 1);
    assert!(engine
        .list_project_containers(&guard.name, None)
        .await
        .unwrap()
        .is_empty());
    assert!(engine
        .list_project_networks(&guard.name)
        .await
        .unwrap()
        .is_empty());
    assert!(engine
        .list_project_volumes(&guard.name)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_redis_and_nats_come_up_and_answer_on_published_ports() {
    let engine = engine().await;
    let guard = DockerProject::new("redisnats");
    let redis_port = support::free_port();
    let nats_port = support::free_port();
    let redis = muster::compose::Service {
        name: "redis".into(),
        image: Some(support::REDIS_IMAGE.into()),
        replicas: 1,
        ports: vec![port(6379, redis_port)],
        healthcheck: Some(muster::compose::Healthcheck {
            test: Some(muster::compose::HealthTest::CmdShell(
                "printf 'PING\\r\\n' | nc -w 1 127.0.0.1 6379 | grep -q PONG".into(),
            )),
            interval: Duration::from_millis(300),
            timeout: Duration::from_secs(2),
            retries: 20,
            ..Default::default()
        }),
        ..Default::default()
    };
    let nats = muster::compose::Service {
        name: "nats".into(),
        image: Some(support::NATS_IMAGE.into()),
        replicas: 1,
        ports: vec![port(4222, nats_port)],
        ..Default::default()
    };
    let app = dep(
        dep(
            sh("app", "exec sleep 100000"),
            "redis",
            Condition::ServiceHealthy,
        ),
        "nats",
        Condition::ServiceStarted,
    );
    let p = project(&guard.name, vec![redis, nats, app]);
    let (report, store) = run_up(&engine, &p).await;
    assert_eq!(report.outcome, UpOutcome::Ready, "{:?}", store.snapshot());
    assert!(state(&store, "redis").1.starts_with("healthy in"));

    let client = redis::Client::open(format!("redis://127.0.0.1:{redis_port}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let pong: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
    assert_eq!(pong, "PONG");

    // nats-server accepts once it listens; `running` may precede that by a moment.
    let url = format!("nats://127.0.0.1:{nats_port}");
    let mut last_err = None;
    for _ in 0..50 {
        match async_nats::connect(&url).await {
            Ok(nc) => {
                nc.flush().await.unwrap();
                last_err = None;
                break;
            }
            Err(e) => {
                last_err = Some(e);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    assert!(last_err.is_none(), "NATS connect: {last_err:?}");

    let rows = ps(&engine, &guard.name).await.unwrap();
    let redis_row = rows.iter().find(|r| r.service == "redis").unwrap();
    assert_eq!(redis_row.health.as_deref(), Some("healthy"));
    assert!(redis_row
        .ports
        .iter()
        .any(|p| p.host_port == Some(redis_port) && p.host_ip.as_deref() == Some("127.0.0.1")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_timeout_stops_waiting_and_leaves_containers_running() {
    let engine = engine().await;
    let guard = DockerProject::new("timeout");
    let p = project(
        &guard.name,
        vec![
            healthy_after("slow", 60_000, 500),
            dep(
                sh("after", "exec sleep 100000"),
                "slow",
                Condition::ServiceHealthy,
            ),
        ],
    );
    let writes =
        muster::supervisor::runner::StateWrites::own(muster::supervisor::Writer::new(&guard.name));
    let store = writes.store().clone();
    let report = up(
        &engine,
        &p,
        &UpOptions {
            wait_timeout: Some(Duration::from_secs(2)),
            ..Default::default()
        },
        &writes,
    )
    .await
    .unwrap();
    assert_eq!(report.outcome, UpOutcome::TimedOut);
    assert_eq!(state(&store, "slow").0, ServiceState::Starting);
    assert_eq!(state(&store, "after").0, ServiceState::Pending);
    // slow keeps running; after was created ahead of time but never started.
    let list = engine
        .list_project_containers(&guard.name, None)
        .await
        .unwrap();
    let st = |s: &str| {
        list.iter()
            .find(|c| c.service == s)
            .map(|c| c.state.clone())
    };
    assert_eq!(st("slow").as_deref(), Some("running"));
    assert_ne!(st("after").as_deref(), Some("running"));
}

#[tokio::test]
async fn unreachable_engine_is_a_clear_error() {
    let err = Engine::connect_to("unix:///nonexistent/docker.sock")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot reach the Docker engine") && err.contains("/nonexistent/docker.sock"),
        "{err}"
    );
    let port = support::free_port();
    let err = Engine::connect_to(&format!("tcp://127.0.0.1:{port}"))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("cannot reach"), "{err}");
}

/// A network's `ipam` pools and `driver_opts`, and a volume's `driver_opts`,
/// reach the engine (issue 17: `up` created networks without their subnets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn networks_and_volumes_are_created_with_ipam_and_driver_options() {
    use muster::compose::{Ipam, IpamPool, Network, Volume};
    let engine = engine().await;
    let guard = DockerProject::new("ipam");
    let mut p = project(&guard.name, vec![]);
    // One /24 of 10.213.0.0/16 per process, so parallel runs do not overlap.
    let third = std::process::id() % 250 + 2;
    let subnet = format!("10.213.{third}.0/24");
    let gateway = format!("10.213.{third}.1");
    p.networks.insert(
        "front".into(),
        Network {
            driver_opts: [(
                "com.docker.network.driver.mtu".to_string(),
                "1400".to_string(),
            )]
            .into(),
            ipam: Some(Ipam {
                config: vec![IpamPool {
                    subnet: Some(subnet.clone()),
                    gateway: Some(gateway.clone()),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        },
    );
    p.volumes.insert(
        "data".into(),
        Volume {
            driver_opts: [("type", "tmpfs"), ("device", "tmpfs"), ("o", "size=1m")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ..Default::default()
        },
    );
    let name = engine.ensure_network(&p, "front").await.expect("network");
    let net = engine
        .docker()
        .inspect_network(
            &name,
            None::<bollard::query_parameters::InspectNetworkOptions>,
        )
        .await
        .expect("inspect network");
    let pool = net
        .ipam
        .and_then(|i| i.config)
        .and_then(|c| c.into_iter().next())
        .expect("an IPAM pool");
    assert_eq!(pool.subnet.as_deref(), Some(subnet.as_str()));
    assert_eq!(pool.gateway.as_deref(), Some(gateway.as_str()));
    assert_eq!(
        net.options
            .unwrap_or_default()
            .get("com.docker.network.driver.mtu")
            .map(String::as_str),
        Some("1400")
    );
    let vname = engine.ensure_volume(&p, "data").await.expect("volume");
    let vol = engine
        .docker()
        .inspect_volume(&vname)
        .await
        .expect("inspect volume");
    assert_eq!(vol.options.get("o").map(String::as_str), Some("size=1m"));
    assert_eq!(vol.options.get("type").map(String::as_str), Some("tmpfs"));
}
