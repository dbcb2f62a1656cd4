//! The merged tree -> the [`model`](super::model) types: short and long syntaxes
//! folded into one shape, durations parsed, Docker's healthcheck defaults filled in,
//! relative paths made absolute, implicit dependencies added, profiles applied.
//!
//! One file per part of the syntax: [`values`] (typed readers every other file
//! uses), [`service`] (one service entry), [`build`], [`ports`], [`mounts`] (a service's
//! volumes), [`dependencies`] (explicit and implicit), [`healthcheck`],
//! [`deploy`] (with [`devices`]: gpus, device reservations, generic resources) and [`xmuster`], [`resources`] (top-level networks and volumes), [`runtime`] (cap_add, dns,
//! sysctls, ulimits, logging, …), [`limits`] (memory, CPU, devices, expose,
//! namespaces), [`objects`] (secrets and configs, top-level and per service).
//! This file reads the project level: its name, profiles, and every service
//! through [`service`].

mod blkio;
mod build;
mod dependencies;
mod deploy;
mod devices;
mod healthcheck;
mod limits;
mod mounts;
mod objects;
mod ports;
mod resources;
mod runtime;
mod service;
mod values;
mod xmuster;

pub use deploy::parse_bytes;
pub use values::{shell_split, string, ShellSplitError};

use crate::compose::discover::{normalize_project_name, valid_project_name, Setup};
use crate::compose::error::ComposeError;
use crate::compose::model::*;
use crate::compose::yaml::{Node, Value};
use crate::compose::Warning;
use resources::{network, volume};
use service::service;
use values::{err, R};

pub fn project(tree: &Node, setup: &Setup, warnings: &mut Vec<Warning>) -> R<Project> {
    let name_node = tree.get("name");
    let name = match (&setup.explicit_name, name_node) {
        (Some(n), _) => {
            if !valid_project_name(n) {
                return Err(ComposeError::ProjectName(format!(
                    "project name {n:?} is not valid: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit"
                )));
            }
            n.clone()
        }
        (None, Some(node)) if !node.is_null() => {
            let n = string(node, "name")?;
            if !valid_project_name(&n) {
                return Err(err(node, "name", format!(
                    "project name {n:?} is not valid: it must contain only lowercase letters, digits, dashes and underscores, and start with a letter or digit"
                )));
            }
            n
        }
        _ => {
            let base = setup
                .project_dir
                .file_name()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let n = normalize_project_name(&base);
            if n.is_empty() {
                return Err(ComposeError::ProjectName(format!(
                    "cannot derive a project name from directory {:?}; set one with -p, COMPOSE_PROJECT_NAME or `name:`",
                    setup.project_dir
                )));
            }
            n
        }
    };
    if tree.get("version").is_some() {
        super::validate::push_warning(
            warnings,
            "the top-level `version` key is obsolete and ignored".into(),
        );
    }

    let mut project = Project {
        name,
        working_dir: setup.project_dir.clone(),
        config_files: setup.files.clone(),
        ..Default::default()
    };

    if let Some(entries) = tree.entries() {
        for (k, v) in entries {
            if k.name.starts_with("x-") {
                project.extensions.insert(k.name.clone(), v.to_json());
            }
        }
    }
    if let Some(nets) = tree.get("networks") {
        match &nets.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let path = format!("networks.{}", k.name);
                    project.networks.insert(k.name.clone(), network(v, &path)?);
                }
            }
            _ => return Err(err(nets, "networks", "expected a mapping")),
        }
    }
    if let Some(vols) = tree.get("volumes") {
        match &vols.value {
            Value::Null => {}
            Value::Map(entries) => {
                for (k, v) in entries {
                    let path = format!("volumes.{}", k.name);
                    project.volumes.insert(k.name.clone(), volume(v, &path)?);
                }
            }
            _ => return Err(err(vols, "volumes", "expected a mapping")),
        }
    }

    let lookup = |k: &str| setup.env.get(k).cloned();
    for (section, into) in [
        ("secrets", &mut project.secrets),
        ("configs", &mut project.configs),
    ] {
        if let Some(n) = tree.get(section) {
            *into = objects::objects(n, section, &setup.project_dir, &lookup)?;
        }
    }

    let services = match tree.get("services") {
        None => return Ok(project),
        Some(s) if s.is_null() => return Ok(project),
        Some(s) => s,
    };
    let Some(entries) = services.entries() else {
        return Err(err(
            services,
            "services",
            "expected a mapping of service names",
        ));
    };
    let all_profiles = setup.profiles.iter().any(|p| p == "*");
    for (k, v) in entries {
        let path = format!("services.{}", k.name);
        let mut svc = service(&k.name, v, &path, &setup.project_dir, &lookup)?;
        if let (None, Some(build)) = (&svc.image, svc.build.as_mut()) {
            // Compose's name for an image it builds: `<project>-<service>`.
            build.local_image = true;
            svc.image = Some(default_image_name(&project.name, &k.name));
        }
        let enabled = svc.profiles.is_empty()
            || all_profiles
            || svc.profiles.iter().any(|p| setup.profiles.contains(p));
        if enabled {
            project.services.insert(k.name.clone(), svc);
        } else {
            project.disabled_services.push(k.name.clone());
        }
    }
    Ok(project)
}

/// The image name Compose gives a service that has `build:` and no `image:`.
pub fn default_image_name(project: &str, service: &str) -> String {
    format!("{project}-{service}")
}
