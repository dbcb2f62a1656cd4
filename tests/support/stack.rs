//! Builds compose `Project` values in Rust for the engine tests and benchmarks
//! (the compose loader lives on another branch; these are the same model types).

#![allow(dead_code)]

use std::time::Duration;

use muster::compose::{
    Condition, Dependency, HealthTest, Healthcheck, Port, Project, Service, VolumeMount, VolumeType,
};

pub const BUSYBOX: &str = "muster-test/busybox:1";

/// A project named `name` holding `services`.
pub fn project(name: &str, services: Vec<Service>) -> Project {
    Project {
        name: name.to_string(),
        working_dir: std::env::temp_dir(),
        config_files: vec![std::env::temp_dir().join("compose.yaml")],
        services: services.into_iter().map(|s| (s.name.clone(), s)).collect(),
        ..Default::default()
    }
}

/// A busybox service running `sh -c script` (stopped with SIGKILL after 1 s).
pub fn sh(name: &str, script: &str) -> Service {
    Service {
        name: name.to_string(),
        image: Some(BUSYBOX.to_string()),
        command: Some(vec!["sh".into(), "-c".into(), script.to_string()]),
        replicas: 1,
        stop_grace_period: Some(Duration::from_secs(1)),
        ..Default::default()
    }
}

/// A long-running service that becomes healthy `delay_ms` after it starts.
pub fn healthy_after(name: &str, delay_ms: u64, interval_ms: u64) -> Service {
    let secs = format!("{}.{:03}", delay_ms / 1000, delay_ms % 1000);
    let mut s = sh(
        name,
        &format!("sleep {secs}; touch /tmp/ready; exec sleep 100000"),
    );
    s.healthcheck = Some(Healthcheck {
        test: Some(HealthTest::CmdShell("test -f /tmp/ready".into())),
        interval: Duration::from_millis(interval_ms),
        timeout: Duration::from_secs(2),
        retries: 30,
        ..Default::default()
    });
    s
}

/// Adds a `depends_on` edge.
pub fn dep(mut s: Service, on: &str, condition: Condition) -> Service {
    s.depends_on.insert(
        on.to_string(),
        Dependency {
            condition,
            required: true,
            restart: false,
            implicit: false,
        },
    );
    s
}

pub fn port(target: u16, published: u16) -> Port {
    Port {
        target,
        published: Some(published.to_string()),
        host_ip: Some("127.0.0.1".into()),
        protocol: "tcp".into(),
    }
}

pub fn named_volume(source: &str, target: &str) -> VolumeMount {
    VolumeMount {
        kind: VolumeType::Volume,
        source: Some(source.into()),
        target: target.into(),
        read_only: false,
        consistency: None,
        bind: None,
        volume: None,
        tmpfs: None,
    }
}
