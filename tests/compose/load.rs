//! Loading single compose files: every interpolation form, every syntax of the
//! fields muster acts on, durations, profiles, anchors, implicit dependencies,
//! project name and environment discovery, and the example agent stack.

use std::time::Duration;

use crate::support::compose::*;
use muster::compose::xmuster::{GraceSetting, ProbeKind, ProbeRole};
use muster::compose::{self, Condition, HealthTest, LoadOptions, Port, VolumeMount, VolumeType};

fn s(v: &str) -> Option<String> {
    Some(v.to_string())
}

#[test]
fn every_interpolation_form() {
    let p = load_ok(
        &["interpolation.yaml"],
        &[
            ("IMAGE_NAME", "img"),
            ("IMAGE_TAG", "t1"),
            ("EMPTY_VAR", ""),
        ],
    );
    let app = &p.services["app"];
    assert_eq!(app.image.as_deref(), Some("img:t1"), "$VAR and ${{VAR}}");
    let e = &app.environment;
    assert_eq!(e["DEFAULT_COLON"], s("fallback"), ":- when unset");
    assert_eq!(e["DEFAULT_COLON_EMPTY"], s("fallback"), ":- when empty");
    assert_eq!(e["DEFAULT_DASH"], s("dash-fallback"), "- when unset");
    assert_eq!(e["DEFAULT_DASH_EMPTY"], s(""), "- keeps an empty value");
    assert_eq!(e["ALT_COLON"], s("tag-is-set"), ":+ when set");
    assert_eq!(e["ALT_COLON_EMPTY"], s(""), ":+ not when empty");
    assert_eq!(
        e["ALT_PLUS_EMPTY"],
        s("shown-because-set"),
        "+ when set but empty"
    );
    assert_eq!(e["ALT_PLUS_UNSET"], s(""), "+ not when unset");
    assert_eq!(e["REQUIRED_SET"], s("t1"), ":? passes when set");
    assert_eq!(e["REQUIRED_Q_EMPTY"], s(""), "? passes when set but empty");
    assert_eq!(e["NESTED"], s("img-nested"), "nested defaults");
    assert_eq!(
        e["LITERAL"],
        s("$HOME and ${IMAGE_TAG}"),
        "$$ is a literal $"
    );
    assert_eq!(e["BLANK"], s(""), "unset without default is blank");
    assert_eq!(app.command, Some(vec!["echo".into(), "img".into()]));
    assert_eq!(
        app.healthcheck.as_ref().unwrap().interval,
        Duration::from_secs(10),
        "interpolated duration"
    );
}

#[test]
fn unset_variable_is_a_warning() {
    let (_, warnings) = load_warnings(
        &["interpolation.yaml"],
        &[
            ("IMAGE_NAME", "img"),
            ("IMAGE_TAG", "t1"),
            ("EMPTY_VAR", ""),
        ],
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.message.contains("\"UNSET_VAR\" variable is not set")),
        "{warnings:?}"
    );
}

