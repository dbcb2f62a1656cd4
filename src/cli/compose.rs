//! `muster config` and `muster graph`: the loaded project (as Compose prints
//! it, or muster's own model with `--model`) and its
//! dependency levels, for people (YAML, lines, Graphviz) and machines (`--json`);
//! `config --hash` prints the config hash Docker Compose would label each
//! service's containers with.

use std::process::ExitCode;

use muster::compose::graph::Graph;
use muster::compose::{self, LoadOptions, Project};
use muster::config::Settings;

use super::{CliResult, ConfigArgs, Global, GraphArgs};

/// `-f`, `-p`, `--profile`, `--env-file`, `--project-directory` as load options.
pub fn load_options(global: &Global) -> LoadOptions {
    LoadOptions {
        files: global.files.clone(),
        project_name: global.project_name.clone(),
        profiles: global.profiles.clone(),
        env_files: global.env_files.clone(),
        project_directory: global.project_directory.clone(),
        environment: None,
        working_dir: None,
    }
}

/// Loads the project named by the global flags.
pub fn load_project(global: &Global) -> Result<Project, compose::ComposeError> {
    compose::load(&load_options(global))
}

/// Loads the project and checks its probes as `up` would build them, so
/// `config` and `graph` refuse what `up` and `status` refuse.
fn load_checked(
    global: &Global,
    settings: &Settings,
) -> Result<Project, Box<dyn std::error::Error + Send + Sync>> {
    let project = load_project(global)?;
    muster::supervisor::plan::check_probes(&project, &settings.plan())?;
    Ok(project)
}

pub fn config(global: &Global, settings: &Settings, args: &ConfigArgs) -> CliResult {
    let project = load_checked(global, settings)?;
    // Everything is rendered before anything is printed: an error leaves no half output.
    let text = if let Some(wanted) = &args.hash {
        let names: Vec<String> = if wanted.trim() == "*" {
            project.services.keys().cloned().collect()
        } else {
            wanted
                .split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        };
        let mut hashes = Vec::new();
        for name in &names {
            let service = project.service(name)?;
            hashes.push((name.clone(), compose::hash::config_hash(service)));
        }
        if global.json {
            let map: serde_json::Map<String, serde_json::Value> = hashes
                .into_iter()
                .map(|(n, h)| (n, serde_json::Value::String(h)))
                .collect();
            serde_json::to_string_pretty(&map)? + "\n"
        } else {
            hashes.iter().map(|(n, h)| format!("{n} {h}\n")).collect()
        }
    } else if args.services {
        let names: Vec<&String> = project.services.keys().collect();
        if global.json {
            serde_json::to_string_pretty(&names)? + "\n"
        } else {
            names.iter().map(|n| format!("{n}\n")).collect()
        }
    } else if args.model {
        if global.json {
            serde_json::to_string_pretty(&project)? + "\n"
        } else {
            yaml(&project)?
        }
    } else if global.json {
        serde_json::to_string_pretty(&compose::document::document(&project, true))? + "\n"
    } else {
        yaml(&compose::document::document(&project, false))?
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}

/// YAML with plain scalars, never folded: paths and commands stay on one line.
fn yaml<T: serde::Serialize>(value: &T) -> Result<String, serde_saphyr::ser::Error> {
    let mut options = serde_saphyr::SerializerOptions::default();
    options.prefer_block_scalars = false;
    serde_saphyr::to_string_with_options(value, options)
}

pub fn graph(global: &Global, settings: &Settings, args: &GraphArgs) -> CliResult {
    let project = load_checked(global, settings)?;
    let graph = Graph::new(&project)?;
    let text = if args.dot {
        graph.to_dot(&project.name)
    } else if global.json {
        serde_json::to_string_pretty(&serde_json::json!({
            "project": project.name,
            "levels": graph.levels(),
            "edges": graph.edges(),
        }))? + "\n"
    } else {
        let mut out = String::new();
        for (i, level) in graph.levels().iter().enumerate() {
            let entries: Vec<String> = level
                .iter()
                .map(|s| {
                    let deps = graph.dependencies(s);
                    if deps.is_empty() {
                        s.clone()
                    } else {
                        format!("{s} (needs {})", deps.join(", "))
                    }
                })
                .collect();
            out.push_str(&format!("level {i}: {}\n", entries.join(", ")));
        }
        out
    };
    print!("{text}");
    Ok(ExitCode::SUCCESS)
}
