//! Healing on the real Docker engine, with the locally built busybox image:
//! restarts with backoff and a budget, the grace period respected, exits left
//! to the restart policy, `depends_on restart: true`, degraded dependents,
//! webhook notifications, a fresh muster picking up a running stack from its
//! labels and the durable history, and the event stream surviving a drop.
//!
//! Every test runs under a DockerProject guard (containers, networks and
//! volumes are removed by label, also on failure). Periods and budgets are
//! short; waits have generous timeouts; nothing asserts on elapsed time.

use crate::support::{self, webhook::Webhook, DockerProject, RedisServer, TempDir};
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::stack::*;
use muster::compose::xmuster::MusterService;
use muster::compose::{Condition, Project, Service};
use muster::config::{Overrides, Settings};
use muster::engine::watch::Reconnect;
use muster::engine::Engine;
use muster::history::HistoryStore;
use muster::notify::{Notifier, WebhookOptions};
use muster::supervisor::heal::{HealMode, HealOptions};
use muster::supervisor::plan;
use muster::supervisor::runner::{StateWrites, StatusWrite};
use muster::supervisor::start::{up, ProbeGate, UpOptions, UpOutcome, UpReport};
use muster::supervisor::supervise::Supervision;
use muster::supervisor::{
    EngineLink, ServiceState, ServiceStatus, StackSnapshot, StateStore, Writer,
};

async fn engine() -> Engine {
    support::ensure_test_images();
    Engine::connect().await.expect("docker engine")
}

fn settings() -> Settings {
    Settings::resolve(&Overrides::default()).expect("settings")
}

/// `x-muster` from YAML.
fn muster(yaml: &str) -> MusterService {
    serde_saphyr::from_str(yaml).expect("x-muster yaml")
}

fn with_muster(mut s: Service, yaml: &str) -> Service {
    s.muster = Some(muster(yaml));
    s
}

/// A dependency edge with `restart: true`.
fn dep_restart(mut s: Service, on: &str, condition: Condition) -> Service {
    s = dep(s, on, condition);
    s.depends_on.get_mut(on).unwrap().restart = true;
    s
}

fn notifier(hook: &Webhook) -> Notifier {
    Notifier::webhook(
        &hook.url,
        WebhookOptions {
            timeout: Duration::from_secs(5),
            attempts: 3,
            retry_delay: Duration::from_millis(100),
            queue: 64,
            ca_file: None,
        },
    )
    .unwrap()
}

/// `muster up --watch` as a library: probes + healing, then `up`, then `up_finished`.
/// `writer`'s store is the caller's, so it can follow the store from before
/// `up`; the runner becomes its one writer.
async fn up_watch(
    engine: &Engine,
    project: &Project,
    heal: HealOptions,
    writer: Writer,
) -> (Supervision, UpReport) {
    let store = &writer.store();
    let plan = plan::plan(
        project,
        &settings().plan(),
        Some(engine.docker().clone()),
        plan::published_ports_from_model(project),
        false,
    )
    .expect("plan");
    let mut supervision = Supervision::start(writer, plan, false);
    supervision.start_healing(heal);
    let probed: BTreeSet<String> = store
        .snapshot()
        .services
        .iter()
        .filter(|(_, s)| !s.probes.is_empty())
        .map(|(n, _)| n.clone())
        .collect();
    let options = UpOptions {
        wait_timeout: Some(Duration::from_secs(90)),
        probe_gate: Some(ProbeGate { services: probed }),
        // As the CLI does: one engine watcher, shared with the healer.
        watcher: supervision.healer().map(|h| h.watcher().clone()),
        ..Default::default()
    };
    let report = up(engine, project, &options, &supervision.writes())
        .await
        .expect("up");
    supervision.up_finished();
    (supervision, report)
}

/// `muster up` as a library, no supervision: `up` that must succeed within
/// 30 s; the store it wrote and its report.
async fn up_ready(engine: &Engine, project: &Project) -> (StateStore, UpReport) {
    let writes = StateWrites::own(Writer::new(&project.name));
    let options = UpOptions {
        wait_timeout: Some(Duration::from_secs(30)),
        ..Default::default()
    };
    let report = up(engine, project, &options, &writes).await.expect("up");
    (writes.store().clone(), report)
}

/// `muster serve` as a library, on a stack that already runs.
fn serve(engine: &Engine, project: &Project, heal: HealOptions) -> (StateStore, Supervision) {
    let writer = Writer::new(&project.name);
    let store = writer.store();
    let plan = plan::plan(
        project,
        &settings().plan(),
        Some(engine.docker().clone()),
        plan::published_ports_from_model(project),
        true,
    )
    .expect("plan");
    let mut supervision = Supervision::start(writer, plan, true);
    // As `serve` does: through the runner, the one writer.
    let writes = supervision.writes();
    for (name, service) in &project.services {
        let deps: Vec<String> = service.depends_on.keys().cloned().collect();
        writes.status(name, StatusWrite::DependsOn(deps));
    }
    supervision.start_healing(heal);
    (store, supervision)
}