#[test]
fn short_and_long_syntaxes_are_normalised() {
    let p = load_ok(&["forms.yaml"], &[("FROM_ENV", "from-process")]);
    let dir = fixtures();
    let db = &p.services["db"];
    assert_eq!(db.environment["POSTGRES_PASSWORD"], s("secret"));
    assert_eq!(
        db.environment["FROM_ENV"],
        s("from-process"),
        "bare KEY takes the env value"
    );
    assert_eq!(
        db.environment["NOT_IN_ENV"], None,
        "bare KEY not in env stays unset"
    );
    assert_eq!(db.labels["com.example.tier"], "data");
    assert_eq!(db.labels["com.example.empty"], "");
    assert_eq!(
        db.ports,
        vec![
            Port {
                target: 5432,
                published: None,
                host_ip: None,
                protocol: "tcp".into()
            },
            Port {
                target: 5432,
                published: s("15432"),
                host_ip: s("127.0.0.1"),
                protocol: "tcp".into()
            },
            Port {
                target: 9000,
                published: s("8000"),
                host_ip: None,
                protocol: "udp".into()
            },
            Port {
                target: 9001,
                published: s("8001"),
                host_ip: None,
                protocol: "udp".into()
            },
            Port {
                target: 6000,
                published: s("6000"),
                host_ip: s("::1"),
                protocol: "tcp".into()
            },
        ]
    );
    assert_eq!(
        db.volumes,
        vec![
            VolumeMount {
                kind: VolumeType::Volume,
                source: s("db-data"),
                target: "/var/lib/postgresql/data".into(),
                read_only: false,
                consistency: None,
                bind: None,
                volume: None,
                tmpfs: None,
            },
            VolumeMount {
                kind: VolumeType::Bind,
                source: Some(dir.join("init").display().to_string()),
                target: "/docker-entrypoint-initdb.d".into(),
                read_only: true,
                consistency: None,
                bind: None,
                volume: None,
                tmpfs: None,
            },
            VolumeMount {
                kind: VolumeType::Volume,
                source: None,
                target: "/anonymous".into(),
                read_only: false,
                consistency: None,
                bind: None,
                volume: None,
                tmpfs: None,
            },
        ]
    );
    assert!(db.networks.contains_key("backend"));
    assert_eq!(
        db.healthcheck.as_ref().unwrap().test,
        Some(HealthTest::CmdShell("pg_isready -U postgres".into())),
        "a string test is CMD-SHELL"
    );

    let api = &p.services["api"];
    assert_eq!(
        api.command,
        Some(vec![
            "python".into(),
            "-m".into(),
            "api".into(),
            "--port".into(),
            "8080".into()
        ]),
        "string command split with shell rules"
    );
    assert_eq!(api.entrypoint, Some(vec!["/bin/tini".into(), "--".into()]));
    assert_eq!(api.environment["WORKERS"], s("4"));
    assert_eq!(api.environment["DEBUG"], s("false"));
    assert_eq!(api.environment["PASSTHROUGH"], None);
    assert_eq!(api.labels["com.example.replicas"], "2");
    assert_eq!(
        api.ports,
        vec![Port {
            target: 8080,
            published: s("18080"),
            host_ip: s("127.0.0.1"),
            protocol: "tcp".into()
        }]
    );
    assert_eq!(api.volumes[0].kind, VolumeType::Bind);
    assert_eq!(
        api.volumes[0].source,
        Some(dir.join("config").display().to_string())
    );
    assert!(api.volumes[0].read_only);
    assert_eq!(api.volumes[1].kind, VolumeType::Tmpfs);
    assert_eq!(
        api.networks["backend"].aliases,
        vec!["api-internal", "api.local"]
    );
    assert_eq!(api.networks["backend"].ipv4_address, s("172.28.0.10"));
    assert!(api.networks.contains_key("frontend"));

    let db_dep = &api.depends_on["db"];
    assert_eq!(
        (db_dep.condition, db_dep.required, db_dep.restart),
        (Condition::ServiceHealthy, true, true)
    );
    assert_eq!(
        api.depends_on["migrate"].condition,
        Condition::ServiceCompletedSuccessfully
    );
    let cache = &api.depends_on["cache"];
    assert_eq!(
        (cache.condition, cache.required),
        (Condition::ServiceStarted, false)
    );

    let hc = api.healthcheck.as_ref().unwrap();
    assert_eq!(
        hc.test,
        Some(HealthTest::CmdShell(
            "curl -fsS http://localhost:8080/health".into()
        ))
    );
    assert_eq!(hc.interval, Duration::from_secs(90));
    assert_eq!(hc.timeout, Duration::from_millis(1500));
    assert_eq!(hc.retries, 5);
    assert_eq!(hc.start_period, Duration::from_secs(120));
    assert_eq!(hc.start_interval, Duration::from_millis(500));
    assert_eq!(api.restart.as_deref(), Some("on-failure:3"));
    assert_eq!(api.stop_grace_period, Some(Duration::from_secs(60)));
    assert_eq!(api.user.as_deref(), Some("1000:1000"));
    assert_eq!(api.working_dir.as_deref(), Some("/srv"));
    assert_eq!(api.replicas, 3);
    let deploy = api.deploy.as_ref().unwrap();
    let limits = deploy.resources.as_ref().unwrap().limits.as_ref().unwrap();
    assert_eq!(
        (limits.cpus, limits.memory, limits.pids),
        (Some(0.5), Some(512 << 20), Some(100))
    );
    let reservations = deploy
        .resources
        .as_ref()
        .unwrap()
        .reservations
        .as_ref()
        .unwrap();
    assert_eq!(
        (reservations.cpus, reservations.memory),
        (Some(0.25), Some(128 << 20))
    );
    let uc = deploy.update_config.as_ref().unwrap();
    assert_eq!(uc.parallelism, Some(1));
    assert_eq!(uc.delay, Some(Duration::from_secs(10)));
    assert_eq!(uc.monitor, Some(Duration::from_secs(30)));
    assert_eq!(uc.failure_action.as_deref(), Some("rollback"));
    assert_eq!(uc.max_failure_ratio, Some(0.2));
    assert_eq!(uc.order.as_deref(), Some("start-first"));
    assert_eq!(api.extensions["x-team"], serde_json::json!("platform"));
    let muster = api.muster.as_ref().unwrap();
    assert_eq!(muster.grace, GraceSetting::Fixed(Duration::from_secs(45)));
    assert!(muster.required);
    assert_eq!(muster.probes.len(), 1);
    assert!(
        matches!(&muster.probes[0].kind, ProbeKind::Http(h) if h.status.as_deref() == Some("200-299"))
    );
    assert_eq!(muster.probes[0].timing.period, Duration::from_secs(2));
    assert_eq!(muster.probes[0].timing.failure_threshold, 5);
    assert_eq!(muster.probes[0].timing.role, ProbeRole::Readiness);

    let migrate = &p.services["migrate"];
    assert_eq!(
        migrate.build.as_ref().unwrap().context,
        dir.join("migrations").display().to_string()
    );
    assert_eq!(
        migrate.depends_on["db"].condition,
        Condition::ServiceStarted,
        "short depends_on"
    );
    let mhc = migrate.healthcheck.as_ref().unwrap();
    assert_eq!(
        (mhc.test.clone(), mhc.disable),
        (Some(HealthTest::None), true),
        "[\"NONE\"]"
    );

    let worker = &p.services["worker"];
    let build = worker.build.as_ref().unwrap();
    assert_eq!(build.context, dir.join("worker").display().to_string());
    assert_eq!(build.dockerfile.as_deref(), Some("Dockerfile.prod"));
    assert_eq!(build.args["VERSION"], s("1.2"));
    assert_eq!(build.args["FROM_ENV"], s("from-process"));
    assert_eq!(worker.replicas, 2, "scale");
    let whc = worker.healthcheck.as_ref().unwrap();
    assert!(whc.disable);
    assert_eq!(whc.test, Some(HealthTest::None), "disable: true");

    let timing = p.services["timing-only"].healthcheck.as_ref().unwrap();
    assert_eq!(
        timing.test, None,
        "timings without a test keep the image's test"
    );
    assert_eq!(timing.interval, Duration::from_secs(15));
    assert_eq!(
        timing.timeout,
        Duration::from_secs(30),
        "Docker default timeout"
    );
    assert_eq!(timing.retries, 3, "Docker default retries");
    assert_eq!(
        timing.start_period,
        Duration::ZERO,
        "Docker default start_period"
    );
    assert_eq!(
        timing.start_interval,
        Duration::from_secs(5),
        "Docker default start_interval"
    );

    assert_eq!(p.networks["backend"].driver.as_deref(), Some("bridge"));
    assert_eq!(p.networks["backend"].labels["com.example.net"], "back");
    assert!(p.networks["outside"].external);
    assert_eq!(p.networks["outside"].name.as_deref(), Some("corp-net"));
    assert_eq!(p.volumes["db-data"].driver.as_deref(), Some("local"));
    assert!(p.volumes["shared"].external);
    assert_eq!(
        p.extensions["x-shared-config"],
        serde_json::json!({"retries": 3})
    );
}

#[test]
fn implicit_dependencies_from_links_volumes_from_network_mode() {
    let p = load_ok(&["forms.yaml"], &[]);
    let sidecar = &p.services["sidecar"];
    let db = &sidecar.depends_on["db"];
    assert!(db.implicit, "links: [db:database]");
    assert_eq!(db.condition, Condition::ServiceStarted);
    let api = &sidecar.depends_on["api"];
    assert!(!api.implicit, "an explicit edge is kept as written");
    assert_eq!(api.condition, Condition::ServiceHealthy);
    assert!(!sidecar.depends_on.contains_key("container:external-thing"));

    let p = load_ok(&["implicit.yaml"], &[]);
    let app = &p.services["app"];
    for dep in ["db", "data", "vpn"] {
        assert!(
            app.depends_on[dep].implicit,
            "{dep} is an implicit dependency"
        );
    }
    let graph = muster::compose::graph::Graph::new(&p).unwrap();
    assert_eq!(graph.level_of("app"), Some(1));
}

#[test]
fn go_durations_with_days_and_weeks() {
    let p = load_ok(&["durations.yaml"], &[]);
    let d = &p.services["d"];
    let hc = d.healthcheck.as_ref().unwrap();
    assert_eq!(hc.interval, Duration::from_secs(5400), "1.5h");
    assert_eq!(hc.timeout, Duration::from_millis(300), "300ms");
    assert_eq!(hc.start_period, Duration::from_secs(2 * 86_400), "2d");
    assert_eq!(hc.start_interval, Duration::ZERO, "0s");
    assert_eq!(d.stop_grace_period, Some(Duration::from_micros(10)), "10us");
    let uc = d.deploy.as_ref().unwrap().update_config.as_ref().unwrap();
    assert_eq!(uc.delay, Some(Duration::from_secs(7 * 86_400)), "1w");
    assert_eq!(uc.monitor, Some(Duration::from_millis(500)), ".5s");
}