/// Waits until `pred` holds for `service`'s status.
async fn wait_for(
    store: &StateStore,
    service: &str,
    what: &str,
    within: Duration,
    pred: impl Fn(&ServiceStatus) -> bool,
) -> ServiceStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(s) = store.snapshot().services.get(service) {
            if pred(s) {
                return s.clone();
            }
        }
        assert!(
            Instant::now() < deadline,
            "{service} never {what} within {within:?}: {:#?}",
            store.snapshot().services.get(service)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Records every distinct value `f` takes on for `service`, for the test's life.
fn record<T: PartialEq + Clone + Send + 'static>(
    store: &StateStore,
    service: &str,
    f: impl Fn(&ServiceStatus) -> T + Send + 'static,
) -> (Arc<Mutex<Vec<T>>>, tokio::task::JoinHandle<()>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let out = seen.clone();
    let mut rx = store.watch();
    let service = service.to_string();
    let task = tokio::spawn(async move {
        loop {
            if let Some(s) = rx.borrow_and_update().services.get(&service) {
                let v = f(s);
                let mut seen = out.lock().unwrap();
                if seen.last() != Some(&v) {
                    seen.push(v);
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    });
    (seen, task)
}

async fn started_at(engine: &Engine, container: &str) -> i128 {
    engine
        .inspect_container(container)
        .await
        .expect("inspect")
        .started_at_ns()
        .expect("started")
}

/// db serves /tmp over HTTP on 8080, turns unready when the test touches
/// /tmp/break, and is fine after one restart (the container's /tmp outlives
/// the restart).
const BREAKABLE_DB: &str = "if [ -f /tmp/restarted ]; then touch /tmp/ready; else touch /tmp/restarted /tmp/ready; (while [ ! -f /tmp/break ]; do sleep 0.1; done; rm /tmp/ready) & fi; exec httpd -f -p 8080 -h /tmp";

/// Breaks db (see [`BREAKABLE_DB`]) and waits until the healer restarted it
/// and it is ready again, then until `dependent` was restarted after it.
/// db's status and the dependent's.
async fn break_db_and_follow(
    store: &StateStore,
    project: &str,
    dependent: &str,
) -> (ServiceStatus, ServiceStatus) {
    let status = std::process::Command::new("docker")
        .args(["exec", &format!("{project}-db-1"), "touch", "/tmp/break"])
        .status()
        .unwrap();
    assert!(status.success());
    let db = wait_for(
        store,
        "db",
        "restarted and ready",
        Duration::from_secs(90),
        |s| s.heal.muster_restarts == 1 && s.state == ServiceState::Ready,
    )
    .await;
    let follower = wait_for(
        store,
        dependent,
        "restarted after its dependency",
        Duration::from_secs(60),
        |s| s.heal.muster_restarts == 1,
    )
    .await;
    let last = follower.heal.last_restart.clone().unwrap();
    assert_eq!(last.by, "dependency");
    assert!(last.reason.contains("db was restarted"), "{}", last.reason);
    (db, follower)
}

const READY_FILE_PROBE: &str = r#"
probes:
  - exec: { command: ["test", "-f", "/tmp/ready"] }
    period: 200ms
    timeout: 2s
    failure_threshold: 2
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hang_is_restarted_with_growing_backoff_then_failed_and_a_slow_start_is_left_alone() {
    let engine = engine().await;
    let guard = DockerProject::new("healhang");
    let hook = Webhook::start(1).await;
    let p = project(
        &guard.name,
        vec![
            // Never ready: its grace is 1 s, its failure threshold 2 x 200 ms.
            with_muster(
                sh("hang", "exec sleep 100000"),
                &format!(
                    "{READY_FILE_PROBE}grace: 1s\nrestart: {{ backoff: 300ms, max_backoff: 5s, budget: 2, window: 10m }}\n"
                ),
            ),
            // Alive for 2 s: its liveness probe gives up once; fine after one restart.
            with_muster(
                sh("live", "if [ -f /tmp/restarted ]; then touch /tmp/alive; else touch /tmp/restarted /tmp/alive; (sleep 2; rm /tmp/alive) & fi; exec sleep 100000"),
                r#"
probes:
  - exec: { command: ["test", "-f", "/tmp/alive"] }
    role: liveness
    period: 200ms
    timeout: 2s
    failure_threshold: 2
grace: 1s
restart: { backoff: 200ms, budget: 3 }
"#,
            ),
            // Ready after 3 s, inside its 8 s grace: never unready, never restarted.
            with_muster(
                sh("slow", "sleep 3; touch /tmp/ready; exec sleep 100000"),
                &format!("{READY_FILE_PROBE}grace: 8s\nrestart: {{ backoff: 300ms, budget: 2 }}\n"),
            ),
        ],
    );
    let mut heal = HealOptions::new(engine.clone(), p.clone(), HealMode::Up);
    heal.notifier = notifier(&hook);
    let writer = Writer::new(&p.name);
    let store = writer.store();
    let (backoffs, _t) = record(&store, "hang", |s| {
        s.heal
            .last_restart
            .as_ref()
            .map(|r| (r.at_ms, r.backoff_ms))
    });
    let (_supervision, _) = up_watch(&engine, &p, heal, writer).await;

    let hang = wait_for(
        &store,
        "hang",
        "failed by the budget",
        Duration::from_secs(120),
        |s| s.state == ServiceState::Failed && s.heal.alert.is_some(),
    )
    .await;
    let alert = hang.heal.alert.clone().unwrap();
    assert!(
        alert.contains("restart budget exhausted: 2 restarts in 10m"),
        "{alert}"
    );
    assert!(
        hang.reason.contains("restart budget exhausted"),
        "{}",
        hang.reason
    );
    assert_eq!(hang.heal.muster_restarts, 2, "{:?}", hang.heal);
    assert_eq!(hang.heal.budget_used, 2);
    assert_eq!(hang.heal.engine_restarts, 0);
    // The runner got a fresh start window after each restart.
    assert_eq!(hang.restarts, 2);
    let to: Vec<ServiceState> = hang.transitions.iter().map(|t| t.to).collect();
    let starts = to.iter().filter(|s| **s == ServiceState::Starting).count();
    assert!(starts >= 3, "{to:?}");
    assert!(to.contains(&ServiceState::Unready), "{to:?}");
    // Growing backoff: 300 ms, then 600 ms.
    let delays: Vec<u64> = backoffs
        .lock()
        .unwrap()
        .iter()
        .filter_map(|v| v.and_then(|(_, b)| b))
        .collect();
    assert_eq!(delays, vec![300, 600]);
    // The same container was restarted through the engine (not recreated, not by policy).
    let c = engine
        .inspect_container(&format!("{}-hang-1", guard.name))
        .await
        .unwrap();
    assert!(c.running);
    assert_eq!(hang.container_ids.len(), 1);

    // The slow one was never unready, failed or restarted.
    let slow = wait_for(&store, "slow", "ready", Duration::from_secs(60), |s| {
        s.state == ServiceState::Ready
    })
    .await;
    let to: Vec<ServiceState> = slow.transitions.iter().map(|t| t.to).collect();
    assert_eq!(
        to,
        vec![ServiceState::Starting, ServiceState::Ready],
        "{to:?}"
    );
    assert_eq!(slow.heal.muster_restarts, 0);
    assert_eq!(slow.restarts, 0);

    // The liveness probe's give-up restarted `live` once; it is fine since.
    let live = wait_for(
        &store,
        "live",
        "restarted once and ready",
        Duration::from_secs(60),
        |s| s.heal.muster_restarts == 1 && s.state == ServiceState::Ready,
    )
    .await;
    let last = live.heal.last_restart.clone().unwrap();
    assert!(
        last.reason.contains("liveness probe failed"),
        "{}",
        last.reason
    );
    assert_eq!(live.restarts, 1);

    // The webhook got both restarts and the failure (the first POST was
    // answered 503 and retried), and nothing about the slow service.
    hook.wait_for("2 restarts and a failure", Duration::from_secs(30), |got| {
        got.iter()
            .filter(|v| v["event"] == "restart" && v["service"] == "hang")
            .count()
            == 2
            && got.iter().any(|v| v["event"] == "failed")
    })
    .await;
    let restarts = hook.of("hang", "restart");
    let attempts: Vec<u64> = restarts
        .iter()
        .map(|v| v["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(attempts, vec![1, 2]);
    assert!(restarts.iter().all(|v| v["by"] == "muster"));
    assert_eq!(restarts[1]["backoff_ms"], 600);
    assert!(restarts[0]["reason"]
        .as_str()
        .unwrap()
        .contains("unready past its failure threshold"));
    assert_eq!(
        restarts[0]["containers"][0],
        format!("{}-hang-1", guard.name)
    );
    let failed = hook.of("hang", "failed");
    assert_eq!(failed.len(), 1);
    assert!(failed[0]["text"]
        .as_str()
        .unwrap()
        .contains("restart budget exhausted"));
    assert_eq!(failed[0]["budget"]["used"], 2);
    assert!(hook.received().iter().all(|v| v["service"] != "slow"));
    assert_eq!(hook.of("live", "restart").len(), 1);
    assert!(hook
        .requests()
        .iter()
        .all(|(m, p, _)| m == "POST" && p == "/hook"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_true_dependent_follows_its_dependency_and_is_degraded_meanwhile() {
    let engine = engine().await;
    let guard = DockerProject::new("healdeps");
    let hook = Webhook::start(0).await;
    // db serves /ready over HTTP, turns unready when the test touches
    // /tmp/break, and is fine after one restart (the container's /tmp
    // outlives the restart).
    let p = project(
        &guard.name,
        vec![
            with_muster(
                sh("db", BREAKABLE_DB),
                &format!("{READY_FILE_PROBE}grace: 1s\nrestart: {{ backoff: 200ms, budget: 3 }}\n"),
            ),
            // Ready while db answers: unready with db, but never restarted for it.
            with_muster(
                dep(
                    sh("api", "exec sleep 100000"),
                    "db",
                    Condition::ServiceHealthy,
                ),
                r#"
probes:
  - exec: { command: ["wget", "-q", "-O", "/dev/null", "http://db:8080/ready"] }
    period: 200ms
    timeout: 2s
    failure_threshold: 2
grace: 1s
"#,
            ),
            dep_restart(
                sh("app", "exec sleep 100000"),
                "db",
                Condition::ServiceHealthy,
            ),
            dep(
                sh("web", "exec sleep 100000"),
                "app",
                Condition::ServiceStarted,
            ),
        ],
    );
    let mut heal = HealOptions::new(engine.clone(), p.clone(), HealMode::Up);
    heal.notifier = notifier(&hook);
    let writer = Writer::new(&p.name);
    let store = writer.store();
    let (app_degraded, _t1) = record(&store, "app", |s| s.degraded_by.clone());
    let (web_degraded, _t2) = record(&store, "web", |s| s.degraded_by.clone());
    let (api_seen, _t3) = record(&store, "api", |s| (s.state, s.heal.restart_held.clone()));
    let (_supervision, _) = up_watch(&engine, &p, heal, writer).await;
    for s in ["db", "api", "app", "web"] {
        wait_for(&store, s, "ready", Duration::from_secs(30), |s| {
            s.state == ServiceState::Ready
        })
        .await;
    }
    let app_before = started_at(&engine, &format!("{}-app-1", guard.name)).await;
    let web_before = started_at(&engine, &format!("{}-web-1", guard.name)).await;
    // Now db breaks.
    let (db, _app) = break_db_and_follow(&store, &guard.name, "app").await;
    // After db's restart, and once db was ready again (condition service_healthy).
    let db_started = started_at(&engine, &format!("{}-db-1", guard.name)).await;
    let app_started = started_at(&engine, &format!("{}-app-1", guard.name)).await;
    assert!(app_started > app_before);
    assert!(app_started > db_started, "app restarted before db");
    let db_ready_ms = db
        .transitions
        .iter()
        .rev()
        .find(|t| t.to == ServiceState::Ready)
        .unwrap()
        .at_ms as i128;
    assert!(
        app_started / 1_000_000 >= db_ready_ms,
        "app restarted before db was ready again"
    );
    // web has no restart: true edge: left running.
    assert_eq!(
        started_at(&engine, &format!("{}-web-1", guard.name)).await,
        web_before
    );
    assert_eq!(store.snapshot().services["web"].heal.muster_restarts, 0);

    // While db was unready, app and web (through app) were degraded by it; now neither is.
    let seen = app_degraded.lock().unwrap().clone();
    assert!(
        seen.iter().any(|v| v.iter().any(|d| d == "db (unready)")),
        "{seen:?}"
    );
    let seen = web_degraded.lock().unwrap().clone();
    assert!(
        seen.iter().any(|v| v.iter().any(|d| d == "db (unready)")),
        "{seen:?}"
    );
    for s in ["app", "web"] {
        wait_for(
            &store,
            s,
            "no longer degraded",
            Duration::from_secs(30),
            |s| !s.degraded && s.degraded_by.is_empty(),
        )
        .await;
    }

    // api was unready while db was down, held back, and recovered by itself.
    let api = wait_for(&store, "api", "ready again", Duration::from_secs(30), |s| {
        s.state == ServiceState::Ready
    })
    .await;
    assert_eq!(api.heal.muster_restarts, 0, "{:?}", api.heal);
    assert_eq!(api.restarts, 0);
    let seen = api_seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|(s, _)| *s == ServiceState::Unready),
        "{seen:?}"
    );
    assert!(
        seen.iter()
            .any(|(_, held)| held.as_deref().is_some_and(|h| h.contains("db ("))),
        "{seen:?}"
    );

    hook.wait_for(
        "db restart, db recovery, app restart",
        Duration::from_secs(30),
        |got| {
            let has =
                |svc: &str, ev: &str| got.iter().any(|v| v["service"] == svc && v["event"] == ev);
            has("db", "restart") && has("db", "recovered") && has("app", "restart")
        },
    )
    .await;
    assert_eq!(hook.of("app", "restart")[0]["by"], "dependency");
    assert_eq!(hook.of("db", "restart")[0]["by"], "muster");
    assert!(hook.of("web", "restart").is_empty());
    assert!(hook.of("api", "restart").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependency_healed_during_up_does_not_block_its_dependents() {
    let engine = engine().await;
    let guard = DockerProject::new("healduringup");
    // db only gets ready after one restart; app waits for it to be healthy.
    let p = project(
        &guard.name,
        vec![
            with_muster(
                sh(
                    "db",
                    "if [ -f /tmp/restarted ]; then touch /tmp/ready; else touch /tmp/restarted; fi; exec sleep 100000",
                ),
                &format!("{READY_FILE_PROBE}grace: 1s\nrestart: {{ backoff: 200ms, budget: 2 }}\n"),
            ),
            dep(sh("app", "exec sleep 100000"), "db", Condition::ServiceHealthy),
        ],
    );
    let heal = HealOptions::new(engine.clone(), p.clone(), HealMode::Up);
    let writer = Writer::new(&p.name);
    let store = writer.store();
    let (_supervision, report) = up_watch(&engine, &p, heal, writer).await;
    assert_eq!(report.outcome, UpOutcome::Ready, "{:#?}", store.snapshot());
    let snap = store.snapshot();
    assert_eq!(snap.services["db"].heal.muster_restarts, 1);
    assert_eq!(snap.services["db"].state, ServiceState::Ready);
    assert_eq!(snap.services["app"].state, ServiceState::Ready);
    // The restart was never reported as a failure.
    assert!(snap.services["db"]
        .transitions
        .iter()
        .all(|t| t.to != ServiceState::Failed));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exits_follow_the_compose_restart_policy() {
    let engine = engine().await;
    let guard = DockerProject::new("healexit");
    let hook = Webhook::start(0).await;
    let mut crash = sh("crash", "sleep 1; exit 3");
    crash.restart = Some("always".into());
    let p = project(
        &guard.name,
        vec![
            crash,
            sh("once", "sleep 4; exit 2"),
            sh("job", "sleep 4; exit 0"),
        ],
    );
    let mut heal = HealOptions::new(engine.clone(), p.clone(), HealMode::Up);
    heal.notifier = notifier(&hook);
    let writer = Writer::new(&p.name);
    let store = writer.store();
    let (_supervision, _) = up_watch(&engine, &p, heal, writer).await;

    // The engine restarts `crash` by its policy; muster counts, never restarts it itself.
    let crash = wait_for(
        &store,
        "crash",
        "restarted twice by the engine",
        Duration::from_secs(60),
        |s| s.heal.engine_restarts >= 2,
    )
    .await;
    assert_eq!(crash.heal.muster_restarts, 0);
    let exit = crash.heal.last_exit.clone().unwrap();
    assert_eq!(exit.code, 3);
    assert!(exit.engine_restarts_it);
    assert_eq!(crash.heal.alert, None);

    // `once` (no policy) is failed, with an alert, and left exited.
    let once = wait_for(&store, "once", "failed", Duration::from_secs(60), |s| {
        s.state == ServiceState::Failed && s.heal.alert.is_some()
    })
    .await;
    let alert = once.heal.alert.clone().unwrap();
    assert!(
        alert.contains("exited with code 2") && alert.contains("does not restart it"),
        "{alert}"
    );
    assert!(!once.heal.last_exit.clone().unwrap().engine_restarts_it);
    let c = engine
        .inspect_container(&format!("{}-once-1", guard.name))
        .await
        .unwrap();
    assert!(!c.running);
    assert_eq!(c.exit_code, Some(2));
    // `job` exited 0: completed, no alert.
    let job = wait_for(&store, "job", "completed", Duration::from_secs(60), |s| {
        s.state == ServiceState::Completed
    })
    .await;
    assert_eq!(job.heal.alert, None);

    hook.wait_for(
        "once failed, crash restarted by the engine",
        Duration::from_secs(30),
        |got| {
            got.iter()
                .any(|v| v["service"] == "once" && v["event"] == "failed")
                && got
                    .iter()
                    .any(|v| v["service"] == "crash" && v["by"] == "engine")
        },
    )
    .await;
    assert!(hook.of("job", "failed").is_empty());
    assert!(hook.of("crash", "failed").is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_muster_picks_up_the_running_stack_and_its_restart_history() {
    let engine = engine().await;
    let guard = DockerProject::new("healfresh");
    let redis = RedisServer::start();
    let namespace = format!("heal{}", std::process::id());
    let p = project(
        &guard.name,
        vec![
            with_muster(
                sh("hang", "exec sleep 100000"),
                &format!("{READY_FILE_PROBE}grace: 1s\nrestart: {{ backoff: 200ms, budget: 3, window: 10m }}\n"),
            ),
            sh("steady", "exec sleep 100000"),
        ],
    );
    // The stack is started by a plain `up` (no supervision).
    let (_up_store, _) = up_ready(&engine, &p).await;
    let history = || async {
        HistoryStore::redis(&redis.url(), &namespace, &guard.name)
            .await
            .unwrap()
    };

    // First muster: two restarts of `hang`, then it goes away.
    {
        let mut heal = HealOptions::new(engine.clone(), p.clone(), HealMode::Serve);
        heal.history = Some(history().await);
        let (store, supervision) = serve(&engine, &p, heal);
        wait_for(
            &store,
            "hang",
            "restarted twice",
            Duration::from_secs(90),
            |s| s.heal.muster_restarts == 2,
        )
        .await;
        drop(supervision);
    }
    // Let the first muster's last write land.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // A fresh muster: the containers come from their labels, the count and
    // the budget from the history.
    let mut heal = HealOptions::new(engine.clone(), p.clone(), HealMode::Serve);
    heal.history = Some(history().await);
    let (store, _supervision) = serve(&engine, &p, heal);
    let steady = wait_for(
        &store,
        "steady",
        "found by its labels",
        Duration::from_secs(30),
        |s| s.container_ids.len() == 1,
    )
    .await;
    assert_eq!(steady.heal.muster_restarts, 0);
    let hang = wait_for(
        &store,
        "hang",
        "loaded from history",
        Duration::from_secs(30),
        |s| s.heal.muster_restarts == 2 && s.container_ids.len() == 1,
    )
    .await;
    assert_eq!(hang.heal.budget_used, 2);
    assert_eq!(hang.heal.last_restart.as_ref().unwrap().by, "muster");
    // One restart left in the budget, then failed.
    let hang = wait_for(
        &store,
        "hang",
        "failed by the budget",
        Duration::from_secs(90),
        |s| s.state == ServiceState::Failed && s.heal.alert.is_some(),
    )
    .await;
    assert_eq!(hang.heal.muster_restarts, 3);
    assert_eq!(hang.restarts, 1, "this muster restarted it once");
    assert!(hang.heal.alert.unwrap().contains("3 restarts in 10m"));
    let records = history().await.list("restarts:hang", 10).await.unwrap();
    assert_eq!(records.len(), 3);
    assert!(records.iter().all(|r| r["by"] == "muster"));
}

/// A proxy in front of the engine's socket that the test can cut, so the
/// healer's event stream really drops (the engine itself keeps running).
struct SocketProxy {
    path: std::path::PathBuf,
    down: Arc<std::sync::atomic::AtomicBool>,
    live: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    task: tokio::task::JoinHandle<()>,
    _dir: TempDir,
}

impl SocketProxy {
    fn start() -> SocketProxy {
        let dir = TempDir::new("muster-proxy");
        let path = dir.path().join("docker.sock");
        let listener = tokio::net::UnixListener::bind(&path).unwrap();
        let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let live: Arc<Mutex<Vec<tokio::task::AbortHandle>>> = Arc::new(Mutex::new(Vec::new()));
        let (d, l) = (down.clone(), live.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if d.load(std::sync::atomic::Ordering::SeqCst) {
                    drop(client); // the engine is "down": refuse
                    continue;
                }
                let conn = tokio::spawn(async move {
                    let Ok(mut upstream) =
                        tokio::net::UnixStream::connect("/var/run/docker.sock").await
                    else {
                        return;
                    };
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                });
                l.lock().unwrap().push(conn.abort_handle());
            }
        });
        SocketProxy {
            path,
            down,
            live,
            task,
            _dir: dir,
        }
    }

    fn host(&self) -> String {
        format!("unix://{}", self.path.display())
    }

    /// Cuts every open connection and refuses new ones until `restore`.
    fn cut(&self) {
        self.down.store(true, std::sync::atomic::Ordering::SeqCst);
        for c in self.live.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    fn restore(&self) {
        self.down.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Drop for SocketProxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_survives_a_drop_and_the_view_is_rebuilt_from_labels() {
    let engine = engine().await;
    let guard = DockerProject::new("healdrop");
    let hook = Webhook::start(0).await;
    let p = project(
        &guard.name,
        vec![
            sh("svc", "exec sleep 100000"),
            sh(
                "worker",
                "while [ ! -f /tmp/stop ]; do sleep 0.2; done; exit 4",
            ),
        ],
    );
    let (_up_store, _) = up_ready(&engine, &p).await;

    // The healer talks to the engine through the proxy; the probes directly.
    let proxy = SocketProxy::start();
    let proxied = Engine::connect_to(&proxy.host())
        .await
        .expect("engine through the proxy");
    let mut heal = HealOptions::new(proxied, p.clone(), HealMode::Serve);
    heal.notifier = notifier(&hook);
    heal.reconnect = Reconnect {
        first: Duration::from_millis(200),
        max: Duration::from_secs(1),
    };
    let (store, _supervision) = serve(&engine, &p, heal);
    // The healer's link to the engine, as /status shows it.
    let mut link = store.watch();
    let engine_link = |pred: fn(&EngineLink) -> bool| {
        move |s: &std::sync::Arc<StackSnapshot>| s.engine.as_ref().is_some_and(pred)
    };
    link.wait_for(engine_link(|l| l.connected)).await.unwrap();
    for s in ["svc", "worker"] {
        wait_for(&store, s, "ready", Duration::from_secs(30), |s| {
            s.state == ServiceState::Ready && s.container_ids.len() == 1
        })
        .await;
    }

    // The stream drops; while muster is not listening, svc is restarted by
    // someone else and worker exits by itself.
    proxy.cut();
    link.wait_for(engine_link(|l| !l.connected)).await.unwrap();
    // /status says so too.
    let shown = store
        .snapshot()
        .engine
        .clone()
        .expect("engine link in the snapshot");
    assert!(!shown.connected && shown.last_error.is_some(), "{shown:?}");
    let svc_id = store.snapshot().services["svc"].container_ids[0].clone();
    engine
        .docker()
        .restart_container(
            &svc_id,
            Some(bollard::query_parameters::RestartContainerOptions {
                t: Some(0),
                signal: None,
            }),
        )
        .await
        .unwrap();
    let status = std::process::Command::new("docker")
        .args([
            "exec",
            &format!("{}-worker-1", guard.name),
            "touch",
            "/tmp/stop",
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    while engine
        .inspect_container(&format!("{}-worker-1", guard.name))
        .await
        .unwrap()
        .running
    {
        assert!(Instant::now() < deadline, "worker did not exit");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    proxy.restore();

    // Reconnected, the view rebuilt: both changes were found.
    link.wait_for(engine_link(|l| l.connected && l.reconnects >= 1))
        .await
        .unwrap();
    let shown = store
        .snapshot()
        .engine
        .clone()
        .expect("engine link in the snapshot");
    assert!(shown.connected && shown.reconnects >= 1, "{shown:?}");
    let svc = wait_for(
        &store,
        "svc",
        "counted the restart",
        Duration::from_secs(30),
        |s| s.heal.external_restarts == 1,
    )
    .await;
    assert_eq!(svc.heal.last_restart.as_ref().unwrap().by, "external");
    assert_eq!(svc.container_ids, vec![svc_id]);
    wait_for(
        &store,
        "svc",
        "restarted in the runner",
        Duration::from_secs(30),
        |s| s.restarts == 1,
    )
    .await;
    let worker = wait_for(&store, "worker", "failed", Duration::from_secs(30), |s| {
        s.state == ServiceState::Failed && s.heal.alert.is_some()
    })
    .await;
    assert_eq!(worker.heal.last_exit.as_ref().unwrap().code, 4);
    hook.wait_for(
        "worker failed, svc restarted",
        Duration::from_secs(30),
        |got| {
            got.iter()
                .any(|v| v["service"] == "worker" && v["event"] == "failed")
                && got
                    .iter()
                    .any(|v| v["service"] == "svc" && v["by"] == "external")
        },
    )
    .await;

    // And it keeps following live events after the reconnect.
    engine
        .docker()
        .restart_container(
            &format!("{}-svc-1", guard.name),
            Some(bollard::query_parameters::RestartContainerOptions {
                t: Some(0),
                signal: None,
            }),
        )
        .await
        .unwrap();
    wait_for(
        &store,
        "svc",
        "counted the live restart",
        Duration::from_secs(30),
        |s| s.heal.external_restarts == 2,
    )
    .await;
}

/// A follower of the one engine watcher that falls behind (a channel of one
/// message, two events) is not left with a hole: its next message is a view
/// rebuilt from a list, and the exit it did not read is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lagging_follower_of_the_engine_watcher_resyncs_and_sees_the_exit() {
    use muster::engine::watch::{EngineMsg, Watcher};
    let engine = engine().await;
    let guard = DockerProject::new("healwatchlag");
    let p = project(&guard.name, vec![sh("svc", "exec sleep 100000")]);
    let (store, report) = up_ready(&engine, &p).await;
    assert_eq!(report.outcome, UpOutcome::Ready);
    let id = store.snapshot().services["svc"].container_ids[0].clone();

    let watcher =
        Watcher::with_capacity(engine.clone(), guard.name.clone(), Reconnect::default(), 1);
    let mut slow = watcher.subscribe();
    let mut fast = watcher.receiver();
    // The first view: svc runs.
    let first = tokio::time::timeout(Duration::from_secs(30), slow.recv())
        .await
        .expect("a first view")
        .expect("watcher alive");
    match &first {
        EngineMsg::Resync { containers, .. } => {
            assert!(
                containers.iter().any(|c| c.id == id && c.running),
                "{containers:?}"
            );
        }
        other => panic!("expected the first view, got {other:?}"),
    }

    // Two events at least (kill, die) while `slow` reads nothing; `fast`
    // reads until the die went through the watcher.
    let killed = std::process::Command::new("docker")
        .args(["kill", &id])
        .output()
        .unwrap();
    assert!(killed.status.success(), "{killed:?}");
    let died = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match fast.recv().await {
                Ok(EngineMsg::Event { event, .. })
                    if event.container_id == id && event.action == muster::engine::Action::Die =>
                {
                    break
                }
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(e) => panic!("watcher gone: {e}"),
            }
        }
    })
    .await;
    assert!(died.is_ok(), "the die event never came through the watcher");

    // `slow` lagged: its next message is a fresh list with the exit in it.
    let next = tokio::time::timeout(Duration::from_secs(30), slow.recv())
        .await
        .expect("a message after the lag")
        .expect("watcher alive");
    match next {
        EngineMsg::Resync { containers, .. } => {
            let svc = containers
                .iter()
                .find(|c| c.id == id)
                .expect("svc's container in the rebuilt view");
            assert!(!svc.running, "{svc:?}");
            assert_eq!(svc.exit_code, Some(137), "{svc:?}");
        }
        other => panic!("expected a resync after the lag, got {other:?}"),
    }
}

/// Issue #18 item 4 for the healer: a restart of X gives X a new network
/// namespace under the same container id, and a service in
/// `network_mode: service:X` stays in the old, empty one until it restarts
/// too. The healer restarts it after X (no `restart: true` needed), and it
/// reaches X on 127.0.0.1 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_in_xs_network_namespace_is_restarted_after_x() {
    let engine = engine().await;
    let guard = DockerProject::new("healnetns");
    let mut sidecar = dep(
        sh("sidecar", "exec sleep 100000"),
        "db",
        Condition::ServiceStarted,
    );
    sidecar.network_mode = Some("service:db".into());
    sidecar.networks.clear();
    let p = project(
        &guard.name,
        vec![
            with_muster(
                sh("db", BREAKABLE_DB),
                &format!("{READY_FILE_PROBE}grace: 1s\nrestart: {{ backoff: 200ms, budget: 3 }}\n"),
            ),
            sidecar,
        ],
    );
    let heal = HealOptions::new(engine.clone(), p.clone(), HealMode::Up);
    let writer = Writer::new(&p.name);
    let store = writer.store();
    let (_supervision, _) = up_watch(&engine, &p, heal, writer).await;
    for s in ["db", "sidecar"] {
        wait_for(&store, s, "ready", Duration::from_secs(30), |s| {
            s.state == ServiceState::Ready
        })
        .await;
    }
    let db = format!("{}-db-1", guard.name);
    let side = format!("{}-sidecar-1", guard.name);
    let reach = || {
        std::process::Command::new("docker")
            .args([
                "exec",
                &side,
                "wget",
                "-q",
                "-O-",
                "http://127.0.0.1:8080/ready",
            ])
            .output()
            .unwrap()
            .status
            .success()
    };
    assert!(reach(), "the sidecar does not reach db before the restart");
    let side_before = started_at(&engine, &side).await;
    break_db_and_follow(&store, &guard.name, "sidecar").await;
    assert!(started_at(&engine, &side).await > side_before);
    let db_id = engine.inspect_container(&db).await.expect("inspect db").id;
    assert_eq!(
        support::docker_inspect(&side, "{{.HostConfig.NetworkMode}}"),
        format!("container:{db_id}")
    );
    wait_for(&store, "sidecar", "running", Duration::from_secs(30), |s| {
        s.state == ServiceState::Ready
    })
    .await;
    assert!(reach(), "the sidecar does not reach db after the restarts");
}