#[test]
fn profiles_filter_services() {
    let p = load_ok(&["profiles.yaml"], &[]);
    assert_eq!(
        p.services.keys().collect::<Vec<_>>(),
        vec!["optional-user", "web"]
    );
    assert_eq!(p.disabled_services, vec!["debug-tools", "gpu-worker"]);

    let mut o = options(&["profiles.yaml"], &[]);
    o.profiles = vec!["heavy".into()];
    let p = compose::load(&o).unwrap();
    assert!(
        p.services.contains_key("gpu-worker"),
        "any one of a service's profiles enables it"
    );
    assert!(!p.services.contains_key("debug-tools"));

    let p = load_ok(&["profiles.yaml"], &[("COMPOSE_PROFILES", "debug,gpu")]);
    assert!(p.services.contains_key("debug-tools") && p.services.contains_key("gpu-worker"));
    assert!(p.disabled_services.is_empty());

    let mut o = options(&["profiles.yaml"], &[("COMPOSE_PROFILES", "debug")]);
    o.profiles = vec!["gpu".into()];
    let p = compose::load(&o).unwrap();
    assert!(
        !p.services.contains_key("debug-tools"),
        "--profile wins over COMPOSE_PROFILES"
    );

    let p = load_ok(&["profiles.yaml"], &[("COMPOSE_PROFILES", "*")]);
    assert_eq!(p.services.len(), 4, "* enables every profile");
}

#[test]
fn optional_dependency_on_a_disabled_service_is_skipped() {
    let (p, warnings) = load_warnings(&["profiles.yaml"], &[]);
    assert!(p.services["optional-user"]
        .depends_on
        .contains_key("debug-tools"));
    assert!(warnings.iter().any(|w| w
        .message
        .contains("disabled service \"debug-tools\" skipped")));
    let graph = muster::compose::graph::Graph::new(&p).unwrap();
    assert!(graph.dependencies("optional-user").is_empty());
}

#[test]
fn dependency_on_a_profile_disabled_service_is_an_error() {
    // As Compose: enabling phpmyadmin's profile does not enable db's.
    let p = load_ok(&["profiles-dep.yaml"], &[]);
    assert_eq!(p.services.keys().collect::<Vec<_>>(), vec!["web"]);
    let err = load_err(&["profiles-dep.yaml"], &[("COMPOSE_PROFILES", "debug")]);
    assert_eq!(
        err,
        "profiles-dep.yaml:8:9: services.phpmyadmin.depends_on: service \"phpmyadmin\" depends on service \"db\", which is disabled by its profiles [dev]; enable one with --profile or COMPOSE_PROFILES"
    );
    let p = load_ok(&["profiles-dep.yaml"], &[("COMPOSE_PROFILES", "debug,dev")]);
    assert_eq!(p.services.len(), 3);
}

#[test]
fn anchors_and_merge_keys() {
    let p = load_ok(&["anchors.yaml"], &[]);
    let one = &p.services["one"];
    assert_eq!(one.image.as_deref(), Some("shared:1"));
    assert_eq!(one.environment["SHARED"], s("yes"));
    let two = &p.services["two"];
    assert_eq!(
        two.image.as_deref(),
        Some("own:2"),
        "keys written beside << win"
    );
    assert_eq!(
        two.restart.as_deref(),
        Some("unless-stopped"),
        "earlier merge sources win"
    );
    assert_eq!(two.user.as_deref(), Some("1000"));
    assert_eq!(
        p.extensions["x-top-level"],
        serde_json::json!({"kept": true, "count": 3})
    );
    assert!(p.extensions.contains_key("x-defaults"));
}

#[test]
fn project_name_env_file_and_dotenv() {
    let dir = fixtures().join("envproj");
    let base = LoadOptions {
        environment: Some(env(&[])),
        working_dir: Some(dir.clone()),
        ..Default::default()
    };
    // Discovery of compose.yaml, the project's .env (TAG, COMPOSE_PROJECT_NAME), env_file.
    let p = compose::load(&base).unwrap();
    assert_eq!(p.name, "dotenv-name");
    assert_eq!(p.working_dir, dir);
    let app = &p.services["app"];
    assert_eq!(app.image.as_deref(), Some("app:from-dotenv"));
    assert_eq!(
        app.environment["FROM_ENV_FILE"],
        s("1"),
        "env_file values are included"
    );
    assert_eq!(
        app.environment["OVERRIDDEN"],
        s("by-environment"),
        "environment beats env_file"
    );
    assert_eq!(app.env_file.len(), 2);
    assert!(!app.env_file[1].required);

    // The process environment beats .env.
    let mut o = base.clone();
    o.environment = Some(env(&[("TAG", "from-shell")]));
    assert_eq!(
        compose::load(&o).unwrap().services["app"].image.as_deref(),
        Some("app:from-shell")
    );

    // --env-file replaces .env.
    let mut o = base.clone();
    o.env_files = vec![dir.join("other.env")];
    let p = compose::load(&o).unwrap();
    assert_eq!(
        p.services["app"].image.as_deref(),
        Some("app:from-env-file")
    );
    assert_eq!(p.name, "envproj", "without .env the directory name is used");

    // -p beats COMPOSE_PROJECT_NAME.
    let mut o = base.clone();
    o.project_name = Some("flag-name".into());
    assert_eq!(compose::load(&o).unwrap().name, "flag-name");

    // An explicit name must be valid.
    let mut o = base;
    o.project_name = Some("Bad Name".into());
    let err = compose::load(&o).unwrap_err().to_string();
    assert!(
        err.contains("project name \"Bad Name\" is not valid"),
        "{err}"
    );
}

#[test]
fn discovery_finds_override_and_normalises_directory_name() {
    let dir = fixtures().join("discover/My Project");
    let p = compose::load(&LoadOptions {
        environment: Some(env(&[])),
        working_dir: Some(dir.clone()),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.name, "myproject", "lowercased, space dropped");
    assert_eq!(
        p.config_files,
        vec![
            dir.join("docker-compose.yml"),
            dir.join("docker-compose.override.yml")
        ]
    );
    assert_eq!(p.services["base"].environment["LEVEL"], s("override"));
    assert!(p.services.contains_key("extra"));
}

#[test]
fn compose_file_variable_and_separator() {
    let dir = fixtures();
    let mut o = LoadOptions {
        environment: Some(env(&[
            ("COMPOSE_FILE", "merge-base.yaml:merge-override.yaml"),
            ("COMPOSE_PROFILES", "b"),
        ])),
        working_dir: Some(dir.clone()),
        ..Default::default()
    };
    let p = compose::load(&o).unwrap();
    assert_eq!(
        p.config_files,
        vec![dir.join("merge-base.yaml"), dir.join("merge-override.yaml")]
    );
    assert_eq!(p.services["api"].image.as_deref(), Some("api:2"));
    o.environment = Some(env(&[
        ("COMPOSE_FILE", "merge-base.yaml;implicit.yaml"),
        ("COMPOSE_PATH_SEPARATOR", ";"),
    ]));
    let p = compose::load(&o).unwrap();
    assert_eq!(p.config_files.len(), 2);
    assert!(p.services.contains_key("vpn"));
}

#[test]
fn example_agent_stack_loads() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let p = compose::load(&LoadOptions {
        files: vec![root.join("compose/agents.yaml")],
        environment: Some(env(&[("REDIS_IMAGE", "redis:7.4")])),
        working_dir: Some(root),
        ..Default::default()
    })
    .unwrap();
    assert_eq!(p.name, "agents", "from compose/.env");
    assert_eq!(p.services["redis"].image.as_deref(), Some("redis:7.4"));
    assert_eq!(
        p.services["nats"].image.as_deref(),
        Some("nats:2.10-alpine")
    );
    assert_eq!(p.disabled_services, vec!["embedding-agent"]);
    for agent in ["memory-agent", "planner-agent", "tool-agent"] {
        let svc = &p.services[agent];
        assert_eq!(svc.depends_on["redis"].condition, Condition::ServiceHealthy);
        assert_eq!(
            svc.healthcheck.as_ref().unwrap().test,
            Some(HealthTest::Cmd(vec![
                "muster".into(),
                "check".into(),
                "--agent".into(),
                agent.into()
            ]))
        );
        let probes = &svc.muster.as_ref().unwrap().probes;
        assert!(matches!(&probes[0].kind, ProbeKind::Agent(a) if a.name.as_deref() == Some(agent)));
        assert_eq!(svc.environment["AGENT_NAME"], s(agent));
        assert_eq!(
            svc.environment["REDIS_URL"],
            s("redis://agent:change-me-agent@redis:6379")
        );
    }
    assert!(matches!(
        &p.services["nats"].muster.as_ref().unwrap().probes[0].kind,
        ProbeKind::Nats(n) if n.jetstream
    ));
    assert_eq!(p.services["tool-agent"].replicas, 2);
    let graph = muster::compose::graph::Graph::new(&p).unwrap();
    assert_eq!(graph.levels()[0], vec!["nats", "redis"]);
    assert_eq!(graph.level_of("planner-agent"), Some(3));
}

/// `up --swarm` reads deploy.mode, placement and restart_policy, and
/// x-muster.ready_tasks (issue 20).
#[test]
fn swarm_deploy_keys_are_read() {
    let p = load_ok(&["swarm-deploy.yaml"], &[]);
    let agent = &p.services["agent"];
    let d = agent.deploy.as_ref().unwrap();
    assert_eq!(d.mode.as_deref(), Some("global"));
    assert_eq!(
        d.placement_constraints,
        ["node.role == worker", "node.labels.gpu == true"]
    );
    assert_eq!(d.placement_spread, ["node.labels.zone"]);
    let r = d.restart_policy.as_ref().unwrap();
    assert_eq!(r.condition.as_deref(), Some("on-failure"));
    assert_eq!(r.delay, Some(Duration::from_secs(5)));
    assert_eq!(r.max_attempts, Some(3));
    assert_eq!(r.window, Some(Duration::from_secs(120)));
    assert_eq!(agent.muster.as_ref().unwrap().ready_tasks, Some(2));
}
